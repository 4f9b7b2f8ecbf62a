"""OCR of a dial's face (pipelines/ocr.py): PP-OCRv4 from the rapidocr_onnxruntime wheel reads
the numerals drawn on a face, where they are, with nothing downloaded."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from bls.meters.printed import numerals_on_face, parse_numerals
from pipelines.ocr import OcrEngine, OcrUnavailableError, read_faces

START, SWEEP = 225.0, 270.0
CENTER, RADIUS = (260.0, 230.0), 180.0
VALUES = [0, 20, 40, 60, 80, 100]


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
