"""Meter readings from the ``pointer`` model's masks: dial outline and needle to angle and value.

Per detected dial: its center from an ellipse fitted to the dial mask's outline, the needle that
lies on it, the needle's direction in the photo, and, where the dial class is calibrated, the
fraction of the scale and the value. A photo taken at an angle shows the round face as an
ellipse; the calibration's angles are angles on the face, so the needle's direction is
rectified (the affine map that stretches the ellipse's minor axis to its major one) before it is
looked up on the scale.

Angles are clockwise from 12 o'clock, in degrees in ``[0, 360)``, with image y growing
downwards (``training.gauges.angle_clockwise_from_up``).

A reading that cannot be trusted says why in its ``status`` and carries no number::

    {"dial": 1, "needle": 0, "center": [312.4, 208.9], "needle_angle_deg": 23.48,
     "fraction": 0.5769, "value": 0.92306, "unit": "MPa", "status": "ok"}

Calibrations live in a YAML file (``repository/pointer/meters.yaml``) read by
:func:`load_calibrations`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

__all__ = [
    "STATUSES",
    "Calibration",
    "CalibrationError",
    "Ellipse",
    "MaskedInstance",
    "Reading",
    "fit_ellipse",
    "instances_from_arrays",
    "load_calibrations",
    "read_meters",
]

STATUS_OK = "ok"
NO_NEEDLE = "no needle"
NEEDLE_OFF_CENTER = "needle off center"
TWO_NEEDLES = "two needles"
OUTSIDE_SCALE = "outside the scale"
# The dial's mask has no usable outline (too small, or not an ellipse).
BAD_DIAL = "dial mask unusable"
STATUSES = (STATUS_OK, NO_NEEDLE, NEEDLE_OFF_CENTER, TWO_NEEDLES, OUTSIDE_SCALE, BAD_DIAL)

# A needle belongs to a dial when at least this share of its pixels lies inside the dial's
# ellipse, grown by INSIDE_SLACK (masks are a little ragged at the rim).
NEEDLE_INSIDE_SHARE = 0.5
INSIDE_SLACK = 1.1
# A needle whose line misses the dial's center by more than this share of the dial's radius
# (measured on the rectified face) is not pointing from the center.
OFF_CENTER_SHARE = 0.1
# In perspective the ellipse's center is not the face's: the face's center lies along the minor
# axis, off by up to about this share of radius * sin(tilt) on the face (0.35 measured on
# rendered gauges seen from 1.5 dial diameters, the closest the renderer goes).
PERSPECTIVE_SHIFT = 0.4
# A needle mask mostly covered by a higher-scored one is the same needle detected twice.
DUPLICATE_SHARE = 0.5
# Default tolerance beyond either end of a scale (stop pins sit a few degrees below zero).
DEFAULT_MARGIN_DEG = 5.0
_MIN_NEEDLE_PIXELS = 6
_MIN_DIAL_POINTS = 12


class CalibrationError(ValueError):
    """The calibration file is unusable; the message names the file and the key."""


@dataclass(frozen=True)
class Calibration:
    """One dial class's scale.

    Attributes:
        start_deg: angle of the scale's start on the dial's face (clockwise from 12 o'clock).
        end_deg: angle of its end; the scale sweeps clockwise from start to end.
        min_value: the value at ``start_deg``.
        max_value: the value at ``end_deg`` (smaller than ``min_value`` on a falling scale).
        unit: the value's unit.
        points: ``(angle, value)`` knots of a non-linear scale, clockwise from the start; the
            value is piecewise linear between them, and between them and the two ends.
        margin_deg: how far beyond either end a needle still reads as that end.
    """

    start_deg: float
    end_deg: float
    min_value: float
    max_value: float
    unit: str
    points: tuple[tuple[float, float], ...] = ()
    margin_deg: float = DEFAULT_MARGIN_DEG

    @property
    def sweep_deg(self) -> float:
        """The scale's clockwise sweep from start to end, in ``(0, 360)``."""
        return (self.end_deg - self.start_deg) % 360.0

    def knots(self) -> tuple[np.ndarray, np.ndarray]:
        """``(offsets from the start in degrees, values)``, both in scale order."""
        offsets = [0.0]
        values = [self.min_value]
        for angle, value in self.points:
            offsets.append((angle - self.start_deg) % 360.0)
            values.append(value)
        offsets.append(self.sweep_deg)
        values.append(self.max_value)
        return np.asarray(offsets), np.asarray(values)

    def read(self, face_angle_deg: float) -> tuple[float, float] | None:
        """The fraction of the scale and the value a needle at ``face_angle_deg`` shows.

        The fraction is ``(value - min_value) / (max_value - min_value)``: on a linear scale
        also the share of the sweep.

        Returns:
            ``(fraction, value)``, or ``None`` when the angle lies in the scale's gap beyond
            ``margin_deg`` from either end.
        """
        sweep = self.sweep_deg
        offset = (face_angle_deg - self.start_deg) % 360.0
        if offset > sweep:
            if offset <= sweep + self.margin_deg:
                offset = sweep
            elif offset >= 360.0 - self.margin_deg:
                offset = 0.0
            else:
                return None
        offsets, values = self.knots()
        value = float(np.interp(offset, offsets, values))
        fraction = (value - self.min_value) / (self.max_value - self.min_value)
        return fraction, value


@dataclass(frozen=True, eq=False)
class MaskedInstance:
    """One detection of the ``pointer`` model with its mask crop.

    Attributes:
        class_id: index into the model's ``CLASS_NAMES``.
        score: detection score.
        box: ``x1, y1, x2, y2`` in image pixels.
        mask: ``uint8`` or ``bool [height, width]``, nonzero inside, the crop at ``origin``.
        origin: ``(x, y)`` of the crop's top-left pixel in the image.
    """

    class_id: int
    score: float
    box: tuple[float, float, float, float]
    mask: np.ndarray
    origin: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Reading:
    """One dial's reading.

    Attributes:
        dial: index of the dial among the detector's instances.
        needle: index of its needle, ``None`` when there is none or two.
        center: the dial's center ``(x, y)`` in image pixels (the fitted ellipse's).
        needle_angle_deg: direction from the center to the needle's tip in the photo,
            clockwise from 12 o'clock; ``None`` without a needle pointing from the center.
        fraction: share of the scale; ``None`` when uncalibrated or not ``ok``.
        value: the reading in ``unit``; ``None`` when uncalibrated or not ``ok``.
        unit: the calibration's unit; ``None`` when the dial class is uncalibrated.
        status: ``"ok"`` or why there is no trustworthy number (one of :data:`STATUSES`).
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
        }


def _rounded(x: float | None, digits: int) -> float | None:
    return None if x is None else round(x, digits)


@dataclass(frozen=True, eq=False)
class Ellipse:
    """An ellipse ``(p - center)^T shape (p - center) = 1`` in image pixels.

    Attributes:
        center: ``float [2]``, ``x, y``.
        shape: ``float [2, 2]``, symmetric positive definite.
    """

    center: np.ndarray
    shape: np.ndarray

    @property
    def semi_axes(self) -> tuple[float, float]:
        """``(major, minor)`` semi-axis lengths in pixels."""
        eigenvalues = np.linalg.eigvalsh(self.shape)
        return float(1 / math.sqrt(eigenvalues[0])), float(1 / math.sqrt(eigenvalues[1]))

    def rectifier(self) -> np.ndarray:
        """``float [2, 2]``: the linear map taking the ellipse to a circle of its major radius.

        It stretches the minor axis up to the major and leaves the major axis alone, so a
        face photographed square-on is unchanged.
        """
        eigenvalues, vectors = np.linalg.eigh(self.shape)
        major = 1 / math.sqrt(eigenvalues[0])
        return vectors @ np.diag(np.sqrt(eigenvalues) * major) @ vectors.T

    def normalized_radius(self, points: np.ndarray) -> np.ndarray:
        """``float [N]``: 1 on the ellipse, below 1 inside, for ``points`` ``[N, 2]``."""
        d = points - self.center
        return np.sqrt(np.einsum("ni,ij,nj->n", d, self.shape, d))


def fit_ellipse(points: np.ndarray) -> Ellipse | None:
    """Least-squares ellipse through outline points.

    Fits the conic ``a x^2 + b xy + c y^2 + d x + e y = 1`` to the points, centered and scaled
    first so the fit is well conditioned.

    Args:
        points: ``float [N, 2]``, ``x, y``; at least 5.

    Returns:
        The ellipse, or ``None`` when the points do not describe one.
    """
    if len(points) < 5:
        return None
    mean = points.mean(axis=0)
    scale = float(np.sqrt(((points - mean) ** 2).sum(axis=1).mean()))
    if scale == 0:
        return None
    x, y = ((points - mean) / scale).T
    design = np.stack([x * x, x * y, y * y, x, y], axis=1)
    (a, b, c, d, e), *_ = np.linalg.lstsq(design, np.ones(len(points)), rcond=None)
    quadratic = np.array([[a, b / 2], [b / 2, c]])
    if np.linalg.det(quadratic) <= 0:
        return None
    center = np.linalg.solve(2 * quadratic, -np.array([d, e]))
    level = 1 + center @ quadratic @ center
    if level <= 0 or np.any(np.linalg.eigvalsh(quadratic) <= 0):
        return None
    return Ellipse(center=center * scale + mean, shape=quadratic / level / scale**2)


def _dial_ellipse(instance: MaskedInstance) -> Ellipse | None:
    """The ellipse of a dial mask's outer outline."""
    mask = np.pad(np.asarray(instance.mask) != 0, 1).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    outline = max(contours, key=cv2.contourArea)[:, 0, :].astype(np.float64)
    if len(outline) < _MIN_DIAL_POINTS:
        return None
    # -1 undoes the padding.
    return fit_ellipse(outline + np.asarray(instance.origin, dtype=np.float64) - 1)


def _pixels(instance: MaskedInstance) -> np.ndarray:
    """``float [N, 2]``: image coordinates ``x, y`` of the mask's pixels."""
    rows, cols = np.nonzero(np.asarray(instance.mask))
    return np.stack([cols + instance.origin[0], rows + instance.origin[1]], axis=1).astype(
        np.float64
    )


def _axis(points: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """A needle's line: ``(a point on it, unit direction)``, from its pixels' second moments.

    A needle is symmetric about its line, so its long principal axis is that line; moments
    over all its pixels average out the steps of the rasterized edge. Call it on pixels of the
    rectified face: a tilt shears the needle, and a sheared needle's principal axis is not its
    line.
    """
    if len(points) < _MIN_NEEDLE_PIXELS:
        return None
    mean = points.mean(axis=0)
    eigenvalues, vectors = np.linalg.eigh(np.cov((points - mean).T))
    if eigenvalues[1] <= eigenvalues[0]:
        return None  # a round blob has no direction
    return mean, vectors[:, 1]


def _overlap(a: MaskedInstance, b: MaskedInstance) -> int:
    """Pixels in both masks."""
    ax, ay = a.origin
    bx, by = b.origin
    ah, aw = a.mask.shape
    bh, bw = b.mask.shape
    x0, y0 = max(ax, bx), max(ay, by)
    x1, y1 = min(ax + aw, bx + bw), min(ay + ah, by + bh)
    if x1 <= x0 or y1 <= y0:
        return 0
    crop_a = np.asarray(a.mask)[y0 - ay : y1 - ay, x0 - ax : x1 - ax] != 0
    crop_b = np.asarray(b.mask)[y0 - by : y1 - by, x0 - bx : x1 - bx] != 0
    return int(np.count_nonzero(crop_a & crop_b))


def _distinct_needles(
    candidates: list[int], instances: Sequence[MaskedInstance], areas: Mapping[int, int]
) -> list[int]:
    """Drops needles that repeat a higher-scored one (mostly covered by it)."""
    kept: list[int] = []
    for j in sorted(candidates, key=lambda k: -instances[k].score):
        if all(_overlap(instances[j], instances[k]) < DUPLICATE_SHARE * areas[j] for k in kept):
            kept.append(j)
    return sorted(kept)


def _miss(point: np.ndarray, direction: np.ndarray, ellipse: Ellipse) -> float:
    """How far a line on the rectified face passes from where the face's center may be.

    In perspective the face's center is not the ellipse's: it lies off it along the minor
    axis, by up to about ``PERSPECTIVE_SHIFT * major * sin(tilt)`` on the face. The line is
    measured against that segment.
    """
    major, minor = ellipse.semi_axes
    minor_direction = np.linalg.eigh(ellipse.shape)[1][:, 1]
    reach = PERSPECTIVE_SHIFT * major * math.sqrt(max(0.0, 1 - (minor / major) ** 2))
    normal = np.array([-direction[1], direction[0]])
    ends = [float(normal @ (s * minor_direction - point)) for s in (-reach, reach)]
    if ends[0] * ends[1] <= 0:
        return 0.0
    return min(abs(ends[0]), abs(ends[1]))


def _read_dial(
    index: int,
    ellipse: Ellipse,
    needles: list[int],
    pixels: Mapping[int, np.ndarray],
    calibration: Calibration | None,
) -> Reading:
    center = (float(ellipse.center[0]), float(ellipse.center[1]))
    unit = calibration.unit if calibration else None
    if not needles:
        return Reading(index, None, center, None, None, None, unit, NO_NEEDLE)
    if len(needles) > 1:
        return Reading(index, None, center, None, None, None, unit, TWO_NEEDLES)
    (j,) = needles
    rectify = ellipse.rectifier()
    face = (pixels[j] - ellipse.center) @ rectify.T
    axis = _axis(face)
    if axis is None or _miss(*axis, ellipse) > OFF_CENTER_SHARE * ellipse.semi_axes[0]:
        return Reading(index, j, center, None, None, None, unit, NEEDLE_OFF_CENTER)
    direction = axis[1]
    # The tip is the needle's end farther from the center: the tail is the shorter part.
    along = face @ direction
    if along.max() < -along.min():
        direction = -direction
    face_angle = _angle(direction)
    photo_angle = _angle(np.linalg.solve(rectify, direction))
    if calibration is None:
        return Reading(index, j, center, photo_angle, None, None, None, STATUS_OK, face_angle)
    scale = calibration.read(face_angle)
    if scale is None:
        return Reading(index, j, center, photo_angle, None, None, unit, OUTSIDE_SCALE, face_angle)
    fraction, value = scale
    return Reading(index, j, center, photo_angle, fraction, value, unit, STATUS_OK, face_angle)


def _angle(direction: np.ndarray) -> float:
    """Clockwise from 12 o'clock, image y down, in ``[0, 360)``."""
    angle = math.degrees(math.atan2(direction[0], -direction[1])) % 360.0
    return 0.0 if angle == 360.0 else angle


def read_meters(
    instances: Sequence[MaskedInstance],
    class_names: Sequence[str],
    calibrations: Mapping[str, Calibration],
    *,
    needle_class: str = "pointer",
    min_score: float = 0.0,
) -> list[Reading]:
    """Reads every detected dial.

    Instances of ``needle_class`` are needles; every other class is a kind of dial. A needle
    belongs to the dial whose ellipse holds most of its pixels (at least half of them).

    Args:
        instances: the ``pointer`` model's detections, in output order.
        class_names: the model's ``CLASS_NAMES``.
        calibrations: per dial class its scale (:func:`load_calibrations`); a dial class
            missing here is read as an angle only.
        needle_class: the class name of needles.
        min_score: instances scored lower are ignored.

    Returns:
        One reading per dial scored at least ``min_score``, in instance order.
    """
    kept = [i for i, inst in enumerate(instances) if inst.score >= min_score]

    def name(i: int) -> str:
        class_id = instances[i].class_id
        return class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)

    dials = [i for i in kept if name(i) != needle_class]
    pixels = {i: _pixels(instances[i]) for i in kept if name(i) == needle_class}
    pixels = {j: p for j, p in pixels.items() if len(p) >= _MIN_NEEDLE_PIXELS}
    ellipses = {i: _dial_ellipse(instances[i]) for i in dials}

    # Each needle goes to the dial holding the largest share of it.
    owner: dict[int, int] = {}
    best_share: dict[int, float] = {}
    for i, ellipse in ellipses.items():
        if ellipse is None:
            continue
        for j in pixels:
            share = float(np.mean(ellipse.normalized_radius(pixels[j]) <= INSIDE_SLACK))
            if share >= NEEDLE_INSIDE_SHARE and share > best_share.get(j, 0.0):
                owner[j], best_share[j] = i, share
    areas = {j: len(p) for j, p in pixels.items()}

    readings = []
    for i in dials:
        ellipse = ellipses[i]
        calibration = calibrations.get(name(i))
        if ellipse is None:
            x1, y1, x2, y2 = instances[i].box
            unit = calibration.unit if calibration else None
            center = ((x1 + x2) / 2, (y1 + y2) / 2)
            readings.append(Reading(i, None, center, None, None, None, unit, BAD_DIAL))
            continue
        needles = _distinct_needles([j for j, d in owner.items() if d == i], instances, areas)
        readings.append(_read_dial(i, ellipse, needles, pixels, calibration))
    return readings


def instances_from_arrays(
    classes: np.ndarray,
    scores: np.ndarray,
    boxes: np.ndarray,
    mask_rects: np.ndarray,
    masks: np.ndarray,
) -> list[MaskedInstance]:
    """Splits a mask detector's outputs into instances (the compact form of ``bls/merge.py``).

    Args:
        classes: ``int [N]``.
        scores: ``float [N]``.
        boxes: ``float [N, 4]``, ``x1, y1, x2, y2``.
        mask_rects: ``int [N, 4]``, ``x, y, width, height`` of each crop.
        masks: ``uint8 [sum(width * height)]``, the crops concatenated row-major.

    Raises:
        ValueError: the byte count does not match the rectangles.
    """
    rects = np.asarray(mask_rects, dtype=np.int64).reshape(-1, 4)
    areas = rects[:, 2] * rects[:, 3]
    flat = np.asarray(masks).reshape(-1)
    if int(areas.sum()) != flat.size:
        raise ValueError(f"masks has {flat.size} bytes, mask_rects describe {int(areas.sum())}")
    offsets = np.concatenate([[0], np.cumsum(areas)])
    return [
        MaskedInstance(
            class_id=int(classes[i]),
            score=float(scores[i]),
            box=tuple(float(v) for v in boxes[i]),
            mask=flat[offsets[i] : offsets[i + 1]].reshape(int(h), int(w)),
            origin=(int(x), int(y)),
        )
        for i, (x, y, w, h) in enumerate(rects)
    ]


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice (plain YAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_REQUIRED = ("start_deg", "end_deg", "min_value", "max_value", "unit")
_OPTIONAL = ("points", "margin_deg")


def _number(value: Any, where: str) -> float:
    # bool is an int to Python, but `true` is no angle.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CalibrationError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _calibration(entry: Any, where: str) -> Calibration:
    if not isinstance(entry, dict):
        raise CalibrationError(f"{where}: expected a mapping of {', '.join(_REQUIRED)}")
    for key in entry:
        if key not in _REQUIRED + _OPTIONAL:
            known = ", ".join(_REQUIRED + _OPTIONAL)
            raise CalibrationError(f"{where}.{key}: unknown key (known: {known})")
    for key in _REQUIRED:
        if key not in entry:
            raise CalibrationError(f"{where}.{key}: missing")
    start = _number(entry["start_deg"], f"{where}.start_deg")
    end = _number(entry["end_deg"], f"{where}.end_deg")
    if not (0 <= start < 360 and 0 <= end < 360):
        raise CalibrationError(f"{where}.start_deg/end_deg: angles must lie in [0, 360)")
    if start == end:
        raise CalibrationError(f"{where}.end_deg: equals start_deg, the scale has no sweep")
    low = _number(entry["min_value"], f"{where}.min_value")
    high = _number(entry["max_value"], f"{where}.max_value")
    if low == high:
        raise CalibrationError(f"{where}.max_value: equals min_value")
    unit = entry["unit"]
    if not isinstance(unit, str) or not unit:
        raise CalibrationError(f"{where}.unit: expected a non-empty string, got {unit!r}")
    margin = _number(entry.get("margin_deg", DEFAULT_MARGIN_DEG), f"{where}.margin_deg")
    sweep = (end - start) % 360.0
    if not 0 <= margin < (360.0 - sweep) / 2:
        raise CalibrationError(
            f"{where}.margin_deg: {margin:g} must be at least 0 and under half the gap "
            f"of {360.0 - sweep:g} degrees"
        )
    points = _points(entry.get("points", []), start, sweep, low, high, f"{where}.points")
    return Calibration(start, end, low, high, unit, points, margin)


def _points(
    raw: Any, start: float, sweep: float, low: float, high: float, where: str
) -> tuple[tuple[float, float], ...]:
    if not isinstance(raw, list):
        raise CalibrationError(f"{where}: expected a list of [angle, value] pairs")
    points = []
    last_offset, last_value = 0.0, low
    rising = high > low
    for k, pair in enumerate(raw):
        at = f"{where}[{k}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise CalibrationError(f"{at}: expected [angle, value], got {pair!r}")
        angle = _number(pair[0], f"{at}[0]")
        value = _number(pair[1], f"{at}[1]")
        if not 0 <= angle < 360:
            raise CalibrationError(f"{at}[0]: angle {angle:g} must lie in [0, 360)")
        offset = (angle - start) % 360.0
        # The ends are implied by start_deg/min_value and end_deg/max_value; listing them again
        # with the same value is harmless.
        if (offset, value) in ((0.0, low), (sweep, high)):
            continue
        if offset > sweep:
            raise CalibrationError(f"{at}[0]: angle {angle:g} lies outside the scale")
        if offset <= last_offset:
            raise CalibrationError(
                f"{at}[0]: angle {angle:g} does not follow the previous point clockwise"
            )
        if (value <= last_value) if rising else (value >= last_value):
            raise CalibrationError(
                f"{at}[1]: value {value:g} does not {'rise' if rising else 'fall'} from "
                f"{last_value:g} (values must be monotonic from min_value to max_value)"
            )
        points.append((angle, value))
        last_offset, last_value = offset, value
    if points and ((high <= last_value) if rising else (high >= last_value)):
        raise CalibrationError(
            f"{where}: max_value {high:g} does not {'rise' if rising else 'fall'} from the "
            f"last point's {last_value:g}"
        )
    return tuple(points)


def load_calibrations(
    path: str | Path, class_names: Sequence[str], needle_class: str = "pointer"
) -> dict[str, Calibration]:
    """Reads the meters' calibration file.

    The file maps dial class names to their scale::

        dial:
          start_deg: 225.0     # scale start on the face, clockwise from 12 o'clock
          end_deg: 135.0       # scale end; the scale sweeps clockwise from start to end
          min_value: 0.0       # value at start_deg
          max_value: 1.6       # value at end_deg
          unit: MPa
          points: [[270, 0.2], [0, 0.6]]   # optional: non-linear scale knots
          margin_deg: 5.0      # optional: tolerance beyond the ends

    Args:
        path: the YAML file.
        class_names: the model's ``CLASS_NAMES``; each key must be one of them.
        needle_class: the class of needles, which has no scale.

    Returns:
        Class name -> calibration (an empty file gives none).

    Raises:
        CalibrationError: unreadable or malformed YAML, a missing, ill-typed or unknown key,
            a class the model does not have, or points that do not run monotonically; the
            message starts with the file and the key.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    text = path.read_text()
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as error:
        raise CalibrationError(f"{path}: not valid YAML: {error}") from error
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise CalibrationError(f"{path}: expected a mapping of dial class names to scales")
    calibrations = {}
    dial_classes = [n for n in class_names if n != needle_class]
    for key, entry in document.items():
        where = f"{path}: {key}"
        if key == needle_class:
            raise CalibrationError(f"{where}: is the needle class, which has no scale")
        if key not in dial_classes:
            raise CalibrationError(
                f"{where}: not a dial class of the model (classes: {', '.join(dial_classes)})"
            )
        calibrations[key] = _calibration(entry, where)
    return calibrations
