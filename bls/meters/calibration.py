"""What a dial class's face cannot tell: the values at its scale's ends, the unit, and checks.

A reading's fraction comes from the scale the model sees on the face (``bls.meters.reading``);
a calibration turns it into a value. It gives, per dial class (``repository/pointer/meters.yaml``,
read by :func:`load_calibrations`)::

    dial:
      min_value: 0.0      # the value at the scale's start (fraction 0)
      max_value: 1.6      # at its end (fraction 1); below min_value on a falling scale
      unit: MPa
      points: [[0.5, 0.6]]   # optional: [fraction, value] knots of a non-linear scale
      start_deg: 225.0    # optional, with end_deg: where the scale starts and ends on the face
      end_deg: 135.0      #   (clockwise from 12 o'clock); a check on the scale seen
      margin_deg: 5.0     # optional: how far past either end a needle still reads as that end

Where the model finds the scale, the calibration's angles are a check: a scale seen more than
``Thresholds.scale_mismatch_deg`` (``bls.meters.reading``) away from them is another meter type
under that class (status ``scale mismatch``). Where the model gives no keypoints (weights without
a keypoint head), the angles are the scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bls.meters.geometry import clockwise

__all__ = [
    "DEFAULT_MARGIN_DEG",
    "Calibration",
    "CalibrationError",
    "fraction_on_scale",
    "load_calibrations",
]

# Tolerance beyond either end of a scale (stop pins sit a few degrees below zero).
DEFAULT_MARGIN_DEG = 5.0


class CalibrationError(ValueError):
    """The calibration file is unusable; the message names the file and the key."""


@dataclass(frozen=True)
class Calibration:
    """One dial class's calibration: its range, its scale's angles, or both.

    Attributes:
        start_deg: where the scale starts on the face, clockwise from 12 o'clock; ``None``
            when not given (then also ``end_deg``).
        end_deg: where it ends; the scale sweeps clockwise from start to end.
        min_value: the value at the scale's start; ``None`` without a range.
        max_value: the value at its end (smaller than ``min_value`` on a falling scale).
        unit: the value's unit; ``None`` without a range.
        points: ``(fraction, value)`` knots of a non-linear scale, fractions rising in
            ``(0, 1)``; the value is piecewise linear between them and the two ends.
        margin_deg: how far beyond either end a needle still reads as that end.
    """

    start_deg: float | None = None
    end_deg: float | None = None
    min_value: float | None = None
    max_value: float | None = None
    unit: str | None = None
    points: tuple[tuple[float, float], ...] = ()
    margin_deg: float = DEFAULT_MARGIN_DEG

    @property
    def has_range(self) -> bool:
        """Whether the calibration turns fractions into values."""
        return self.min_value is not None and self.max_value is not None

    @property
    def has_angles(self) -> bool:
        """Whether it says where the scale lies on the face."""
        return self.start_deg is not None and self.end_deg is not None

    @property
    def sweep_deg(self) -> float | None:
        """The scale's clockwise sweep from start to end, in ``(0, 360)``; ``None`` without
        angles."""
        if self.start_deg is None or self.end_deg is None:
            return None
        return clockwise(self.start_deg, self.end_deg)

    def value(self, fraction: float) -> float | None:
        """The value at ``fraction`` of the scale's sweep; ``None`` without a range."""
        if self.min_value is None or self.max_value is None:
            return None
        fractions = [0.0, *(f for f, _ in self.points), 1.0]
        values = [self.min_value, *(v for _, v in self.points), self.max_value]
        return float(np.interp(fraction, fractions, values))

    def fraction_at(self, face_angle_deg: float) -> float | None:
        """The fraction of the calibrated scale a needle at ``face_angle_deg`` shows.

        Returns:
            The fraction in ``[0, 1]``, or ``None`` without angles or when the angle lies in
            the scale's gap beyond ``margin_deg`` from either end.
        """
        if self.start_deg is None or self.sweep_deg is None:
            return None
        return fraction_on_scale(self.start_deg, self.sweep_deg, face_angle_deg, self.margin_deg)

    def read(self, face_angle_deg: float) -> tuple[float, float | None] | None:
        """``(fraction, value)`` a needle at ``face_angle_deg`` shows on the calibrated angles.

        Returns:
            ``None`` without angles or in the scale's gap; the value is ``None`` without a
            range.
        """
        fraction = self.fraction_at(face_angle_deg)
        return None if fraction is None else (fraction, self.value(fraction))


def fraction_on_scale(
    start_deg: float, sweep_deg: float, angle_deg: float, margin_deg: float
) -> float | None:
    """The share of a scale's sweep at which ``angle_deg`` lies, clockwise from its start.

    Within ``margin_deg`` past either end it reads as that end; beyond, in the scale's gap, it
    is ``None``.
    """
    offset = clockwise(start_deg, angle_deg)
    if offset > sweep_deg:
        if offset <= sweep_deg + margin_deg:
            offset = sweep_deg
        elif offset >= 360.0 - margin_deg:
            offset = 0.0
        else:
            return None
    return offset / sweep_deg


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


_RANGE = ("min_value", "max_value", "unit")
_ANGLES = ("start_deg", "end_deg")
_KEYS = (*_RANGE, "points", *_ANGLES, "margin_deg")


def _number(value: Any, where: str) -> float:
    # bool is an int to Python, but `true` is no number.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CalibrationError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _calibration(entry: Any, where: str) -> Calibration:
    if not isinstance(entry, dict):
        raise CalibrationError(
            f"{where}: expected a mapping with min_value, max_value and unit (and optionally "
            "start_deg and end_deg)"
        )
    for key in entry:
        if key not in _KEYS:
            raise CalibrationError(f"{where}.{key}: unknown key (known: {', '.join(_KEYS)})")
    given_range = [k for k in _RANGE if k in entry]
    given_angles = [k for k in _ANGLES if k in entry]
    if not given_range and not given_angles:
        raise CalibrationError(
            f"{where}: nothing to calibrate: give min_value, max_value and unit, or start_deg "
            "and end_deg"
        )
    for group, given in ((_RANGE, given_range), (_ANGLES, given_angles)):
        missing = [k for k in group if k not in entry]
        if given and missing:
            raise CalibrationError(
                f"{where}.{missing[0]}: missing (given with {', '.join(given)}: "
                f"{', '.join(group)} go together)"
            )
    low = high = unit = None
    if given_range:
        low = _number(entry["min_value"], f"{where}.min_value")
        high = _number(entry["max_value"], f"{where}.max_value")
        if low == high:
            raise CalibrationError(f"{where}.max_value: equals min_value, the range is empty")
        unit = entry["unit"]
        if not isinstance(unit, str) or not unit.strip():
            raise CalibrationError(f"{where}.unit: expected a non-empty string, got {unit!r}")
    start = end = None
    if given_angles:
        start = _number(entry["start_deg"], f"{where}.start_deg")
        end = _number(entry["end_deg"], f"{where}.end_deg")
        if not (0 <= start < 360 and 0 <= end < 360):
            raise CalibrationError(f"{where}.start_deg/end_deg: angles must lie in [0, 360)")
        if start == end:
            raise CalibrationError(f"{where}.end_deg: equals start_deg, the scale has no sweep")
    margin = _number(entry.get("margin_deg", DEFAULT_MARGIN_DEG), f"{where}.margin_deg")
    if not 0 <= margin < 90:
        raise CalibrationError(f"{where}.margin_deg: {margin:g} must lie in [0, 90)")
    if start is not None and end is not None and not margin < (360.0 - clockwise(start, end)) / 2:
        gap = 360.0 - clockwise(start, end)
        raise CalibrationError(
            f"{where}.margin_deg: {margin:g} must be under half the scale's gap of {gap:g} degrees"
        )
    points: tuple[tuple[float, float], ...] = ()
    if "points" in entry:
        if low is None or high is None:
            raise CalibrationError(f"{where}.points: need min_value, max_value and unit")
        points = _points(entry["points"], low, high, f"{where}.points")
    return Calibration(start, end, low, high, unit, points, margin)


def _points(raw: Any, low: float, high: float, where: str) -> tuple[tuple[float, float], ...]:
    if not isinstance(raw, list):
        raise CalibrationError(f"{where}: expected a list of [fraction, value] pairs")
    points = []
    last_fraction, last_value = 0.0, low
    rising = high > low
    for k, pair in enumerate(raw):
        at = f"{where}[{k}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise CalibrationError(f"{at}: expected [fraction, value], got {pair!r}")
        fraction = _number(pair[0], f"{at}[0]")
        value = _number(pair[1], f"{at}[1]")
        if not 0 <= fraction <= 1:
            raise CalibrationError(f"{at}[0]: fraction {fraction:g} must lie in [0, 1]")
        # The ends are min_value at 0 and max_value at 1; listing them again is harmless.
        if (fraction, value) in ((0.0, low), (1.0, high)):
            continue
        if fraction <= last_fraction or fraction >= 1:
            raise CalibrationError(
                f"{at}[0]: fraction {fraction:g} does not rise from the previous point's "
                f"{last_fraction:g} (fractions rise from 0 to 1)"
            )
        if (value <= last_value) if rising else (value >= last_value):
            raise CalibrationError(
                f"{at}[1]: value {value:g} does not {'rise' if rising else 'fall'} from "
                f"{last_value:g} (values run monotonically from min_value to max_value)"
            )
        points.append((fraction, value))
        last_fraction, last_value = fraction, value
    if points and ((high <= last_value) if rising else (high >= last_value)):
        raise CalibrationError(
            f"{where}: max_value {high:g} does not {'rise' if rising else 'fall'} from the "
            f"last point's {last_value:g}"
        )
    return tuple(points)


def load_calibrations(
    path: str | Path, class_names: Sequence[str], needle_class: str = "pointer"
) -> dict[str, Calibration]:
    """Reads the meters' calibration file (format in the module's docstring).

    Args:
        path: the YAML file.
        class_names: the model's ``CLASS_NAMES``; each key must be one of them.
        needle_class: the class of needles, which has no scale.

    Returns:
        Class name -> calibration (an empty file gives none).

    Raises:
        CalibrationError: unreadable or malformed YAML; a missing, ill-typed or unknown key; a
            range without a unit, ends that are equal, non-monotonic points; a class the model
            does not have. The message starts with the file and names the key.
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
