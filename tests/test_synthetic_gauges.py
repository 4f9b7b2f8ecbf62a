"""Unit tests of the synthetic gauge renderer (training/gauges.py) and the COCO writer."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from detectron2.data.datasets import load_coco_json
from matplotlib.path import Path as Polygon

from training import gauges, insulators
from training.coco import write_coco
from training.gauges import CATEGORIES, angle_clockwise_from_up, render_scene

SEED = 5
COUNT = 40


@pytest.fixture(scope="module")
def scenes() -> list:
    return [render_scene(SEED, i) for i in range(COUNT)]


def _outline(annotation) -> np.ndarray:
    return np.asarray(annotation.polygons[0]).reshape(-1, 2)


def _distance_to_outline(point: np.ndarray, outline: np.ndarray) -> float:
    """Shortest distance from ``point`` to the closed polygon's edges."""
    starts, ends = outline, np.roll(outline, -1, axis=0)
    edges = ends - starts
    t = np.clip(np.sum((point - starts) * edges, axis=1) / np.sum(edges * edges, axis=1), 0, 1)
    return float(np.min(np.linalg.norm(starts + t[:, None] * edges - point, axis=1)))


def test_deterministic() -> None:
    for heldout in (False, True):
        a, b = render_scene(3, 7, heldout), render_scene(3, 7, heldout)
        assert np.array_equal(a.image, b.image)
        assert a.truth == b.truth
        assert [x.polygons for x in a.annotations] == [x.polygons for x in b.annotations]
    assert not np.array_equal(render_scene(3, 7).image, render_scene(3, 8).image)


def test_angle_convention() -> None:
    # Clockwise from 12 o'clock in image pixels, where y grows downwards.
    assert angle_clockwise_from_up(0, -1) == 0
    assert angle_clockwise_from_up(1, 0) == 90
    assert angle_clockwise_from_up(0, 1) == 180
    assert angle_clockwise_from_up(-1, 0) == 270


def test_a_pointer_and_a_dial_per_gauge(scenes: list) -> None:
    counts = []
    for scene in scenes:
        height, width = scene.image.shape[:2]
        assert scene.image.dtype == np.uint8 and scene.image.shape[2] == 3
        assert 480 <= width <= 640 and 360 <= height <= 480
        categories = [a.category for a in scene.annotations]
        count = len(scene.truth["gauges"])
        assert categories == ["pointer", "dial"] * count
        counts.append(count)
        for annotation in scene.annotations:
            x, y, w, h = annotation.bbox
            assert x >= 0 and y >= 0 and x + w <= width and y + h <= height and w > 0 and h > 0
            outline = _outline(annotation)
            assert np.allclose(outline.min(axis=0), (x, y)) and len(outline) >= 3
    assert 0 in counts and 1 in counts and max(counts) >= 2


def test_truth_agrees_with_the_masks(scenes: list) -> None:
    """The needle's tip lies on the needle, the center inside the dial, the angle from both."""
    for scene in scenes:
        pairs = zip(scene.annotations[::2], scene.annotations[1::2], strict=True)
        for gauge, (pointer, dial) in zip(scene.truth["gauges"], pairs, strict=True):
            center, tip = np.array(gauge["center"]), np.array(gauge["tip"])
            assert Polygon(_outline(dial)).contains_point(center)
            assert Polygon(_outline(pointer)).contains_point(center, radius=2.0)
            # The tip is the needle's far end: the pointer outline reaches it.
            assert _distance_to_outline(tip, _outline(pointer)) < 0.5
            dx, dy = tip - center
            assert gauge["needle_angle_deg"] == pytest.approx(
                angle_clockwise_from_up(dx, dy), abs=0.01
            )
            scale = gauge["scale"]
            assert 60 <= scale["sweep_deg"] <= 340
            assert scale["end_deg"] == pytest.approx(
                (scale["start_deg"] + scale["sweep_deg"]) % 360, abs=1e-9
            )


def test_keypoints_mark_the_scale_on_the_face() -> None:
    """On the face, drawn square-on, scale_start and scale_end lie at the scale's angles,
    scale_mid halfway between them, center at the pivot, the needle's tip at ``fraction`` of the
    sweep."""
    for index in range(30):
        rng = np.random.default_rng([SEED, index])
        design = gauges._design(rng, 80.0, heldout=bool(index % 2))
        _, geometry = gauges._draw_gauge(design, rng)
        center = geometry["center"]
        assert np.allclose(geometry["keypoints"][3], center)
        start, mid, end = (
            angle_clockwise_from_up(*(p - center)) for p in geometry["keypoints"][:3]
        )
        half = design.start_deg + design.sweep_deg / 2
        needle = design.start_deg + design.fraction * design.sweep_deg
        tip = angle_clockwise_from_up(*(geometry["tip"] - center))
        for seen, drawn in [
            (start, design.start_deg),
            (mid, half),
            (end, design.start_deg + design.sweep_deg),
            (tip, needle),
        ]:
            assert abs((seen - drawn + 180) % 360 - 180) < 1e-6


def test_dials_carry_their_keypoints_in_the_photo(scenes: list) -> None:
    """The dial's annotation carries the truth's keypoints in KEYPOINT_NAMES order, the
    needle's none; the center keypoint is the needle's pivot."""
    for scene in scenes:
        dials = [a for a in scene.annotations if a.category == "dial"]
        assert all(a.keypoints is None for a in scene.annotations if a.category == "pointer")
        for gauge, dial in zip(scene.truth["gauges"], dials, strict=True):
            keypoints = np.reshape(dial.keypoints, (-1, 3))
            assert len(keypoints) == len(gauges.KEYPOINT_NAMES)
            assert np.all(keypoints[:, 2] == 2)
            assert np.allclose(keypoints[:, :2], gauge["keypoints"], atol=1e-3)
            assert np.allclose(keypoints[3, :2], gauge["center"], atol=1e-3)
            assert Polygon(_outline(dial)).contains_points(keypoints[:, :2]).all()


def test_meter_types_vary_and_heldout_types_are_never_trained() -> None:
    trained = [g for i in range(COUNT) for g in render_scene(SEED, i).truth["gauges"]]
    heldout = [g for i in range(COUNT) for g in render_scene(SEED, i, True).truth["gauges"]]
    ranges = {
        (g["scale"]["min_value"], g["scale"]["max_value"], g["scale"]["unit"]) for g in trained
    }
    assert len(ranges) >= 6
    assert any(g["scale"]["min_value"] < 0 for g in trained)
    assert any(g["scale"]["points"] for g in trained)
    starts = {round(g["scale"]["start_deg"]) // 45 for g in trained}
    assert len(starts) >= 4
    trained_types = ranges | {tuple(r) for r in gauges.RANGES}
    assert not {tuple(r) for r in gauges.HELDOUT_RANGES} & trained_types
    unseen = [g for g in heldout if g["meter_type"] == "heldout"]
    assert unseen and all(
        (g["scale"]["min_value"], g["scale"]["max_value"], g["scale"]["unit"])
        in gauges.HELDOUT_RANGES
        for g in unseen
    )


def test_non_linear_scales_give_values_at_their_knots(scenes: list) -> None:
    """A non-linear gauge's value lies on the piecewise-linear curve through its knots (within
    the curve's bend between knots), not on the straight line from min to max."""
    curved = [g for scene in scenes for g in scene.truth["gauges"] if g["scale"]["points"]]
    assert curved
    off_the_line = 0
    for gauge in curved:
        scale = gauge["scale"]
        fractions = [0.0, *(f for f, _ in scale["points"]), 1.0]
        values = [scale["min_value"], *(v for _, v in scale["points"]), scale["max_value"]]
        assert all(np.diff(values) > 0) and all(np.diff(fractions) > 0)
        span = scale["max_value"] - scale["min_value"]
        assert abs(np.interp(gauge["fraction"], fractions, values) - gauge["value"]) < 0.02 * span
        linear = scale["min_value"] + gauge["fraction"] * span
        off_the_line += abs(linear - gauge["value"]) > 0.05 * span
    assert off_the_line


def test_some_photos_show_insulator_strings_unlabelled() -> None:
    scenes = [render_scene(SEED, i) for i in range(60)]
    with_strings = [s for s in scenes if s.truth["strings"]]
    assert with_strings
    for scene in with_strings:
        assert {a.category for a in scene.annotations} <= set(CATEGORIES)


def test_training_photos_also_stand_outdoors_and_held_out_ones_never(scenes: list) -> None:
    grounds = [scene.truth["ground"] for scene in scenes]
    assert "panel" in grounds
    outdoor = {ground for ground in grounds if ground != "panel"}
    assert outdoor, "some training gauges on the insulator photos' grounds"
    # Skies and backdrops of the held-out insulator photos are never drawn behind a gauge.
    assert not {part for ground in outdoor for part in ground.split("/")} & set(
        insulators.HELDOUT_SKY_STYLES + insulators.HELDOUT_BACKDROP_STYLES
    )
    heldout = [render_scene(SEED, i, heldout=True).truth["ground"] for i in range(COUNT)]
    assert set(heldout) == {"panel"}


def test_heldout_styles_are_never_trained() -> None:
    assert not set(gauges.FACE_STYLES) & set(gauges.HELDOUT_FACE_STYLES)
    assert not set(gauges.NEEDLE_STYLES) & set(gauges.HELDOUT_NEEDLE_STYLES)
    trained = {
        (g["face"], g["needle"])
        for i in range(COUNT)
        for g in render_scene(SEED, i).truth["gauges"]
    }
    assert {face for face, _ in trained} <= set(gauges.FACE_STYLES)
    assert {needle for _, needle in trained} <= set(gauges.NEEDLE_STYLES)
    heldout = [g for i in range(COUNT) for g in render_scene(SEED, i, heldout=True).truth["gauges"]]
    assert any(
        g["face"] in gauges.HELDOUT_FACE_STYLES or g["needle"] in gauges.HELDOUT_NEEDLE_STYLES
        for g in heldout
    )


def test_written_dataset_reads_with_detectron2(tmp_path: Path) -> None:
    json_path = write_coco(
        tmp_path,
        CATEGORIES,
        6,
        partial(render_scene, SEED),
        description="test",
        keypoint_names=gauges.KEYPOINT_NAMES,
    )
    document = json.loads(json_path.read_text())
    assert [c["name"] for c in document["categories"]] == list(CATEGORIES)
    assert all(c["keypoints"] == list(gauges.KEYPOINT_NAMES) for c in document["categories"])
    records = load_coco_json(str(json_path), str(tmp_path / "images"), "test_gauges")
    assert len(records) == 6
    for record, image in zip(records, document["images"], strict=True):
        seen_dials: list = []
        assert Path(record["file_name"]).is_file()
        assert len(record["annotations"]) == 2 * len(image["truth"]["gauges"])
        for annotation in record["annotations"]:
            # detectron2's contiguous class ids are the index into CLASS_NAMES.
            assert annotation["category_id"] in (0, 1)
            assert len(annotation["segmentation"][0]) >= 6
            keypoints = np.reshape(annotation["keypoints"], (-1, 3))
            assert len(keypoints) == len(gauges.KEYPOINT_NAMES)
            if annotation["category_id"] == 1:  # detectron2 reads them back to the same pixels
                truth = image["truth"]["gauges"][len(seen_dials)]
                seen_dials.append(truth)
                assert np.allclose(keypoints[:, :2], truth["keypoints"], atol=0.01)
            else:
                assert not keypoints[:, 2].any()
    again = write_coco(
        tmp_path,
        CATEGORIES,
        6,
        partial(render_scene, SEED),
        description="test",
        keypoint_names=gauges.KEYPOINT_NAMES,
    )
    assert again.read_bytes() == json_path.read_bytes()
