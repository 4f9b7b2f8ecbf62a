"""OCR of a dial's face (pipelines/ocr.py): PP-OCRv4 from the rapidocr_onnxruntime wheel reads
the numerals drawn on a face, where they are, with nothing downloaded."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from bench.accuracy import foreign
from bls.meters import Calibration, MaskedInstance, read_meters
from bls.meters.printed import (
    faces_to_read,
    numerals_on_face,
    parse_numerals,
    printed_answers,
)
from pipelines.ocr import OcrEngine, OcrUnavailableError, read_faces

START, SWEEP = 225.0, 270.0
CENTER, RADIUS = (260.0, 230.0), 180.0
VALUES = [0, 20, 40, 60, 80, 100]
CLASSES = ["pointer", "dial"]


def drawn_dial() -> np.ndarray:
    """A flat dial, 0 .. 100 over 270 degrees from 7:30, numerals upright inside the ticks."""
    image = Image.new("RGB", (520, 460), (90, 110, 120))
    draw = ImageDraw.Draw(image)
    cx, cy = CENTER
    draw.ellipse([cx - RADIUS, cy - RADIUS, cx + RADIUS, cy + RADIUS], fill=(245, 245, 235))
    font_path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    font = ImageFont.truetype(str(font_path), 26)
    for k, value in enumerate(VALUES):
        angle = math.radians(START + SWEEP * k / (len(VALUES) - 1))
        ux, uy = math.sin(angle), -math.cos(angle)
        outer, inner = RADIUS * 0.92, RADIUS * 0.8
        draw.line(
            [(cx + outer * ux, cy + outer * uy), (cx + inner * ux, cy + inner * uy)],
            fill=(20, 20, 20),
            width=4,
        )
        at = (cx + 0.62 * RADIUS * ux, cy + 0.62 * RADIUS * uy)
        draw.text(at, str(value), font=font, fill=(20, 20, 20), anchor="mm")
    draw.text((cx, cy + 0.4 * RADIUS), "A", font=font, fill=(20, 20, 20), anchor="mm")
    return np.asarray(image)


def photo_to_face() -> np.ndarray:
    cx, cy = CENTER
    return np.array([[1 / RADIUS, 0, -cx / RADIUS], [0, 1 / RADIUS, -cy / RADIUS], [0, 0, 1.0]])


@pytest.fixture(scope="module")
def engine() -> OcrEngine:
    return OcrEngine(threads=1)


def test_the_numerals_of_a_drawn_dial_are_read_where_they_are_printed(engine: OcrEngine) -> None:
    (lines,) = read_faces(engine, drawn_dial(), [photo_to_face()])
    numerals = parse_numerals(lines)
    assert {n.value for n in numerals} >= set(VALUES[1:])
    for n in numerals:
        printed_at = START + SWEEP * VALUES.index(int(n.value)) / (len(VALUES) - 1)
        assert abs((n.angle_deg - printed_at + 180) % 360 - 180) < 3
        assert n.radius == pytest.approx(0.62, abs=0.05)
    printed = numerals_on_face(lines, START, (START + SWEEP) % 360)
    assert printed.model == "linear"
    assert printed.value(0.3) == pytest.approx(30, abs=1)
    assert printed.unit == "A"


def test_a_face_with_no_text_reads_nothing(engine: OcrEngine) -> None:
    blank = np.full((300, 300, 3), 235, dtype=np.uint8)
    homography = np.array([[1 / 150, 0, -1], [0, 1 / 150, -1], [0, 0, 1.0]])
    assert read_faces(engine, blank, [homography]) == [[]]


def test_bad_inputs_are_refused_naming_the_problem(engine: OcrEngine) -> None:
    with pytest.raises(ValueError, match="uint8"):
        engine.read(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="homography 0"):
        read_faces(engine, drawn_dial(), [np.eye(2)])
    with pytest.raises(ValueError, match="threads"):
        OcrEngine(threads=0)


def test_a_missing_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail as an uninstalled package does.
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    with pytest.raises(OcrUnavailableError, match="rapidocr_onnxruntime is not installed"):
        OcrEngine()


def instances_of(scene) -> list[MaskedInstance]:
    """The scene's needles and dials as the pointer model would give them, with exact masks and
    the dials' true keypoints."""
    height, width = scene.image.shape[:2]
    instances = []
    for annotation in scene.annotations:
        mask = np.zeros((height, width), dtype=np.uint8)
        for polygon in annotation.polygons:
            points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2) - 0.5
            cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 1, shift=4)
        keypoints = None
        if annotation.keypoints is not None:
            keypoints = np.asarray(annotation.keypoints, dtype=np.float32).reshape(-1, 3).copy()
            keypoints[:, 2] = 1.0
        x, y, w, h = annotation.bbox
        instances.append(
            MaskedInstance(
                class_id=CLASSES.index(annotation.category),
                score=1.0,
                box=(x, y, x + w, y + h),
                mask=mask,
                keypoints=keypoints,
            )
        )
    return instances


def test_an_uncalibrated_meter_gets_the_value_its_numerals_print(engine: OcrEngine) -> None:
    # A 45 .. 55 Hz meter drawn by the held-out renderer, read with no calibration at all.
    scene = foreign.render_scene("gauges", foreign.DEFAULT_SEED, 8)
    truth = scene.truth["gauges"][0]
    assert truth["meter_type"] == "frequency"
    instances = instances_of(scene)
    readings = read_meters(instances, CLASSES, {})
    wanted = faces_to_read(instances, readings, CLASSES, {})
    assert [readings[w.reading].dial for w in wanted] == [
        i for i, a in enumerate(scene.annotations) if a.category == "dial"
    ]
    faces = read_faces(engine, scene.image, [w.homography for w in wanted])
    answers = printed_answers(readings, wanted, faces)
    answer = answers[wanted[0].reading]
    assert answer["range"]["status"] == "ok", answer["range"]
    assert answer["value"] == pytest.approx(truth["value"], abs=0.02 * 10)
    assert answer["unit"] == "Hz"


@pytest.mark.parametrize(
    ("calibration", "status"),
    [
        (Calibration(min_value=45, max_value=55, unit="Hz"), "ok"),
        # The demo's standard meter: the print says this dial is another type.
        (Calibration(min_value=0, max_value=1.6, unit="MPa"), "scale mismatch"),
    ],
)
def test_the_print_checks_a_calibrated_range(
    engine: OcrEngine, calibration: Calibration, status: str
) -> None:
    scene = foreign.render_scene("gauges", foreign.DEFAULT_SEED, 8)
    truth = scene.truth["gauges"][0]
    instances = instances_of(scene)
    calibrations = {"dial": calibration}
    readings = read_meters(instances, CLASSES, calibrations)
    wanted = faces_to_read(instances, readings, CLASSES, calibrations)
    assert wanted and all(w.calibration == calibration for w in wanted)
    faces = read_faces(engine, scene.image, [w.homography for w in wanted])
    answer = printed_answers(readings, wanted, faces)[wanted[0].reading]
    assert answer["status"] == status
    assert "range" not in answer, "the calibration, not the print, gives a calibrated value"
    assert answer["fraction"] == pytest.approx(truth["fraction"], abs=0.02)
    if status == "ok":
        assert answer["value"] == pytest.approx(truth["value"], abs=0.02 * 10)
        assert answer["evidence"]["range_disagreement"] <= 0.1
    else:
        assert answer["value"] is None
        assert answer["evidence"]["range_disagreement"] > 0.1
