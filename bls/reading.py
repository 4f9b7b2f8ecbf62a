"""The meter reading's entry for its importers (``repository/inspect``, ``bench/accuracy``):
the reading lives in ``bls/meters/`` (geometry, calibration, reading); this module names its
public parts."""

from bls.meters import (
    DEFAULT_THRESHOLDS,
    KEYPOINT_NAMES,
    STATUS_MEANINGS,
    STATUSES,
    Calibration,
    CalibrationError,
    Ellipse,
    Evidence,
    MaskedInstance,
    Reading,
    Scale,
    Thresholds,
    fit_ellipse,
    instances_from_arrays,
    load_calibrations,
    read_meters,
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
