"""Detections that lie on a meter's face, which no other detector's object can.

A meter's dial is opaque and flat: nothing behind it shows through, and an insulator or its
defect cannot sit on it. Yet a detector trained away from meters reads the printed numerals,
ticks and needle of a face as its own objects (issue 37: most of the demo insulator model's
boxes on photos of meters lie on a dial). When ``inspect`` ran the meter detector too, the
boxes of the other detectors that lie mostly on the mask of a dial the meter detector is sure
of are dropped, and the answer counts them (``dropped_on_dials``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from bls.meters.records import instances_from_arrays
from pipelines.tensors import Detections

__all__ = ["DialCover", "on_dials", "parse_dial_cover", "select"]


@dataclass(frozen=True)
class DialCover:
    """When a box counts as lying on a dial.

    Attributes:
        min_dial_score: only dials scored at least this cover anything: a dial the meter detector
            is unsure of may be an insulator's disc it mistook.
        min_share: the least share of a box's area on dial masks for the box to be dropped.
    """

    min_dial_score: float = 0.95
    min_share: float = 0.8


def parse_dial_cover(text: str) -> DialCover:
    """``"min_dial_score=0.95 min_share=0.8"`` (either may be left out) as a :class:`DialCover`.

    Raises:
        ValueError: an unknown key, a value that is not a number, or one outside ``[0, 1]``.
    """
    values: dict[str, float] = {}
    for word in text.split():
        key, equals, value = word.partition("=")
        if not equals or key not in DialCover.__dataclass_fields__:
            known = ", ".join(DialCover.__dataclass_fields__)
            raise ValueError(f"dial_cover: {word!r} is not KEY=VALUE with KEY one of {known}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"dial_cover: {key}={value!r} is not a number") from None
        if not 0.0 <= number <= 1.0:
            raise ValueError(f"dial_cover: {key}={value} is outside [0, 1]")
        values[key] = number
    return DialCover(**values)


def _dial_crops(
    meter: Detections, dial_classes: Collection[int], min_score: float
) -> list[tuple[int, int, np.ndarray]]:
    """``(x, y, mask)`` of each dial scored at least ``min_score``, its crop placed at x, y."""
    if meter.mask_rects is None or meter.masks is None:
        return []
    instances = instances_from_arrays(
        meter.classes, meter.scores, meter.boxes, meter.mask_rects, meter.masks
    )
    return [
        (*i.origin, np.asarray(i.mask) != 0)
        for i in instances
        if i.class_id in dial_classes and i.score >= min_score
    ]


def on_dials(
    boxes: np.ndarray, meter: Detections, dial_classes: Collection[int], cover: DialCover
) -> np.ndarray:
    """Which boxes lie on the dials of the meter detector's answer.

    Args:
        boxes: ``float [N, 4]``, ``x1, y1, x2, y2`` in original pixels (another detector's).
        meter: the meter detector's answer for the same image, with its masks.
        dial_classes: the meter detector's class ids that are dials.
        cover: which dials count, and how much of a box must lie on them.

    Returns:
        ``bool [N]``: True where at least ``cover.min_share`` of the box's pixels lie on the
        masks of the dials scored at least ``cover.min_dial_score``.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    found = np.zeros(len(boxes), dtype=bool)
    crops = _dial_crops(meter, dial_classes, cover.min_dial_score)
    if not crops:
        return found
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        left, top = int(np.floor(x1)), int(np.floor(y1))
        right, bottom = max(int(np.ceil(x2)), left + 1), max(int(np.ceil(y2)), top + 1)
        covered = np.zeros((bottom - top, right - left), dtype=bool)
        for x, y, crop in crops:
            h, w = crop.shape
            ox0, oy0 = max(left, x), max(top, y)
            ox1, oy1 = min(right, x + w), min(bottom, y + h)
            if ox1 > ox0 and oy1 > oy0:
                covered[oy0 - top : oy1 - top, ox0 - left : ox1 - left] |= crop[
                    oy0 - y : oy1 - y, ox0 - x : ox1 - x
                ]
        found[k] = covered.mean() >= cover.min_share
    return found


def select(result: Detections, keep: np.ndarray) -> Detections:
    """The detections where ``keep`` is True, masks and keypoints included."""
    keep = np.asarray(keep, dtype=bool)
    mask_rects = masks = None
    if result.mask_rects is not None and result.masks is not None:
        rects = np.asarray(result.mask_rects).reshape(-1, 4)
        sizes = (rects[:, 2] * rects[:, 3]).astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        flat = np.asarray(result.masks).reshape(-1)
        pieces = [flat[s : s + n] for s, n, k in zip(starts, sizes, keep, strict=True) if k]
        mask_rects = result.mask_rects[keep]
        masks = np.concatenate(pieces) if pieces else flat[:0]
    return Detections(
        boxes=result.boxes[keep],
        scores=result.scores[keep],
        classes=result.classes[keep],
        mask_rects=mask_rects,
        masks=masks,
        keypoints=None if result.keypoints is None else result.keypoints[keep],
    )
