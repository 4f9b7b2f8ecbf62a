"""bls.on_dials: which of another detector's boxes lie on a meter's dial, without a server."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bls.merge import merge_answer
from bls.on_dials import DialCover, on_dials, parse_dial_cover, select
from pipelines.tensors import Detections

POINTER, DIAL = 0, 1


def _disc(size: int) -> np.ndarray:
    """A filled circle touching the edges of a ``size`` square."""
    yy, xx = np.mgrid[:size, :size] + 0.5
    r = size / 2
    return ((xx - r) ** 2 + (yy - r) ** 2 <= r * r).astype(np.uint8)


def _meter(dial_score: float = 0.99) -> Detections:
    """A dial: a disc of 100 px at (100, 50); a needle of 10x40 px at (145, 60)."""
    dial = _disc(100)
    needle = np.ones((40, 10), np.uint8)
    return Detections(
        boxes=np.array([[100, 50, 200, 150], [145, 60, 155, 100]], np.float32),
        scores=np.array([dial_score, 0.99], np.float32),
        classes=np.array([DIAL, POINTER], np.int32),
        mask_rects=np.array([[100, 50, 100, 100], [145, 60, 10, 40]], np.int32),
        masks=np.concatenate([dial.reshape(-1), needle.reshape(-1)]),
    )


# Boxes x1, y1, x2, y2 around the dial of _meter.
ON_FACE = [130, 80, 170, 120]  # inside the disc
IN_A_CORNER = [100, 50, 118, 68]  # inside the dial's box, off its disc
HALF_ON = [150, 80, 250, 120]  # half of it beyond the dial's right edge
ON_NEEDLE = [146, 61, 154, 99]
ELSEWHERE = [300, 300, 340, 380]


def test_boxes_on_a_sure_dials_face_are_found_and_no_others() -> None:
    boxes = np.array([ON_FACE, IN_A_CORNER, HALF_ON, ELSEWHERE], np.float32)
    found = on_dials(boxes, _meter(), {DIAL}, DialCover())
    assert found.tolist() == [True, False, False, False]
    # Half of HALF_ON lies on the face: a share of 0.4 drops it too.
    looser = on_dials(boxes, _meter(), {DIAL}, DialCover(min_share=0.4))
    assert looser.tolist() == [True, False, True, False]


def test_an_unsure_dial_and_a_needle_cover_nothing() -> None:
    boxes = np.array([ON_FACE, ON_NEEDLE], np.float32)
    assert not on_dials(boxes, _meter(dial_score=0.9), {DIAL}, DialCover()).any()
    assert on_dials(boxes, _meter(dial_score=0.9), {DIAL}, DialCover(0.85)).all()
    # The needle lies on the dial: only as a dial class would it count on its own.
    assert on_dials(np.array([ON_NEEDLE], np.float32), _meter(), {POINTER}, DialCover()).all()
    assert not on_dials(np.array([ON_FACE], np.float32), _meter(), {POINTER}, DialCover()).any()


def test_a_meter_answer_without_masks_or_dials_covers_nothing() -> None:
    meter = _meter()
    maskless = Detections(meter.boxes, meter.scores, meter.classes)
    boxes = np.array([ON_FACE], np.float32)
    assert not on_dials(boxes, maskless, {DIAL}, DialCover()).any()
    assert on_dials(np.zeros((0, 4), np.float32), meter, {DIAL}, DialCover()).shape == (0,)


def test_select_keeps_each_masks_bytes_with_its_detection() -> None:
    crops = [
        np.full((2, 3), 1, np.uint8),
        np.full((4, 1), 2, np.uint8),
        np.full((1, 5), 3, np.uint8),
    ]
    result = Detections(
        boxes=np.arange(12, dtype=np.float32).reshape(3, 4),
        scores=np.array([0.9, 0.8, 0.7], np.float32),
        classes=np.array([0, 1, 0], np.int32),
        mask_rects=np.array([[0, 0, 3, 2], [0, 0, 1, 4], [0, 0, 5, 1]], np.int32),
        masks=np.concatenate([c.reshape(-1) for c in crops]),
        keypoints=np.arange(18, dtype=np.float32).reshape(3, 2, 3),
    )
    kept = select(result, np.array([True, False, True]))
    assert kept.scores.tolist() == pytest.approx([0.9, 0.7])
    assert kept.mask_rects.tolist() == [[0, 0, 3, 2], [0, 0, 5, 1]]
    assert kept.masks.tolist() == [1] * 6 + [3] * 5
    assert kept.keypoints[1].tolist() == result.keypoints[2].tolist()
    none = select(result, np.zeros(3, bool))
    assert len(none.boxes) == 0 and none.masks.size == 0


def test_dial_cover_parses_and_refuses_by_name() -> None:
    assert parse_dial_cover("") == DialCover()
    assert parse_dial_cover("min_share=0.6") == DialCover(min_share=0.6)
    assert parse_dial_cover("min_dial_score=0.5 min_share=1") == DialCover(0.5, 1.0)
    with pytest.raises(ValueError, match=r"'share=0\.6' is not KEY=VALUE with KEY one of"):
        parse_dial_cover("share=0.6")
    with pytest.raises(ValueError, match="min_share='most' is not a number"):
        parse_dial_cover("min_share=most")
    with pytest.raises(ValueError, match=r"min_dial_score=1.5 is outside \[0, 1\]"):
        parse_dial_cover("min_dial_score=1.5")


def test_the_answer_counts_what_was_dropped_for_the_detectors_checked() -> None:
    insulators = Detections(
        boxes=np.array([ON_FACE, ELSEWHERE], np.float32),
        scores=np.array([0.8, 0.7], np.float32),
        classes=np.array([1, 0], np.int32),
    )
    found = on_dials(insulators.boxes, _meter(), {DIAL}, DialCover())
    results = {"pointer": _meter(), "insulator": select(insulators, ~found)}
    names = {"pointer": ["pointer", "dial"], "insulator": ["insulator", "defect"]}
    document, _ = merge_answer(
        400, 400, results, names, dropped_on_dials={"insulator": int(found.sum())}
    )
    models = json.loads(document)["models"]
    assert models["insulator"]["dropped_on_dials"] == 1
    assert [i["box"] for i in models["insulator"]["instances"]] == [ELSEWHERE]
    assert "dropped_on_dials" not in models["pointer"]
