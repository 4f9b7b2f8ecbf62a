"""Procedurally drawn analog gauges: photos with needle and dial masks and exact readings.

Each gauge is drawn square-on onto its own canvas (face, rim, ticks, numbers, coloured bands,
needle, hub, glass glare), then placed into the photo through a homography that tilts the dial
plane as a camera off its axis would see it. The same homography maps the outlines and the
points of truth, so masks, the dial's center and the needle's tip are exact in photo pixels.

Angles follow the reading convention of the served answer: clockwise from 12 o'clock, in
degrees, in the photo's pixels (y grows downwards).
"""

from __future__ import annotations

import colorsys
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from training import insulators
from training.coco import Annotation, Scene

__all__ = [
    "CATEGORIES",
    "FACE_STYLES",
    "HELDOUT_FACE_STYLES",
    "HELDOUT_NEEDLE_STYLES",
    "HELDOUT_RANGES",
    "KEYPOINT_NAMES",
    "NEEDLE_STYLES",
    "RANGES",
    "STANDARD_METER",
    "angle_clockwise_from_up",
    "paint_gauges",
    "render_scene",
]

# Index order is the pointer model's CLASS_NAMES.
CATEGORIES: tuple[str, ...] = ("pointer", "dial")
# Index order is the pointer model's KEYPOINT_NAMES; only dials carry them. The scale runs
# clockwise from its start to its end; scale_mid is the point at half the sweep's angle; center
# is the needle's pivot (under perspective not the center of the dial's ellipse).
KEYPOINT_NAMES: tuple[str, ...] = ("scale_start", "scale_mid", "scale_end", "center")

# Styles drawn for training; the held-out set draws the others, which training never sees.
FACE_STYLES = ("white", "cream", "black", "grey", "tinted", "dark_tinted")
HELDOUT_FACE_STYLES = ("yellow", "pale_blue")
NEEDLE_STYLES = ("taper", "lance", "line", "counterweight")
HELDOUT_NEEDLE_STYLES = ("arrow", "spade")

# The meter type of the demo's calibration (repository/pointer/meters.yaml); a share of the
# gauges are drawn as it, the rest as random types.
STANDARD_METER = {
    "start_deg": 225.0,
    "end_deg": 135.0,
    "sweep_deg": 270.0,
    "min_value": 0.0,
    "max_value": 1.6,
    "unit": "MPa",
}

# Printed ranges and units: the held-out meters are types training never draws (their ranges,
# units and numeral fonts), so a reading that works on them reads the face, not a memory of it.
RANGES: tuple[tuple[float, float, str], ...] = (
    (0.0, 1.0, "MPa"),
    (0.0, 2.5, "MPa"),
    (-0.1, 0.5, "MPa"),
    (0.0, 10.0, "bar"),
    (-1.0, 3.0, "bar"),
    (0.0, 100.0, "%"),
    (0.0, 250.0, "V"),
    (0.0, 600.0, "A"),
    (0.0, 40.0, "kV"),
    (0.0, 160.0, "kPa"),
    (-40.0, 40.0, "kPa"),
    (0.0, 300.0, "psi"),
    (50.0, 150.0, "%"),
)
HELDOUT_RANGES: tuple[tuple[float, float, str], ...] = (
    (-0.1, 0.9, "MPa"),
    (0.0, 16.0, "bar"),
    (-20.0, 120.0, "C"),
    (0.0, 60.0, "%"),
    (0.0, 100.0, "A"),
    (0.0, 1.2, "MW"),
    (45.0, 55.0, "Hz"),
)
_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf", None)
_HELDOUT_FONTS = ("DejaVuSerif.ttf", "STIXGeneral.ttf", "DejaVuSerif-Bold.ttf")
# Hues (degrees) of the held-out faces, which a tinted training face avoids.
_HELDOUT_HUES = ((38.0, 70.0), (185.0, 230.0))
_STANDARD_SHARE = 0.25
# Share of photos with insulator strings in them (unlabelled): the other detector's world.
_STRINGS_SHARE = 0.2
# Training photos only, so that the held-out sets stay as measured before: shares drawn on the
# insulator photos' grounds (skies with clouds, backdrops, textures) and with more look-alikes
# (lamps in bezels, knobs with an index line, labels, cables, steel), so that the model learns
# the gauge rather than the panel it hangs on (a disc with a bar on it is no gauge without a
# scale).
_OUTDOOR_SHARE = 0.3
_MORE_LOOKALIKES_SHARE = 0.5
_SUPERSAMPLE = 2


@dataclass
class _Gauge:
    """A gauge's design, in canvas units of its outer radius.

    ``fraction`` is the needle's share of the sweep's angle; ``curve`` the exponent of a
    non-linear scale (the value's share is ``fraction ** curve``; 1 is linear).
    """

    radius: float
    face: str
    needle: str
    start_deg: float
    sweep_deg: float
    min_value: float
    max_value: float
    unit: str
    fraction: float
    meter_type: str
    curve: float = 1.0
    font: str | None = None
    numerals: bool = True
    inner_scale: tuple[float, float, str] | None = None

    def value_at(self, fraction: float) -> float:
        """The value the scale shows at ``fraction`` of its sweep."""
        share = fraction**self.curve if fraction > 0 else 0.0
        return self.min_value + share * (self.max_value - self.min_value)

    def fraction_of_share(self, share: float) -> float:
        """Where on the sweep (a fraction of it) the scale shows ``share`` of its range."""
        return share ** (1.0 / self.curve) if share > 0 else 0.0


def angle_clockwise_from_up(dx: float, dy: float) -> float:
    """Direction of ``(dx, dy)`` in image pixels, clockwise from 12 o'clock, in ``[0, 360)``."""
    return math.degrees(math.atan2(dx, -dy)) % 360.0


def _unit_vector(angle_deg: float) -> np.ndarray:
    """Image-space direction (y down) of an angle clockwise from 12 o'clock."""
    a = math.radians(angle_deg)
    return np.array([math.sin(a), -math.cos(a)])


def _tinted(rng: np.random.Generator, dark: bool) -> tuple[tuple, tuple]:
    """A face of a random hue (away from the held-out faces' hues) and its ink."""
    while True:
        hue = rng.uniform(0, 360)
        if not any(lo <= hue <= hi for lo, hi in _HELDOUT_HUES):
            break
    saturation = rng.uniform(0.1, 0.6)
    value = rng.uniform(0.12, 0.35) if dark else rng.uniform(0.7, 0.97)
    face = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue / 360, saturation, value))
    return face, (235, 235, 235) if dark else (20, 20, 20)


def _face_colours(face: str, rng: np.random.Generator) -> tuple[tuple, tuple]:
    """(face colour, ink colour) for a face style."""
    if face in ("tinted", "dark_tinted"):
        return _tinted(rng, dark=face == "dark_tinted")
    jitter = rng.integers(-12, 13, size=3)

    def shade(rgb: tuple[int, int, int]) -> tuple[int, ...]:
        return tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(rgb, jitter, strict=True))

    faces = {
        "white": ((245, 245, 242), (20, 20, 20)),
        "cream": ((238, 228, 200), (40, 30, 20)),
        "black": ((22, 22, 26), (235, 235, 235)),
        "grey": ((170, 172, 170), (15, 15, 15)),
        "yellow": ((240, 210, 60), (20, 20, 20)),
        "pale_blue": ((190, 215, 240), (10, 20, 60)),
    }
    face_rgb, ink = faces[face]
    return shade(face_rgb), ink


def _sweep_and_start(rng: np.random.Generator) -> tuple[float, float]:
    """A scale's sweep (60-340 degrees) and start angle; the gap mostly at the bottom."""
    sweep = float(rng.choice([90.0, 180.0, 240.0, 270.0, 300.0, rng.uniform(60, 340)]))
    gap_center = 180.0
    roll = rng.random()
    if roll < 0.2:
        gap_center = float(rng.uniform(0, 360))
    elif roll < 0.35:
        gap_center = float(rng.choice([0.0, 90.0, 270.0]))
    start = (gap_center + rng.uniform(-15, 15) + (360.0 - sweep) / 2) % 360.0
    return sweep, float(start)


def _design(rng: np.random.Generator, radius: float, heldout: bool) -> _Gauge:
    faces = HELDOUT_FACE_STYLES if heldout else FACE_STYLES
    needles = HELDOUT_NEEDLE_STYLES if heldout else NEEDLE_STYLES
    # Held-out photos mix unseen styles with seen ones: a real new meter differs in some ways.
    if heldout and rng.random() < 0.4:
        faces = FACE_STYLES
    if heldout and rng.random() < 0.4:
        needles = NEEDLE_STYLES
    fraction = float(np.clip(rng.uniform(-0.05, 1.05), 0.0, 1.0))
    face, needle = str(rng.choice(faces)), str(rng.choice(needles))
    fonts = _HELDOUT_FONTS if heldout else _FONTS
    font = fonts[int(rng.integers(len(fonts)))]
    if rng.random() < _STANDARD_SHARE:
        meter = STANDARD_METER
        return _Gauge(
            radius=radius,
            face=face,
            needle=needle,
            start_deg=meter["start_deg"],
            sweep_deg=meter["sweep_deg"],
            min_value=meter["min_value"],
            max_value=meter["max_value"],
            unit=meter["unit"],
            fraction=fraction,
            meter_type="standard",
            font=font,
        )
    sweep, start = _sweep_and_start(rng)
    ranges = HELDOUT_RANGES if heldout else RANGES
    low, high, unit = ranges[int(rng.integers(len(ranges)))]
    curve = 1.0 if rng.random() < 0.75 else float(rng.choice([0.5, 0.7, 1.5, 2.0]))
    inner = None
    if rng.random() < 0.15:
        inner_ranges = RANGES if not heldout else HELDOUT_RANGES
        inner = inner_ranges[int(rng.integers(len(inner_ranges)))]
    return _Gauge(
        radius=radius,
        face=face,
        needle=needle,
        start_deg=start,
        sweep_deg=sweep,
        min_value=float(low),
        max_value=float(high),
        unit=unit,
        fraction=fraction,
        meter_type="heldout" if heldout else ("non-linear" if curve != 1.0 else "random"),
        curve=curve,
        font=font,
        numerals=rng.random() < 0.9,
        inner_scale=inner,
    )


def _font(name: str | None, size: int) -> ImageFont.ImageFont:
    """A TrueType font that ships with matplotlib (a pinned dependency), or PIL's own."""
    if name is None:
        return ImageFont.load_default(size)
    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), size)


def _label(value: float) -> str:
    """A numeral as a meter prints it."""
    text = f"{round(value, 6):g}"
    return "0" if text == "-0" else text


def _needle_polygon(
    style: str, center: np.ndarray, angle_deg: float, radius: float, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """The needle's outline (including its tail) and the tip's distance from the center."""
    along = _unit_vector(angle_deg)
    across = np.array([-along[1], along[0]])
    length = radius * rng.uniform(0.62, 0.86)
    tail = radius * rng.uniform(0.08, 0.3)
    base = radius * rng.uniform(0.05, 0.09)
    if style == "taper":
        profile = [(-tail, base * 0.7), (0, base), (length, 0.012 * radius)]
    elif style == "lance":
        profile = [(-tail, base * 0.5), (length * 0.55, base * 0.9), (length, 0.0)]
    elif style == "line":
        w = max(base * 0.45, 0.03 * radius)
        profile = [(-tail, w), (length * 0.97, w), (length, 0.0)]
    elif style == "counterweight":
        w = max(base * 0.4, 0.03 * radius)
        profile = [(-tail, base * 1.6), (-tail * 0.5, base * 1.6), (-tail * 0.4, w), (length, 0.0)]
    elif style == "arrow":
        w = max(base * 0.35, 0.03 * radius)
        profile = [(-tail, w), (length * 0.8, w), (length * 0.8, base * 1.4), (length, 0.0)]
    else:  # spade
        w = max(base * 0.4, 0.03 * radius)
        profile = [(-tail, w), (length * 0.7, w), (length * 0.82, base * 1.3), (length, 0.0)]
    upper = [center + along * d + across * h for d, h in profile]
    lower = [center + along * d - across * h for d, h in reversed(profile) if h > 0]
    return np.array(upper + lower), length


def _nice_step(span: float, majors: int) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) near ``span / majors``."""
    raw = abs(span) / majors
    power = 10 ** math.floor(math.log10(raw))
    return min((m * power for m in (1, 2, 2.5, 5, 10)), key=lambda step: abs(step - raw))


def _draw_scale(
    draw: ImageDraw.ImageDraw,
    gauge: _Gauge,
    center: np.ndarray,
    ring: float,
    low: float,
    high: float,
    ink: tuple,
    style: dict,
    rng: np.random.Generator,
) -> float:
    """Ticks (and numerals) of one scale whose outer tick ends lie on radius ``ring``; major
    ticks at round values. Returns the major tick's length."""
    major_len = ring * style["major"]
    step = _nice_step(high - low, int(rng.integers(4, 11)))
    minors = int(rng.choice([1, 2, 4, 5]))
    first = math.ceil(low / step - 1e-9) * step
    majors = [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]
    # The scale's ends are always marked, round or not.
    values = sorted({low, high, *majors})
    minor_values = [
        a + (b - a) * k / minors for a, b in itertools.pairwise(values) for k in range(1, minors)
    ]
    font = _font(gauge.font, max(8, int(ring * style["font"])))
    for value, major in [*((v, True) for v in values), *((v, False) for v in minor_values)]:
        fraction = gauge.fraction_of_share((value - low) / (high - low))
        u = _unit_vector(gauge.start_deg + fraction * gauge.sweep_deg)
        length = major_len if major else major_len * 0.5
        width = max(1, int(ring * (style["width"] if major else style["width"] * 0.5)))
        p0, p1 = center + u * ring, center + u * (ring - length)
        if style["dots"]:
            d = width * 1.3
            draw.ellipse([p0[0] - d, p0[1] - d, p0[0] + d, p0[1] + d], fill=(*ink, 255))
        else:
            draw.line([tuple(p0), tuple(p1)], fill=(*ink, 255), width=width)
        if major and gauge.numerals and (value in majors or len(majors) < 2):
            q = center + u * (ring - length - ring * style["font"] * 1.1)
            draw.text(tuple(q), _label(value), fill=(*ink, 255), font=font, anchor="mm")
    return major_len


def _draw_gauge(gauge: _Gauge, rng: np.random.Generator) -> tuple[Image.Image, dict]:
    """Draws a gauge square-on onto an RGBA canvas of side ``2 * radius`` (supersampled).

    Returns:
        The canvas and the design's geometry in canvas pixels: the needle outline, its tip, the
        center, the radius and the scale's keypoints (:data:`KEYPOINT_NAMES`).
    """
    s = _SUPERSAMPLE
    r = gauge.radius * s
    size = math.ceil(2 * r) + 2
    c = np.array([size / 2, size / 2])
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    face_rgb, ink = _face_colours(gauge.face, rng)
    # Flat drawings have no bevel, shadow or glare; outlined ones a contour around each part.
    shaded = rng.random() < 0.7
    outline = (0, 0, 0, 255) if rng.random() < 0.3 else None

    rim = r * rng.uniform(0.03, 0.14)
    rim_rgb = tuple(
        int(v)
        for v in rng.choice(
            [[40, 40, 40], [190, 190, 195], [120, 120, 125], [150, 110, 60], [20, 20, 22]]
        )
    )
    if rng.random() < 0.2:
        rim_rgb = tuple(int(v) for v in rng.integers(0, 256, size=3))
    draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=(*rim_rgb, 255), outline=outline)
    if shaded:
        bright = tuple(min(255, v + 45) for v in rim_rgb)
        draw.pieslice([c[0] - r, c[1] - r, c[0] + r, c[1] + r], 180, 360, fill=(*bright, 255))
    fr = r - rim
    draw.ellipse(
        [c[0] - fr, c[1] - fr, c[0] + fr, c[1] + fr], fill=(*face_rgb, 255), outline=outline
    )

    start, sweep = gauge.start_deg, gauge.sweep_deg
    style = {
        "major": rng.uniform(0.09, 0.16),
        "width": rng.uniform(0.015, 0.03),
        "font": rng.uniform(0.09, 0.16),
        "dots": gauge.face in HELDOUT_FACE_STYLES and rng.random() < 0.5,
    }
    ring = fr * rng.uniform(0.84, 0.95)
    if rng.random() < 0.5:
        band_r = ring * rng.uniform(0.78, 0.95)
        width = max(2, int(fr * rng.uniform(0.04, 0.08)))
        lo = rng.uniform(0.55, 0.8)
        # PIL measures arcs clockwise from 3 o'clock; ours are clockwise from 12.
        for (a, b), colour in [
            ((lo, 0.85), (230, 200, 30)),
            ((0.85, 1.0), (210, 40, 40)),
            ((0.0, lo), (60, 170, 70)),
        ]:
            if rng.random() < 0.75:
                draw.arc(
                    [c[0] - band_r, c[1] - band_r, c[0] + band_r, c[1] + band_r],
                    start + a * sweep - 90,
                    start + b * sweep - 90,
                    fill=(*colour, 255),
                    width=width,
                )
    if rng.random() < 0.5:
        draw.arc(
            [c[0] - ring, c[1] - ring, c[0] + ring, c[1] + ring],
            start - 90,
            start + sweep - 90,
            fill=(*ink, 255),
            width=max(1, int(fr * 0.012)),
        )
    major_len = _draw_scale(draw, gauge, c, ring, gauge.min_value, gauge.max_value, ink, style, rng)
    font = _font(gauge.font, max(8, int(fr * style["font"])))
    if gauge.inner_scale is not None:
        low, high, unit = gauge.inner_scale
        inner_ring = ring * 0.62
        inner_style = {**style, "font": style["font"] * 0.8}
        _draw_scale(draw, gauge, c, inner_ring, low, high, ink, inner_style, rng)
        draw.text((c[0], c[1] + fr * 0.22), unit, fill=(*ink, 255), font=font, anchor="mm")
    if rng.random() < 0.8:
        draw.text((c[0], c[1] + fr * 0.42), gauge.unit, fill=(*ink, 255), font=font, anchor="mm")
    if rng.random() < 0.3:
        draw.text(
            (c[0], c[1] - fr * 0.35),
            str(rng.choice(["CLASS 1.6", "SF6", "No. 4417", "OIL", "YN-100"])),
            fill=(*ink, 255),
            font=_font(gauge.font, max(8, int(fr * 0.08))),
            anchor="mm",
        )

    angle = start + gauge.fraction * sweep
    needle_rgb = tuple(
        int(v)
        for v in rng.choice(
            [[200, 20, 20], [15, 15, 15], [240, 240, 240], [240, 120, 20], [30, 60, 200]]
            if gauge.needle not in HELDOUT_NEEDLE_STYLES
            else [[20, 150, 40], [200, 20, 20], [15, 15, 15], [120, 40, 160]]
        )
    )
    if np.abs(np.subtract(needle_rgb, face_rgb)).sum() < 150:
        needle_rgb = (200, 20, 20) if sum(face_rgb) < 300 or sum(face_rgb) > 600 else ink
    needle, length = _needle_polygon(gauge.needle, c, angle, fr, rng)
    if shaded:
        # A soft shadow under the needle, as on real meters with a needle above the face.
        shadow = needle + np.array([fr * 0.02, fr * 0.03])
        draw.polygon([tuple(p) for p in shadow], fill=(0, 0, 0, 70))
    draw.polygon([tuple(p) for p in needle], fill=(*needle_rgb, 255), outline=outline)
    hub = fr * rng.uniform(0.05, 0.11)
    hub_rgb = tuple(int(v) for v in rng.choice([[15, 15, 15], [180, 180, 185], list(needle_rgb)]))
    draw.ellipse([c[0] - hub, c[1] - hub, c[0] + hub, c[1] + hub], fill=(*hub_rgb, 255))

    if shaded and rng.random() < 0.6:
        glare = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
        gd = ImageDraw.Draw(glare)
        gr = fr * rng.uniform(0.5, 0.9)
        off = _unit_vector(rng.uniform(0, 360)) * fr * rng.uniform(0.2, 0.5)
        gd.ellipse(
            [
                c[0] + off[0] - gr,
                c[1] + off[1] - gr * 0.6,
                c[0] + off[0] + gr,
                c[1] + off[1] + gr * 0.6,
            ],
            fill=(255, 255, 255, int(rng.uniform(20, 70))),
        )
        glare = glare.filter(ImageFilter.GaussianBlur(fr * 0.1))
        inside = Image.new("L", canvas.size, 0)
        ImageDraw.Draw(inside).ellipse([c[0] - fr, c[1] - fr, c[0] + fr, c[1] + fr], fill=255)
        glare.putalpha(Image.fromarray(np.minimum(np.asarray(glare)[..., 3], np.asarray(inside))))
        canvas = Image.alpha_composite(canvas, glare)
    tip = c + _unit_vector(angle) * length
    mark = ring - major_len / 2
    keypoints = np.array(
        [
            c + _unit_vector(start) * mark,
            c + _unit_vector(start + sweep / 2) * mark,
            c + _unit_vector(start + sweep) * mark,
            c,
        ]
    )
    return canvas, {
        "center": c,
        "tip": tip,
        "needle": needle,
        "radius": r,
        "keypoints": keypoints,
    }


def _tilt_homography(
    size: int,
    target_center: np.ndarray,
    target_radius: float,
    tilt_deg: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Homography from a square canvas to the photo: the dial plane seen off its axis.

    The canvas square is rotated in 3D by ``tilt_deg`` about a random axis in its
    plane, projected through a pinhole camera, and scaled so the dial's radius is about
    ``target_radius`` around ``target_center``.
    """
    half = size / 2
    corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]], np.float64)
    tilt = math.radians(tilt_deg)
    axis_angle = rng.uniform(0, math.pi)
    axis = np.array([math.cos(axis_angle), math.sin(axis_angle), 0.0])
    # Rodrigues' rotation of the plane z = 0 about the in-plane axis.
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + math.sin(tilt) * k + (1 - math.cos(tilt)) * k @ k
    focal = size * rng.uniform(1.5, 4.0)
    points3d = np.c_[corners, np.zeros(4)] @ rotation.T
    depth = focal + points3d[:, 2]
    projected = points3d[:, :2] * (focal / depth)[:, None]
    scale = target_radius / half
    dst = projected * scale + target_center
    src = corners + half
    return cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))


def _map_points(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(points.reshape(-1, 1, 2).astype(np.float64), homography)[
        :, 0, :
    ]


def _background(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, int]:
    """A panel, wall or cabinet, from plain to cluttered with things that are not gauges: knobs,
    lamps and bolts (round, without a needle), labels with numerals, pipes and cables, levers.

    Returns:
        The picture and how many such things it shows.
    """
    base = rng.integers(30, 230, size=3).astype(np.float32)
    image = np.broadcast_to(base, (height, width, 3)).copy()
    plain = rng.random() < 0.15
    if not plain:
        gy, gx = np.mgrid[0:height, 0:width].astype(np.float32)
        direction = rng.normal(size=2)
        ramp = (gx * direction[0] + gy * direction[1]) / max(height, width)
        image += ramp[..., None] * rng.uniform(-60, 60)
        small = rng.normal(0, rng.uniform(2, 14), size=(height // 8 + 1, width // 8 + 1, 3))
        image += cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        if rng.random() < 0.25:  # sheet metal, tiles, brick: a regular texture
            period = rng.uniform(6, 40)
            phase = gx * math.cos(rng.uniform(0, math.pi)) + gy * math.sin(rng.uniform(0, math.pi))
            image += (np.sin(phase * 2 * math.pi / period) > 0)[..., None] * rng.uniform(-25, 25)
    picture = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    lookalikes = 0 if plain else int(rng.integers(0, 14))
    for _ in range(lookalikes):
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        kind = rng.integers(5)
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        if kind == 0:  # panels, labels, cabinet doors
            w, h = rng.uniform(20, width / 2), rng.uniform(10, height / 2)
            draw.rectangle([x, y, x + w, y + h], fill=colour, outline=(0, 0, 0))
        elif kind == 1:  # pipes and cables
            x2, y2 = rng.uniform(0, width), rng.uniform(0, height)
            draw.line([x, y, x2, y2], fill=colour, width=int(rng.integers(2, 18)))
        elif kind == 2:  # knobs, lamps, bolts: round things without a needle
            r = rng.uniform(4, 60)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=(20, 20, 20))
            if rng.random() < 0.4:  # a lamp's lit ring or a knob's marks
                q = r * rng.uniform(0.4, 0.8)
                ring = tuple(min(255, v + 80) for v in colour)
                draw.ellipse([x - q, y - q, x + q, y + q], outline=ring, width=max(1, int(r / 8)))
        elif kind == 3:  # printed numerals and text on labels
            font = _font(
                str(rng.choice(["DejaVuSans.ttf", "DejaVuSansMono.ttf"])),
                9 + int(rng.integers(0, 20)),
            )
            text = str(
                rng.choice([rng.integers(0, 99999), f"{rng.uniform(0, 100):.1f}", "kV", "A", "MPa"])
            )
            draw.text((x, y), text, fill=colour, font=font)
        else:  # a switch's handle or a lever: a bar from a round base
            r = rng.uniform(6, 25)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
            u = _unit_vector(rng.uniform(0, 360)) * r * rng.uniform(1.5, 3)
            draw.line([x, y, x + u[0], y + u[1]], fill=(20, 20, 20), width=max(2, int(r / 3)))
    return np.asarray(picture).astype(np.float32), lookalikes


def _vary_ground(
    rng: np.random.Generator, image: np.ndarray, lookalikes: int
) -> tuple[np.ndarray, int, str]:
    """A training photo's ground, varied with ``rng`` (its own generator, so that photos it
    leaves alone stay as :func:`_background` drew them): sometimes an insulator photo's ground
    instead, sometimes more look-alikes on it.

    Returns:
        The picture, ``float32``, how many look-alikes it shows, and its ground: ``panel``, or
        the insulator photos' style.
    """
    height, width = image.shape[:2]
    picture = np.clip(image, 0, 255).astype(np.uint8)
    ground = "panel"
    if rng.random() < _OUTDOOR_SHARE:
        picture, style = insulators.paint_background(rng, height, width, heldout=False)
        if style["background"] != "plain":
            insulators.paint_clutter(rng, picture)
        lookalikes, ground = 0, style["style"]
    if rng.random() < _MORE_LOOKALIKES_SHARE:
        count = int(rng.integers(1, 9))
        knobs = int(rng.integers(0, count + 1))
        insulators.paint_lookalikes(rng, picture, count - knobs)
        for _ in range(knobs):
            _index_knob(rng, picture)
        lookalikes += count
    return picture.astype(np.float32), lookalikes, ground


def _index_knob(rng: np.random.Generator, picture: np.ndarray) -> None:
    """A knob's cap or a handwheel's hub seen face-on: a disc, light or any colour, with a dark
    index bar and no scale, in place on ``uint8`` RGB."""
    height, width = picture.shape[:2]
    r = rng.uniform(12, 0.2 * min(height, width))
    centre = np.array([rng.uniform(r, width - r), rng.uniform(r, height - r)])
    light = rng.random() < 0.6
    disc = rng.uniform(190, 255, 3) if light else rng.uniform(0, 255, 3)
    ink = rng.uniform(0, 50, 3)
    cv2.circle(picture, _pixel(centre), int(r), disc.tolist(), -1, cv2.LINE_AA)
    if rng.random() < 0.7:
        cv2.circle(picture, _pixel(centre), int(r), ink.tolist(), max(1, int(r / 25)), cv2.LINE_AA)
    direction = _unit_vector(rng.uniform(0, 360))
    inner, outer = rng.uniform(-0.3, 0.3) * r, rng.uniform(0.5, 0.9) * r
    bar = max(2, int(r * rng.uniform(0.05, 0.15)))
    cv2.line(
        picture,
        _pixel(centre + direction * inner),
        _pixel(centre + direction * outer),
        ink.tolist(),
        bar,
        cv2.LINE_AA,
    )


def _pixel(point: np.ndarray) -> tuple[int, int]:
    return round(float(point[0])), round(float(point[1]))


def _overlaps(box: tuple[float, float, float, float], center: np.ndarray, radius: float) -> bool:
    x, y, w, h = box
    return not (
        center[0] + radius < x
        or center[0] - radius > x + w
        or center[1] + radius < y
        or center[1] - radius > y + h
    )


def _place(
    rng: np.random.Generator,
    count: int,
    height: int,
    width: int,
    keep_clear: list[tuple[float, float, float, float]],
) -> list[tuple]:
    """Non-overlapping (center, radius) places for ``count`` gauges, clear of ``keep_clear``."""
    places: list[tuple[np.ndarray, float]] = []
    largest = min(height, width) * (0.45 if count == 1 else 0.3 if count == 2 else 0.22)
    for _ in range(60 * count):
        if len(places) == count:
            break
        radius = rng.uniform(max(40.0, largest * 0.3), max(41.0, largest))
        if 2 * radius >= min(height, width):
            continue
        center = np.array(
            [rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)]
        )
        if all(np.linalg.norm(center - c) > (radius + r) * 1.1 for c, r in places) and not any(
            _overlaps(box, center, radius) for box in keep_clear
        ):
            places.append((center, radius))
    return places


def paint_gauges(
    image: np.ndarray,
    rng: np.random.Generator,
    count: int,
    heldout: bool,
    keep_clear: list[tuple[float, float, float, float]] | None = None,
) -> tuple[list[Annotation], list[dict]]:
    """Paints up to ``count`` gauges onto ``image`` (``float32 [H, W, 3]``, RGB) in place.

    Args:
        image: the photo so far.
        rng: the scene's random generator.
        count: how many gauges to try to place (fewer where they do not fit).
        heldout: draw the meter types and styles training never sees, and stronger tilt.
        keep_clear: ``x, y, w, h`` boxes no gauge may cover (other objects of the scene).

    Returns:
        A ``pointer`` and a ``dial`` annotation per gauge (the dial with its
        :data:`KEYPOINT_NAMES`), and per gauge its truth: center, needle tip, needle angle
        (photo pixels, clockwise from 12), ``fraction`` (share of the sweep's angle), value,
        scale (start and end angle on the face, values, unit, knots of a non-linear scale as
        ``[fraction, value]``), keypoints, tilt.
    """
    height, width = image.shape[:2]
    annotations: list[Annotation] = []
    truths = []
    for target_center, target_radius in _place(rng, count, height, width, keep_clear or []):
        gauge = _design(rng, target_radius, heldout)
        canvas, geometry = _draw_gauge(gauge, rng)
        size = canvas.size[0]
        tilt = rng.uniform(0, 40.0 if heldout else 35.0)
        homography = _tilt_homography(size, target_center, target_radius, tilt, rng)
        # Warped into the gauge's own window of the photo only: the rest stays as it is.
        corners = _map_points(homography, np.array([[0, 0], [size, 0], [size, size], [0, size]]))
        x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int) - 1, 0)
        x1, y1 = np.minimum(np.ceil(corners.max(axis=0)).astype(int) + 1, [width, height])
        shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], dtype=np.float64)
        rgba = cv2.warpPerspective(
            np.asarray(canvas).astype(np.float32),
            shift @ homography,
            (int(x1 - x0), int(y1 - y0)),
            flags=cv2.INTER_AREA if size > 2 * target_radius else cv2.INTER_LINEAR,
        )
        alpha = rgba[..., 3:4] / 255.0
        window = image[y0:y1, x0:x1]
        window *= 1 - alpha
        window += rgba[..., :3] * alpha

        circle = np.array(
            [geometry["center"] + geometry["radius"] * _unit_vector(a) for a in range(0, 360, 6)]
        )
        dial = _map_points(homography, circle)
        needle = _map_points(homography, geometry["needle"])
        center, tip = _map_points(homography, np.array([geometry["center"], geometry["tip"]]))
        keypoints = _map_points(homography, geometry["keypoints"])
        for category, outline in (("pointer", needle), ("dial", dial)):
            clipped = np.clip(outline, 0, [width - 1, height - 1])
            x0, y0 = clipped.min(axis=0)
            x1, y1 = clipped.max(axis=0)
            annotations.append(
                Annotation(
                    category,
                    (x0, y0, x1 - x0, y1 - y0),
                    [clipped.reshape(-1).tolist()],
                    np.c_[keypoints, np.full(len(keypoints), 2.0)].reshape(-1).tolist()
                    if category == "dial"
                    else None,
                )
            )
        knots = []
        if gauge.curve != 1.0:
            # At every tenth of the range, as a user would write them off the printed numerals.
            fractions = [gauge.fraction_of_share(k / 10) for k in range(1, 10)]
            knots = [[round(f, 5), round(gauge.value_at(f), 5)] for f in fractions]
        truths.append(
            {
                "center": [round(float(v), 3) for v in center],
                "tip": [round(float(v), 3) for v in tip],
                "needle_angle_deg": round(angle_clockwise_from_up(*(tip - center)), 3),
                "fraction": round(gauge.fraction, 5),
                "value": round(gauge.value_at(gauge.fraction), 5),
                "meter_type": gauge.meter_type,
                "scale": {
                    "start_deg": gauge.start_deg,
                    "end_deg": (gauge.start_deg + gauge.sweep_deg) % 360.0,
                    "sweep_deg": gauge.sweep_deg,
                    "min_value": gauge.min_value,
                    "max_value": gauge.max_value,
                    "unit": gauge.unit,
                    "points": knots,
                },
                "keypoints": [[round(float(v), 3) for v in point] for point in keypoints],
                "tilt_deg": round(float(tilt), 2),
                "face": gauge.face,
                "needle": gauge.needle,
            }
        )
    return annotations, truths


def render_scene(seed: int, index: int, heldout: bool = False, vary_ground: bool = True) -> Scene:
    """Draws photo ``index`` of the set made with ``seed``: 0 to 3 gauges on a panel, wall or
    cabinet; some photos also show insulator strings, unlabelled here (the insulator model's
    objects, which the pointer model must not answer), and some show only them.

    Args:
        seed: the set's seed (training and held-out sets use different ones).
        index: the photo's number in the set.
        heldout: draw the meter types and styles training never sees, and stronger tilt.
        vary_ground: stand some training photos on the insulator photos' grounds and give some
            more look-alikes (held-out photos never); ``False`` draws every photo on a panel,
            as the committed demo pointer weights were trained.

    Returns:
        The photo, a ``pointer`` and a ``dial`` annotation per gauge (:func:`paint_gauges`), and
        ``truth["gauges"]`` (per gauge, as :func:`paint_gauges` returns it),
        ``truth["strings"]``, the number of insulator strings drawn,
        ``truth["lookalikes"]``, the number of things on the panel that are not gauges, and
        ``truth["ground"]``: ``panel``, or the insulator photos' style it was drawn on.
    """
    rng = np.random.default_rng([seed, index, int(heldout)])
    width = int(rng.integers(480, 641))
    height = int(rng.integers(360, 481))
    image, lookalikes = _background(rng, height, width)
    ground = "panel"
    if vary_ground and not heldout:
        image, lookalikes, ground = _vary_ground(
            np.random.default_rng([seed, index, 2]), image, lookalikes
        )
    count = int(rng.choice([0, 1, 2, 3], p=[0.12, 0.58, 0.2, 0.1]))
    keep_clear: list[tuple[float, float, float, float]] = []
    strings = 0
    if rng.random() < _STRINGS_SHARE:
        painted, _ = insulators.paint_strings(image, rng, heldout)
        keep_clear = [a.bbox for a in painted if a.category == "insulator"]
        strings = len(keep_clear)
        count = min(count, 1)
    annotations, gauges = paint_gauges(image, rng, count, heldout, keep_clear)

    # Light, blur, noise: the camera.
    image *= rng.uniform(0.6, 1.25)
    image += rng.uniform(-25, 25)
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.6))
    image += rng.normal(0, rng.uniform(0, 7), size=image.shape)
    return Scene(
        image=np.clip(image, 0, 255).astype(np.uint8),
        annotations=annotations,
        truth={"gauges": gauges, "strings": strings, "lookalikes": lookalikes, "ground": ground},
        jpeg_quality=int(rng.integers(55, 96)),
    )
