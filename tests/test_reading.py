"""Unit tests of the meter reading geometry (bls/reading.py) on rendered masks with exact truth.

The masks are the renderer's exact dial and needle outlines, rasterized as a segmentation mask
means them: a pixel is inside when most of it is covered (``cv2.fillPoly`` on an 8x finer grid,
then area-averaged). Plain ``cv2.fillPoly`` also fills every pixel an edge touches, which
fattens a needle unevenly and turns it by up to a degree on small gauges.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from bls.reading import (
    Calibration,
    CalibrationError,
    MaskedInstance,
    Reading,
    instances_from_arrays,
    load_calibrations,
    read_meters,
)
from training.gauges import CATEGORIES, STANDARD_METER, render_scene

SEED = 3
SCENES = 60
METERS_YAML = Path(__file__).resolve().parents[1] / "repository" / "pointer" / "meters.yaml"
POINTER, DIAL = CATEGORIES.index("pointer"), CATEGORIES.index("dial")

# Measured on 405 gauges (300 scenes, seed 23), tilt <= 30 degrees: angle error max 0.39 deg
# for dials of radius >= 80 px, 1.01 deg below (mean 0.10 deg over all): under 80 px the
# needle is a few hundred pixels and its pixel steps limit the direction. Fraction error max
# 0.0037 on standard meters (270 deg sweep), 0.010 on 90 deg sweeps.
ANGLE_TOLERANCE_DEG = 0.5
SMALL_DIAL_ANGLE_TOLERANCE_DEG = 1.2
LARGE_DIAL_RADIUS = 80.0
MAX_TILT_DEG = 30.0
STANDARD_FRACTION_TOLERANCE = 0.006
FRACTION_TOLERANCE_DEG = 1.2  # any sweep: the face angle's error


def _mask(outline: np.ndarray, height: int, width: int, fine: int = 8) -> MaskedInstance:
    """The pixels mostly inside ``outline``, cropped to their bounding box."""
    x0, y0 = np.maximum(np.floor(outline.min(axis=0)).astype(int) - 1, 0)
    x1 = min(int(np.ceil(outline[:, 0].max())) + 2, width)
    y1 = min(int(np.ceil(outline[:, 1].max())) + 2, height)
    big = np.zeros(((y1 - y0) * fine, (x1 - x0) * fine), np.uint8)
    # Pixel (x, y) is the fine block whose centre is (x, y): fine pixel centres sit at
    # x + (k + 0.5) / fine - 0.5.
    local = ((outline - [x0, y0]) * fine + (fine - 1) / 2) * 16
    cv2.fillPoly(big, [np.round(local).astype(np.int32)], 1, shift=4)
    crop = cv2.resize(big.astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    return MaskedInstance(0, 1.0, (x0, y0, x1, y1), (crop >= 0.5).astype(np.uint8), (x0, y0))


def _instance(class_id: int, outline: np.ndarray, height: int, width: int, score: float = 0.9):
    mask = _mask(outline, height, width)
    return MaskedInstance(class_id, score, mask.box, mask.mask, mask.origin)


def _tilt(dial: np.ndarray) -> float:
    """The dial's tilt from its outline's axis ratio (the renderer does not report it)."""
    (_, _), (w, h), _ = cv2.fitEllipse(dial.astype(np.float32))
    return math.degrees(math.acos(min(1.0, min(w, h) / max(w, h))))


def _angle_error(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


@pytest.fixture(scope="module")
def gauges() -> list[dict]:
    """Per rendered gauge: its truth, tilt, radius and the scene's instances (needle, dial)*."""
    found = []
    for index in range(SCENES):
        scene = render_scene(SEED, index)
        height, width = scene.image.shape[:2]
        instances = [
            _instance(
                CATEGORIES.index(a.category), np.reshape(a.polygons[0], (-1, 2)), height, width
            )
            for a in scene.annotations
        ]
        for k, truth in enumerate(scene.truth["gauges"]):
            dial = np.reshape(scene.annotations[2 * k + 1].polygons[0], (-1, 2))
            found.append(
                {
                    "truth": truth,
                    "tilt": _tilt(dial),
                    "radius": float(np.ptp(dial, axis=0).max() / 2),
                    "instances": instances,
                    "needle": 2 * k,
                    "dial": 2 * k + 1,
                }
            )
    return found


def _calibration(scale: dict) -> Calibration:
    return Calibration(
        scale["start_deg"], scale["end_deg"], scale["min_value"], scale["max_value"], scale["unit"]
    )


def test_rendered_needle_angles(gauges: list[dict]) -> None:
    kinds = {g["truth"]["meter_type"] for g in gauges}
    sweeps = [g["truth"]["scale"]["sweep_deg"] for g in gauges]
    assert kinds == {"standard", "random"} and min(sweeps) <= 120 and max(sweeps) >= 270
    checked = 0
    for g in gauges:
        if g["tilt"] > MAX_TILT_DEG:
            continue
        # The whole scene at once: each needle must find its own dial among the others.
        readings = read_meters(g["instances"], CATEGORIES, {})
        (reading,) = [r for r in readings if r.dial == g["dial"]]
        assert reading.status == "ok", (g["truth"], reading)
        assert reading.needle == g["needle"]
        assert reading.unit is None and reading.fraction is None and reading.value is None
        error = _angle_error(reading.needle_angle_deg, g["truth"]["needle_angle_deg"])
        large = g["radius"] >= LARGE_DIAL_RADIUS
        limit = ANGLE_TOLERANCE_DEG if large else SMALL_DIAL_ANGLE_TOLERANCE_DEG
        assert error <= limit, (g["truth"], g["tilt"], g["radius"], error)
        checked += large
    assert checked >= 20


def test_rendered_fractions(gauges: list[dict]) -> None:
    standard = 0
    for g in gauges:
        truth = g["truth"]
        instances = [g["instances"][g["needle"]], g["instances"][g["dial"]]]
        calibration = _calibration(truth["scale"])
        (reading,) = read_meters(instances, CATEGORIES, {"dial": calibration})
        assert reading.status == "ok" and reading.unit == truth["scale"]["unit"]
        error = abs(reading.fraction - truth["fraction"])
        if truth["meter_type"] == "standard":
            standard += 1
            assert error <= STANDARD_FRACTION_TOLERANCE, (truth, g["tilt"], error)
        assert error * truth["scale"]["sweep_deg"] <= FRACTION_TOLERANCE_DEG, (truth, error)
        expected = calibration.min_value + reading.fraction * (
            calibration.max_value - calibration.min_value
        )
        assert reading.value == pytest.approx(expected)
    assert standard >= 15


def test_tilt_is_rectified(gauges: list[dict]) -> None:
    # On strongly tilted dials the photo's angle is not the face's: reading the scale at the
    # photo's angle would be off by degrees.
    tilted = [g for g in gauges if g["tilt"] > 25]
    assert tilted
    worst_unrectified = 0.0
    for g in tilted:
        instances = [g["instances"][g["needle"]], g["instances"][g["dial"]]]
        (reading,) = read_meters(instances, CATEGORIES, {})
        scale = g["truth"]["scale"]
        face_truth = scale["start_deg"] + g["truth"]["fraction"] * scale["sweep_deg"]
        assert _angle_error(reading.face_angle_deg, face_truth) <= FRACTION_TOLERANCE_DEG
        worst_unrectified = max(
            worst_unrectified, _angle_error(reading.needle_angle_deg, face_truth)
        )
    assert worst_unrectified > 3.0


# Synthetic square-on dials, for the status cases.
HEIGHT, WIDTH = 300, 400
CENTER = np.array([200.0, 150.0])
RADIUS = 110.0


def _dial(center: np.ndarray = CENTER, radius: float = RADIUS) -> MaskedInstance:
    angles = np.radians(np.arange(0, 360, 3))
    outline = center + radius * np.stack([np.sin(angles), -np.cos(angles)], axis=1)
    return _instance(DIAL, outline, HEIGHT, WIDTH)


def _needle(
    angle_deg: float, shift: float = 0.0, score: float = 0.9, center: np.ndarray = CENTER
) -> MaskedInstance:
    """A lance needle from ``center`` (moved sideways by ``shift`` pixels)."""
    along = np.array([math.sin(math.radians(angle_deg)), -math.cos(math.radians(angle_deg))])
    across = np.array([-along[1], along[0]])
    base = center + across * shift
    profile = [(-20, 5), (50, 7), (85, 0), (50, -7), (-20, -5)]
    outline = np.array([base + along * d + across * h for d, h in profile])
    return _instance(POINTER, outline, HEIGHT, WIDTH, score)


STANDARD = Calibration(**{k: v for k, v in STANDARD_METER.items() if k != "sweep_deg"})


def test_square_on_reading() -> None:
    # 0.5 MPa of 1.6 MPa over 270 degrees from 225: 225 + 270 * 0.5 / 1.6 = 309.375.
    (reading,) = read_meters([_dial(), _needle(309.375)], CATEGORIES, {"dial": STANDARD})
    assert reading.status == "ok" and reading.dial == 0 and reading.needle == 1
    assert reading.needle_angle_deg == pytest.approx(309.375, abs=0.3)
    assert reading.fraction == pytest.approx(0.3125, abs=0.002)
    assert reading.value == pytest.approx(0.5, abs=0.004)
    assert reading.center == pytest.approx(tuple(CENTER), abs=0.5)
    document = reading.to_json()
    assert list(document) == [
        "dial",
        "needle",
        "center",
        "needle_angle_deg",
        "fraction",
        "value",
        "unit",
        "status",
    ]
    assert document["unit"] == "MPa" and document["status"] == "ok"


def test_no_needle() -> None:
    (reading,) = read_meters([_dial()], CATEGORIES, {"dial": STANDARD})
    assert reading == Reading(0, None, reading.center, None, None, None, "MPa", "no needle")


def test_unusable_dial_mask() -> None:
    speck = MaskedInstance(DIAL, 0.9, (10, 10, 13, 13), np.ones((3, 3), np.uint8), (10, 10))
    (reading,) = read_meters([speck, _needle(30.0)], CATEGORIES, {})
    assert reading.status == "dial mask unusable" and reading.center == (11.5, 11.5)


def test_needle_of_another_dial_is_not_taken() -> None:
    other = np.array([50.0, 260.0])
    instances = [_dial(), _needle(270.0, center=other)]
    (reading,) = read_meters(instances, CATEGORIES, {"dial": STANDARD})
    assert reading.status == "no needle"


def test_two_needles() -> None:
    instances = [_needle(300.0), _dial(), _needle(30.0)]
    (reading,) = read_meters(instances, CATEGORIES, {"dial": STANDARD})
    assert reading.status == "two needles"
    assert reading.needle is None and reading.needle_angle_deg is None and reading.value is None


def test_duplicate_detection_of_one_needle_is_one_needle() -> None:
    instances = [_dial(), _needle(300.0, score=0.6), _needle(300.5, score=0.95)]
    (reading,) = read_meters(instances, CATEGORIES, {"dial": STANDARD})
    assert reading.status == "ok" and reading.needle == 2


def test_needle_off_center() -> None:
    (reading,) = read_meters([_dial(), _needle(300.0, shift=30.0)], CATEGORIES, {"dial": STANDARD})
    assert reading.status == "needle off center"
    assert reading.needle == 1 and reading.needle_angle_deg is None and reading.fraction is None
    # A small miss, within what mask noise gives, still reads.
    (reading,) = read_meters([_dial(), _needle(300.0, shift=4.0)], CATEGORIES, {"dial": STANDARD})
    assert reading.status == "ok"


@pytest.mark.parametrize(
    ("angle", "status", "fraction"),
    [
        (180.0, "outside the scale", None),  # the middle of the gap
        (142.0, "outside the scale", None),  # over 5 degrees past the end
        (138.0, "ok", 1.0),  # within the margin past the end: reads as full scale
        (222.0, "ok", 0.0),  # resting on the stop pin before zero
    ],
)
def test_outside_the_scale(angle: float, status: str, fraction: float | None) -> None:
    (reading,) = read_meters([_dial(), _needle(angle)], CATEGORIES, {"dial": STANDARD})
    assert reading.status == status
    if fraction is None:
        assert reading.fraction is None and reading.value is None
        assert reading.needle_angle_deg == pytest.approx(angle, abs=0.3)
    else:
        assert reading.fraction == pytest.approx(fraction)


def test_uncalibrated_dial_is_read_as_an_angle() -> None:
    names = ["pointer", "dial", "thermometer"]
    instances = [_needle(100.0), MaskedInstance(2, 0.8, *_fields(_dial()))]
    (reading,) = read_meters(instances, names, {"dial": STANDARD})
    assert reading.status == "ok" and reading.dial == 1
    assert reading.needle_angle_deg == pytest.approx(100.0, abs=0.3)
    assert (reading.fraction, reading.value, reading.unit) == (None, None, None)


def _fields(instance: MaskedInstance) -> tuple:
    return instance.box, instance.mask, instance.origin


def test_min_score_drops_weak_instances() -> None:
    instances = [_dial(), _needle(300.0, score=0.2)]
    (reading,) = read_meters(instances, CATEGORIES, {"dial": STANDARD}, min_score=0.5)
    assert reading.status == "no needle"
    weak_dial = MaskedInstance(DIAL, 0.1, *_fields(_dial()))
    assert read_meters([weak_dial], CATEGORIES, {}, min_score=0.5) == []


def test_instances_from_arrays() -> None:
    dial, needle = _dial(), _needle(45.0)
    rects = np.array([[*i.origin, i.mask.shape[1], i.mask.shape[0]] for i in (dial, needle)])
    flat = np.concatenate([dial.mask.reshape(-1), needle.mask.reshape(-1)])
    instances = instances_from_arrays(
        np.array([DIAL, POINTER]),
        np.array([0.9, 0.8]),
        np.array([dial.box, needle.box]),
        rects,
        flat,
    )
    (reading,) = read_meters(instances, CATEGORIES, {})
    assert reading.needle == 1 and reading.needle_angle_deg == pytest.approx(45.0, abs=0.3)
    with pytest.raises(ValueError, match="bytes"):
        instances_from_arrays(np.array([DIAL]), np.array([0.9]), np.zeros((1, 4)), rects[:1], flat)


def test_repository_calibration_is_the_standard_meter() -> None:
    calibrations = load_calibrations(METERS_YAML, CATEGORIES)
    assert calibrations == {"dial": STANDARD}
    assert calibrations["dial"].sweep_deg == STANDARD_METER["sweep_deg"]


def test_points_interpolate(tmp_path: Path) -> None:
    path = tmp_path / "meters.yaml"
    # A square-root-like scale: the first half of the sweep holds a quarter of the values.
    path.write_text(
        "dial:\n  start_deg: 225\n  end_deg: 135\n  min_value: 0\n  max_value: 100\n"
        "  unit: '%'\n  points: [[225, 0], [0, 25], [45, 50]]\n"
    )
    (calibration,) = load_calibrations(path, CATEGORIES).values()
    assert calibration.points == ((0.0, 25.0), (45.0, 50.0))
    assert calibration.read(225.0) == (0.0, 0.0)
    assert calibration.read(0.0) == (0.25, 25.0)
    assert calibration.read(22.5) == pytest.approx((0.375, 37.5))
    assert calibration.read(90.0) == pytest.approx((0.75, 75.0))  # halfway from 45 to 135
    assert calibration.read(135.0) == pytest.approx((1.0, 100.0))
    assert calibration.read(180.0) is None
    (reading,) = read_meters([_dial(), _needle(22.5)], CATEGORIES, {"dial": calibration})
    assert reading.value == pytest.approx(37.5, abs=0.3)


def test_falling_scale() -> None:
    vacuum = Calibration(start_deg=240, end_deg=120, min_value=0.0, max_value=-0.1, unit="MPa")
    assert vacuum.read(0.0) == pytest.approx((0.5, -0.05))


def test_empty_file_calibrates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "meters.yaml"
    path.write_text("# nothing yet\n")
    assert load_calibrations(path, CATEGORIES) == {}


GOOD = "  start_deg: 225\n  end_deg: 135\n  min_value: 0\n  max_value: 1.6\n  unit: MPa\n"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("dial: [225, 135\n", "not valid YAML"),
        ("- dial\n", "mapping of dial class names"),
        ("dial:\n" + GOOD + "dial:\n" + GOOD, "given twice"),
        ("gauge:\n" + GOOD, "gauge: not a dial class"),
        ("pointer:\n" + GOOD, "pointer: is the needle class"),
        ("dial: 3\n", "dial: expected a mapping"),
        ("dial:\n" + GOOD.replace("  unit: MPa\n", ""), "dial.unit: missing"),
        ("dial:\n" + GOOD + "  colour: red\n", "dial.colour: unknown key"),
        ("dial:\n" + GOOD.replace("225", "'225'"), "dial.start_deg: expected a finite number"),
        ("dial:\n" + GOOD.replace("225", "true"), "dial.start_deg: expected a finite number"),
        ("dial:\n" + GOOD.replace("225", ".nan"), "dial.start_deg: expected a finite number"),
        ("dial:\n" + GOOD.replace("225", "400"), "dial.start_deg/end_deg"),
        ("dial:\n" + GOOD.replace("225", "135"), "dial.end_deg: equals start_deg"),
        ("dial:\n" + GOOD.replace("1.6", "0"), "dial.max_value: equals min_value"),
        ("dial:\n" + GOOD.replace("MPa", "''"), "dial.unit: expected a non-empty string"),
        ("dial:\n" + GOOD + "  margin_deg: 60\n", "dial.margin_deg"),
        ("dial:\n" + GOOD + "  points: {0: 1}\n", "dial.points: expected a list"),
        ("dial:\n" + GOOD + "  points: [[0, 0.8, 1]]\n", "dial.points[0]: expected [angle, value]"),
        ("dial:\n" + GOOD + "  points: [[0, x]]\n", "dial.points[0][1]: expected a finite"),
        ("dial:\n" + GOOD + "  points: [[180, 0.8]]\n", "dial.points[0][0]: angle 180 lies out"),
        ("dial:\n" + GOOD + "  points: [[0, 0.8], [300, 1]]\n", "dial.points[1][0]: angle 300"),
        ("dial:\n" + GOOD + "  points: [[300, 0.8], [0, 0.5]]\n", "dial.points[1][1]: value 0.5"),
        ("dial:\n" + GOOD + "  points: [[0, 1.7]]\n", "dial.points: max_value 1.6"),
    ],
)
def test_calibration_errors_name_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "meters.yaml"
    path.write_text(text)
    with pytest.raises(CalibrationError) as raised:
        load_calibrations(path, CATEGORIES)
    message = str(raised.value)
    assert message.startswith(str(path)), message
    assert key in message, message
