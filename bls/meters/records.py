"""What goes into a meter reading and what comes out: the detector's instances, the reading.

Every reading carries the evidence it rests on and abstains, with a status that says why, when
that is weak: ``ok`` means the needle's angle, and the fraction and value where given, can be
trusted. A reading that is not ``ok`` has no value, and no fraction except under ``scale
mismatch`` (there the scale seen stands; it is the calibration's type that does not)::

    {"dial": 1, "needle": 0, "center": [312.4, 208.9], "needle_angle_deg": 23.48,
     "fraction": 0.5769, "value": 0.92306, "unit": "MPa", "status": "ok",
     "scale": {"start_deg": 225.31, "end_deg": 134.62, "source": "seen"},
     "evidence": {"keypoint_score": 0.82, "ellipse_residual": 0.004, "pivot_offset": 0.11,
                  "center_miss": 0.006, "mid_error": 0.003, "radius_spread": 0.012,
                  "fraction_uncertainty": 0.004, "outside_deg": 0.0}}

``scale``'s angles are on the rectified face, clockwise from 12 o'clock; ``source`` is
``"seen"`` (the model's keypoints) or ``"calibration"`` (weights without keypoints), and
``scale`` is ``None`` when neither gives one. ``evidence`` holds what was measured, in shares of
the face's radius where a length (:class:`Evidence`; ``bls.meters.reading.Thresholds`` says where
each turns into abstention). The statuses (:data:`STATUS_MEANINGS`):

- ``ok``: trustworthy. ``fraction`` is ``None`` only where no scale is known (a dial class with
  neither keypoints nor calibrated angles: the needle's angle alone), ``value`` where the dial
  class has no calibrated range.
- ``dial mask unusable``: the dial's mask has no elliptical outline.
- ``no needle`` / ``two needles``: no needle lies on the dial, or two different ones do.
- ``scale not found``: the model gave keypoints but not the scale's ends (scores below
  ``keypoint_min_score``); or, from weights without keypoints, a calibrated range without
  calibrated angles.
- ``scale unsure``: the scale's marks contradict each other or the dial: the middle mark not
  halfway along the sweep, the marks at different radii or off the face, a pivot far from the
  dial's center, an outline that is no ellipse, a sweep too short, a dial too small or a sweep
  too short for the keypoints' precision, or marks read about an ellipse's center on a tilted
  face (no pivot keypoint).
- ``needle off center``: the needle's line misses the pivot.
- ``scale mismatch``: the scale seen is not where the calibration's angles put it, or the
  numerals printed on the face contradict the calibrated range: another meter type under the
  same class. The fraction stands, the value is withheld.
- ``outside the scale``: the needle points into the scale's gap, beyond ``margin_deg``.

Angles are clockwise from 12 o'clock, in degrees in ``[0, 360)``, with image y growing
downwards (``training.gauges.angle_clockwise_from_up``); positions in detectron2's continuous
pixels (``bls.meters.geometry.PIXEL_CENTER``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

__all__ = [
    "BAD_DIAL",
    "KEYPOINT_NAMES",
    "NEEDLE_OFF_CENTER",
    "NO_NEEDLE",
    "OUTSIDE_SCALE",
    "SCALE_MISMATCH",
    "SCALE_NOT_FOUND",
    "SCALE_UNSURE",
    "STATUSES",
    "STATUS_MEANINGS",
    "STATUS_OK",
    "TWO_NEEDLES",
    "Evidence",
    "MaskedInstance",
    "Reading",
    "Scale",
    "instances_from_arrays",
]

# The pointer model's keypoints on each dial, in its YAML's order (KEYPOINT_NAMES).
KEYPOINT_NAMES: tuple[str, ...] = ("scale_start", "scale_mid", "scale_end", "center")
_START, _MID, _END, _PIVOT = KEYPOINT_NAMES

STATUS_OK = "ok"
BAD_DIAL = "dial mask unusable"
NO_NEEDLE = "no needle"
TWO_NEEDLES = "two needles"
SCALE_NOT_FOUND = "scale not found"
SCALE_UNSURE = "scale unsure"
NEEDLE_OFF_CENTER = "needle off center"
SCALE_MISMATCH = "scale mismatch"
OUTSIDE_SCALE = "outside the scale"
STATUS_MEANINGS: dict[str, str] = {
    STATUS_OK: "trustworthy: the needle's angle, and the fraction and value where given",
    BAD_DIAL: "the dial's mask has no elliptical outline",
    NO_NEEDLE: "no needle lies on the dial",
    TWO_NEEDLES: "two different needles lie on the dial",
    SCALE_NOT_FOUND: "the scale's ends were not found on the face (and no calibration says "
    "where they lie)",
    SCALE_UNSURE: "the scale's marks found contradict each other or the dial",
    NEEDLE_OFF_CENTER: "the needle's line misses the dial's pivot",
    SCALE_MISMATCH: "the scale seen is not where the dial class's calibration puts it, or the "
    "numerals printed on the face contradict its range: another meter type",
    OUTSIDE_SCALE: "the needle points into the scale's gap",
}
STATUSES = tuple(STATUS_MEANINGS)


@dataclass(frozen=True, eq=False)
class MaskedInstance:
    """One detection of the ``pointer`` model with its mask crop.

    Attributes:
        class_id: index into the model's ``CLASS_NAMES``.
        score: detection score.
        box: ``x1, y1, x2, y2`` in image pixels.
        mask: ``uint8`` or ``bool [height, width]``, nonzero inside, the crop at ``origin``.
        origin: ``(x, y)`` of the crop's top-left pixel in the image.
        keypoints: ``float32 [K, 3]``, ``x, y, score`` per keypoint (detectron2's
            ``pred_keypoints``, in the order of the model's ``KEYPOINT_NAMES``); ``None`` from
            weights without a keypoint head.
    """

    class_id: int
    score: float
    box: tuple[float, float, float, float]
    mask: np.ndarray
    origin: tuple[int, int] = (0, 0)
    keypoints: np.ndarray | None = None


@dataclass(frozen=True)
class Scale:
    """Where a reading's scale lies on the face.

    Attributes:
        start_deg: the scale's start on the rectified face, clockwise from 12 o'clock.
        end_deg: its end; the scale sweeps clockwise from start to end.
        source: ``"seen"`` (the model's keypoints) or ``"calibration"`` (the calibration's
            angles, for weights without keypoints).
    """

    start_deg: float
    end_deg: float
    source: str

    def to_json(self) -> dict[str, Any]:
        """The scale as the answer states it."""
        return {
            "start_deg": round(self.start_deg, 2),
            "end_deg": round(self.end_deg, 2),
            "source": self.source,
        }


@dataclass(frozen=True)
class Evidence:
    """What a reading rests on; ``None`` where not measured. Lengths in face radii.

    Attributes:
        keypoint_score: the lowest score of the keypoints used.
        ellipse_residual: RMS distance of the dial's outline from its ellipse.
        pivot_offset: the pivot keypoint's normalized radius in the outline's ellipse.
        pivot_uncertainty: without a pivot keypoint, how far the pivot may lie from the
            ellipse's center on the face.
        center_miss: how far the needle's line passes from the pivot.
        mid_error: ``|clockwise(start -> mid) / sweep - 0.5|``.
        radius_spread: largest minus smallest radius of the three scale marks.
        fraction_uncertainty: how far the fraction moves when an end mark is off by
            :attr:`Thresholds.keypoint_error_px` (small dials and short sweeps read coarsely).
        outside_deg: how far the needle points beyond the nearer end of the scale (0 on it).
        range_disagreement: how far the calibrated range's values lie from the numerals
            printed on the face, at most, in shares of the calibrated span
            (``bls.meters.printed.checked_reading``).
    """

    keypoint_score: float | None = None
    ellipse_residual: float | None = None
    pivot_offset: float | None = None
    pivot_uncertainty: float | None = None
    center_miss: float | None = None
    mid_error: float | None = None
    radius_spread: float | None = None
    fraction_uncertainty: float | None = None
    outside_deg: float | None = None
    range_disagreement: float | None = None

    def to_json(self) -> dict[str, float]:
        """The measured items, rounded."""
        return {
            f.name: round(getattr(self, f.name), 4)
            for f in fields(self)
            if getattr(self, f.name) is not None
        }


@dataclass(frozen=True)
class Reading:
    """One dial's reading.

    Attributes:
        dial: index of the dial among the detector's instances.
        needle: index of its needle, ``None`` when there is none or two.
        center: the face's center ``(x, y)`` in image pixels: the pivot keypoint where the
            face was rectified on it, else the fitted ellipse's center.
        needle_angle_deg: direction from the center to the needle's tip in the photo,
            clockwise from 12 o'clock; ``None`` without a needle's direction.
        fraction: share of the scale's sweep; ``None`` unless ``ok`` with a scale.
        value: the reading in ``unit``; ``None`` unless ``ok`` with a calibrated range.
        unit: the calibration's unit; ``None`` without a calibrated range.
        status: ``"ok"`` or why there is no trustworthy number (one of :data:`STATUSES`).
        scale: where the scale lies on the face, and whence that is known.
        evidence: what the reading rests on.
        face_angle_deg: the needle's angle on the rectified face, the one the scale is read at
            (not part of the answer's JSON).
    """

    dial: int
    needle: int | None
    center: tuple[float, float]
    needle_angle_deg: float | None
    fraction: float | None
    value: float | None
    unit: str | None
    status: str
    scale: Scale | None = None
    evidence: Evidence = field(default_factory=Evidence)
    face_angle_deg: float | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The reading as the answer states it (rounded to what the masks can tell)."""
        return {
            "dial": self.dial,
            "needle": self.needle,
            "center": [round(self.center[0], 2), round(self.center[1], 2)],
            "needle_angle_deg": _rounded(self.needle_angle_deg, 2),
            "fraction": _rounded(self.fraction, 5),
            "value": None if self.value is None else float(f"{self.value:.6g}"),
            "unit": self.unit,
            "status": self.status,
            "scale": None if self.scale is None else self.scale.to_json(),
            "evidence": self.evidence.to_json(),
        }


def _rounded(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


def instances_from_arrays(
    classes: np.ndarray,
    scores: np.ndarray,
    boxes: np.ndarray,
    mask_rects: np.ndarray,
    masks: np.ndarray,
    keypoints: np.ndarray | None = None,
) -> list[MaskedInstance]:
    """Splits a mask detector's outputs into instances (the compact form of ``bls/merge.py``).

    Args:
        classes: ``int [N]``.
        scores: ``float [N]``.
        boxes: ``float [N, 4]``, ``x1, y1, x2, y2``.
        mask_rects: ``int [N, 4]``, ``x, y, width, height`` of each crop.
        masks: ``uint8 [sum(width * height)]``, the crops concatenated row-major.
        keypoints: ``float [N, K, 3]``, ``x, y, score`` per keypoint, from a detector with a
            keypoint head; ``None`` without one.

    Raises:
        ValueError: the byte count does not match the rectangles, or ``keypoints`` is not
            ``[N, K, 3]``.
    """
    rects = np.asarray(mask_rects, dtype=np.int64).reshape(-1, 4)
    areas = rects[:, 2] * rects[:, 3]
    flat = np.asarray(masks).reshape(-1)
    if int(areas.sum()) != flat.size:
        raise ValueError(f"masks has {flat.size} bytes, mask_rects describe {int(areas.sum())}")
    points = None
    if keypoints is not None:
        points = np.asarray(keypoints, dtype=np.float32)
        if points.ndim != 3 or points.shape[0] != len(rects) or points.shape[2] != 3:
            raise ValueError(
                f"keypoints has shape {points.shape}, expected ({len(rects)}, K, 3): x, y, score "
                "per keypoint of each instance"
            )
    offsets = np.concatenate([[0], np.cumsum(areas)])
    return [
        MaskedInstance(
            class_id=int(classes[i]),
            score=float(scores[i]),
            box=tuple(float(v) for v in boxes[i]),
            mask=flat[offsets[i] : offsets[i + 1]].reshape(int(h), int(w)),
            origin=(int(x), int(y)),
            keypoints=None if points is None else points[i],
        )
        for i, (x, y, w, h) in enumerate(rects)
    ]
