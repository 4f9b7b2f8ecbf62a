"""A second, independent renderer of meters and insulator strings, for measurement only.

    python -m bench.accuracy.foreign gauges --output build/data/foreign/gauges
    python -m bench.accuracy.foreign insulators --sheet build/foreign_insulators.jpg --count 12

The training generators (``training.gauges``, ``training.insulators``) and their held-out split
share one way of drawing, so accuracy on that split cannot show whether a detector learnt the
object or the renderer. This module draws the same objects with its own geometry and a look of its
own (flat vector shapes, line art and posters, drawn supersampled with PIL; meters as flat faces
put into the photo by a camera homography), and it must never feed training: nothing under
``training/`` imports it. Three kinds of photo:

- ``gauges``: 0-3 analog meters of many types (sweeps of 60-340 degrees from any start, ranges
  below, at or above zero, non-linear scales, tilts up to 35 degrees); ``pointer`` and ``dial``
  polygons, the dial's scale keypoints, and per gauge truth in ``truth["gauges"]``.
- ``insulators``: 1-4 strings of discs or sheds with end fittings, some with a missing or broken
  unit; ``insulator`` and ``defect`` boxes.
- ``neither``: walls, panels, sky, lamps, knobs, text and cables; no objects.

Angles follow the project's convention: degrees clockwise from 12 o'clock, image y downwards.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from training.coco import Annotation, Scene, contact_sheet, write_coco

__all__ = [
    "CATEGORIES",
    "DEFAULT_COUNT",
    "DEFAULT_SEED",
    "KEYPOINT_NAMES",
    "KINDS",
    "METER_TYPES",
    "DrawOptions",
    "MeterType",
    "main",
    "render_scene",
]

KINDS = ("gauges", "insulators", "neither")
# A set of "neither" carries every class so that either detector's answers can be scored on it.
CATEGORIES = {
    "gauges": ("pointer", "dial"),
    "insulators": ("insulator", "defect"),
    "neither": ("pointer", "dial", "insulator", "defect"),
}
# The dial keypoints, in the order the project's keypoint head uses.
KEYPOINT_NAMES = ("scale_start", "scale_mid", "scale_end", "center")
DEFAULT_COUNT = 100
# Unlike training.data's split seeds; any seed gives another independent set.
DEFAULT_SEED = 37

# Shapes are drawn this many times larger and averaged down: anti-aliasing, and labels exact to a
# third of a pixel.
_SUPERSAMPLE = 3
_PHOTO_WIDTHS = (480, 800)
_ASPECTS = (0.75, 0.5625, 0.667, 1.0, 1.25)
_KIND_SALT = {"gauges": 11, "insulators": 23, "neither": 37}

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class MeterType:
    """A kind of meter: its printed range and where its majors fall.

    Attributes:
        min_value: the value at the scale's start.
        max_value: the value at its end.
        unit: printed under the pivot.
        majors: the values with a long tick (the first and last are the range's ends).
        minors: short ticks between two majors.
        points: ``(share of the sweep angle, value)`` pairs, increasing, from ``(0, min)`` to
            ``(1, max)``, of a non-linear scale (piecewise linear between them); ``None`` for a
            linear one.
    """

    min_value: float
    max_value: float
    unit: str
    majors: tuple[float, ...]
    minors: int
    points: tuple[tuple[float, float], ...] | None = None

    def _pairs(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        points = self.points or ((0.0, self.min_value), (1.0, self.max_value))
        shares, values = zip(*points, strict=True)
        return shares, values

    def share_at(self, value: float) -> float:
        """Where ``value`` sits on the sweep: ``0`` at the scale's start, ``1`` at its end."""
        shares, values = self._pairs()
        return float(np.interp(value, values, shares))

    def value_at(self, share: float) -> float:
        """The value at ``share`` of the sweep."""
        shares, values = self._pairs()
        return float(np.interp(share, shares, values))


def _steps(low: float, high: float, step: float) -> tuple[float, ...]:
    count = round((high - low) / step)
    return tuple(round(low + i * step, 6) for i in range(count + 1))


def _sqrt_points(high: float, values: Sequence[float]) -> tuple[tuple[float, float], ...]:
    # A flow meter behind an orifice plate: the needle turns with the square root of the flow.
    return tuple((math.sqrt(v / high), v) for v in values)


METER_TYPES: dict[str, MeterType] = {
    "vacuum_pressure_mpa": MeterType(-0.1, 0.9, "MPa", _steps(-0.1, 0.9, 0.1), 5),
    "ammeter": MeterType(0, 100, "A", _steps(0, 100, 20), 4),
    "thermometer": MeterType(-20, 120, "°C", _steps(-20, 120, 20), 4),
    "hygrometer": MeterType(0, 60, "%", _steps(0, 60, 10), 5),
    "pressure_bar": MeterType(0, 16, "bar", _steps(0, 16, 2), 4),
    "voltmeter": MeterType(0, 500, "V", _steps(0, 500, 100), 5),
    "kilovolt": MeterType(10, 50, "kV", _steps(10, 50, 10), 5),
    "frequency": MeterType(45, 55, "Hz", _steps(45, 55, 1), 2),
    "vacuum_kpa": MeterType(-100, 0, "kPa", _steps(-100, 0, 20), 4),
    "oil_temperature": MeterType(0, 150, "°C", _steps(0, 150, 30), 3),
    "tachometer": MeterType(0, 8, "x1000 r/min", _steps(0, 8, 1), 5),
    "psi": MeterType(0, 300, "psi", _steps(0, 300, 50), 5),
    "current_loop": MeterType(4, 20, "mA", _steps(4, 20, 4), 4),
    "load_percent": MeterType(0, 120, "%", _steps(0, 120, 20), 2),
    "sf6_density": MeterType(
        -0.1,
        0.9,
        "MPa",
        (-0.1, 0.0, 0.2, 0.4, 0.6, 0.8, 0.9),
        2,
        points=((0.0, -0.1), (0.22, 0.0), (1.0, 0.9)),
    ),
    "flow_sqrt": MeterType(
        0,
        10,
        "m3/h",
        (0, 2, 4, 6, 8, 10),
        2,
        points=_sqrt_points(10, (0, 0.5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)),
    ),
    "vu_meter": MeterType(
        -20,
        3,
        "dB",
        (-20, -10, -7, -5, -3, -1, 0, 3),
        0,
        points=(
            (0.0, -20),
            (0.2, -10),
            (0.36, -7),
            (0.5, -5),
            (0.66, -3),
            (0.81, -1),
            (0.88, 0),
            (1.0, 3),
        ),
    ),
}


@dataclass(frozen=True)
class DrawOptions:
    """Parts of a scene to leave out, so that tests can find the pixels a part was drawn on.

    Leaving a part out changes only the pixels it covers: every random choice is made first.

    Attributes:
        needles: draw the meters' needles.
        scales: draw the meters' scales (ticks, arc, bands, numerals).
        numerals: draw the scales' numerals.
        repair_defects: draw every defective unit whole.
        skip_strings: indices of insulator strings (in annotation order) not to draw.
    """

    needles: bool = True
    scales: bool = True
    numerals: bool = True
    repair_defects: bool = False
    skip_strings: frozenset[int] = frozenset()


# ---------------------------------------------------------------------------------------------
# Look: palettes and drawing styles.

_PALETTES: tuple[tuple[Colour, ...], ...] = (
    ((233, 216, 166), (238, 155, 0), (202, 103, 2), (174, 32, 18), (0, 95, 115), (10, 147, 150)),
    ((255, 209, 220), (203, 170, 203), (255, 255, 216), (179, 229, 252), (200, 230, 201)),
    ((88, 99, 110), (150, 160, 165), (210, 205, 190), (240, 180, 0), (40, 90, 140), (200, 60, 40)),
    ((38, 70, 83), (42, 157, 143), (233, 196, 106), (244, 162, 97), (231, 111, 81)),
    ((107, 112, 92), (165, 165, 141), (203, 153, 126), (221, 190, 169), (255, 232, 214)),
    ((33, 37, 41), (73, 80, 87), (173, 181, 189), (222, 226, 230), (248, 249, 250)),
    ((61, 90, 128), (152, 193, 217), (224, 251, 252), (238, 108, 77), (41, 50, 65)),
)
_INKS: tuple[Colour, ...] = ((20, 20, 24), (40, 30, 25), (25, 35, 60), (10, 10, 10))
_PAPER: tuple[Colour, ...] = ((250, 248, 240), (255, 255, 255), (244, 240, 226), (236, 242, 248))


@dataclass(frozen=True)
class _Style:
    """How a photo draws: ``flat`` (fills and outlines), ``poster`` (fills only) or ``lineart``
    (ink on paper, pale fills)."""

    name: str
    palette: tuple[Colour, ...]
    ink: Colour
    paper: Colour
    line: float

    def colour(self, rng: np.random.Generator) -> Colour:
        """A fill colour of this style."""
        base = self.palette[int(rng.integers(len(self.palette)))]
        if self.name == "lineart":
            return _mix(base, self.paper, 0.75)
        return _jitter(base, rng, 10)

    @property
    def outline(self) -> Colour | None:
        """The outline colour, ``None`` for posters."""
        return None if self.name == "poster" else self.ink


def _pick_style(rng: np.random.Generator) -> _Style:
    name = ("flat", "flat", "poster", "lineart")[int(rng.integers(4))]
    palette = _PALETTES[int(rng.integers(len(_PALETTES)))]
    ink = _INKS[int(rng.integers(len(_INKS)))]
    paper = _PAPER[int(rng.integers(len(_PAPER)))]
    return _Style(name, palette, ink, paper, float(rng.uniform(1.0, 2.6)))


def _mix(a: Sequence[int], b: Sequence[int], share_b: float) -> Colour:
    return tuple(round(x * (1 - share_b) + y * share_b) for x, y in zip(a, b, strict=True))


def _jitter(colour: Sequence[int], rng: np.random.Generator, amount: int) -> Colour:
    shift = rng.integers(-amount, amount + 1, size=3)
    return tuple(int(np.clip(c + s, 0, 255)) for c, s in zip(colour, shift, strict=True))


def _luma(colour: Sequence[int]) -> float:
    return 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]


def _distance(a: Sequence[int], b: Sequence[int]) -> float:
    return float(np.linalg.norm(np.subtract(a, b, dtype=np.float64)))


def _contrasting(rng: np.random.Generator, options: Sequence[Colour], against: Colour) -> Colour:
    """A random one of ``options`` far enough from ``against`` to be told apart."""
    good = [c for c in options if _distance(c, against) > 120]
    pool = good or [max(options, key=lambda c: _distance(c, against))]
    return pool[int(rng.integers(len(pool)))]


# ---------------------------------------------------------------------------------------------
# Canvas: a photo drawn supersampled, in photo pixel coordinates.


class _Canvas:
    """A photo drawn ``_SUPERSAMPLE`` times larger; callers give continuous photo coordinates
    (pixel ``i`` covers ``[i, i + 1)``)."""

    def __init__(self, width: int, height: int, colour: Colour) -> None:
        self.width, self.height = width, height
        self.image = Image.new("RGB", (width * _SUPERSAMPLE, height * _SUPERSAMPLE), colour)
        self.draw = ImageDraw.Draw(self.image)

    @staticmethod
    def big(points: Any) -> list[tuple[float, float]]:
        """Photo coordinates as PIL's (pixel-index) coordinates on the big image."""
        xy = np.asarray(points, dtype=np.float64).reshape(-1, 2) * _SUPERSAMPLE - 0.5
        return [(float(x), float(y)) for x, y in xy]

    def polygon(
        self,
        points: Any,
        fill: Colour | None,
        outline: Colour | None = None,
        width: float = 0.0,
    ) -> None:
        """A filled polygon; PIL draws its outline inside it, so the shape keeps its extent."""
        stroke = round(width * _SUPERSAMPLE) if outline is not None else 0
        self.draw.polygon(
            self.big(points), fill=fill, outline=outline if stroke else None, width=max(stroke, 1)
        )

    def line(self, points: Any, colour: Colour, width: float) -> None:
        """A polyline ``width`` photo pixels wide."""
        self.draw.line(
            self.big(points), fill=colour, width=max(1, round(width * _SUPERSAMPLE)), joint="curve"
        )

    def circle(
        self,
        centre: Sequence[float],
        radius: float,
        fill: Colour | None,
        outline: Colour | None = None,
        width: float = 0.0,
    ) -> None:
        """A circle as a polygon (exact extent, like every other shape)."""
        self.polygon(_circle_points(centre, radius, 48), fill, outline, width)

    def text(
        self,
        centre: Sequence[float],
        text: str,
        height: float,
        colour: Colour,
        font: str,
    ) -> None:
        """Text centred at ``centre``, about ``height`` photo pixels tall."""
        (x, y) = self.big([centre])[0]
        self.draw.text(
            (x, y), text, font=_ttf(font, height * _SUPERSAMPLE), fill=colour, anchor="mm"
        )

    def composite(self, rgba: np.ndarray, x0: int, y0: int) -> None:
        """Lays a premultiplied RGBA patch of the big image at big pixel ``(x0, y0)``."""
        h, w = rgba.shape[:2]
        box = (x0, y0, x0 + w, y0 + h)
        under = np.asarray(self.image.crop(box), dtype=np.float32)
        alpha = rgba[..., 3:4].astype(np.float32) / 255.0
        over = rgba[..., :3].astype(np.float32) + (1.0 - alpha) * under
        self.image.paste(Image.fromarray(np.clip(over + 0.5, 0, 255).astype(np.uint8)), box[:2])

    def photo(self) -> np.ndarray:
        """The photo, ``uint8 [H, W, 3]``: each pixel the mean of its supersamples."""
        big = np.asarray(self.image)
        return cv2.resize(big, (self.width, self.height), interpolation=cv2.INTER_AREA)


def _circle_points(centre: Sequence[float], radius: float, count: int) -> np.ndarray:
    angles = np.linspace(0.0, 2 * np.pi, count, endpoint=False)
    return np.stack(
        [centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)], axis=1
    )


def _ellipse_points(centre: Sequence[float], radii: Sequence[float], count: int = 48) -> np.ndarray:
    angles = np.linspace(0.0, 2 * np.pi, count, endpoint=False)
    return np.stack(
        [centre[0] + radii[0] * np.cos(angles), centre[1] + radii[1] * np.sin(angles)], axis=1
    )


@cache
def _font_dir() -> Path:
    # Imported here, and only for the folder of the fonts it ships.
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


# TrueType faces shipped with matplotlib and Pillow; "hershey_*" are OpenCV's stroke fonts.
_TTF_FONTS = (
    "DejaVuSans-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSans-Oblique.ttf",
    "STIXGeneralBol.ttf",
    "aileron",
)
_HERSHEY_FONTS = {
    "hershey_simplex": cv2.FONT_HERSHEY_SIMPLEX,
    "hershey_duplex": cv2.FONT_HERSHEY_DUPLEX,
    "hershey_triplex": cv2.FONT_HERSHEY_TRIPLEX,
    "hershey_complex": cv2.FONT_HERSHEY_COMPLEX,
}


@cache
def _ttf(name: str, size: float) -> ImageFont.FreeTypeFont:
    pixels = max(6, round(size))
    if name == "aileron":
        return ImageFont.load_default(pixels)
    return ImageFont.truetype(str(_font_dir() / name), pixels)


def _apply(homography: np.ndarray, points: Any) -> np.ndarray:
    xy = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    out = np.c_[xy, np.ones(len(xy))] @ homography.T
    return out[:, :2] / out[:, 2:3]


def _bbox(points: np.ndarray) -> tuple[float, float, float, float]:
    low, high = points.min(axis=0), points.max(axis=0)
    return float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1])


def _overlaps(
    box: tuple[float, float, float, float],
    others: Sequence[tuple[float, float, float, float]],
    margin: float,
) -> bool:
    x, y, w, h = box
    return any(
        x < ox + ow + margin
        and ox < x + w + margin
        and y < oy + oh + margin
        and oy < y + h + margin
        for ox, oy, ow, oh in others
    )


def _inside(box: tuple[float, float, float, float], width: int, height: int, margin: float) -> bool:
    x, y, w, h = box
    return x >= margin and y >= margin and x + w <= width - margin and y + h <= height - margin


# ---------------------------------------------------------------------------------------------
# Backgrounds and clutter, shared by all kinds (never a meter or an insulator).

_WORDS = (
    "PUMP 2",
    "FEEDER 7",
    "DANGER",
    "MAIN",
    "BAY 3",
    "CB-12",
    "AUX",
    "NO ENTRY",
    "T1 110kV",
    "EXIT",
    "COOLING",
    "HV",
    "RESET",
    "LOCAL/REMOTE",
)


def _paint_background(
    canvas: _Canvas, rng: np.random.Generator, style: _Style, setting: str
) -> None:
    """Fills the photo with ``setting`` (``wall``, ``panel``, ``sky``, ``yard``)."""
    w, h = canvas.width, canvas.height
    base = style.paper if style.name == "lineart" else style.colour(rng)
    canvas.polygon([(0, 0), (w, 0), (w, h), (0, h)], base)
    if setting == "wall":
        _paint_wall(canvas, rng, style, base)
    elif setting == "panel":
        _paint_panel(canvas, rng, style, base)
    else:
        _paint_sky(canvas, rng, style, base, ground=setting == "yard")


def _paint_wall(canvas: _Canvas, rng: np.random.Generator, style: _Style, base: Colour) -> None:
    w, h = canvas.width, canvas.height
    pattern = int(rng.integers(3))
    grout = style.ink if style.name == "lineart" else _mix(base, (0, 0, 0), 0.35)
    if pattern == 0:
        brick_h = float(rng.uniform(18, 40))
        brick_w = brick_h * float(rng.uniform(2.0, 3.0))
        for row in range(int(h / brick_h) + 1):
            offset = (row % 2) * brick_w / 2
            for col in range(-1, int(w / brick_w) + 2):
                x0, y0 = col * brick_w + offset, row * brick_h
                shade = _mix(base, (0, 0, 0) if rng.random() < 0.5 else (255, 255, 255), 0.08)
                canvas.polygon(
                    [
                        (x0, y0),
                        (x0 + brick_w, y0),
                        (x0 + brick_w, y0 + brick_h),
                        (x0, y0 + brick_h),
                    ],
                    shade,
                    grout,
                    1.2,
                )
    elif pattern == 1:
        tile = float(rng.uniform(30, 80))
        for x in np.arange(0, w + tile, tile):
            canvas.line([(x, 0), (x, h)], grout, 1.0)
        for y in np.arange(0, h + tile, tile):
            canvas.line([(0, y), (w, y)], grout, 1.0)
    else:
        split = float(rng.uniform(0.55, 0.8)) * h
        canvas.polygon(
            [(0, split), (w, split), (w, h), (0, h)], style.colour(rng), style.outline, 1
        )
        for _ in range(int(rng.integers(1, 4))):
            x, y = float(rng.uniform(0, w)), float(rng.uniform(0, split))
            crack = [(x, y)]
            for _ in range(5):
                x += float(rng.uniform(-12, 12))
                y += float(rng.uniform(4, 16))
                crack.append((x, y))
            canvas.line(crack, grout, 1.0)
    _paint_clutter(canvas, rng, style, int(rng.integers(1, 5)))


def _paint_panel(canvas: _Canvas, rng: np.random.Generator, style: _Style, base: Colour) -> None:
    w, h = canvas.width, canvas.height
    doors = int(rng.integers(1, 4))
    for i in range(doors):
        x0, x1 = i * w / doors + 6, (i + 1) * w / doors - 6
        canvas.polygon(
            [(x0, 6), (x1, 6), (x1, h - 6), (x0, h - 6)], style.colour(rng), style.ink, 2
        )
        for sx, sy in ((x0 + 10, 16), (x1 - 10, 16), (x0 + 10, h - 16), (x1 - 10, h - 16)):
            canvas.circle((sx, sy), 3.5, (190, 190, 190), style.ink, 1)
    _paint_clutter(canvas, rng, style, int(rng.integers(3, 9)))


def _paint_sky(
    canvas: _Canvas, rng: np.random.Generator, style: _Style, base: Colour, ground: bool
) -> None:
    w, h = canvas.width, canvas.height
    if style.name != "lineart":
        # Flat bands instead of a smooth gradient: a poster's sky.
        top = _jitter(
            ((120, 170, 230), (90, 140, 200), (250, 190, 150))[int(rng.integers(3))], rng, 20
        )
        bands = int(rng.integers(3, 7))
        for i in range(bands):
            colour = _mix(top, (240, 245, 250), i / bands * 0.7)
            canvas.polygon([(0, i * h / bands), (w, i * h / bands), (w, h), (0, h)], colour)
    for _ in range(int(rng.integers(0, 4))):
        cx, cy, size = float(rng.uniform(0, w)), float(rng.uniform(0, h * 0.5)), rng.uniform(15, 40)
        puffs = [(cx + dx * size, cy + dy * size * 0.5) for dx, dy in rng.uniform(-1, 1, (5, 2))]
        for px, py in puffs:
            canvas.circle(
                (px, py), float(size * rng.uniform(0.5, 0.9)), (250, 250, 252), style.outline, 1
            )
    if ground:
        horizon = float(rng.uniform(0.6, 0.85)) * h
        canvas.polygon(
            [(0, horizon), (w, horizon), (w, h), (0, h)], style.colour(rng), style.outline, 1.5
        )
        for x in np.arange(float(rng.uniform(0, 30)), w, float(rng.uniform(18, 40))):
            canvas.line([(x, horizon - 22), (x, horizon + 4)], style.ink, 1.0)
        canvas.line([(0, horizon - 20), (w, horizon - 20)], style.ink, 1.0)
    for _ in range(int(rng.integers(0, 3))):
        _paint_cable(canvas, rng, style)
    if rng.random() < 0.5:
        _paint_lattice(canvas, rng, style)
    for _ in range(int(rng.integers(0, 3))):
        x, y = float(rng.uniform(0, w)), float(rng.uniform(0, h * 0.4))
        size = float(rng.uniform(4, 9))
        canvas.line([(x - size, y - size / 2), (x, y), (x + size, y - size / 2)], style.ink, 1.2)


def _paint_cable(canvas: _Canvas, rng: np.random.Generator, style: _Style) -> None:
    w, h = canvas.width, canvas.height
    y0, y1 = float(rng.uniform(0, h * 0.7)), float(rng.uniform(0, h * 0.7))
    sag = float(rng.uniform(5, 60))
    xs = np.linspace(-5, w + 5, 40)
    ys = y0 + (y1 - y0) * xs / w + sag * (1 - ((2 * xs / w) - 1) ** 2)
    canvas.line(np.c_[xs, ys], style.ink, float(rng.uniform(1.0, 3.0)))


def _paint_lattice(canvas: _Canvas, rng: np.random.Generator, style: _Style) -> None:
    """A steel lattice leg or beam: two chords with zig-zag braces."""
    w, h = canvas.width, canvas.height
    steel = (140, 145, 150) if style.name != "lineart" else style.ink
    if rng.random() < 0.5:
        x = float(rng.uniform(0.05, 0.95)) * w
        width = float(rng.uniform(20, 50))
        top_width = width * float(rng.uniform(0.4, 1.0))
        left = [(x - width / 2, h), (x - top_width / 2, 0)]
        right = [(x + width / 2, h), (x + top_width / 2, 0)]
    else:
        y = float(rng.uniform(0.05, 0.5)) * h
        width = float(rng.uniform(14, 30))
        left, right = [(0, y), (w, y)], [(0, y + width), (w, y + width)]
    canvas.line(left, steel, 3.0)
    canvas.line(right, steel, 3.0)
    a0, a1, b0, b1 = map(np.asarray, (left[0], left[1], right[0], right[1]))
    steps = int(rng.integers(6, 14))
    for i in range(steps):
        p = a0 + (a1 - a0) * i / steps
        q = b0 + (b1 - b0) * (i + 0.5) / steps
        r = a0 + (a1 - a0) * (i + 1) / steps
        canvas.line([tuple(p), tuple(q), tuple(r)], steel, 1.6)


def _paint_clutter(canvas: _Canvas, rng: np.random.Generator, style: _Style, count: int) -> None:
    """Look-alikes of the objects: lamps and knobs (round), text and displays, cables, boxes."""
    w, h = canvas.width, canvas.height
    for _ in range(count):
        what = int(rng.integers(7))
        x, y = float(rng.uniform(0.05, 0.95)) * w, float(rng.uniform(0.05, 0.95)) * h
        size = float(rng.uniform(8, 40))
        if what == 0:  # signal lamp: a coloured disc in a ring
            lamp = ((230, 40, 40), (40, 200, 60), (250, 200, 30), (250, 250, 250))[
                int(rng.integers(4))
            ]
            canvas.circle((x, y), size * 1.25, (70, 70, 75), style.outline, 1.5)
            canvas.circle((x, y), size, lamp, style.outline, 1)
            canvas.circle(
                (x - size * 0.35, y - size * 0.35), size * 0.25, _mix(lamp, (255, 255, 255), 0.6)
            )
        elif what == 1:  # knob with a marker line
            canvas.circle((x, y), size, style.colour(rng), style.outline, 1.5)
            angle = float(rng.uniform(0, 2 * np.pi))
            tip = (x + size * 0.85 * math.sin(angle), y - size * 0.85 * math.cos(angle))
            canvas.line([(x, y), tip], style.ink, max(1.5, size * 0.12))
        elif what == 2:  # a label with text
            word = _WORDS[int(rng.integers(len(_WORDS)))]
            height = float(rng.uniform(9, 22))
            width = height * 0.62 * len(word) + 8
            canvas.polygon(
                [(x, y), (x + width, y), (x + width, y + height * 1.5), (x, y + height * 1.5)],
                style.colour(rng),
                style.outline,
                1,
            )
            font = _TTF_FONTS[int(rng.integers(len(_TTF_FONTS)))]
            canvas.text((x + width / 2, y + height * 0.75), word, height, style.ink, font)
        elif what == 3:  # digital display
            digits = f"{rng.uniform(0, 999):.1f}"
            height = float(rng.uniform(12, 26))
            width = height * 0.7 * len(digits) + 10
            canvas.polygon(
                [(x, y), (x + width, y), (x + width, y + height * 1.6), (x, y + height * 1.6)],
                (20, 30, 25),
                style.outline,
                1.5,
            )
            canvas.text(
                (x + width / 2, y + height * 0.8),
                digits,
                height,
                (90, 255, 120),
                "DejaVuSansMono.ttf",
            )
        elif what == 4:  # a hanging cable
            xs = np.linspace(x - size * 4, x + size * 4, 20)
            ys = y + size * 1.5 * np.sin(np.linspace(0, np.pi * float(rng.uniform(1, 3)), 20))
            canvas.line(
                np.c_[xs, ys], style.colour(rng) if style.name != "lineart" else style.ink, 3.0
            )
        elif what == 5:  # a junction box
            canvas.polygon(
                [(x, y), (x + size * 2, y), (x + size * 2, y + size * 1.5), (x, y + size * 1.5)],
                style.colour(rng),
                style.outline,
                1.5,
            )
            canvas.line([(x + size, y + size * 1.5), (x + size, y + size * 4)], style.ink, 2.0)
        else:  # toggle switch
            canvas.polygon(
                [(x, y), (x + size, y), (x + size, y + size * 1.6), (x, y + size * 1.6)],
                (210, 210, 210),
                style.outline,
                1,
            )
            canvas.line(
                [(x + size / 2, y + size * 0.8), (x + size * 0.8, y + size * 0.1)], style.ink, 3.0
            )


# ---------------------------------------------------------------------------------------------
# Gauges.


@dataclass
class _Gauge:
    """Every choice of one meter, made before anything is drawn.

    Face coordinates: origin at the pivot, radius 1 at the bezel's outer edge, y down.
    """

    meter_type: str
    kind: MeterType
    start_deg: float
    sweep_deg: float
    share: float  # of the sweep angle, where the needle points
    homography: np.ndarray  # face coordinates -> photo pixels
    radius: float  # bezel radius in photo pixels (frontal)
    tilt_deg: float
    roll_deg: float
    texture_size: int
    bezel: Colour
    face: Colour
    ink: Colour
    needle: Colour
    cap: Colour
    outline: Colour | None
    bezel_inner: float
    ticks_inward: bool
    tick_outer: float
    tick_inner: float
    minor_len: float
    major_width: float
    minor_width: float
    arc_line: bool
    bands: list[tuple[float, float, Colour]]
    numerals: list[tuple[float, str]]  # (share of sweep, text)
    numeral_radius: float
    numeral_height: float
    numeral_font: str
    numerals_rotated: bool
    texts: list[tuple[str, float, float, str]]  # text, v position, height, font
    needle_shape: str
    needle_length: float
    needle_width: float
    needle_tail: float
    cap_radius: float
    flange: bool
    stem: bool
    screws: int
    shadow: tuple[float, float]

    @property
    def value(self) -> float:
        """The value the needle shows."""
        return self.kind.value_at(self.share)

    def face_angle(self, share: float) -> float:
        """The face angle (clockwise from 12) of a share of the sweep."""
        return (self.start_deg + share * self.sweep_deg) % 360.0

    @property
    def keypoint_radius(self) -> float:
        """Mid-length of the major ticks, where the scale's end marks are read."""
        return (self.tick_outer + self.tick_inner) / 2


def _unit_vector(angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([math.sin(a), -math.cos(a)])


def _camera(
    centre: Sequence[float],
    radius: float,
    tilt_deg: float,
    axis_deg: float,
    roll_deg: float,
    distance: float,
) -> np.ndarray:
    """Face coordinates -> photo pixels for a face of ``radius`` pixels tilted by ``tilt_deg``
    about an in-plane axis at ``axis_deg``, rolled by ``roll_deg``, seen from ``distance`` radii
    by a pinhole camera whose scale is 1 pixel per pixel at the face's depth."""
    t, a, r = math.radians(tilt_deg), math.radians(axis_deg), math.radians(roll_deg)
    kx, ky = math.cos(a), math.sin(a)
    skew = np.array([[0, 0, ky], [0, 0, -kx], [-ky, kx, 0]])
    tilt = np.eye(3) + math.sin(t) * skew + (1 - math.cos(t)) * skew @ skew
    roll = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    rotation = roll @ tilt
    depth = distance * radius
    intrinsics = np.array([[depth, 0, centre[0]], [0, depth, centre[1]], [0, 0, 1]])
    extrinsics = np.c_[radius * rotation[:, 0], radius * rotation[:, 1], [0, 0, depth]]
    homography = intrinsics @ extrinsics
    return homography / homography[2, 2]


def _plan_gauge(
    rng: np.random.Generator, style: _Style, centre: Sequence[float], radius: float
) -> _Gauge:
    name = list(METER_TYPES)[int(rng.integers(len(METER_TYPES)))]
    kind = METER_TYPES[name]
    sweep = float(rng.uniform(60, 340))
    layout = rng.random()
    if layout < 0.45:  # the gap centred at six o'clock
        start = 180.0 + (360.0 - sweep) / 2
    elif layout < 0.6:  # an arc centred at twelve
        start = -sweep / 2
    else:
        start = float(rng.uniform(0, 360))
    tilt = float(rng.uniform(0, 35)) if rng.random() < 0.75 else float(rng.uniform(0, 5))
    axis = float(rng.uniform(0, 180))
    roll = float(np.clip(rng.normal(0, 10), -30, 30))
    distance = float(rng.uniform(2.5, 8.0))
    homography = _camera(centre, radius, tilt, axis, roll, distance)
    magnification = distance / (distance - math.sin(math.radians(tilt)))
    texture = int(min(2600, math.ceil(2 * radius * _SUPERSAMPLE * magnification)))

    lineart = style.name == "lineart"
    faces = [(250, 250, 245), (245, 236, 200), (20, 22, 26), (225, 235, 245), (255, 250, 230)]
    face = style.paper if lineart else faces[int(rng.integers(len(faces)))]
    ink = (250, 250, 250) if _luma(face) < 100 else style.ink
    bezel = style.colour(rng)
    needles = [(220, 30, 30), (15, 15, 15), (250, 120, 0), (30, 60, 200), (250, 250, 250)]
    needle = _contrasting(rng, needles, face)
    cap = _contrasting(rng, [(15, 15, 15), (200, 200, 205), needle, bezel], face)

    bezel_inner = float(rng.uniform(0.8, 0.93))
    ticks_inward = rng.random() < 0.75
    major_len = float(rng.uniform(0.08, 0.16))
    if ticks_inward:
        tick_outer = bezel_inner * float(rng.uniform(0.86, 0.96))
        tick_inner = tick_outer - major_len
    else:
        tick_inner = bezel_inner * float(rng.uniform(0.5, 0.62))
        tick_outer = tick_inner + major_len
    # Ticks stay at least 1.6 photo pixels wide, so that a scale end is visible at every size.
    major_width = max(float(rng.uniform(0.012, 0.028)), 1.6 / radius)
    minor_width = max(major_width * float(rng.uniform(0.4, 0.7)), 1.0 / radius)

    shares_of_majors = [kind.share_at(v) for v in kind.majors]
    numerals: list[tuple[float, str]] = []
    numeral_height = float(rng.uniform(0.07, 0.12))
    if rng.random() < 0.8:
        decimals = max(_decimals(v) for v in kind.majors)
        every = 1
        spacing = min(np.diff(shares_of_majors)) * math.radians(sweep) * 0.6
        while spacing * every < numeral_height * 1.8 and every < 4:
            every += 1
        for i, (share, value) in enumerate(zip(shares_of_majors, kind.majors, strict=True)):
            if i % every == 0 or i == len(kind.majors) - 1:
                numerals.append((share, _format(value, decimals)))
    if ticks_inward:
        numeral_radius = tick_inner - numeral_height * 0.9
    else:
        numeral_radius = tick_outer + numeral_height * 0.85
    fonts = (*_TTF_FONTS, *_HERSHEY_FONTS)
    numeral_font = fonts[int(rng.integers(len(fonts)))]

    bands: list[tuple[float, float, Colour]] = []
    if rng.random() < 0.45:
        red, green = (225, 45, 35), (40, 170, 70)
        low = float(rng.uniform(0.0, 0.4))
        high = float(rng.uniform(0.7, 0.9))
        if rng.random() < 0.5:
            bands = [(high, 1.0, red)]
        else:
            bands = [(0.0, low, red), (low, high, green), (high, 1.0, red)]

    # Unit and brand stay inside the ring of numerals (or of ticks, when numerals are outside).
    inside_numerals = ticks_inward and numerals
    room = numeral_radius - numeral_height * 0.9 if inside_numerals else tick_inner - 0.03
    texts: list[tuple[str, float, float, str]] = []
    unit_font = fonts[int(rng.integers(len(fonts)))]
    unit = kind.unit if not unit_font.startswith("hershey") else kind.unit.replace("°", "")
    unit_height = min(float(rng.uniform(0.08, 0.13)), 1.3 * room / len(unit), room * 0.3)
    side = float(rng.choice([-1.0, 1.0]))
    unit_at = side * float(rng.uniform(0.35, 0.9)) * (room - unit_height * 0.6)
    texts.append((unit, unit_at, unit_height, unit_font))
    if rng.random() < 0.5:
        brand = ("ACME", "KL 1.6", "SF6", "IP65", "CL.2.5", "OMEGA", "TECHNO")[int(rng.integers(7))]
        brand_height = min(float(rng.uniform(0.05, 0.08)), room * 0.2)
        brand_at = -side * float(rng.uniform(0.35, 0.9)) * (room - brand_height * 0.6)
        texts.append((brand, brand_at, brand_height, unit_font))

    shapes = ("taper", "arrow", "sword", "counterweight", "thin")
    shape = shapes[int(rng.integers(len(shapes)))]
    reach_low = tick_inner + 0.3 * major_len if ticks_inward else tick_inner + 0.2 * major_len
    reach_high = min(tick_outer + 0.02, bezel_inner - 0.03)
    needle_length = float(rng.uniform(reach_low, reach_high))
    needle_width = float(rng.uniform(0.03, 0.07)) if shape != "thin" else 0.02
    needle_width = max(needle_width, 2.5 / radius)

    return _Gauge(
        meter_type=name,
        kind=kind,
        start_deg=start % 360.0,
        sweep_deg=sweep,
        share=float(rng.uniform(0.0, 1.0)),
        homography=homography,
        radius=radius,
        tilt_deg=tilt,
        roll_deg=roll,
        texture_size=texture,
        bezel=bezel,
        face=face,
        ink=ink,
        needle=needle,
        cap=cap,
        outline=style.outline,
        bezel_inner=bezel_inner,
        ticks_inward=ticks_inward,
        tick_outer=tick_outer,
        tick_inner=tick_inner,
        minor_len=major_len * float(rng.uniform(0.4, 0.6)),
        major_width=major_width,
        minor_width=minor_width,
        arc_line=rng.random() < 0.6,
        bands=bands,
        numerals=numerals,
        numeral_radius=numeral_radius,
        numeral_height=numeral_height,
        numeral_font=numeral_font,
        numerals_rotated=rng.random() < 0.3 and not numeral_font.startswith("hershey"),
        texts=texts,
        needle_shape=shape,
        needle_length=needle_length,
        needle_width=needle_width,
        needle_tail=float(rng.uniform(0.05, 0.25)),
        cap_radius=max(float(rng.uniform(0.05, 0.11)), needle_width * 0.8),
        flange=rng.random() < 0.3,
        stem=rng.random() < 0.4,
        screws=int(rng.choice([0, 0, 3, 4])),
        shadow=(float(rng.uniform(-0.08, 0.08)) * radius, float(rng.uniform(0.02, 0.1)) * radius),
    )


def _decimals(value: float) -> int:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return len(text.split(".")[1]) if "." in text else 0


def _format(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 else text


def _needle_polygons(gauge: _Gauge) -> tuple[list[np.ndarray], np.ndarray]:
    """The needle's outline(s) and its tip, in face coordinates."""
    along = _unit_vector(gauge.face_angle(gauge.share))
    across = np.array([-along[1], along[0]])
    length, width, tail = gauge.needle_length, gauge.needle_width, gauge.needle_tail

    def local(points: Sequence[tuple[float, float]]) -> np.ndarray:
        st = np.asarray(points, dtype=np.float64)
        return st[:, :1] * along + st[:, 1:] * across

    half = width / 2
    # Long tapers end in a blunt point at least 1.2 pixels wide: a hair-thin apex would be
    # invisible for its last pixels and the labelled tip would lie beyond the drawn needle.
    blunt = min(max(0.6 / gauge.radius, 0.12 * half), half)
    if gauge.needle_shape == "taper":
        outline = [
            (-tail, -half * 0.6),
            (0, -half),
            (length - blunt, -blunt),
            (length, 0),
            (length - blunt, blunt),
            (0, half),
            (-tail, half * 0.6),
        ]
    elif gauge.needle_shape == "arrow":
        head = min(0.18, length * 0.3)
        shaft = half * 0.45
        outline = [
            (-tail, -shaft),
            (length - head, -shaft),
            (length - head, -half * 1.4),
            (length, 0),
            (length - head, half * 1.4),
            (length - head, shaft),
            (-tail, shaft),
        ]
    elif gauge.needle_shape == "sword":
        point = min(0.12, length * 0.2)
        outline = [
            (-tail, -half),
            (length - point, -half),
            (length, 0),
            (length - point, half),
            (-tail, half),
        ]
    else:
        # Reaches back to the counterweight, whose disc overlaps the blade's root.
        outline = [
            (-tail, -half),
            (length - blunt, -blunt),
            (length, 0),
            (length - blunt, blunt),
            (-tail, half),
        ]
    polygons = [local(outline)]
    if gauge.needle_shape in ("counterweight", "thin"):
        weight = _circle_points((0.0, 0.0), max(width * 1.2, 0.04), 24)
        polygons.append(weight + local([(-tail, 0)])[0])
    return polygons, local([(length, 0)])[0]


def _paint_face(gauge: _Gauge, options: DrawOptions) -> np.ndarray:
    """The round face as a premultiplied RGBA texture covering face coordinates ``[-1, 1]``."""
    size = gauge.texture_size
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    half = size / 2

    def pix(points: Any) -> list[tuple[float, float]]:
        uv = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return [(float(x), float(y)) for x, y in (uv + 1.0) * half - 0.5]

    def fill(points: Any, colour: Colour, outline: Colour | None = None, width: float = 0) -> None:
        stroke = max(1, round(width * half)) if outline is not None else 1
        draw.polygon(
            pix(points),
            fill=(*colour, 255),
            outline=(*outline, 255) if outline else None,
            width=stroke,
        )

    def ring(r0: float, r1: float, a0: float, a1: float) -> np.ndarray:
        angles = np.linspace(a0, a1, max(8, int(abs(a1 - a0) / 2)))
        outer = np.array([r1 * _unit_vector(a) for a in angles])
        inner = np.array([r0 * _unit_vector(a) for a in angles[::-1]])
        return np.r_[outer, inner]

    def tick(angle: float, r0: float, r1: float, width: float) -> np.ndarray:
        d = _unit_vector(angle)
        n = np.array([-d[1], d[0]]) * width / 2
        return np.array([r0 * d - n, r1 * d - n, r1 * d + n, r0 * d + n])

    line = 0.025 if gauge.outline is not None else 0.0
    fill(_circle_points((0, 0), 1.0, 180), gauge.bezel, gauge.outline, line)
    fill(_circle_points((0, 0), gauge.bezel_inner, 180), gauge.face, gauge.outline, line * 0.6)
    for i in range(gauge.screws):
        spot = (1 + gauge.bezel_inner) / 2 * _unit_vector(45 + i * 360 / gauge.screws)
        fill(_circle_points(spot, 0.025, 16), _mix(gauge.bezel, (0, 0, 0), 0.4))
    # A flat highlight on the bezel: the cartoon's version of glass and chrome.
    fill(ring(gauge.bezel_inner + 0.02, 0.97, 290, 340), _mix(gauge.bezel, (255, 255, 255), 0.5))

    if options.scales:
        start, sweep = gauge.start_deg, gauge.sweep_deg
        band_r0 = gauge.tick_outer - gauge.minor_len if gauge.ticks_inward else gauge.tick_inner
        band_r1 = band_r0 + gauge.minor_len
        for s0, s1, colour in gauge.bands:
            fill(ring(band_r0, band_r1, start + s0 * sweep, start + s1 * sweep), colour)
        base = gauge.tick_outer if gauge.ticks_inward else gauge.tick_inner
        if gauge.arc_line:
            # Flush with the ticks' ends, so that the scale's end marks stay mid-length.
            w = gauge.minor_width if gauge.ticks_inward else -gauge.minor_width
            fill(ring(base - w, base, start, start + sweep), gauge.ink)
        minor_end = base - gauge.minor_len if gauge.ticks_inward else base + gauge.minor_len
        majors = [gauge.kind.share_at(v) for v in gauge.kind.majors]
        for a, b in itertools.pairwise(majors):
            for k in range(1, gauge.kind.minors):
                share = a + (b - a) * k / gauge.kind.minors
                fill(tick(gauge.face_angle(share), base, minor_end, gauge.minor_width), gauge.ink)
        for share in majors:
            angle = gauge.face_angle(share)
            fill(tick(angle, gauge.tick_inner, gauge.tick_outer, gauge.major_width), gauge.ink)
        for share, text in gauge.numerals if options.numerals else ():
            angle = gauge.face_angle(share)
            at = gauge.numeral_radius * _unit_vector(angle)
            _face_text(
                image,
                draw,
                at,
                text,
                gauge,
                gauge.numeral_height,
                gauge.numeral_font,
                angle if gauge.numerals_rotated else 0.0,
            )
    for text, v, height, font in gauge.texts:
        _face_text(image, draw, np.array([0.0, v]), text, gauge, height, font, 0.0)
    texture = np.array(image)
    for text, at, height, font in _pending_hershey(gauge, options):
        _hershey(texture, at, text, gauge.ink, height, font)
    return texture


def _pending_hershey(
    gauge: _Gauge, options: DrawOptions
) -> list[tuple[str, np.ndarray, float, str]]:
    """OpenCV's stroke fonts draw on the array, after PIL is done with the texture."""
    out = []
    if options.scales and options.numerals and gauge.numeral_font in _HERSHEY_FONTS:
        for share, text in gauge.numerals:
            at = gauge.numeral_radius * _unit_vector(gauge.face_angle(share))
            out.append((text, at, gauge.numeral_height, gauge.numeral_font))
    for text, v, height, font in gauge.texts:
        if font in _HERSHEY_FONTS:
            out.append((text, np.array([0.0, v]), height, font))
    return out


def _face_text(
    image: Image.Image,
    draw: ImageDraw.ImageDraw,
    at: np.ndarray,
    text: str,
    gauge: _Gauge,
    height: float,
    font: str,
    angle: float,
) -> None:
    if font in _HERSHEY_FONTS:
        return
    half = image.width / 2
    x, y = (at + 1.0) * half - 0.5
    face = _ttf(font, height * half)
    if not angle:
        draw.text((x, y), text, font=face, fill=(*gauge.ink, 255), anchor="mm")
        return
    left, top, right, bottom = draw.textbbox((0, 0), text, font=face, anchor="mm")
    side = int(2 * max(right - left, bottom - top)) + 4
    mask = Image.new("L", (side, side), 0)
    ImageDraw.Draw(mask).text((side / 2, side / 2), text, font=face, fill=255, anchor="mm")
    mask = mask.rotate(-angle, resample=Image.BILINEAR)
    solid = Image.new("RGBA", (side, side), (*gauge.ink, 255))
    image.paste(solid, (round(x - side / 2), round(y - side / 2)), mask)


def _hershey(
    texture: np.ndarray, at: np.ndarray, text: str, colour: Colour, height: float, font: str
) -> None:
    half = texture.shape[0] / 2
    pixels = height * half
    face = _HERSHEY_FONTS[font]
    thickness = max(1, round(pixels / 9))
    (w, h), _ = cv2.getTextSize(text, face, 1.0, thickness)
    scale = pixels / max(h, 1)
    (w, h), _ = cv2.getTextSize(text, face, scale, thickness)
    x, y = (at + 1.0) * half
    cv2.putText(
        texture,
        text,
        (round(x - w / 2), round(y + h / 2)),
        face,
        scale,
        (*colour, 255),
        thickness,
        cv2.LINE_AA,
    )


def _place_face(canvas: _Canvas, gauge: _Gauge, texture: np.ndarray) -> None:
    """Warps the face texture into the photo through the gauge's homography."""
    size = gauge.texture_size
    to_face = np.array([[2 / size, 0, -1], [0, 2 / size, -1], [0, 0, 1]])
    enlarge = np.diag([_SUPERSAMPLE, _SUPERSAMPLE, 1.0])
    # Continuous coordinates -> OpenCV's pixel-index ones on both sides.
    to_index = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
    from_index = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    warp = to_index @ enlarge @ gauge.homography @ to_face @ from_index
    outline = _apply(gauge.homography, _circle_points((0, 0), 1.0, 180)) * _SUPERSAMPLE
    x0, y0 = np.floor(outline.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(outline.max(axis=0)).astype(int) + 2
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, canvas.image.width), min(y1, canvas.image.height)
    shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]])
    patch = cv2.warpPerspective(
        texture,
        shift @ warp,
        (int(x1 - x0), int(y1 - y0)),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0, 0),
    )
    canvas.composite(patch, int(x0), int(y0))


def _gauge_footprint(gauge: _Gauge) -> np.ndarray:
    """Photo points of everything the gauge covers (face, flange, shadow)."""
    if gauge.flange:
        corner = 1.12
        outline = np.array(
            [(-corner, -corner), (corner, -corner), (corner, corner), (-corner, corner)]
        )
    else:
        outline = _circle_points((0, 0), 1.0, 72)
    photo = _apply(gauge.homography, outline)
    return np.r_[photo, photo + np.asarray(gauge.shadow)]


def _paint_gauge_body(canvas: _Canvas, gauge: _Gauge, style: _Style, backdrop: Colour) -> None:
    """What lies under the face: shadow, stem and mounting flange."""
    h = gauge.homography
    shadow_colour = _mix(backdrop, (0, 0, 0), 0.35)
    if gauge.flange:
        c = 1.12
        plate = _apply(h, [(-c, -c), (c, -c), (c, c), (-c, c)])
        canvas.polygon(plate + np.asarray(gauge.shadow), shadow_colour)
        canvas.polygon(plate, _mix(gauge.bezel, (0, 0, 0), 0.25), style.outline, style.line)
        for corner in ((-0.95, -0.95), (0.95, -0.95), (0.95, 0.95), (-0.95, 0.95)):
            canvas.polygon(
                _apply(h, _circle_points(corner, 0.05, 16)), (200, 200, 200), style.outline, 1
            )
    else:
        canvas.polygon(
            _apply(h, _circle_points((0, 0), 1.0, 72)) + np.asarray(gauge.shadow), shadow_colour
        )
    if gauge.stem:
        nut = _apply(h, [(-0.16, 0.9), (0.16, 0.9), (0.16, 1.25), (-0.16, 1.25)])
        bottom = (nut[2] + nut[3]) / 2
        pipe_w = max(4.0, 0.12 * gauge.radius)
        canvas.line([tuple(bottom), (bottom[0], canvas.height + 5)], (150, 150, 155), pipe_w)
        canvas.polygon(nut, (190, 170, 90), style.outline, style.line)


def _paint_needle(canvas: _Canvas, gauge: _Gauge) -> None:
    polygons, _ = _needle_polygons(gauge)
    for polygon in polygons:
        canvas.polygon(_apply(gauge.homography, polygon), gauge.needle)
    # A lighter stripe along the blade, kept well inside it.
    along = _unit_vector(gauge.face_angle(gauge.share))
    across = np.array([-along[1], along[0]])
    stripe_w = gauge.needle_width * 0.15
    length = gauge.needle_length * 0.6
    stripe = np.array(
        [
            s * along + t * across
            for s, t in (
                (0.0, -stripe_w),
                (length, -stripe_w * 0.3),
                (length, stripe_w * 0.3),
                (0.0, stripe_w),
            )
        ]
    )
    canvas.polygon(_apply(gauge.homography, stripe), _mix(gauge.needle, (255, 255, 255), 0.35))


def _paint_cap(canvas: _Canvas, gauge: _Gauge) -> None:
    rim = _apply(gauge.homography, _circle_points((0, 0), gauge.cap_radius, 36))
    canvas.polygon(rim, gauge.cap, gauge.outline, 1.0)
    dot = _apply(gauge.homography, _circle_points((0, 0), gauge.cap_radius * 0.35, 18))
    canvas.polygon(dot, _mix(gauge.cap, (255, 255, 255), 0.4))


def _gauge_truth(gauge: _Gauge) -> tuple[dict[str, Any], list[Annotation]]:
    h = gauge.homography
    centre = _apply(h, [(0.0, 0.0)])[0]
    polygons, tip_face = _needle_polygons(gauge)
    tip = _apply(h, [tip_face])[0]
    dx, dy = tip - centre
    needle_angle = math.degrees(math.atan2(dx, -dy)) % 360.0
    value = gauge.value
    kind = gauge.kind
    value_share = (value - kind.min_value) / (kind.max_value - kind.min_value)
    r = gauge.keypoint_radius
    marks = [
        r * _unit_vector(gauge.face_angle(0.0)),
        r * _unit_vector(gauge.face_angle(0.5)),
        r * _unit_vector(gauge.face_angle(1.0)),
        np.zeros(2),
    ]
    keypoints = _apply(h, marks)
    end = (gauge.start_deg + gauge.sweep_deg) % 360.0
    scale: dict[str, Any] = {
        "start_deg": round(gauge.start_deg, 4),
        "end_deg": round(end, 4),
        "sweep_deg": round(gauge.sweep_deg, 4),
        "min_value": kind.min_value,
        "max_value": kind.max_value,
        "unit": kind.unit,
    }
    if kind.points is not None:
        scale["points"] = [[round(s, 6), v] for s, v in kind.points]
    truth = {
        "center": [round(float(v), 3) for v in centre],
        "tip": [round(float(v), 3) for v in tip],
        "needle_angle_deg": round(needle_angle, 4),
        "fraction": round(gauge.share, 6),
        "value_share": round(value_share, 6),
        "value": round(value, 6),
        "meter_type": gauge.meter_type,
        "scale": scale,
        "keypoints": [[round(float(x), 3), round(float(y), 3)] for x, y in keypoints],
        "numerals": bool(gauge.numerals),
        "tilt_deg": round(gauge.tilt_deg, 3),
        "roll_deg": round(gauge.roll_deg, 3),
        "face_to_photo": [[float(v) for v in row] for row in h],
        "keypoint_radius": round(r, 6),
    }
    needle_photo = [_apply(h, p) for p in polygons]
    dial_photo = _apply(h, _circle_points((0, 0), 1.0, 96))
    flat_keypoints = [float(v) for x, y in keypoints for v in (x, y, 2.0)]
    annotations = [
        Annotation(
            "pointer",
            _bbox(np.concatenate(needle_photo)),
            [[round(float(v), 3) for v in p.ravel()] for p in needle_photo],
        ),
        Annotation(
            "dial",
            _bbox(dial_photo),
            [[round(float(v), 3) for v in dial_photo.ravel()]],
            keypoints=flat_keypoints,
        ),
    ]
    return truth, annotations


def _render_gauges(
    rng: np.random.Generator, width: int, height: int, style: _Style, options: DrawOptions
) -> Scene:
    count = int(rng.choice([0, 1, 1, 1, 2, 2, 3], p=[0.06, 0.2, 0.2, 0.14, 0.16, 0.12, 0.12]))
    setting = ("wall", "panel", "panel", "yard")[int(rng.integers(4))]
    background_seed = int(rng.integers(2**63))
    side = min(width, height)
    sizes = {1: (0.22, 0.42), 2: (0.15, 0.3), 3: (0.12, 0.24)}
    gauges: list[_Gauge] = []
    footprints: list[tuple[float, float, float, float]] = []
    for _ in range(count):
        low, high = sizes[count]
        for _attempt in range(40):
            radius = max(45.0, float(rng.uniform(low, high)) * side)
            centre = (
                float(rng.uniform(radius, width - radius)),
                float(rng.uniform(radius, height - radius)),
            )
            gauge = _plan_gauge(rng, style, centre, radius)
            box = _bbox(_gauge_footprint(gauge))
            if _inside(box, width, height, 3) and not _overlaps(box, footprints, 8):
                gauges.append(gauge)
                footprints.append(box)
                break
    canvas = _Canvas(width, height, style.paper)
    _paint_background(canvas, np.random.default_rng(background_seed), style, setting)
    backdrop = tuple(int(v) for v in np.asarray(canvas.image.resize((1, 1))).reshape(3))
    for gauge in gauges:
        _paint_gauge_body(canvas, gauge, style, backdrop)
    truths, annotations = [], []
    for gauge in gauges:
        _place_face(canvas, gauge, _paint_face(gauge, options))
        if options.needles:
            _paint_needle(canvas, gauge)
        _paint_cap(canvas, gauge)
        truth, labels = _gauge_truth(gauge)
        truths.append(truth)
        annotations += labels
    truth = {"gauges": truths, "strings": 0, "defects": 0, "style": style.name, "setting": setting}
    return Scene(canvas.photo(), annotations, truth)


# ---------------------------------------------------------------------------------------------
# Insulator strings.


@dataclass
class _String:
    """Every choice of one insulator string. Local coordinates: ``s`` along the axis from the
    top fitting, ``t`` across it, in photo pixels."""

    origin: np.ndarray
    axis_deg: float  # photo angle of the axis, counter-clockwise from +x with y down
    unit: str  # "disc", "longrod" or "post"
    count: int
    width: float
    pitch: float
    top_length: float
    bottom_length: float
    top_fitting: str
    bottom_fitting: str
    grading_ring: bool
    body: Colour
    metal: Colour
    outline: Colour | None
    line: float
    defects: dict[int, str] = field(default_factory=dict)
    # Per defect: the broken side (+1 or -1), the cut's depth and jag offsets.
    breaks: dict[int, tuple[float, float, tuple[float, ...]]] = field(default_factory=dict)

    @property
    def length(self) -> float:
        """From the top fitting's end to the bottom fitting's end."""
        return self.top_length + self.count * self.pitch + self.bottom_length

    def to_photo(self, local: np.ndarray) -> np.ndarray:
        """``(s, t)`` pairs -> photo pixels."""
        a = math.radians(self.axis_deg)
        along = np.array([math.cos(a), math.sin(a)])
        across = np.array([-math.sin(a), math.cos(a)])
        st = np.asarray(local, dtype=np.float64).reshape(-1, 2)
        return self.origin + st[:, :1] * along + st[:, 1:] * across


def _rect(s0: float, s1: float, half_width: float) -> np.ndarray:
    return np.array([(s0, -half_width), (s1, -half_width), (s1, half_width), (s0, half_width)])


def _unit_shape(string: _String, slot: int) -> list[tuple[np.ndarray, str]]:
    """The outline(s) of unit ``slot`` whole, with the colour role of each (``body``/``metal``)."""
    w, p = string.width, string.pitch
    s0 = string.top_length + slot * p
    if string.unit == "disc":
        cap_len = 0.3 * p
        dome_top = 0.35 * p
        base = s0 + cap_len + dome_top * 0.6
        angles = np.linspace(0, np.pi, 24)
        top = np.c_[base - dome_top * np.sin(angles), (w / 2) * np.cos(angles)]
        bottom = np.c_[base + 0.12 * p * np.sin(angles), -(w / 2) * np.cos(angles)]
        return [
            (_rect(s0, s0 + cap_len + 0.05 * p, 0.14 * w), "metal"),
            (np.r_[top, bottom], "body"),
        ]
    big = string.unit == "post" or slot % 2 == 0
    radius = w / 2 if big else w * 0.36
    centre = s0 + p / 2
    return [(_ellipse_points((centre, 0.0), (0.16 * p, radius), 32), "body")]


def _broken(points: np.ndarray, side: float, depth: float, jags: Sequence[float]) -> np.ndarray:
    """``points`` with the part beyond a jagged cut on one side (``t * side``) broken off."""
    extent = float(np.max(points[:, 1] * side))
    cut = extent * (1 - depth)
    out = points.copy()
    for i, (_, t) in enumerate(points):
        if t * side > cut:
            out[i, 1] = side * (cut + jags[i % len(jags)] * extent)
    return out


def _string_parts(string: _String, options: DrawOptions) -> list[tuple[np.ndarray, Colour]]:
    """The string's filled outlines in drawing order, in local coordinates."""
    w, p = string.width, string.pitch
    metal, body = string.metal, string.body
    parts: list[tuple[np.ndarray, Colour]] = []
    units_end = string.top_length + string.count * p
    # The pin/core through all units: what shows where a unit is missing.
    core = (
        0.05 * w if string.unit == "disc" else (0.11 * w if string.unit == "longrod" else 0.16 * w)
    )
    parts.append(
        (
            _rect(string.top_length * 0.5, units_end + string.bottom_length * 0.3, core),
            metal if string.unit == "disc" else _mix(body, (0, 0, 0), 0.2),
        )
    )
    top = string.top_length
    if string.top_fitting == "eye":
        parts.append((_ellipse_points((top * 0.22, 0.0), (top * 0.22, top * 0.22), 24), metal))
        parts.append((_rect(top * 0.35, top, 0.07 * w), metal))
    elif string.top_fitting == "clevis":
        parts.append((_rect(0.0, top * 0.55, 0.16 * w), metal))
        parts.append((_rect(top * 0.55, top, 0.08 * w), metal))
    else:  # flange of a post
        parts.append((_rect(0.0, top, 0.32 * w), metal))
    for slot in range(string.count):
        defect = None if options.repair_defects else string.defects.get(slot)
        if defect == "missing":
            continue
        for outline, role in _unit_shape(string, slot):
            if defect == "broken" and role == "body":
                side, depth, jags = string.breaks[slot]
                outline = _broken(outline, side, depth, jags)
            parts.append((outline, body if role == "body" else metal))
    b0, b1 = units_end, string.length
    if string.bottom_fitting == "clamp":
        parts.append((_rect(b0, b0 + (b1 - b0) * 0.5, 0.09 * w), metal))
        parts.append(
            (_ellipse_points((b0 + (b1 - b0) * 0.72, 0.0), ((b1 - b0) * 0.28, 0.3 * w)), metal)
        )
    elif string.bottom_fitting == "yoke":
        parts.append((_rect(b0, b0 + (b1 - b0) * 0.4, 0.08 * w), metal))
        parts.append(
            (np.array([(b0 + (b1 - b0) * 0.4, 0.0), (b1, -0.35 * w), (b1, 0.35 * w)]), metal)
        )
    else:
        parts.append((_rect(b0, b1, 0.32 * w), metal))
    if string.grading_ring:
        s = b0 + (b1 - b0) * 0.15
        parts.append((_ellipse_points((s, 0.0), (0.08 * w, 0.68 * w), 36), metal))
    return parts


def _plan_string(
    rng: np.random.Generator, style: _Style, layout: str, width: int, height: int
) -> _String:
    # Posts stand upright; strings hang, pull or lean.
    unit = ("disc", "disc", "longrod")[int(rng.integers(3))] if layout != "post" else "post"
    if layout == "suspension":
        axis = 90.0 + float(rng.uniform(-8, 8))
    elif layout == "tension":
        axis = float(rng.choice([0.0, 180.0])) + float(rng.uniform(-15, 15))
    elif layout == "post":
        axis = 90.0 + float(rng.uniform(-4, 4))
    else:
        axis = float(rng.uniform(0, 360))
    span = height if abs(math.sin(math.radians(axis))) > 0.7 else width
    if unit == "disc":
        count, ratio = int(rng.integers(3, 13)), float(rng.uniform(0.45, 0.65))
    elif unit == "longrod":
        count, ratio = int(rng.integers(8, 26)), float(rng.uniform(0.18, 0.3))
    else:
        count, ratio = int(rng.integers(5, 14)), float(rng.uniform(0.22, 0.34))
    target = float(rng.uniform(0.35, 0.85)) * span
    fittings = 1.6
    unit_width = target / (count * ratio + fittings * 0.5)
    unit_width = float(np.clip(unit_width, 16, 0.3 * min(width, height)))
    pitch = unit_width * ratio
    materials = {
        "glass": ((60, 160, 150), (90, 190, 120), (70, 140, 190)),
        "porcelain": ((150, 80, 50), (240, 240, 235), (110, 70, 60)),
        "polymer": ((140, 140, 145), (200, 60, 50), (120, 110, 100)),
    }
    material = list(materials)[int(rng.integers(3))] if unit == "disc" else "polymer"
    if unit == "post":
        material = ("porcelain", "polymer")[int(rng.integers(2))]
    options = materials[material]
    body = options[int(rng.integers(len(options)))]
    if style.name == "lineart":
        body = _mix(body, style.paper, 0.7)
    top_fitting = "flange" if unit == "post" else ("eye", "clevis")[int(rng.integers(2))]
    bottom_fitting = "flange" if unit == "post" else ("clamp", "yoke")[int(rng.integers(2))]
    string = _String(
        origin=np.zeros(2),
        axis_deg=axis,
        unit=unit,
        count=count,
        width=unit_width,
        pitch=pitch,
        top_length=unit_width * float(rng.uniform(0.3, 0.7)),
        bottom_length=unit_width * float(rng.uniform(0.4, 0.9)),
        top_fitting=top_fitting,
        bottom_fitting=bottom_fitting,
        grading_ring=unit != "post" and rng.random() < 0.25,
        body=body,
        metal=_jitter((150, 150, 158), rng, 25) if style.name != "lineart" else (225, 225, 225),
        outline=style.outline,
        line=min(style.line, unit_width * 0.05),
    )
    if rng.random() < 0.5:
        slots = rng.choice(count, size=min(count, int(rng.integers(1, 3))), replace=False)
        for slot in sorted(int(s) for s in slots):
            string.defects[slot] = ("missing", "broken")[int(rng.integers(2))]
            string.breaks[slot] = (
                float(rng.choice([-1.0, 1.0])),
                float(rng.uniform(0.35, 0.6)),
                tuple(float(v) for v in rng.uniform(-0.08, 0.08, 7)),
            )
    return string


def _string_box(string: _String) -> tuple[float, float, float, float]:
    """The whole string's box: a missing unit's place belongs to it, as its fittings do."""
    parts = _string_parts(string, DrawOptions(repair_defects=True))
    return _bbox(np.concatenate([string.to_photo(p) for p, _ in parts]))


def _paint_string(canvas: _Canvas, string: _String, options: DrawOptions) -> None:
    for outline, colour in _string_parts(string, options):
        canvas.polygon(string.to_photo(outline), colour, string.outline, string.line)
    if string.unit == "disc":
        # A rib line under each dome and a highlight on it: inside the disc, so no extent.
        for slot in range(string.count):
            if string.defects.get(slot) and not options.repair_defects:
                continue
            w, p = string.width, string.pitch
            base = string.top_length + slot * p + 0.3 * p + 0.21 * p
            rib = string.to_photo([(base, -0.3 * w), (base + 0.04 * p, 0.0), (base, 0.3 * w)])
            canvas.line(rib, _mix(string.body, (0, 0, 0), 0.4), max(1.0, 0.02 * w))
            glint = _ellipse_points((base - 0.12 * p, -0.22 * w), (0.05 * p, 0.08 * w), 16)
            canvas.polygon(string.to_photo(glint), _mix(string.body, (255, 255, 255), 0.5))


def _render_insulators(
    rng: np.random.Generator, width: int, height: int, style: _Style, options: DrawOptions
) -> Scene:
    layout = ("suspension", "suspension", "tension", "post", "free")[int(rng.integers(5))]
    count = int(rng.integers(1, 5))
    background_seed = int(rng.integers(2**63))
    strings: list[_String] = []
    boxes: list[tuple[float, float, float, float]] = []
    beam = float(rng.uniform(0.05, 0.18)) * height
    for _ in range(count):
        string = _plan_string(rng, style, layout, width, height)
        for _attempt in range(50):
            if layout == "suspension":
                string.origin = np.array([float(rng.uniform(0.05, 0.95)) * width, beam + 6])
            elif layout == "post":
                string.origin = np.array(
                    [
                        float(rng.uniform(0.05, 0.95)) * width,
                        float(rng.uniform(0.05, 0.35)) * height,
                    ]
                )
            else:
                string.origin = np.array(
                    [float(rng.uniform(0, width)), float(rng.uniform(0, height))]
                )
            box = _string_box(string)
            if _inside(box, width, height, 3) and not _overlaps(box, boxes, 10):
                strings.append(string)
                boxes.append(box)
                break
            string.width *= 0.93
            string.pitch *= 0.93
            string.top_length *= 0.93
            string.bottom_length *= 0.93
    setting = "sky" if rng.random() < 0.6 else "yard"
    canvas = _Canvas(width, height, style.paper)
    _paint_background(canvas, np.random.default_rng(background_seed), style, setting)
    steel = (120, 125, 130) if style.name != "lineart" else style.ink
    if layout == "suspension":
        canvas.polygon(
            [(0, beam - 14), (width, beam - 14), (width, beam + 2), (0, beam + 2)],
            steel,
            style.outline,
            1.5,
        )
    for string in strings:
        _paint_fixings(canvas, string, style, steel, layout, beam + 2)
    annotations: list[Annotation] = []
    kinds: list[str] = []
    for index, string in enumerate(strings):
        if index not in options.skip_strings:
            _paint_string(canvas, string, options)
        annotations.append(Annotation("insulator", _string_box(string)))
        for slot, defect in sorted(string.defects.items()):
            whole = np.concatenate([string.to_photo(p) for p, _ in _unit_shape(string, slot)])
            annotations.append(Annotation("defect", _bbox(whole)))
            kinds.append(defect)
    truth = {
        "gauges": [],
        "strings": len(strings),
        "defects": len(kinds),
        "defect_kinds": kinds,
        "units": [s.unit for s in strings],
        "layout": layout,
        "style": style.name,
        "setting": setting,
    }
    return Scene(canvas.photo(), annotations, truth)


def _paint_fixings(
    canvas: _Canvas, string: _String, style: _Style, steel: Colour, layout: str, beam: float
) -> None:
    """What the string hangs from and carries: beam hangers, poles, conductors, a post's foot.

    Each meets the string under one of its fittings' fills or through a thin metal hanger, never
    edge to edge with its outline: an ink line there would hide the string's end from a test
    that finds the string's pixels by leaving it out.
    """
    start = string.to_photo([(0.0, 0.0)])[0]
    inner_end = string.to_photo([(string.length - string.bottom_length * 0.6, 0.0)])[0]
    conductor = (60, 60, 65) if style.name != "lineart" else style.ink
    hanger = (175, 175, 182)
    thickness = max(2.0, string.width * 0.08)
    if layout == "post":
        foot = string.to_photo([(string.length - string.bottom_length * 0.5, 0.0)])[0]
        canvas.polygon(
            [
                (foot[0] - string.width * 0.5, foot[1]),
                (foot[0] + string.width * 0.5, foot[1]),
                (foot[0] + string.width * 0.3, canvas.height + 2),
                (foot[0] - string.width * 0.3, canvas.height + 2),
            ],
            steel if style.name != "lineart" else (200, 200, 200),
            style.outline,
            1.5,
        )
        bus = string.to_photo([(string.top_length * 0.5, 0.0)])[0]
        canvas.line(
            [(bus[0] - string.width * 2, bus[1]), (bus[0] + string.width * 2, bus[1])],
            conductor,
            min(thickness * 1.5, string.top_length * 0.4),
        )
        return
    if layout == "suspension":
        canvas.line([(start[0], beam), (start[0], start[1] + 2)], hanger, 1.5)
    elif layout == "tension":
        pole = max(6.0, string.width * 0.3)
        side = -1.0 if math.cos(math.radians(string.axis_deg)) > 0 else 1.0
        x = start[0] + side * (pole / 2 + 4)
        canvas.line([(x, -2), (x, canvas.height + 2)], steel, pole)
        canvas.line([(x - side * pole / 2, start[1]), (start[0] - side * 2, start[1])], hanger, 1.5)
    away = canvas.width if inner_end[0] < canvas.width / 2 else -canvas.width
    xs = np.linspace(inner_end[0], inner_end[0] + away, 20)
    ys = inner_end[1] + 30 * np.sin(np.linspace(0, np.pi / 2, 20))
    canvas.line(np.c_[xs, ys], conductor, thickness)


# ---------------------------------------------------------------------------------------------
# Scenes, the command line and the contact sheet.


def _render_neither(
    rng: np.random.Generator, width: int, height: int, style: _Style, options: DrawOptions
) -> Scene:
    setting = ("wall", "panel", "sky", "yard")[int(rng.integers(4))]
    background_seed = int(rng.integers(2**63))
    extra = int(rng.integers(2, 8))
    canvas = _Canvas(width, height, style.paper)
    background = np.random.default_rng(background_seed)
    _paint_background(canvas, background, style, setting)
    _paint_clutter(canvas, background, style, extra)
    truth = {"gauges": [], "strings": 0, "defects": 0, "style": style.name, "setting": setting}
    return Scene(canvas.photo(), [], truth)


_RENDERERS = {
    "gauges": _render_gauges,
    "insulators": _render_insulators,
    "neither": _render_neither,
}


def render_scene(kind: str, seed: int, index: int, options: DrawOptions | None = None) -> Scene:
    """Draws photo ``index`` of a ``kind`` set; the same arguments always give the same photo.

    Args:
        kind: one of :data:`KINDS`.
        seed: the set's seed.
        index: the photo's number in the set.
        options: parts to leave out (tests); ``None`` draws everything.

    Returns:
        The photo, its annotations (``pointer``/``dial`` polygons with the dial's
        :data:`KEYPOINT_NAMES`, or ``insulator``/``defect`` boxes) and its truth.

    Raises:
        ValueError: ``kind`` is not one of :data:`KINDS`.
    """
    if kind not in _RENDERERS:
        raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
    rng = np.random.default_rng([seed, _KIND_SALT[kind], index])
    width = int(rng.integers(_PHOTO_WIDTHS[0], _PHOTO_WIDTHS[1] + 1))
    height = round(width * _ASPECTS[int(rng.integers(len(_ASPECTS)))])
    style = _pick_style(rng)
    noise = float(rng.uniform(0, 4)) if rng.random() < 0.5 else 0.0
    noise_seed = int(rng.integers(2**63))
    quality = int(rng.integers(70, 96))
    scene = _RENDERERS[kind](rng, width, height, style, options or DrawOptions())
    if noise:
        grain = np.random.default_rng(noise_seed).normal(0, noise, scene.image.shape)
        scene.image = np.clip(scene.image + grain, 0, 255).astype(np.uint8)
    scene.jpeg_quality = quality
    return scene


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=KINDS, help="What the photos show.")
    parser.add_argument("-o", "--output", type=Path, help="COCO dataset folder to write.")
    parser.add_argument(
        "-n",
        "--count",
        type=int,
        default=DEFAULT_COUNT,
        help=f"Number of photos. Default is {DEFAULT_COUNT}.",
    )
    parser.add_argument(
        "-s",
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"Seed of the set. Default is {DEFAULT_SEED}.",
    )
    parser.add_argument(
        "--sheet", type=Path, help="Also (or only) write a contact sheet of the first 12 photos."
    )
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error(f"--count must be at least 1, got {args.count}")
    if args.seed < 0:
        parser.error(f"--seed must not be negative, got {args.seed}")
    if args.output is None and args.sheet is None:
        parser.error("give --output DIR, --sheet FILE.jpg or both")
    if args.sheet is not None:
        scenes = [render_scene(args.kind, args.seed, i) for i in range(min(args.count, 12))]
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        contact_sheet(scenes, CATEGORIES[args.kind], tile=400).save(args.sheet, quality=88)
    if args.output is not None:
        keypoints = KEYPOINT_NAMES if args.kind == "gauges" else ()
        write_coco(
            args.output,
            CATEGORIES[args.kind],
            args.count,
            partial(render_scene, args.kind, args.seed),
            description=f"foreign renderer (held-out only), {args.kind}, seed {args.seed}",
            keypoint_names=keypoints,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
