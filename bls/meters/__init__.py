"""Meter readings: the scale the pointer model sees on each dial, and the needle on it.

- ``geometry``: the dial's outline as an ellipse and the face rectified (exactly, from the
  needle's pivot; affine without it); angles on the face.
- ``calibration``: what the face cannot tell (the values at the scale's ends, the unit,
  non-linear points) and the checks on it, from ``repository/pointer/meters.yaml``.
- ``reading``: per dial the needle, the scale, the fraction, the value, and the evidence and
  status that say whether to trust them; the thresholds of that judgement.
- ``records``: what goes in (the detector's instances, with keypoints) and what comes out (the
  reading, its JSON form, the statuses and what each means).
"""

from bls.meters.calibration import Calibration, CalibrationError, load_calibrations
from bls.meters.geometry import Ellipse, fit_ellipse
from bls.meters.reading import DEFAULT_THRESHOLDS, Thresholds, read_meters
from bls.meters.records import (
    KEYPOINT_NAMES,
    STATUS_MEANINGS,
    STATUSES,
    Evidence,
    MaskedInstance,
    Reading,
    Scale,
    instances_from_arrays,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "KEYPOINT_NAMES",
    "STATUSES",
    "STATUS_MEANINGS",
    "Calibration",
    "CalibrationError",
    "Ellipse",
    "Evidence",
    "MaskedInstance",
    "Reading",
    "Scale",
    "Thresholds",
    "fit_ellipse",
    "instances_from_arrays",
    "load_calibrations",
    "read_meters",
]
