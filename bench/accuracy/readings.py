"""Meter-reading figures on the held-out gauges (pure: no server, unit-tested).

The server's answer carries, when the pointer model was asked for, a top-level ``"readings"``
list: per detected dial ``{"dial": 3, "needle": 0, "center": [x, y], "needle_angle_deg": 217.4,
"fraction": 0.63, "value": 1.01, "unit": "MPa", "status": "ok", "scale": {...}, "evidence":
{...}}``, ``dial`` and ``needle`` indexing ``models.pointer.instances`` (see ``bls/meters/``).
:func:`readings_from_answer` tags each with its image and its dial's box; :func:`match_readings`
pairs them with the truth's gauges (``truth["gauges"]`` of each COCO image, in the order of its
``dial`` annotations), and :func:`summarize_readings` / :func:`reading_figures` turn the pairs into
the table's lines.

A reading's fraction is the needle's share of its scale's sweep angle, as the truth's
``fraction`` is; its error is counted in percent of the span (the fraction times 100). A value is
scored against the truth's where the calibration describes the gauge's meter type (its range and
unit); an ``ok`` value on another type is a confident wrong number all the same, and counts as
one.

Angles are clockwise from 12 o'clock, in degrees in ``[0, 360)``, in photo pixels (y down),
on both sides.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.accuracy.metrics import GOALS, IOU_THRESHOLD, MAX_GOALS, Figure, Kind, Share, box_iou
from bls.meters import Calibration

__all__ = [
    "FAR_OFF_PERCENT",
    "READING_GOALS",
    "READING_MAX_GOALS",
    "STANDARD_METER_TYPE",
    "WITHIN_PERCENT",
    "GaugeReading",
    "ReadingSummary",
    "angle_error",
    "describes",
    "face_angle",
    "fraction_error_percent",
    "match_readings",
    "reading_figures",
    "readings_from_answer",
    "summarize_readings",
    "value_error_percent",
]

# The meter type repository/pointer/meters.yaml calibrates the demo's ``dial`` class as: without
# a calibration to compare, the gauges whose values are scored.
STANDARD_METER_TYPE = "standard"
STATUS_OK = "ok"
# The status a gauge gets in the breakdown when no reading's dial overlaps it.
NO_READING = "no reading"
# A fraction this close to the truth, in percent of the span, counts as read (issue 36's goal).
WITHIN_PERCENT = 2.0
# An ``ok`` reading further off than this, in percent of the span, is a confident wrong number.
FAR_OFF_PERCENT = 3.0
FRACTION_READ = f"scale found, fraction within {WITHIN_PERCENT:g}% of span"
OK_FAR_OFF = f"ok readings more than {FAR_OFF_PERCENT:g}% of span off"
# Figure name -> the least value that passes; and the greatest, for errors (issue 36).
READING_GOALS: dict[str, float] = {FRACTION_READ: 0.95}
READING_MAX_GOALS: dict[str, float] = {
    "fraction error median": 0.5,
    "fraction error p90": 1.5,
    OK_FAR_OFF: 0,
}


@dataclass(frozen=True)
class GaugeReading:
    """One held-out gauge and the reading matched to it.

    Attributes:
        image_id: the COCO image.
        gauge: the gauge's entry of ``truth["gauges"]``.
        dial_bbox: its dial annotation's ``x, y, width, height``.
        reading: the matched reading (as :func:`readings_from_answer` gives it), or ``None``.
    """

    image_id: int
    gauge: Mapping[str, Any]
    dial_bbox: Sequence[float]
    reading: Mapping[str, Any] | None

    @property
    def read(self) -> bool:
        """Whether the gauge got a reading with status ``ok``."""
        return self.reading is not None and self.reading.get("status") == STATUS_OK

    @property
    def status(self) -> str:
        """The matched reading's status, or :data:`NO_READING`."""
        return NO_READING if self.reading is None else str(self.reading.get("status"))


@dataclass(frozen=True)
class ReadingSummary:
    """The reading figures of one held-out set, before they become table lines.

    Attributes:
        read: gauges with a matched ``ok`` reading, of all gauges.
        on_scale: the same over the gauges whose true needle lies on the calibrated scale
            (``None`` without a calibration); those off it are rightly ``outside the scale``.
        statuses: per status of the matched reading (:data:`NO_READING` without one), gauges.
        angle_errors: per matched reading that has a needle angle (``ok`` or ``outside the
            scale``), its circular error in degrees.
        value_errors: per ``ok`` reading with a value of a gauge whose type the calibration
            describes (:func:`describes`), its error in percent of the scale's full range.
        fraction_errors: per matched reading with a fraction (``ok``, or ``scale mismatch``,
            which keeps it), its error in percent of the span.
        fraction_read: gauges whose matched reading has a fraction within
            :data:`WITHIN_PERCENT` of the truth, of all gauges.
        ok_far_off_fraction: ``ok`` readings whose fraction is more than
            :data:`FAR_OFF_PERCENT` off.
        ok_far_off_value: ``ok`` readings whose fraction is not, but whose value is (on a
            gauge the calibration does not describe, its range is not the gauge's).
        ok_values_other_type: ``ok`` readings with a value on gauges the calibration does not
            describe (scored in ``ok_far_off_value`` only when off).
        empty_images: images with no gauge.
        ok_on_empty: readings with status ``ok`` on those images.
        empty_images_with_ok: how many of them hold such a reading.
        false_readings: readings whose dial overlaps no gauge's dial (any status; these include
            the readings on empty images).
        false_ok: of those, the ones with status ``ok``.
    """

    read: Share
    on_scale: Share | None
    statuses: dict[str, int]
    angle_errors: list[float] = field(default_factory=list)
    value_errors: list[float] = field(default_factory=list)
    fraction_errors: list[float] = field(default_factory=list)
    fraction_read: Share = field(default_factory=lambda: Share(0, 0))
    ok_far_off_fraction: int = 0
    ok_far_off_value: int = 0
    ok_values_other_type: int = 0
    empty_images: int = 0
    ok_on_empty: int = 0
    empty_images_with_ok: int = 0
    false_readings: int = 0
    false_ok: int = 0


def readings_from_answer(
    document: Mapping[str, Any], model: str, image_id: int
) -> list[dict[str, Any]]:
    """The answer's readings, each with ``image_id`` and its dial's box as ``dial_bbox``.

    Args:
        document: the parsed ``DETECTIONS`` JSON of one image.
        model: the detector the readings' indices point into (``"pointer"``).
        image_id: the image's COCO id.

    Returns:
        One JSON-ready dict per reading: the reading's own keys plus ``image_id`` and
        ``dial_bbox`` (``x, y, width, height``, as COCO boxes are). An answer without
        ``"readings"`` (the pointer model not asked for, or a server before readings) gives none.

    Raises:
        ValueError: a reading's ``dial`` is not an index of the model's instances.
    """
    instances = document.get("models", {}).get(model, {}).get("instances", [])
    tagged = []
    for reading in document.get("readings") or []:
        dial = reading.get("dial")
        if not isinstance(dial, int) or not 0 <= dial < len(instances):
            raise ValueError(
                f"image {image_id}: reading's dial {dial!r} is not one of the {len(instances)} "
                f"{model} instances"
            )
        x1, y1, x2, y2 = instances[dial]["box"]
        tagged.append({**reading, "image_id": image_id, "dial_bbox": [x1, y1, x2 - x1, y2 - y1]})
    return tagged


def angle_error(measured_deg: float, true_deg: float) -> float:
    """The circular difference of two angles in degrees, in ``[0, 180]`` (359 vs 1 is 2)."""
    return abs((measured_deg - true_deg + 180.0) % 360.0 - 180.0)


def value_error_percent(value: float, gauge: Mapping[str, Any]) -> float:
    """``|value - true value|`` in percent of the gauge's full scale ``|max - min|``."""
    scale = gauge["scale"]
    return abs(value - gauge["value"]) / abs(scale["max_value"] - scale["min_value"]) * 100.0


def fraction_error_percent(fraction: float, gauge: Mapping[str, Any]) -> float:
    """``|fraction - true fraction|`` in percent of the span (both shares of the sweep angle)."""
    return abs(fraction - gauge["fraction"]) * 100.0


def describes(calibration: Calibration | None, gauge: Mapping[str, Any]) -> bool:
    """Whether ``calibration`` is the gauge's meter type: its range and unit (and angles, where
    it gives them, within a degree) are the gauge's. Without a calibration, whether the gauge is
    of :data:`STANDARD_METER_TYPE`."""
    if calibration is None:
        return gauge.get("meter_type") == STANDARD_METER_TYPE
    scale = gauge["scale"]
    if not calibration.has_range or (
        calibration.min_value,
        calibration.max_value,
        calibration.unit,
    ) != (scale["min_value"], scale["max_value"], scale.get("unit")):
        return False
    if calibration.start_deg is None or calibration.end_deg is None:
        return True
    return (
        angle_error(calibration.start_deg, scale["start_deg"]) <= 1.0
        and angle_error(calibration.end_deg, scale["end_deg"]) <= 1.0
    )


def face_angle(gauge: Mapping[str, Any]) -> float:
    """Where the gauge's needle points on its own face: ``start + fraction * sweep``, degrees.

    This is the angle a calibration reads at (the photo's ``needle_angle_deg`` is skewed by the
    camera's tilt).
    """
    scale = gauge["scale"]
    return (scale["start_deg"] + gauge["fraction"] * scale["sweep_deg"]) % 360.0


def _dial_boxes(ground_truth: Mapping[str, Any]) -> dict[int, list[Sequence[float]]]:
    """Per image id, its ``dial`` annotations' boxes in annotation order.

    Raises:
        ValueError: no ``dial`` category.
    """
    dial_ids = [c["id"] for c in ground_truth["categories"] if c["name"] == "dial"]
    if not dial_ids:
        raise ValueError("no category 'dial' in the ground truth")
    boxes: dict[int, list[Sequence[float]]] = defaultdict(list)
    # The generator writes each image's annotations gauge by gauge: id order is gauge order.
    for annotation in sorted(ground_truth["annotations"], key=lambda a: a["id"]):
        if annotation["category_id"] == dial_ids[0]:
            boxes[annotation["image_id"]].append(annotation["bbox"])
    return boxes


def match_readings(
    ground_truth: Mapping[str, Any],
    readings: Sequence[Mapping[str, Any]],
    iou_threshold: float = IOU_THRESHOLD,
) -> tuple[list[GaugeReading], list[Mapping[str, Any]]]:
    """Pairs each gauge with the reading whose dial box overlaps its dial's box the most.

    A reading matches a gauge when their dial boxes' IoU is at least ``iou_threshold``; of
    several, the highest IoU wins. As in :func:`~bench.accuracy.metrics.found_annotations`, the
    matching is not one-to-one: a dial detected twice gives two readings that both overlap its
    gauge, and neither counts as false.

    Args:
        ground_truth: COCO document whose images carry ``truth["gauges"]``.
        readings: from :func:`readings_from_answer`, for any of its images.
        iou_threshold: the least IoU of a match.

    Returns:
        ``(gauges, false_readings)``: every gauge in image order with its reading (or none), and
        the readings that overlap no gauge of their image.

    Raises:
        ValueError: an image's dial annotations do not pair up with its ``truth["gauges"]``.
    """
    boxes = _dial_boxes(ground_truth)
    by_image: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for reading in readings:
        by_image[reading["image_id"]].append(reading)
    gauges: list[GaugeReading] = []
    matched: set[int] = set()  # id() of readings that overlap a gauge
    for image in ground_truth["images"]:
        truths, dials = image["truth"]["gauges"], boxes[image["id"]]
        if len(truths) != len(dials):
            raise ValueError(
                f"image {image['id']}: {len(truths)} gauges but {len(dials)} dial annotations"
            )
        candidates = by_image[image["id"]]
        for gauge, dial_bbox in zip(truths, dials, strict=True):
            best, best_iou = None, 0.0
            for reading in candidates:
                iou = box_iou(dial_bbox, reading["dial_bbox"])
                if iou >= iou_threshold:
                    matched.add(id(reading))
                    if best is None or iou > best_iou:
                        best, best_iou = reading, iou
            gauges.append(GaugeReading(image["id"], gauge, dial_bbox, best))
    known = {image["id"] for image in ground_truth["images"]}
    false = [r for r in readings if r["image_id"] in known and id(r) not in matched]
    return gauges, false


def summarize_readings(
    ground_truth: Mapping[str, Any],
    readings: Sequence[Mapping[str, Any]],
    calibration: Calibration | None = None,
) -> ReadingSummary:
    """The reading figures of one set (see :class:`ReadingSummary`).

    Args:
        ground_truth: the set's COCO document, as evaluated.
        readings: from :func:`readings_from_answer` for its images.
        calibration: the ``dial`` class's calibration the server reads with; gives
            :attr:`ReadingSummary.on_scale` (where it has angles) and tells which gauges'
            values are scored (:func:`describes`).
    """
    gauges, false = match_readings(ground_truth, readings)
    angle_errors: list[float] = []
    value_errors: list[float] = []
    fraction_errors: list[float] = []
    within = far_fraction = far_value = other_values = 0
    for pair in gauges:
        reading = pair.reading
        if reading is None:
            continue
        # Needle geometry is scored wherever the server found the needle's direction, also when
        # it withheld the fraction (outside the scale, a scale unsure).
        if reading.get("needle_angle_deg") is not None:
            angle_errors.append(
                angle_error(reading["needle_angle_deg"], pair.gauge["needle_angle_deg"])
            )
        fraction_error = None
        if reading.get("fraction") is not None:
            fraction_error = fraction_error_percent(reading["fraction"], pair.gauge)
            fraction_errors.append(fraction_error)
            within += fraction_error <= WITHIN_PERCENT
        if not pair.read:
            continue
        value_error = None
        if reading.get("value") is not None:
            value_error = value_error_percent(reading["value"], pair.gauge)
            if describes(calibration, pair.gauge):
                value_errors.append(value_error)
            else:
                other_values += 1
        if fraction_error is not None and fraction_error > FAR_OFF_PERCENT:
            far_fraction += 1
        elif value_error is not None and value_error > FAR_OFF_PERCENT:
            far_value += 1
    on_scale = None
    if calibration is not None and calibration.has_angles:
        readable = [p for p in gauges if calibration.read(face_angle(p.gauge)) is not None]
        on_scale = Share(sum(p.read for p in readable), len(readable))
    empty = {image["id"] for image in ground_truth["images"] if not image["truth"]["gauges"]}
    ok_on_empty = Counter(
        r["image_id"] for r in readings if r["image_id"] in empty and r["status"] == STATUS_OK
    )
    return ReadingSummary(
        read=Share(sum(p.read for p in gauges), len(gauges)),
        on_scale=on_scale,
        statuses=dict(Counter(p.status for p in gauges).most_common()),
        angle_errors=angle_errors,
        value_errors=value_errors,
        fraction_errors=fraction_errors,
        fraction_read=Share(within, len(gauges)),
        ok_far_off_fraction=far_fraction,
        ok_far_off_value=far_value,
        ok_values_other_type=other_values,
        empty_images=len(empty),
        ok_on_empty=sum(ok_on_empty.values()),
        empty_images_with_ok=len(ok_on_empty),
        false_readings=len(false),
        false_ok=sum(r["status"] == STATUS_OK for r in false),
    )


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def reading_figures(
    set_name: str,
    summary: ReadingSummary,
    goals: Mapping[str, float] | None = None,
    max_goals: Mapping[str, float] | None = None,
) -> list[Figure]:
    """The summary as table lines, with their goals.

    Args:
        set_name: e.g. ``"gauges"``.
        summary: from :func:`summarize_readings`.
        goals: figure name -> least passing value; by default those of :data:`GOALS` and the
            reading's own :data:`READING_GOALS` (an empty mapping: no goals).
        max_goals: figure name -> greatest passing value; by default :data:`MAX_GOALS` and
            :data:`READING_MAX_GOALS`.
    """
    figures: list[Figure] = []
    at_least = {**GOALS, **READING_GOALS} if goals is None else goals
    at_most = {**MAX_GOALS, **READING_MAX_GOALS} if max_goals is None else max_goals

    def add(name: str, value: float | None, kind: Kind, detail: str = "") -> None:
        if name in at_most:
            figures.append(Figure(set_name, name, value, kind, detail, at_most[name], True))
        else:
            figures.append(Figure(set_name, name, value, kind, detail, at_least.get(name)))

    # Why the others were not read, most frequent first: the status tells reader from detector.
    misses = [f"{n} {status}" for status, n in summary.statuses.items() if status != STATUS_OK]
    read = summary.read
    add("gauge read", read.share, "share", "; ".join([f"{read.found}/{read.total}", *misses]))
    if summary.on_scale is not None:
        on = summary.on_scale
        add("gauge read (needle on the scale)", on.share, "share", f"{on.found}/{on.total}")
    found = summary.fraction_read
    add(FRACTION_READ, found.share, "share", f"{found.found}/{found.total}")
    fractions = f"of span, over {len(summary.fraction_errors)} fractions"
    add("fraction error median", _percentile(summary.fraction_errors, 50), "percent", fractions)
    add("fraction error p90", _percentile(summary.fraction_errors, 90), "percent", fractions)
    far = summary.ok_far_off_fraction + summary.ok_far_off_value
    add(
        OK_FAR_OFF,
        far,
        "count",
        f"{summary.ok_far_off_fraction} by fraction, {summary.ok_far_off_value} by value; "
        f"{summary.ok_values_other_type} ok values on types the calibration does not describe",
    )
    angles = f"over {len(summary.angle_errors)} needles"
    add("needle angle error median", _percentile(summary.angle_errors, 50), "deg", angles)
    add("needle angle error p90", _percentile(summary.angle_errors, 90), "deg", angles)
    values = f"of full scale, {len(summary.value_errors)} gauges of the calibrated type"
    add("value error median", _percentile(summary.value_errors, 50), "percent", values)
    add("value error p90", _percentile(summary.value_errors, 90), "percent", values)
    add(
        "readings ok on empty images",
        summary.ok_on_empty,
        "count",
        f"on {summary.empty_images_with_ok} of {summary.empty_images} empty images",
    )
    add("false readings", summary.false_readings, "count", f"{summary.false_ok} of them ok")
    for status, n in summary.statuses.items():
        add(f"status: {status}", n, "count", f"of {summary.read.total} gauges")
    return figures
