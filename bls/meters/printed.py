"""The range printed on a dial: its numerals, read by OCR, fitted as value against angle.

A dial class without a calibrated range still has its range on its face. The text found on the
rectified face (``pipelines.ocr``, in face coordinates) gives numerals, each at an angle and a
radius; the scale's start and sweep (the reading's ``scale``) turn each angle into a fraction of
the sweep. :func:`fit_printed_scale` finds the numerals that agree with each other and fits value
against fraction:

- ``linear``: a straight line through the most numerals that lie on one (pairs of numerals
  propose lines; the one that most others agree with, within :attr:`FitRules.tolerance` of the
  span and on one ring of the face, wins and is refitted by least squares on its numerals).
- ``monotone``: where more numerals, on the same ring, rise (or fall) with the angle than a line
  holds and their steps change smoothly (a square-root or a dB scale), a monotone cubic through
  them (Fritsch-Carlson), straight beyond the outer ones.

It abstains, with a reason, when fewer than :attr:`FitRules.min_numerals` numerals agree, or when
the needle lies far beyond the numerals of a curved scale. Numerals that OCR ran together
(``0.80.9``, ``-60-40``) are split at every place that leaves numbers, each placed at its own
characters; the fit keeps the split its numerals agree with.

Where a dial class has a calibrated range, the print checks it instead (:func:`checked_reading`):
a dial whose numerals contradict the calibration is another meter type under that class, and its
value is withheld (``scale mismatch``), as when its scale lies elsewhere.

Angles are clockwise from 12 o'clock, degrees in ``[0, 360)``, image y downwards; face
coordinates have the outline as the unit circle (``bls.meters.geometry.Face``).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bls.meters.calibration import Calibration
from bls.meters.geometry import (
    Face,
    affine_face,
    clockwise,
    clockwise_angle,
    fit_ellipse,
    outline_points,
    perspective_face,
)
from bls.meters.records import SCALE_MISMATCH, STATUS_OK, MaskedInstance, Reading
from pipelines.ocr import TextLine

__all__ = [
    "DEFAULT_RULES",
    "FaceToRead",
    "FitRules",
    "Numeral",
    "PrintedScale",
    "calibration_disagreement",
    "checked_reading",
    "faces_to_read",
    "fit_printed_scale",
    "numerals_on_face",
    "parse_numerals",
    "printed_answer",
    "printed_answers",
    "reading_face",
]

_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?")
# What OCR reads for a printed minus sign: dashes, PP-OCR's Chinese "one", an equals sign.
_MINUS_LOOKALIKES = "\u2212\u2013\u2014\u4e00=~"
# Neighbouring numerals that OCR runs together are two; each is at least two characters long
# (a one-character piece is far likelier a digit of one numeral: "100" is not "10" and "0").
_MAX_PARTS = 2
_MIN_PART = 2
# The units PP-OCR reads on meters, as a reading states them.
_UNITS = {
    "mpa": "MPa",
    "kpa": "kPa",
    "pa": "Pa",
    "bar": "bar",
    "mbar": "mbar",
    "psi": "psi",
    "a": "A",
    "ma": "mA",
    "ka": "kA",
    "v": "V",
    "kv": "kV",
    "mv": "mV",
    "hz": "Hz",
    "w": "W",
    "kw": "kW",
    "mw": "MW",
    "%": "%",
    "°c": "°C",
    "℃": "°C",
    "c": "°C",
    "°f": "°F",
    "db": "dB",
    "r/min": "r/min",
    "rpm": "rpm",
    "m3/h": "m3/h",
    "m³/h": "m3/h",
}


@dataclass(frozen=True)
class FitRules:
    """What the fit accepts; angles as fractions of the scale's sweep, lengths in face radii.

    Attributes:
        tolerance: how far, in shares of the span, a numeral may lie off the fitted line (its
            printed position is its tick's; OCR's box centers are off by a degree or two).
        ring_width: how far a numeral's radius may lie from the others' (numerals of an inner
            scale, a unit or a maker's name lie elsewhere).
        min_numerals: the fewest numerals that must agree; two always lie on a line, three
            are the first check of one another.
        beyond: how far outside the scale's sweep a numeral may sit (the end numerals sit a
            little past the end ticks on some faces).
        max_extrapolation: how far beyond the outer numerals of a ``monotone`` fit the needle
            may lie, and not beyond half the gap between the last two (a curve is not known
            beyond them).
        max_slope_ratio: how much the value's slope may change from one step between numerals
            to the next on a ``monotone`` scale (a misread numeral makes a kink).
        max_knot_gap: the widest gap between two numerals of a ``monotone`` fit that a needle
            between them is read in (a curve between numerals far apart is a guess).
        min_score: characters the recognizer is less sure of than this are dropped.
        max_disagreement: how far, in shares of a calibrated span, the printed numerals' values
            may lie from the calibration's before the dial counts as another meter type (a
            print that agrees lies within a few hundredths: :attr:`tolerance` and the numerals'
            positions).
    """

    tolerance: float = 0.02
    ring_width: float = 0.1
    min_numerals: int = 3
    beyond: float = 0.12
    max_extrapolation: float = 0.05
    max_slope_ratio: float = 5.0
    max_knot_gap: float = 0.25
    min_score: float = 0.3
    max_disagreement: float = 0.1


DEFAULT_RULES = FitRules()


@dataclass(frozen=True)
class Numeral:
    """One number read on the face, one way of splitting the text it came from.

    Attributes:
        value: the number.
        text: as read.
        angle_deg: its center's angle on the face, clockwise from 12 o'clock.
        radius: its center's distance from the pivot, in face radii.
        score: the lowest confidence of its characters.
        line: index of the text line it came from.
        split: which way of splitting that line it belongs to.
        sign_changed: the sign as read is changed: where some numeral has a minus, OCR may
            have lost a thin minus on others, or taken a tick for one.
    """

    value: float
    text: str
    angle_deg: float
    radius: float
    score: float
    line: int
    split: int
    sign_changed: bool = False


@dataclass(frozen=True)
class PrintedScale:
    """The value against the fraction of the sweep, as the printed numerals give it.

    Attributes:
        model: ``"linear"`` or ``"monotone"``; ``None`` when the fit abstained.
        reason: why it abstained; ``None`` when it did not.
        knots: ``(fraction, value)`` of the numerals used, by fraction.
        unit: a unit read on the face (``MPa``, ``°C``...), ``None`` if none was.
        residual: RMS of the numerals' distance from the fit, in shares of the span.
        rejected: numerals read but left out of the fit.
        line: ``(intercept, slope)`` of a ``linear`` fit.
    """

    model: str | None
    reason: str | None
    knots: tuple[tuple[float, float], ...] = ()
    unit: str | None = None
    residual: float | None = None
    rejected: int = 0
    line: tuple[float, float] | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """Whether the fit gives values."""
        return self.model is not None

    def value(self, fraction: float) -> float | None:
        """The value at ``fraction`` of the sweep; ``None`` where the fit abstained."""
        if self.model is None:
            return None
        if self.line is not None:
            return self.line[0] + self.line[1] * fraction
        f, v = (np.array(x) for x in zip(*self.knots, strict=True))
        return _monotone_cubic(f, v, fraction)

    @property
    def min_value(self) -> float | None:
        """The value at the scale's start."""
        return self.value(0.0)

    @property
    def max_value(self) -> float | None:
        """The value at the scale's end."""
        return self.value(1.0)

    def beyond_knots(self, fraction: float) -> float:
        """How far ``fraction`` lies outside the numerals used (0 between them)."""
        if not self.knots:
            return math.inf
        first, last = self.knots[0][0], self.knots[-1][0]
        return max(0.0, first - fraction, fraction - last)

    def read(
        self, fraction: float, rules: FitRules = DEFAULT_RULES
    ) -> tuple[float | None, str | None]:
        """The value a needle at ``fraction`` of the sweep shows, or why there is none.

        A line holds across the scale. A curve is known only between its numerals: the needle
        may lie at most :attr:`FitRules.max_extrapolation` (and half the last gap between
        numerals) beyond them, and not between two more than :attr:`FitRules.max_knot_gap`
        apart.

        Returns:
            ``(value, None)``, or ``(None, reason)``.
        """
        if self.model is None:
            return None, self.reason
        if self.model == "monotone":
            beyond = self.beyond_knots(fraction)
            fractions = [f for f, _ in self.knots]
            end_gap = (
                fractions[1] - fractions[0]
                if fraction < fractions[0]
                else fractions[-1] - fractions[-2]
            )
            if beyond > min(rules.max_extrapolation, end_gap / 2):
                return None, f"the needle lies {beyond:.2f} of the sweep beyond the numerals read"
            k = int(np.searchsorted(fractions, fraction))
            if 0 < k < len(fractions) and fractions[k] - fractions[k - 1] > rules.max_knot_gap:
                return None, (
                    f"the needle lies between numerals {fractions[k] - fractions[k - 1]:.2f} of "
                    "the sweep apart on a curved scale"
                )
        return self.value(fraction), None

    def to_json(self) -> dict[str, Any]:
        """The printed range as a reading's answer states it."""
        if self.model is None:
            return {"source": "printed", "status": "abstained", "reason": self.reason}
        return {
            "source": "printed",
            "status": "ok",
            "model": self.model,
            "min_value": _sig(self.min_value),
            "max_value": _sig(self.max_value),
            "unit": self.unit,
            "numerals": [[round(f, 4), _sig(v)] for f, v in self.knots],
            "residual": None if self.residual is None else round(self.residual, 4),
            "rejected": self.rejected,
        }


def _sig(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.6g}")


def _monotone_cubic(f: np.ndarray, v: np.ndarray, x: float) -> float:
    """Fritsch-Carlson monotone cubic through ``(f, v)`` (``f`` rising) at ``x``; straight
    beyond the ends with the end steps' slopes."""
    h = np.diff(f)
    delta = np.diff(v) / h
    if x <= f[0]:
        return float(v[0] + delta[0] * (x - f[0]))
    if x >= f[-1]:
        return float(v[-1] + delta[-1] * (x - f[-1]))
    slopes = np.empty(len(f))
    slopes[0], slopes[-1] = delta[0], delta[-1]
    for k in range(1, len(f) - 1):
        if delta[k - 1] * delta[k] <= 0:
            slopes[k] = 0.0
        else:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            slopes[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])
    k = int(np.searchsorted(f, x, side="right") - 1)
    t = (x - f[k]) / h[k]
    h00, h10 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t
    h01, h11 = -2 * t**3 + 3 * t**2, t**3 - t**2
    return float(h00 * v[k] + h10 * h[k] * slopes[k] + h01 * v[k + 1] + h11 * h[k] * slopes[k + 1])


def _normalized(text: str) -> str:
    text = text.strip().replace(" ", "").replace(",", ".")
    if text and text[0] in _MINUS_LOOKALIKES:
        text = "-" + text[1:]
    # A round letter among digits is a zero.
    if any(c.isdigit() for c in text):
        text = text.replace("O", "0").replace("o", "0")
    return text


def _splits(text: str) -> list[list[tuple[int, int]]]:
    """Every way to cut ``text`` into at most :data:`_MAX_PARTS` numbers, as ``(start, end)``
    character ranges; the whole text first."""
    found = []
    for cuts in range(_MAX_PARTS):
        for points in itertools.combinations(range(1, len(text)), cuts):
            bounds = [0, *points, len(text)]
            parts = list(itertools.pairwise(bounds))
            if all(_NUMBER.fullmatch(text[a:b]) for a, b in parts) and (
                len(parts) == 1 or all(b - a >= _MIN_PART for a, b in parts)
            ):
                found.append(parts)
    return found


def parse_numerals(lines: Sequence[TextLine], rules: FitRules = DEFAULT_RULES) -> list[Numeral]:
    """The numbers among text lines on a face, each way of splitting a line.

    Args:
        lines: text in face coordinates (``pipelines.ocr.read_faces``).
        rules: the lowest character score kept.

    Returns:
        Per line, every way to read it as one or two numbers (``split`` tells them apart);
        where some numeral has a minus sign, the others also as if they had lost theirs. Lines
        that are no number (a unit, a maker's name) give none.
    """
    numerals = []
    for index, line in enumerate(lines):
        chars = [c for c in line.chars if c[0].strip()]
        text = _normalized("".join(c[0] for c in chars))
        if len(text) != len(chars):  # characters and positions no longer pair up
            continue
        for split, parts in enumerate(_splits(text)):
            for a, b in parts:
                piece = chars[a:b]
                score = min(c[1] for c in piece)
                if score < rules.min_score:
                    continue
                x, y = np.mean([[c[2], c[3]] for c in piece], axis=0)
                numerals.append(
                    Numeral(
                        value=float(text[a:b]),
                        text=text[a:b],
                        angle_deg=clockwise_angle(np.array([x, y])),
                        radius=float(math.hypot(x, y)),
                        score=score,
                        line=index,
                        split=split,
                    )
                )
    if any(n.value < 0 for n in numerals):
        # Each split of a line once more with its sign changed: read without a minus as if it
        # had lost one, read with one as if a tick beside it had been taken for one.
        splits = len({(n.line, n.split) for n in numerals})
        numerals += [
            replace(
                n,
                value=-n.value,
                text=n.text[1:] if n.value < 0 else f"-{n.text}",
                split=n.split + splits,
                sign_changed=True,
            )
            for n in numerals
            if n.value != 0
        ]
    return numerals


def _unit(lines: Sequence[TextLine]) -> str | None:
    for line in lines:
        key = line.text.strip().lower().replace(" ", "")
        if key in _UNITS:
            return _UNITS[key]
    return None


def _fraction(angle: float, start_deg: float, sweep_deg: float) -> float:
    """Where ``angle`` lies along the scale: 0 at its start, 1 at its end; negative just before
    the start (in the nearer half of the gap)."""
    offset = clockwise(start_deg, angle)
    if offset > sweep_deg + (360.0 - sweep_deg) / 2:
        offset -= 360.0
    return offset / sweep_deg


@dataclass(frozen=True)
class _Candidate:
    fraction: float
    value: float
    radius: float
    line: int
    split: int
    sign_changed: bool


def _best_per_line(
    candidates: Sequence[_Candidate], agrees: Any
) -> tuple[list[_Candidate], list[int]]:
    """Per line, the split all of whose numerals ``agrees`` accepts, the one with the most (then
    the one read as printed, then the whole line); returns their candidates, and the lines that
    gave none."""
    by_line: dict[int, dict[int, list[_Candidate]]] = {}
    for c in candidates:
        by_line.setdefault(c.line, {}).setdefault(c.split, []).append(c)
    kept, missed = [], []
    for line, splits in by_line.items():
        agreeing = [(k, parts) for k, parts in splits.items() if all(map(agrees, parts))]
        if not agreeing:
            missed.append(line)
            continue
        _, best = max(agreeing, key=lambda kv: (len(kv[1]), not kv[1][0].sign_changed, -kv[0]))
        kept += best
    return kept, missed


def _linear(
    candidates: Sequence[_Candidate], rules: FitRules
) -> tuple[list[_Candidate], tuple[float, float], bool] | None:
    """The line most candidates agree with, refitted on them; ``None`` without two.

    Returns:
        Its numerals, ``(intercept, slope)``, and whether the numerals' signs leave it in doubt:
        it changes signs as read, and a line of the other direction holds as many numerals.
    """
    best: dict[bool, tuple[tuple[int, int, float], list[_Candidate], tuple[float, float]]] = {}
    for p, q in itertools.combinations(candidates, 2):
        if p.line == q.line and p.split != q.split:
            continue
        if abs(q.fraction - p.fraction) < 0.02 or q.value == p.value:
            continue
        slope = (q.value - p.value) / (q.fraction - p.fraction)
        radius = (p.radius + q.radius) / 2
        fitted = _agreeing(candidates, p.value - slope * p.fraction, slope, radius, rules)
        if fitted is None:
            continue
        members, line = fitted
        error = float(np.mean([abs(c.value - line[0] - line[1] * c.fraction) for c in members]))
        # Most numerals; then the fewest signs changed; then the closest.
        key = (len(members), -sum(c.sign_changed for c in members), -error / abs(line[1]))
        rising = line[1] > 0
        if rising not in best or key > best[rising][0]:
            best[rising] = (key, members, line)
    if not best:
        return None
    (key, members, line), *other = sorted(best.values(), key=lambda b: b[0], reverse=True)
    doubtful = key[1] < 0 and bool(other) and other[0][0][0] == key[0]
    return members, line, doubtful


def _agreeing(
    candidates: Sequence[_Candidate],
    intercept: float,
    slope: float,
    radius: float,
    rules: FitRules,
) -> tuple[list[_Candidate], tuple[float, float]] | None:
    """The candidates on the line and ring (best split per text line), and the line refitted
    on them by least squares (then once more on the refitted line's members)."""
    line = (intercept, slope)
    members: list[_Candidate] = []
    for _ in range(2):

        def agrees(c: _Candidate, line: tuple[float, float] = line, radius: float = radius) -> bool:
            off = abs(c.value - line[0] - line[1] * c.fraction)
            return (
                off <= rules.tolerance * abs(line[1]) and abs(c.radius - radius) <= rules.ring_width
            )

        members, _ = _best_per_line(candidates, agrees)
        if len(members) < 2 or len({c.fraction for c in members}) < 2:
            return None
        f = np.array([c.fraction for c in members])
        v = np.array([c.value for c in members])
        slope_fit, intercept_fit = np.polyfit(f, v, 1)
        if slope_fit == 0 or np.sign(slope_fit) != np.sign(slope):
            return None
        line = (float(intercept_fit), float(slope_fit))
        radius = float(np.median([c.radius for c in members]))
    return members, line


def _monotone(
    candidates: Sequence[_Candidate],
    members: Sequence[_Candidate],
    radius: float,
    rules: FitRules,
) -> list[_Candidate]:
    """The line's numerals and the others on the ring beyond them that continue them strictly
    monotone, on the values' grid, with no kink sharper than :attr:`FitRules.max_slope_ratio`:
    a curved scale's ends. A numeral off the line between two on it is a misread, not a
    curve (a curve would bend its neighbours too)."""
    chain = sorted(members, key=lambda c: c.fraction)
    rising = chain[-1].value > chain[0].value
    step = _grid_step([c.value for c in chain])
    used = {c.line for c in members}
    extras = sorted(
        (
            c
            for c in candidates
            if c.line not in used
            and _is_whole(c, candidates)
            and abs(c.radius - radius) <= rules.ring_width
            and not chain[0].fraction <= c.fraction <= chain[-1].fraction
            and step is not None
            and _on_grid(c.value - chain[0].value, step)
        ),
        # Nearest to the line's numerals first, each line read as printed before its sign is
        # changed.
        key=lambda c: (
            min(abs(c.fraction - chain[0].fraction), abs(c.fraction - chain[-1].fraction)),
            c.sign_changed,
        ),
    )
    for c in extras:
        if c.line in used:
            continue
        trial = sorted([*chain, c], key=lambda x: x.fraction)
        if _monotone_and_smooth(trial, rising, rules):
            chain = trial
            used.add(c.line)
    return chain


def _grid_step(values: Sequence[float]) -> float | None:
    """The step all of ``values`` lie apart by multiples of (the smallest gap between them,
    where every gap is a multiple of it); ``None`` if there is none."""
    gaps = np.diff(np.sort(np.asarray(values, dtype=np.float64)))
    if len(gaps) == 0 or gaps.min() <= 0:
        return None
    step = float(gaps.min())
    return step if all(_on_grid(g, step) for g in gaps) else None


def _on_grid(offset: float, step: float) -> bool:
    ratio = offset / step
    return abs(ratio - round(ratio)) < 1e-6 * max(1.0, abs(ratio))


def _is_whole(candidate: _Candidate, candidates: Sequence[_Candidate]) -> bool:
    """Whether a candidate is its line read as one number."""
    return sum(1 for c in candidates if (c.line, c.split) == (candidate.line, candidate.split)) == 1


def _monotone_and_smooth(chain: Sequence[_Candidate], rising: bool, rules: FitRules) -> bool:
    slopes = []
    for a, b in itertools.pairwise(chain):
        if b.fraction - a.fraction < 0.02 or (b.value <= a.value if rising else b.value >= a.value):
            return False
        slopes.append((b.value - a.value) / (b.fraction - a.fraction))
    return all(
        1 / rules.max_slope_ratio <= s2 / s1 <= rules.max_slope_ratio
        for s1, s2 in itertools.pairwise(slopes)
    )


def fit_printed_scale(
    numerals: Sequence[Numeral],
    start_deg: float,
    end_deg: float,
    rules: FitRules = DEFAULT_RULES,
    unit: str | None = None,
) -> PrintedScale:
    """Value against the fraction of the sweep, from the numerals read on a face.

    Args:
        numerals: every number read (:func:`parse_numerals`), with each way of splitting.
        start_deg: where the scale starts on the face (the reading's ``scale``).
        end_deg: where it ends; the scale runs clockwise from start to end.
        rules: what the fit accepts.
        unit: a unit read on the face, carried into the result.

    Returns:
        The fit, or an abstention whose ``reason`` says why.
    """
    sweep = clockwise(start_deg, end_deg)
    if sweep <= 0:
        return PrintedScale(None, "the scale has no sweep", unit=unit)
    candidates = [
        _Candidate(
            _fraction(n.angle_deg, start_deg, sweep),
            n.value,
            n.radius,
            n.line,
            n.split,
            n.sign_changed,
        )
        for n in numerals
    ]
    candidates = [c for c in candidates if -rules.beyond <= c.fraction <= 1 + rules.beyond]
    lines_read = len({c.line for c in candidates})
    if lines_read == 0:
        return PrintedScale(None, "no numerals read on the scale", unit=unit)
    if lines_read < rules.min_numerals:
        return PrintedScale(
            None,
            f"too few numerals read on the scale ({lines_read}, at least "
            f"{rules.min_numerals} needed)",
            unit=unit,
        )
    linear = _linear(candidates, rules)
    if linear is None:
        return PrintedScale(None, "numerals inconsistent: no two agree on a scale", unit=unit)
    members, line, doubtful = linear
    if doubtful:
        return PrintedScale(
            None,
            "numerals inconsistent: their minus signs read one way and the other give scales "
            "as good",
            unit=unit,
        )
    radius = float(np.median([c.radius for c in members]))
    chain = _monotone(candidates, members, radius, rules)
    rejected = len({c.line for c in candidates} - {c.line for c in chain})
    if len(chain) > len(members) and len(chain) >= rules.min_numerals:
        knots = tuple((c.fraction, c.value) for c in chain)
        return PrintedScale("monotone", None, knots, unit, 0.0, rejected)
    if len(members) < rules.min_numerals:
        return PrintedScale(
            None,
            f"numerals inconsistent: at most {len(members)} of {lines_read} agree on a scale "
            f"({rules.min_numerals} needed)",
            unit=unit,
        )
    ordered = sorted(members, key=lambda c: c.fraction)
    residuals = [(c.value - line[0] - line[1] * c.fraction) / abs(line[1]) for c in ordered]
    return PrintedScale(
        "linear",
        None,
        tuple((c.fraction, c.value) for c in ordered),
        unit,
        float(np.sqrt(np.mean(np.square(residuals)))),
        len({c.line for c in candidates} - {c.line for c in members}),
        line,
    )


def numerals_on_face(
    lines: Sequence[TextLine],
    start_deg: float,
    end_deg: float,
    rules: FitRules = DEFAULT_RULES,
) -> PrintedScale:
    """:func:`fit_printed_scale` on the text read on a face (``pipelines.ocr.read_faces``),
    with the unit read there."""
    return fit_printed_scale(parse_numerals(lines, rules), start_deg, end_deg, rules, _unit(lines))


def calibration_disagreement(printed: PrintedScale, calibration: Calibration) -> float | None:
    """How far a calibration's values lie from the printed numerals, at most, in shares of the
    calibrated span; ``None`` when either gives no values."""
    if not printed.ok or not calibration.has_range:
        return None
    span = abs(calibration.max_value - calibration.min_value)
    return max(abs(calibration.value(f) - v) for f, v in printed.knots) / span


def reading_face(instance: MaskedInstance, reading: Reading) -> Face | None:
    """The face a reading was made on, rebuilt from its dial's mask and the reading's center.

    ``bls.meters.reading`` rectifies on the pivot (moved onto the needle's line) where the
    model gave one; its reading's ``center`` is that pivot, so the same face comes back.

    Returns:
        The face, or ``None`` when the mask has no elliptical outline.
    """
    ellipse = fit_ellipse(outline_points(instance.mask, instance.origin))
    if ellipse is None:
        return None
    if instance.keypoints is None:
        return affine_face(ellipse)
    return perspective_face(ellipse, reading.center) or affine_face(ellipse)


def printed_answer(
    reading: Reading, printed: PrintedScale, rules: FitRules = DEFAULT_RULES
) -> dict[str, Any]:
    """A reading's answer with the value its printed range gives.

    The value is given where the reading is ``ok`` with a fraction and the fit gives one there
    (:meth:`PrintedScale.read`); the answer's ``range`` says where the value came from, or why
    none did.
    """
    answer = reading.to_json()
    range_json = printed.to_json()
    if reading.fraction is not None and printed.ok:
        value, reason = printed.read(reading.fraction, rules)
        if value is None:
            range_json = {"source": "printed", "status": "abstained", "reason": reason}
        else:
            answer["value"] = _sig(value)
            answer["unit"] = printed.unit
    answer["range"] = range_json
    return answer


@dataclass(frozen=True)
class FaceToRead:
    """A reading whose face the OCR reads.

    Attributes:
        reading: its index among the readings.
        homography: ``float [3, 3]``, photo to face.
        calibration: its dial class's calibration where that gives a range, which the print
            then checks; ``None`` where the print gives the value.
    """

    reading: int
    homography: np.ndarray
    calibration: Calibration | None


def faces_to_read(
    instances: Sequence[MaskedInstance],
    readings: Sequence[Reading],
    class_names: Sequence[str],
    calibrations: Mapping[str, Calibration],
) -> list[FaceToRead]:
    """The readings whose print gives or checks their value, and the faces to read it on.

    Those are the ``ok`` readings with a fraction (a scale was found and the needle is on it):
    of a dial class without a calibrated range, for its value; with one, to check the range.

    Args:
        instances: the meter detector's instances, as read (``bls.meters.read_meters``).
        readings: their readings, in order.
        class_names: the detector's ``CLASS_NAMES``.
        calibrations: per dial class its calibration.
    """
    wanted = []
    for k, reading in enumerate(readings):
        if reading.status != STATUS_OK or reading.fraction is None or reading.scale is None:
            continue
        instance = instances[reading.dial]
        name = class_names[instance.class_id] if 0 <= instance.class_id < len(class_names) else ""
        calibration = calibrations.get(name)
        face = reading_face(instance, reading)
        if face is not None:
            checked = calibration if calibration is not None and calibration.has_range else None
            wanted.append(FaceToRead(k, face.homography, checked))
    return wanted


def checked_reading(
    reading: Reading,
    printed: PrintedScale,
    calibration: Calibration,
    rules: FitRules = DEFAULT_RULES,
) -> Reading:
    """A calibrated reading checked against the range printed on its face.

    Returns:
        The reading with its ``range_disagreement`` evidence where the print gives values; as
        ``scale mismatch``, its value withheld and its fraction kept, where they lie more than
        :attr:`FitRules.max_disagreement` of the calibrated span from the calibration's; the
        reading as it was where the print gives none (nothing to check).
    """
    disagreement = calibration_disagreement(printed, calibration)
    if disagreement is None:
        return reading
    evidence = replace(reading.evidence, range_disagreement=disagreement)
    if disagreement <= rules.max_disagreement:
        return replace(reading, evidence=evidence)
    return replace(reading, evidence=evidence, status=SCALE_MISMATCH, value=None)


def printed_answers(
    readings: Sequence[Reading],
    wanted: Sequence[FaceToRead],
    faces: Sequence[Sequence[TextLine]],
    rules: FitRules = DEFAULT_RULES,
) -> list[dict[str, Any]]:
    """Every reading's answer, those of :func:`faces_to_read` with their printed range given
    (:func:`printed_answer`) or checked (:func:`checked_reading`).

    Args:
        readings: all readings, in order.
        wanted: :func:`faces_to_read`'s answer.
        faces: the text read on each of those faces, in the same order (``pipelines.ocr``).
        rules: what the fit accepts.

    Raises:
        ValueError: ``faces`` does not hold one entry per wanted reading.
    """
    if len(faces) != len(wanted):
        raise ValueError(f"text for {len(faces)} faces, {len(wanted)} were asked for")
    answers = [r.to_json() for r in readings]
    for face, lines in zip(wanted, faces, strict=True):
        reading = readings[face.reading]
        printed = numerals_on_face(lines, reading.scale.start_deg, reading.scale.end_deg, rules)
        if face.calibration is None:
            answers[face.reading] = printed_answer(reading, printed, rules)
        else:
            checked = checked_reading(reading, printed, face.calibration, rules)
            answers[face.reading] = checked.to_json()
    return answers
