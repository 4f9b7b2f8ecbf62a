"""The printed range: value against the sweep fitted from numerals read on a face (unit tests on
text lines placed by hand, as OCR would give them; no OCR runs here)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from bls.meters.calibration import Calibration
from bls.meters.printed import (
    calibration_disagreement,
    checked_reading,
    fit_printed_scale,
    numerals_on_face,
    parse_numerals,
    printed_answer,
)
from bls.meters.records import Evidence, Reading, Scale
from pipelines.ocr import TextLine, lines_from_json, lines_to_json

START, SWEEP = 225.0, 270.0
END = (START + SWEEP) % 360.0
RADIUS = 0.7
CHAR = 0.05  # a character's width in face radii


def line_at(text: str, angle_deg: float, radius: float = RADIUS, score: float = 0.95) -> TextLine:
    """``text`` printed upright, centered at ``angle_deg`` on the face (clockwise from 12)."""
    a = math.radians(angle_deg)
    cx, cy = radius * math.sin(a), -radius * math.cos(a)
    xs = cx + CHAR * (np.arange(len(text)) - (len(text) - 1) / 2)
    chars = tuple((c, score, float(x), cy) for c, x in zip(text, xs, strict=True))
    half = CHAR * len(text) / 2
    quad = np.array(
        [
            [cx - half, cy - 0.04],
            [cx + half, cy - 0.04],
            [cx + half, cy + 0.04],
            [cx - half, cy + 0.04],
        ]
    )
    return TextLine(text, score, quad, chars)


def scale_lines(
    values: list[float], shares: list[float], texts: list[str] | None = None
) -> list[TextLine]:
    """Numerals at ``shares`` of the sweep."""
    texts = texts or [f"{v:g}" for v in values]
    return [line_at(t, START + s * SWEEP) for t, s in zip(texts, shares, strict=True)]


def linear_face(low: float, high: float, count: int) -> list[TextLine]:
    shares = list(np.linspace(0, 1, count))
    return scale_lines([low + s * (high - low) for s in shares], shares)


def reading(fraction: float) -> Reading:
    return Reading(
        dial=0,
        needle=1,
        center=(100.0, 100.0),
        needle_angle_deg=0.0,
        fraction=fraction,
        value=None,
        unit=None,
        status="ok",
        scale=Scale(START, END, "seen"),
        evidence=Evidence(),
    )


def test_a_linear_scale_gives_its_values_between_and_at_the_ends() -> None:
    printed = numerals_on_face(linear_face(0, 100, 6), START, END)
    assert printed.model == "linear"
    assert printed.value(0.37) == pytest.approx(37, abs=0.2)
    assert printed.min_value == pytest.approx(0, abs=0.2)
    assert printed.max_value == pytest.approx(100, abs=0.2)
    assert printed.rejected == 0


def test_decimals_and_negative_numerals_are_numbers() -> None:
    texts = ["-0.1", "0.1", "0.3", "0.5", "0.7", "0.9"]
    printed = numerals_on_face(scale_lines([], list(np.linspace(0, 1, 6)), texts), START, END)
    assert printed.ok
    assert printed.value(0.5) == pytest.approx(0.4, abs=0.005)


def test_a_falling_scale_is_read_falling() -> None:
    printed = numerals_on_face(linear_face(120, 0, 7), START, END)
    assert printed.value(0.25) == pytest.approx(90, abs=0.5)


def test_a_misread_numeral_is_left_out() -> None:
    lines = scale_lines(
        [],
        list(np.linspace(0, 1, 9)),
        ["0.1", "0.2", "9.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"],
    )
    printed = numerals_on_face(lines, START, END)
    assert printed.model == "linear"
    assert printed.rejected == 1
    assert printed.value(0.25) == pytest.approx(0.3, abs=0.005)


def test_a_misread_numeral_between_two_on_the_line_does_not_bend_it() -> None:
    # "60" read as "50": on the values' grid and monotone, but a curve would bend its
    # neighbours too.
    lines = scale_lines([], [0, 0.2, 0.4, 0.6, 0.8, 1.0], ["0", "30", "50", "90", "120", "150"])
    printed = numerals_on_face(lines, START, END)
    assert printed.model == "linear"
    assert printed.value(0.4) == pytest.approx(60, abs=1)


def test_numerals_run_together_are_split_at_their_own_characters() -> None:
    # "0.8" and "0.9" printed close together and read as one line: each part's characters lie
    # at its own tick.
    shares = [0, 2 / 9, 4 / 9, 6 / 9]
    lines = scale_lines([], shares, ["0", "0.2", "0.4", "0.6"])
    parts = [line_at(t, START + s * SWEEP) for t, s in (("0.8", 8 / 9), ("0.9", 1.0))]
    chars = parts[0].chars + parts[1].chars
    lines.append(
        TextLine("0.80.9", 0.9, np.vstack([parts[0].quad[[0, 3]], parts[1].quad[[1, 2]]]), chars)
    )
    printed = numerals_on_face(lines, START, END)
    values = [v for _, v in printed.knots]
    assert 0.8 in values and 0.9 in values
    assert printed.value(0.5) == pytest.approx(0.45, abs=0.01)


def test_a_number_is_not_split_into_pieces_that_look_like_a_scale() -> None:
    # "100" .. "300" could be cut into "10" .. "30" and "0"s; the whole numerals are the scale.
    shares = [1 / 3, 0.5, 2 / 3, 5 / 6, 1.0]
    printed = numerals_on_face(scale_lines([100, 150, 200, 250, 300], shares), START, END)
    assert printed.value(0.5) == pytest.approx(150, abs=2)


def test_a_curved_scale_is_followed_between_its_numerals() -> None:
    # A square-root scale (flow behind an orifice plate): the value is 10 * share^2.
    values = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    shares = [math.sqrt(v / 10) for v in values]
    printed = numerals_on_face(scale_lines(values, shares), START, END)
    assert printed.model == "monotone"
    for share in (0.5, 0.65, 0.8, 0.95):
        value, reason = printed.read(share)
        assert reason is None
        assert value == pytest.approx(10 * share**2, abs=0.2)  # 2% of the span


def test_a_curve_is_not_guessed_between_numerals_far_apart() -> None:
    values = [0, 2, 4, 6, 8, 10]
    printed = numerals_on_face(scale_lines(values, [math.sqrt(v / 10) for v in values]), START, END)
    assert printed.model == "monotone"
    value, reason = printed.read(0.2)  # between 0 and 2, 0.45 of the sweep apart
    assert value is None
    assert "apart" in reason


def test_numerals_of_an_inner_scale_are_not_mixed_in() -> None:
    outer = linear_face(0, 16, 9)
    inner = [
        line_at(f"{v:g}", START + s * SWEEP, radius=0.45)
        for v, s in ((0, 0), (100, 0.43), (200, 0.86))
    ]
    printed = numerals_on_face(outer + inner, START, END)
    assert printed.value(0.5) == pytest.approx(8, abs=0.1)


def test_the_unit_printed_on_the_face_is_carried() -> None:
    printed = numerals_on_face([*linear_face(0, 1.6, 9), line_at("MPa", 180, 0.3)], START, END)
    assert printed.unit == "MPa"


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        ([], "no numerals"),
        ([line_at("ACME", 0, 0.3), line_at("kPa", 180, 0.3)], "no numerals"),
        (scale_lines([0, 100], [0, 1]), "too few numerals"),
        (scale_lines([5, 70, 30, 2, 90], [0, 0.25, 0.5, 0.75, 1]), "inconsistent"),
    ],
    ids=["nothing read", "only words", "two numerals", "numerals that agree on no scale"],
)
def test_it_abstains_with_a_reason(lines: list[TextLine], reason: str) -> None:
    printed = numerals_on_face(lines, START, END)
    assert not printed.ok
    assert reason in printed.reason
    assert printed.value(0.5) is None
    assert printed.read(0.5) == (None, printed.reason)


@pytest.mark.parametrize(
    "texts",
    [
        ["-100", "80", "-60", "-40", "20", "0"],
        ["0", "-20", "40", "-60", "80", "-100"],
    ],
    ids=["-100 .. 0 with two minus signs lost", "0 .. 100 with ticks read as minus signs"],
)
def test_minus_signs_that_could_be_read_either_way_make_it_abstain(texts: list[str]) -> None:
    # Every numeral fits -100 .. 0 rising as well as 100 .. 0 falling once signs may change:
    # the face does not say which, so no value rather than a mirrored one.
    printed = numerals_on_face(scale_lines([], list(np.linspace(0, 1, 6)), texts), START, END)
    assert not printed.ok
    assert "minus" in printed.reason


def test_minus_signs_read_on_every_numeral_are_kept() -> None:
    texts = ["-100", "-80", "-60", "-40", "-20", "0"]
    printed = numerals_on_face(scale_lines([], list(np.linspace(0, 1, 6)), texts), START, END)
    assert printed.value(0.5) == pytest.approx(-50, abs=1)


def test_numerals_in_the_scales_gap_are_ignored() -> None:
    # A serial number printed at 6 o'clock, in the gap of a 270-degree scale.
    lines = [*linear_face(0, 100, 6), line_at("4417", 180, RADIUS)]
    printed = numerals_on_face(lines, START, END)
    assert printed.value(0.5) == pytest.approx(50, abs=0.5)


def test_characters_the_recognizer_doubts_are_dropped() -> None:
    lines = linear_face(0, 100, 6)
    lines[2] = line_at("40", START + 0.4 * SWEEP, score=0.1)
    assert [n.value for n in parse_numerals(lines)] == [0, 20, 60, 80, 100]


def test_a_calibration_that_contradicts_the_print_is_measured() -> None:
    printed = numerals_on_face(linear_face(0, 100, 6), START, END)
    same = Calibration(min_value=0, max_value=100, unit="A")
    other = Calibration(min_value=0, max_value=1.6, unit="MPa")
    assert calibration_disagreement(printed, same) == pytest.approx(0, abs=0.01)
    assert calibration_disagreement(printed, other) > 10
    assert calibration_disagreement(printed, Calibration(start_deg=START, end_deg=END)) is None


def test_a_print_that_contradicts_the_calibration_withholds_the_value() -> None:
    printed = numerals_on_face(linear_face(0, 100, 6), START, END)
    calibrated = replace(reading(0.25), value=0.4, unit="MPa")
    other = Calibration(min_value=0, max_value=1.6, unit="MPa")
    checked = checked_reading(calibrated, printed, other)
    assert checked.status == "scale mismatch"
    assert checked.value is None
    assert checked.fraction == 0.25, "the scale seen stands"
    assert checked.evidence.range_disagreement > 10
    # A print that agrees keeps the reading, with the evidence.
    same = checked_reading(calibrated, printed, Calibration(min_value=0, max_value=100, unit="A"))
    assert same.status == "ok" and same.value == 0.4
    assert same.evidence.range_disagreement == pytest.approx(0, abs=0.01)
    assert "range_disagreement" in same.to_json()["evidence"]
    # No numerals read: nothing to check, the reading stands as it was.
    unread = numerals_on_face([], START, END)
    assert checked_reading(calibrated, unread, other) == calibrated


def test_the_answer_gives_the_printed_value_and_says_where_it_came_from() -> None:
    printed = numerals_on_face([*linear_face(-20, 120, 8), line_at("°C", 180, 0.3)], START, END)
    answer = printed_answer(reading(0.25), printed)
    assert answer["value"] == pytest.approx(15, abs=0.3)
    assert answer["unit"] == "°C"
    assert answer["range"]["source"] == "printed"
    assert answer["range"]["status"] == "ok"
    assert answer["range"]["min_value"] == pytest.approx(-20, abs=0.3)


def test_the_answer_says_why_there_is_no_printed_value() -> None:
    answer = printed_answer(reading(0.5), numerals_on_face([], START, END))
    assert answer["value"] is None
    assert answer["range"] == {
        "source": "printed",
        "status": "abstained",
        "reason": "no numerals read on the scale",
    }


def test_an_empty_sweep_abstains() -> None:
    assert not fit_printed_scale([], 90.0, 90.0).ok


def test_text_lines_survive_the_models_json() -> None:
    lines = [line_at("0.6", 10.0), line_at("MPa", 180.0, 0.3)]
    (back,) = lines_from_json(lines_to_json([lines]))
    assert [line.text for line in back] == ["0.6", "MPa"]
    np.testing.assert_allclose(back[0].quad, lines[0].quad, atol=1e-5)
    assert back[0].chars[1][0] == "."
    with pytest.raises(ValueError, match="not an OCR answer"):
        lines_from_json('{"text": "0.6"}')
