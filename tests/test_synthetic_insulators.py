"""Unit tests of the synthetic insulator-string renderer (training/insulators.py)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from training import insulators
from training.insulators import CATEGORIES, DEFECT_KINDS, paint_strings, render_scene

SEED = 11
COUNT = 80
# A background no string is drawn in; the quarters show which pixels were painted over.
BACKGROUND = np.float32([200.25, 30.25, 200.25])
# OpenCV's anti-aliasing leaves faint pixels about a pixel beyond a shape: a pixel counts as
# drawn where it changed by this much, and a box may differ from the drawn pixels by this much.
DRAWN = 32
TOLERANCE = 2.0


@pytest.fixture(scope="module")
def scenes() -> list:
    return [render_scene(SEED, i) for i in range(COUNT)]


@pytest.fixture(scope="module")
def heldout_scenes() -> list:
    return [render_scene(SEED, i, heldout=True) for i in range(COUNT // 2)]


def _corners(bbox: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    x, y, w, h = bbox
    return x, y, x + w, y + h


def _plain(height: int = 420, width: int = 560) -> np.ndarray:
    image = np.empty((height, width, 3), np.float32)
    image[:] = BACKGROUND
    return image


def _drawn(image: np.ndarray) -> np.ndarray:
    return np.abs(image - BACKGROUND).max(axis=2) >= DRAWN


def test_categories_order() -> None:
    assert CATEGORIES == ("insulator", "defect")
    assert DEFECT_KINDS == ("missing", "broken", "cracked", "burnt")


def test_deterministic() -> None:
    for heldout in (False, True):
        a, b = render_scene(3, 5, heldout), render_scene(3, 5, heldout)
        assert np.array_equal(a.image, b.image)
        assert [(x.category, x.bbox) for x in a.annotations] == [
            (x.category, x.bbox) for x in b.annotations
        ]
        assert a.truth == b.truth and a.jpeg_quality == b.jpeg_quality
    assert not np.array_equal(render_scene(3, 5).image, render_scene(3, 6).image)
    assert not np.array_equal(render_scene(3, 5).image, render_scene(4, 5).image)


def test_image_format(scenes: list, heldout_scenes: list) -> None:
    for scene in scenes + heldout_scenes:
        height, width, channels = scene.image.shape
        assert scene.image.dtype == np.uint8 and channels == 3
        assert 480 <= width <= 640 and 360 <= height <= 480
        assert 40 <= scene.jpeg_quality <= 95
        json.dumps(scene.truth)


def test_boxes_inside_image_and_positive(scenes: list, heldout_scenes: list) -> None:
    for scene in scenes + heldout_scenes:
        height, width = scene.image.shape[:2]
        for annotation in scene.annotations:
            assert annotation.category in CATEGORIES
            assert annotation.polygons is None
            x0, y0, x1, y1 = _corners(annotation.bbox)
            assert annotation.bbox[2] > 0 and annotation.bbox[3] > 0
            assert x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height


def test_defects_lie_inside_a_string(scenes: list, heldout_scenes: list) -> None:
    for scene in scenes + heldout_scenes:
        strings = [_corners(a.bbox) for a in scene.annotations if a.category == "insulator"]
        for annotation in scene.annotations:
            if annotation.category != "defect":
                continue
            x0, y0, x1, y1 = _corners(annotation.bbox)
            assert any(
                x0 >= s[0] - 1e-6 and y0 >= s[1] - 1e-6 and x1 <= s[2] + 1e-6 and y1 <= s[3] + 1e-6
                for s in strings
            )


def test_defects_big_enough_at_detector_scale(scenes: list) -> None:
    for scene in scenes:
        scale = 384 / min(scene.image.shape[:2])
        for annotation in scene.annotations:
            if annotation.category == "defect":
                assert min(annotation.bbox[2:]) * scale >= 12


def test_counts_match_truth_and_every_defect_kind_is_drawn(
    scenes: list, heldout_scenes: list
) -> None:
    for drawn in (scenes, heldout_scenes):
        kinds: Counter = Counter()
        for scene in drawn:
            categories = [a.category for a in scene.annotations]
            truth = scene.truth
            assert categories.count("insulator") == truth["strings"] <= 4
            assert categories.count("defect") == truth["defects"]
            assert sum(truth[kind] for kind in DEFECT_KINDS) == truth["defects"]
            assert truth["defect_kinds"] == sorted(k for k in DEFECT_KINDS if truth[k])
            kinds.update({kind: truth[kind] for kind in DEFECT_KINDS})
        assert all(kinds[kind] >= 1 for kind in DEFECT_KINDS), kinds
    assert max(scene.truth["strings"] for scene in scenes) >= 2


def test_negatives_and_mixed_scenes(scenes: list, heldout_scenes: list) -> None:
    """Some photos show gauges and look-alikes without a string (no annotation at all: the
    gauges are unlabelled for this model), some strings and gauges together."""
    for drawn in (scenes, heldout_scenes):
        negatives = [s for s in drawn if s.truth["scene"] == "negative"]
        assert 0.08 <= len(negatives) / len(drawn) <= 0.35
        for scene in negatives:
            assert scene.annotations == [] and scene.truth["strings"] == 0
            assert scene.truth["lookalikes"] >= 3
        assert any(s.truth["meters"] >= 1 for s in negatives)
        mixed = [s for s in drawn if s.truth["meters"] >= 1 and s.truth["strings"] >= 1]
        assert mixed
        for scene in mixed:
            assert {a.category for a in scene.annotations} <= set(CATEGORIES)


def test_boxes_tight_around_the_drawn_string() -> None:
    """On a plain background, without attachments, the pixels paint_strings changes are the
    string's: its box touches them on all four sides and nothing lies outside it."""
    looks: Counter = Counter()
    for seed in range(60):
        image = _plain()
        annotations, truth = paint_strings(
            image, np.random.default_rng(seed), seed % 2 == 1, count=1, attachments=False
        )
        [box] = [a.bbox for a in annotations if a.category == "insulator"]
        ys, xs = np.nonzero(_drawn(image))
        pixels = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        assert np.abs(pixels - np.array(_corners(box))).max() <= TOLERANCE, (seed, box, pixels)
        looks.update([truth["shading"], truth["contour"], *truth["defect_kinds"]])
    # the boxes were checked on every look and every defect
    assert set(insulators.SHADINGS) | set(DEFECT_KINDS) <= set(looks), looks
    assert looks["none"] < 60


def test_paint_strings_changes_only_what_it_draws() -> None:
    image = _plain()
    annotations, truth = paint_strings(image, np.random.default_rng(4), False, count=3)
    assert truth["strings"] == len([a for a in annotations if a.category == "insulator"]) >= 1
    untouched = np.all(image == BACKGROUND, axis=2)
    # the float background's fractions survive wherever nothing was drawn
    assert 0.3 < untouched.mean() < 1.0
    for annotation in annotations:
        x0, y0, x1, y1 = (round(v) for v in _corners(annotation.bbox))
        assert not untouched[y0:y1, x0:x1].all()


def test_paint_strings_rejects_bad_input() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="float32"):
        paint_strings(np.zeros((100, 100, 3), np.uint8), rng, False)
    with pytest.raises(ValueError, match="float32"):
        paint_strings(np.zeros((100, 100), np.float32), rng, False)
    with pytest.raises(ValueError, match="count"):
        paint_strings(np.zeros((100, 100, 3), np.float32), rng, False, count=-1)
    image = _plain()
    annotations, truth = paint_strings(image, rng, False, count=0)
    assert annotations == [] and truth["strings"] == truth["defects"] == 0
    assert np.all(image == BACKGROUND)


def test_looks_vary(scenes: list) -> None:
    """What one renderer would fix varies: backgrounds, shading, profiles, contours."""
    truths = [s.truth for s in scenes]
    for key, values in (
        ("background", insulators.BACKGROUNDS),
        ("shading", insulators.SHADINGS),
        ("profile", insulators.PROFILES),
        ("fittings", insulators.FITTINGS),
    ):
        assert {t[key] for t in truths if key in t} == set(values), key
    assert {"none", "dark"} <= {t["contour"] for t in truths if "contour" in t}


def test_training_draws_more_defects_than_the_heldout_set(
    scenes: list, heldout_scenes: list
) -> None:
    """Training strings are defective 70% of the time (where their pitch allows a defect), the
    held-out ones 40%, as they were always drawn: the measured AP stays comparable."""

    def defect_share(drawn: list) -> float:
        return sum(s.truth["defects"] for s in drawn) / sum(s.truth["strings"] for s in drawn)

    assert defect_share(scenes) > 0.6
    assert defect_share(heldout_scenes) < 0.6


def test_heldout_styles_disjoint(scenes: list, heldout_scenes: list) -> None:
    pairs = [
        (insulators.SKY_STYLES, insulators.HELDOUT_SKY_STYLES),
        (insulators.BACKDROP_STYLES, insulators.HELDOUT_BACKDROP_STYLES),
        (insulators.MATERIAL_STYLES, insulators.HELDOUT_MATERIAL_STYLES),
    ]
    for train, heldout in pairs:
        assert train and heldout and not set(train) & set(heldout)
    for drawn, (skies, backdrops, materials) in (
        (scenes, [train for train, _ in pairs]),
        (heldout_scenes, [heldout for _, heldout in pairs]),
    ):
        photographed = [s.truth for s in drawn if s.truth["background"] == "photo"]
        assert photographed
        for truth in photographed:
            assert truth["sky"] in skies and truth["backdrop"] in backdrops
        for scene in drawn:
            assert set(scene.truth["materials"]) <= set(materials)
