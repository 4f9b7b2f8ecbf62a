"""Unit tests of the synthetic insulator-string renderer (training/insulators.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training import insulators
from training.insulators import CATEGORIES, render_scene

SEED = 11
COUNT = 40


@pytest.fixture(scope="module")
def scenes() -> list:
    return [render_scene(SEED, i) for i in range(COUNT)]


@pytest.fixture(scope="module")
def heldout_scenes() -> list:
    return [render_scene(SEED, i, heldout=True) for i in range(COUNT // 2)]


def _corners(bbox: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    x, y, w, h = bbox
    return x, y, x + w, y + h


def test_categories_order() -> None:
    assert CATEGORIES == ("insulator", "defect")


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
        assert 60 <= scene.jpeg_quality <= 95
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


def test_counts_match_truth_and_mix(scenes: list) -> None:
    for scene in scenes:
        categories = [a.category for a in scene.annotations]
        assert categories.count("insulator") == scene.truth["strings"] <= 4
        assert categories.count("defect") == scene.truth["defects"]
    strings = [scene.truth["strings"] for scene in scenes]
    assert 0 in strings, "some images must have no string at all"
    assert max(strings) >= 2
    assert sum(scene.truth["defects"] for scene in scenes) > 0


def test_training_draws_more_defects_than_the_heldout_set(
    scenes: list, heldout_scenes: list
) -> None:
    """Training strings are defective 70% of the time (where their pitch allows a defect), the
    held-out ones 40%, as they were always drawn: the measured AP stays comparable."""

    def defect_share(drawn: list) -> float:
        return sum(s.truth["defects"] for s in drawn) / sum(s.truth["strings"] for s in drawn)

    assert defect_share(scenes) > 0.6
    assert defect_share(heldout_scenes) < 0.5


def test_heldout_styles_disjoint(scenes: list, heldout_scenes: list) -> None:
    pairs = [
        (insulators.SKY_STYLES, insulators.HELDOUT_SKY_STYLES),
        (insulators.BACKDROP_STYLES, insulators.HELDOUT_BACKDROP_STYLES),
        (insulators.MATERIAL_STYLES, insulators.HELDOUT_MATERIAL_STYLES),
    ]
    for train, heldout in pairs:
        assert train and heldout and not set(train) & set(heldout)
    for scene in scenes:
        assert scene.truth["sky"] in insulators.SKY_STYLES
        assert scene.truth["backdrop"] in insulators.BACKDROP_STYLES
        assert set(scene.truth["materials"]) <= set(insulators.MATERIAL_STYLES)
    for scene in heldout_scenes:
        assert scene.truth["sky"] in insulators.HELDOUT_SKY_STYLES
        assert scene.truth["backdrop"] in insulators.HELDOUT_BACKDROP_STYLES
        assert set(scene.truth["materials"]) <= set(insulators.HELDOUT_MATERIAL_STYLES)
