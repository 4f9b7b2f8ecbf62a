"""Unit tests of the synthetic gauge renderer (training/gauges.py) and the COCO writer."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from detectron2.data.datasets import load_coco_json
from matplotlib.path import Path as Polygon

from training import gauges
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
            full_scale = scale["max_value"] - scale["min_value"]
            value = scale["min_value"] + gauge["fraction"] * full_scale
            # Both are stored to 5 decimals.
            assert gauge["value"] == pytest.approx(value, abs=1e-5 * (1 + full_scale))
            assert 90 <= scale["sweep_deg"] <= 300


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
    json_path = write_coco(tmp_path, CATEGORIES, 6, partial(render_scene, SEED), description="test")
    document = json.loads(json_path.read_text())
    assert [c["name"] for c in document["categories"]] == list(CATEGORIES)
    records = load_coco_json(str(json_path), str(tmp_path / "images"), "test_gauges")
    assert len(records) == 6
    for record, image in zip(records, document["images"], strict=True):
        assert Path(record["file_name"]).is_file()
        assert len(record["annotations"]) == 2 * len(image["truth"]["gauges"])
        for annotation in record["annotations"]:
            # detectron2's contiguous class ids are the index into CLASS_NAMES.
            assert annotation["category_id"] in (0, 1)
            assert len(annotation["segmentation"][0]) >= 6
    assert (
        write_coco(
            tmp_path, CATEGORIES, 6, partial(render_scene, SEED), description="test"
        ).read_bytes()
        == json_path.read_bytes()
    )
