"""Meter readings from the ``pointer`` model: the scale it sees on each dial, the needle on it.

Per detected dial: the ellipse of its mask's outline; the needle that lies on it; the face
rectified (``bls.meters.geometry``: exactly, from the outline and the needle's pivot keypoint
``center``; affine about the ellipse's center without one); the scale's ``scale_start``,
``scale_mid`` and ``scale_end`` keypoints and the needle measured on that face. The fraction is
the needle's share of the scale's sweep angle, clockwise from its start: 0 at the start, 1 at the
end, for any meter. Where the dial class is calibrated (``bls.meters.calibration``) the fraction
becomes a value; the calibration's angles, where given, check that the scale seen is the
calibrated type's. Weights without a keypoint head (no keypoints at all) read on the calibration's
angles, as the scale's ``source`` says.

Each reading says what it rests on and abstains when that is weak (the answer's form and the
statuses: ``bls.meters.records``); :class:`Thresholds` says where evidence turns into abstention.

Angles are clockwise from 12 o'clock, in degrees in ``[0, 360)``, with image y growing
downwards (``training.gauges.angle_clockwise_from_up``); positions in detectron2's continuous
pixels (``bls.meters.geometry.PIXEL_CENTER``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bls.meters.calibration import DEFAULT_MARGIN_DEG, Calibration, fraction_on_scale
from bls.meters.geometry import (
    PIXEL_CENTER,
    Ellipse,
    Face,
    affine_face,
    clockwise,
    clockwise_angle,
    fit_ellipse,
    needle_line,
    outline_points,
    perspective_face,
)
from bls.meters.records import (
    BAD_DIAL,
    KEYPOINT_NAMES,
    NEEDLE_OFF_CENTER,
    NO_NEEDLE,
    OUTSIDE_SCALE,
    SCALE_MISMATCH,
    SCALE_NOT_FOUND,
    SCALE_UNSURE,
    STATUS_OK,
    STATUSES,
    TWO_NEEDLES,
    Evidence,
    MaskedInstance,
    Reading,
    Scale,
)

__all__ = ["DEFAULT_THRESHOLDS", "Thresholds", "read_meters"]

_START, _MID, _END, _PIVOT = KEYPOINT_NAMES

# A needle belongs to a dial when at least this share of its pixels lies inside the dial's
# ellipse, grown by INSIDE_SLACK (masks are a little ragged at the rim).
NEEDLE_INSIDE_SHARE = 0.5
INSIDE_SLACK = 1.1
# A needle mask mostly covered by a higher-scored one is the same needle detected twice.
DUPLICATE_SHARE = 0.5
# Where on the needle's line its direction is read when no scale gives a radius (face radii).
_NEEDLE_RADIUS = 0.8
_MIN_NEEDLE_PIXELS = 6
_MIN_DIAL_POINTS = 12


@dataclass(frozen=True)
class Thresholds:
    """Where evidence turns into abstention; lengths in shares of the face's radius.

    The scale's defaults were chosen on the demo pointer model's outputs for photos of the
    gauges' calibration split (never the held-out one; how and what they gave: docs/accuracy.md):
    the most readings ``ok`` with none more than 3% of the span off by fraction.
    ``keypoint_error_px`` is the model's error at the scale's ends. Its ``scale_mid`` is far
    looser and less sure than the ends, hence the low ``keypoint_min_score`` and the loose
    ``max_mid_error``, which still catches ends swapped or confused (0.5 off).
    Pass another instance to :func:`read_meters`, report one with ``dataclasses.asdict``.

    Attributes:
        keypoint_min_score: least detectron2 keypoint score (its heatmap peak's softmax share)
            of a keypoint used; below it the keypoint counts as not found.
        max_ellipse_residual: RMS distance of the dial's outline from its fitted ellipse.
        max_pivot_offset: how far the pivot may lie from the ellipse's center, as the
            ellipse's normalized radius (perspective moves it by up to about 0.2).
        max_mid_error: how far ``scale_mid`` may lie from halfway along the sweep, in shares of
            the sweep.
        max_radius_spread: how much the three scale marks' radii on the face may differ.
        keypoint_error_px: the error expected of a keypoint found (per axis, in pixels): what
            ``fraction_uncertainty`` is computed for.
        max_fraction_uncertainty: the most ``fraction_uncertainty`` an ``ok`` reading may have.
        scale_radius: the range of radii on the face where scale marks can lie.
        min_sweep_deg: a shorter sweep is taken for ends confused with each other.
        max_pivot_uncertainty: without a pivot keypoint, how far the pivot may lie from the
            ellipse's center (``perspective_shift * sin(tilt)``) for the scale's marks, read
            about the ellipse's center, still to be trusted.
        scale_mismatch_deg: a seen scale whose start, end or sweep differs from the
            calibration's angles by more than this is another meter type. Above the end
            marks' error on the face (about 1.5 degrees at the median, 4 at p90), below the
            steps between types' scales: at 10, meters of other types whose ends lie 5 to 10
            degrees from the calibration's read ``ok`` with the calibration's range
            (docs/accuracy.md). A camera rolled by more than a few degrees reads
            ``scale mismatch``.
        off_center_share: the needle's line may miss the pivot by this much.
        perspective_shift: without a pivot keypoint, how far along the ellipse's minor axis the
            pivot may lie from the ellipse's center, per unit of ``sin(tilt)`` (0.35 measured on
            rendered gauges seen from 1.5 dial diameters, the closest the renderer goes).
    """

    keypoint_min_score: float = 0.01
    max_ellipse_residual: float = 0.05
    max_pivot_offset: float = 0.5
    max_mid_error: float = 0.1
    max_radius_spread: float = 0.2
    keypoint_error_px: float = 3.0
    max_fraction_uncertainty: float = 0.015
    scale_radius: tuple[float, float] = (0.3, 1.05)
    min_sweep_deg: float = 30.0
    max_pivot_uncertainty: float = 0.01
    scale_mismatch_deg: float = 5.0
    off_center_share: float = 0.1
    perspective_shift: float = 0.4


DEFAULT_THRESHOLDS = Thresholds()


def _dial_outline(instance: MaskedInstance) -> tuple[Ellipse | None, float | None]:
    """The ellipse of a dial mask's outer outline, and the outline's residual from it."""
    outline = outline_points(instance.mask, instance.origin)
    if len(outline) < _MIN_DIAL_POINTS:
        return None, None
    ellipse = fit_ellipse(outline)
    if ellipse is None:
        return None, None
    return ellipse, ellipse.residual(outline)


def _pixels(instance: MaskedInstance) -> np.ndarray:
    """``float [N, 2]``: the mask's pixel centers ``x, y`` in image coordinates."""
    rows, cols = np.nonzero(np.asarray(instance.mask))
    points = np.stack([cols + instance.origin[0], rows + instance.origin[1]], axis=1)
    return points.astype(np.float64) + PIXEL_CENTER


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


@dataclass(frozen=True)
class _Needle:
    """A needle measured on the face."""

    face_angle: float
    photo_angle: float
    miss: float  # how far its line passes from where the pivot may be, in face radii


def _needle_line(face: Face, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The needle's line on the face: ``(its point nearest the origin, unit direction to the
    tip)``; ``None`` without a direction."""
    points = face.to_face(pixels)
    line = needle_line(points, face.area_weights(pixels))
    if line is None:
        return None
    point, direction = line
    foot = point - (point @ direction) * direction
    # The tip is the needle's end farther from the pivot: the tail is the shorter part.
    along = (points - foot) @ direction
    if along.max() < -along.min():
        direction = -direction
    return foot, direction


def _measure_needle(face: Face, pixels: np.ndarray, thresholds: Thresholds) -> _Needle | None:
    """The needle's direction on the face and in the photo; ``None`` without a direction."""
    line = _needle_line(face, pixels)
    if line is None:
        return None
    foot, direction = line
    if face.projective:
        miss = float(np.linalg.norm(foot))
    else:
        miss = _affine_miss(foot, direction, face, thresholds)
    # Lines stay lines in the photo: the needle's photo direction from its foot to the tip.
    ends = face.to_photo(np.stack([foot, foot + _NEEDLE_RADIUS * direction]))
    return _Needle(clockwise_angle(direction), clockwise_angle(ends[1] - ends[0]), miss)


def _affine_miss(foot: np.ndarray, direction: np.ndarray, face: Face, th: Thresholds) -> float:
    """How far a line on an affine face passes from where the pivot may be.

    In perspective the pivot is not the ellipse's center: it lies off it along the minor axis,
    by up to about ``perspective_shift * sin(tilt)`` face radii. The line is measured against
    that segment.
    """
    reach = th.perspective_shift * face.tilt_share
    normal = np.array([-direction[1], direction[0]])
    ends = [float(normal @ (s * face.minor_direction - foot)) for s in (-reach, reach)]
    if ends[0] * ends[1] <= 0:
        return 0.0
    return min(abs(ends[0]), abs(ends[1]))


@dataclass(frozen=True)
class _SeenScale:
    start: float
    end: float
    problem: str | None  # SCALE_UNSURE when its marks disagree, else None
    mid_error: float
    radius_spread: float
    uncertainty: float


def _turn_per_pixel(face: Face, point: np.ndarray) -> float:
    """How many radians a mark at photo ``point`` turns on the face per pixel it moves
    (the most, over directions)."""
    moved = face.to_face(point + np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    angles = np.unwrap(np.arctan2(moved[:, 0], -moved[:, 1]))
    return float(np.hypot(angles[1] - angles[0], angles[2] - angles[0]))


def _seen_scale(face: Face, marks: np.ndarray, thresholds: Thresholds) -> _SeenScale:
    """The scale from its start, middle and end marks (photo ``[3, 2]``) on the face."""
    points = face.to_face(marks)
    radii = np.linalg.norm(points, axis=1)
    start, mid, end = (clockwise_angle(p) for p in points)
    sweep = clockwise(start, end)
    mid_error = abs(clockwise(start, mid) / sweep - 0.5) if sweep > 0 else 0.5
    spread = float(radii.max() - radii.min())
    # An end mark off by keypoint_error_px moves the fraction by up to this much.
    turn = max(_turn_per_pixel(face, marks[0]), _turn_per_pixel(face, marks[2]))
    uncertainty = thresholds.keypoint_error_px * turn / max(np.radians(sweep), 1e-9)
    low, high = thresholds.scale_radius
    unsure = (
        sweep < thresholds.min_sweep_deg
        or mid_error > thresholds.max_mid_error
        or spread > thresholds.max_radius_spread
        or not low <= float(radii.min()) <= float(radii.max()) <= high
        or uncertainty > thresholds.max_fraction_uncertainty
    )
    return _SeenScale(
        start, end, SCALE_UNSURE if unsure else None, mid_error, spread, float(uncertainty)
    )


def _angle_apart(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def _mismatch(scale: _SeenScale, calibration: Calibration | None, tolerance_deg: float) -> bool:
    """Whether the scale seen is not where the calibration's angles put it."""
    if calibration is None or calibration.start_deg is None or calibration.end_deg is None:
        return False
    sweep = clockwise(scale.start, scale.end)
    return (
        max(
            _angle_apart(scale.start, calibration.start_deg),
            _angle_apart(scale.end, calibration.end_deg),
            abs(sweep - clockwise(calibration.start_deg, calibration.end_deg)),
        )
        > tolerance_deg
    )


def _outside(start: float, sweep: float, angle: float) -> float:
    """Degrees from ``angle`` to the nearer end of the scale, 0 on it."""
    offset = clockwise(start, angle)
    return 0.0 if offset <= sweep else min(offset - sweep, 360.0 - offset)


@dataclass(frozen=True)
class _Dial:
    """What is known of one dial before its needle: its outline and keypoints."""

    index: int
    ellipse: Ellipse
    residual: float
    keypoints: Mapping[str, np.ndarray] | None  # name -> (x, y, score)


def _face(
    dial: _Dial,
    needle: np.ndarray | None,
    th: Thresholds,
    evidence: dict[str, float | None],
    problems: list[str],
) -> Face:
    """The dial's face: exact on its pivot keypoint where that is found and plausible, else
    affine.

    The pivot keypoint is moved onto the needle's line (which passes through the pivot and,
    drawn from hundreds of pixels, is far more precise across its direction than a keypoint):
    a pivot off by a pixel turns the scale's marks, seen from it, by a degree on a small dial.
    How far it had to move is the evidence ``center_miss``.
    """
    if dial.keypoints is None or dial.keypoints[_PIVOT][2] < th.keypoint_min_score:
        return affine_face(dial.ellipse)
    pivot = dial.keypoints[_PIVOT][:2]
    offset = float(dial.ellipse.normalized_radius(pivot[None, :])[0])
    evidence["pivot_offset"] = offset
    face = None
    if offset <= th.max_pivot_offset:
        face = perspective_face(dial.ellipse, (float(pivot[0]), float(pivot[1])))
    if face is None:
        problems.append(SCALE_UNSURE)
        return affine_face(dial.ellipse)
    if dial.residual > th.max_ellipse_residual:
        problems.append(SCALE_UNSURE)
    line = None if needle is None else _needle_line(face, needle)
    if line is None:
        return face
    foot = line[0]
    evidence["center_miss"] = float(np.linalg.norm(foot))
    if np.linalg.norm(foot) > th.off_center_share:
        problems.append(NEEDLE_OFF_CENTER)
        return face
    x, y = face.to_photo(foot[None, :])[0]
    return perspective_face(dial.ellipse, (float(x), float(y))) or face


def _read_dial(
    dial: _Dial,
    needles: list[int],
    pixels: Mapping[int, np.ndarray],
    calibration: Calibration | None,
    th: Thresholds,
) -> Reading:
    has_range = calibration is not None and calibration.has_range
    unit = calibration.unit if calibration is not None and has_range else None
    evidence: dict[str, float | None] = {"ellipse_residual": dial.residual}
    problems: list[str] = []  # statuses that apply, the first one wins
    needle = needles[0] if len(needles) == 1 else None
    face = _face(dial, None if needle is None else pixels[needle], th, evidence, problems)
    used = []
    if "pivot_offset" in evidence:
        used.append(float(dial.keypoints[_PIVOT][2]))

    # The scale: seen, or the calibration's (only for weights without keypoints).
    scale: Scale | None = None
    marks = (_START, _MID, _END)
    if dial.keypoints is not None:
        scores = [float(dial.keypoints[name][2]) for name in marks]
        if min(scores) < th.keypoint_min_score:
            problems.append(SCALE_NOT_FOUND)
        else:
            used += scores
            seen = _seen_scale(face, np.stack([dial.keypoints[n][:2] for n in marks]), th)
            scale = Scale(seen.start, seen.end, "seen")
            evidence.update(
                mid_error=seen.mid_error,
                radius_spread=seen.radius_spread,
                fraction_uncertainty=seen.uncertainty,
            )
            if seen.problem:
                problems.append(seen.problem)
            if not face.projective:
                # Marks read about the ellipse's center, the needle about its pivot.
                uncertainty = th.perspective_shift * face.tilt_share
                evidence["pivot_uncertainty"] = uncertainty
                if uncertainty > th.max_pivot_uncertainty:
                    problems.append(SCALE_UNSURE)
            if _mismatch(seen, calibration, th.scale_mismatch_deg):
                problems.append(SCALE_MISMATCH)
    elif calibration is not None and calibration.has_angles:
        scale = Scale(calibration.start_deg, calibration.end_deg, "calibration")
    elif has_range:
        problems.append(SCALE_NOT_FOUND)
    if used:
        evidence["keypoint_score"] = min(used)

    def reading(
        measured: _Needle | None,
        status: str,
        fraction: float | None = None,
        with_value: bool = True,
    ) -> Reading:
        value = None
        if fraction is not None and calibration is not None and with_value:
            value = calibration.value(fraction)
        return Reading(
            dial=dial.index,
            needle=needle,
            center=face.center,
            needle_angle_deg=measured.photo_angle if measured else None,
            fraction=fraction,
            value=value,
            unit=unit,
            status=status,
            scale=scale,
            evidence=Evidence(**evidence),
            face_angle_deg=measured.face_angle if measured else None,
        )

    if not needles:
        return reading(None, NO_NEEDLE)
    if needle is None:
        return reading(None, TWO_NEEDLES)
    measured = _measure_needle(face, pixels[needle], th)
    if measured is None:
        problems.append(NEEDLE_OFF_CENTER)
        return reading(None, next(s for s in STATUSES if s in problems))
    if not face.projective:
        evidence["center_miss"] = measured.miss
        if measured.miss > th.off_center_share:
            problems.append(NEEDLE_OFF_CENTER)
    fraction = None
    if scale is not None:
        sweep = clockwise(scale.start_deg, scale.end_deg)
        margin = calibration.margin_deg if calibration is not None else DEFAULT_MARGIN_DEG
        evidence["outside_deg"] = _outside(scale.start_deg, sweep, measured.face_angle)
        fraction = fraction_on_scale(scale.start_deg, sweep, measured.face_angle, margin)
        if fraction is None:
            problems.append(OUTSIDE_SCALE)
    # The order of the statuses: a broken scale explains a needle that seems off it.
    status = next((s for s in STATUSES if s in problems), STATUS_OK)
    if status == SCALE_MISMATCH:
        # The scale seen is sound: its fraction stands; the calibration's value does not.
        return reading(measured, status, fraction, with_value=False)
    return reading(measured, status, fraction if status == STATUS_OK else None)


def _keypoint_indices(names: Sequence[str]) -> dict[str, int]:
    """Index of each of :data:`KEYPOINT_NAMES` in the model's ``names``.

    Raises:
        ValueError: a name the reading needs is missing.
    """
    missing = [n for n in KEYPOINT_NAMES if n not in names]
    if missing:
        raise ValueError(
            f"keypoint_names {tuple(names)} lack {', '.join(missing)} (the reading needs "
            f"{', '.join(KEYPOINT_NAMES)})"
        )
    return {n: list(names).index(n) for n in KEYPOINT_NAMES}


def read_meters(
    instances: Sequence[MaskedInstance],
    class_names: Sequence[str],
    calibrations: Mapping[str, Calibration],
    *,
    keypoint_names: Sequence[str] = KEYPOINT_NAMES,
    needle_class: str = "pointer",
    min_score: float = 0.0,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[Reading]:
    """Reads every detected dial.

    Instances of ``needle_class`` are needles; every other class is a kind of dial. A needle
    belongs to the dial whose ellipse holds most of its pixels (at least half of them).

    Args:
        instances: the ``pointer`` model's detections, in output order; a dial's keypoints
            (where the model has a keypoint head) in the order of ``keypoint_names``.
        class_names: the model's ``CLASS_NAMES``.
        calibrations: per dial class its calibration (:func:`load_calibrations`); a dial class
            missing here gets its fraction and no value.
        keypoint_names: the model's ``KEYPOINT_NAMES``; must hold each of
            :data:`KEYPOINT_NAMES`.
        needle_class: the class name of needles.
        min_score: instances scored lower are ignored.
        thresholds: where evidence turns into abstention.

    Returns:
        One reading per dial scored at least ``min_score``, in instance order.

    Raises:
        ValueError: ``keypoint_names`` lacks a keypoint the reading needs, or an instance's
            keypoints are not ``[len(keypoint_names), 3]``.
    """
    index = _keypoint_indices(keypoint_names)
    kept = [i for i, inst in enumerate(instances) if inst.score >= min_score]

    def name(i: int) -> str:
        class_id = instances[i].class_id
        return class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)

    dial_ids = [i for i in kept if name(i) != needle_class]
    pixels = {i: _pixels(instances[i]) for i in kept if name(i) == needle_class}
    pixels = {j: p for j, p in pixels.items() if len(p) >= _MIN_NEEDLE_PIXELS}
    dials: dict[int, _Dial] = {}
    for i in dial_ids:
        ellipse, residual = _dial_outline(instances[i])
        if ellipse is not None and residual is not None:
            named = None
            if instances[i].keypoints is not None:
                keypoints = np.asarray(instances[i].keypoints, dtype=np.float64)
                if keypoints.shape != (len(keypoint_names), 3):
                    raise ValueError(
                        f"instance {i}: keypoints of shape {keypoints.shape}, expected "
                        f"({len(keypoint_names)}, 3) for {tuple(keypoint_names)}"
                    )
                named = {n: keypoints[k] for n, k in index.items()}
            dials[i] = _Dial(i, ellipse, residual, named)

    # Each needle goes to the dial holding the largest share of it.
    owner: dict[int, int] = {}
    best_share: dict[int, float] = {}
    for i, dial in dials.items():
        for j in pixels:
            share = float(np.mean(dial.ellipse.normalized_radius(pixels[j]) <= INSIDE_SLACK))
            if share >= NEEDLE_INSIDE_SHARE and share > best_share.get(j, 0.0):
                owner[j], best_share[j] = i, share
    areas = {j: len(p) for j, p in pixels.items()}

    readings = []
    for i in dial_ids:
        calibration = calibrations.get(name(i))
        if i not in dials:
            x1, y1, x2, y2 = instances[i].box
            unit = calibration.unit if calibration is not None else None
            center = ((x1 + x2) / 2, (y1 + y2) / 2)
            readings.append(Reading(i, None, center, None, None, None, unit, BAD_DIAL))
            continue
        needles = _distinct_needles([j for j, d in owner.items() if d == i], instances, areas)
        readings.append(_read_dial(dials[i], needles, pixels, calibration, thresholds))
    return readings
