"""Procedurally drawn analog gauges: photos with needle and dial masks and exact readings.

Each gauge is drawn square-on onto its own canvas (face, rim, ticks, numbers, coloured bands,
needle, hub, glass glare), then placed into the photo through a homography that tilts the dial
plane as a camera off its axis would see it. The same homography maps the outlines and the
points of truth, so masks, the dial's center and the needle's tip are exact in photo pixels.

Angles follow the reading convention of the served answer: clockwise from 12 o'clock, in
degrees, in the photo's pixels (y grows downwards).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from training.coco import Annotation, Scene

__all__ = [
    "CATEGORIES",
    "FACE_STYLES",
    "HELDOUT_FACE_STYLES",
    "HELDOUT_NEEDLE_STYLES",
    "NEEDLE_STYLES",
    "STANDARD_METER",
    "angle_clockwise_from_up",
    "render_scene",
]

# Index order is the pointer model's CLASS_NAMES.
CATEGORIES: tuple[str, ...] = ("pointer", "dial")

# Styles drawn for training; the held-out set draws the others, which training never sees.
FACE_STYLES = ("white", "cream", "black", "grey")
HELDOUT_FACE_STYLES = ("yellow", "pale_blue")
NEEDLE_STYLES = ("taper", "lance", "line", "counterweight")
HELDOUT_NEEDLE_STYLES = ("arrow", "spade")

# The meter type most gauges are: what the demo's calibration describes. Others draw random
# scales, so the detector sees sweeps from 90 to 300 degrees.
STANDARD_METER = {
    "start_deg": 225.0,
    "end_deg": 135.0,
    "sweep_deg": 270.0,
    "min_value": 0.0,
    "max_value": 1.6,
    "unit": "MPa",
}

_SCALES = [(0.0, 1.0), (0.0, 1.6), (0.0, 2.5), (0.0, 10.0), (0.0, 100.0), (-0.1, 0.5), (0, 250)]
_UNITS = ["MPa", "bar", "kV", "A", "%", "kPa", "V"]
_SUPERSAMPLE = 2


@dataclass
class _Gauge:
    """A gauge's design, in canvas units of its outer radius."""

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


def angle_clockwise_from_up(dx: float, dy: float) -> float:
    """Direction of ``(dx, dy)`` in image pixels, clockwise from 12 o'clock, in ``[0, 360)``."""
    return math.degrees(math.atan2(dx, -dy)) % 360.0


def _unit_vector(angle_deg: float) -> np.ndarray:
    """Image-space direction (y down) of an angle clockwise from 12 o'clock."""
    a = math.radians(angle_deg)
    return np.array([math.sin(a), -math.cos(a)])


def _face_colours(face: str, rng: np.random.Generator) -> tuple[tuple, tuple]:
    """(face colour, ink colour) for a face style."""
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


def _design(rng: np.random.Generator, radius: float, heldout: bool) -> _Gauge:
    faces = HELDOUT_FACE_STYLES if heldout else FACE_STYLES
    needles = HELDOUT_NEEDLE_STYLES if heldout else NEEDLE_STYLES
    # Held-out photos mix unseen styles with seen ones: a real new meter differs in some ways.
    if heldout and rng.random() < 0.4:
        faces = FACE_STYLES
    if heldout and rng.random() < 0.4:
        needles = NEEDLE_STYLES
    fraction = float(np.clip(rng.uniform(-0.05, 1.05), 0.0, 1.0))
    if rng.random() < 0.45:
        meter = STANDARD_METER
        return _Gauge(
            radius=radius,
            face=str(rng.choice(faces)),
            needle=str(rng.choice(needles)),
            start_deg=meter["start_deg"],
            sweep_deg=meter["sweep_deg"],
            min_value=meter["min_value"],
            max_value=meter["max_value"],
            unit=meter["unit"],
            fraction=fraction,
            meter_type="standard",
        )
    sweep = float(rng.choice([90.0, 120.0, 180.0, 240.0, 270.0, 300.0, rng.uniform(90, 300)]))
    # The gap in the scale is usually at the bottom (short scales then sit at the top); some
    # short scales sit on one side.
    gap_center = 180.0
    if sweep <= 180 and rng.random() < 0.2:
        gap_center = float(rng.choice([90.0, 270.0]))
    start = (gap_center + rng.uniform(-15, 15) + (360.0 - sweep) / 2) % 360.0
    low, high = _SCALES[rng.integers(len(_SCALES))]
    return _Gauge(
        radius=radius,
        face=str(rng.choice(faces)),
        needle=str(rng.choice(needles)),
        start_deg=float(start),
        sweep_deg=sweep,
        min_value=float(low),
        max_value=float(high),
        unit=str(rng.choice(_UNITS)),
        fraction=fraction,
        meter_type="random",
    )


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


def _draw_gauge(gauge: _Gauge, rng: np.random.Generator) -> tuple[Image.Image, dict]:
    """Draws a gauge square-on onto an RGBA canvas of side ``2 * radius`` (supersampled).

    Returns:
        The canvas and the design's geometry in canvas pixels: the needle outline, its tip, the
        center.
    """
    s = _SUPERSAMPLE
    r = gauge.radius * s
    size = math.ceil(2 * r) + 2
    c = np.array([size / 2, size / 2])
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    face_rgb, ink = _face_colours(gauge.face, rng)

    rim = r * rng.uniform(0.04, 0.14)
    rim_rgb = tuple(
        int(v)
        for v in rng.choice(
            [[40, 40, 40], [190, 190, 195], [120, 120, 125], [150, 110, 60], [20, 20, 22]]
        )
    )
    draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=(*rim_rgb, 255))
    # A lit bevel: the rim's upper half a little brighter.
    bright = tuple(min(255, v + 45) for v in rim_rgb)
    draw.pieslice([c[0] - r, c[1] - r, c[0] + r, c[1] + r], 180, 360, fill=(*bright, 255))
    fr = r - rim
    draw.ellipse([c[0] - fr, c[1] - fr, c[0] + fr, c[1] + fr], fill=(*face_rgb, 255))

    start, sweep = gauge.start_deg, gauge.sweep_deg
    # PIL measures arcs clockwise from 3 o'clock; ours are clockwise from 12.
    if rng.random() < 0.5:
        band_r = fr * rng.uniform(0.72, 0.86)
        width = max(2, int(fr * rng.uniform(0.04, 0.08)))
        lo = rng.uniform(0.55, 0.8)
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

    majors = int(rng.integers(4, 11))
    minors = int(rng.choice([1, 2, 4, 5]))
    tick_out = fr * rng.uniform(0.86, 0.95)
    dots = gauge.face in HELDOUT_FACE_STYLES and rng.random() < 0.5
    font = ImageFont.load_default(max(8, int(fr * rng.uniform(0.11, 0.17))))
    low, high = gauge.min_value, gauge.max_value
    for i in range(majors * minors + 1):
        t = i / (majors * minors)
        u = _unit_vector(start + t * sweep)
        major = i % minors == 0
        length = fr * (0.14 if major else 0.07)
        width = max(1, int(fr * (0.025 if major else 0.012)))
        p0, p1 = c + u * tick_out, c + u * (tick_out - length)
        if dots:
            d = width * 1.3
            draw.ellipse([p0[0] - d, p0[1] - d, p0[0] + d, p0[1] + d], fill=(*ink, 255))
        else:
            draw.line([tuple(p0), tuple(p1)], fill=(*ink, 255), width=width)
        if major:
            value = low + t * (high - low)
            text = f"{value:g}" if abs(value) >= 10 or value == 0 else f"{value:.1f}"
            q = c + u * (tick_out - length - fr * 0.14)
            draw.text(tuple(q), text, fill=(*ink, 255), font=font, anchor="mm")
    if rng.random() < 0.7:
        draw.text((c[0], c[1] + fr * 0.42), gauge.unit, fill=(*ink, 255), font=font, anchor="mm")

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
    outline, length = _needle_polygon(gauge.needle, c, angle, fr, rng)
    # A soft shadow under the needle, as on real meters with a needle above the face.
    shadow = outline + np.array([fr * 0.02, fr * 0.03])
    draw.polygon([tuple(p) for p in shadow], fill=(0, 0, 0, 70))
    draw.polygon([tuple(p) for p in outline], fill=(*needle_rgb, 255))
    hub = fr * rng.uniform(0.05, 0.11)
    hub_rgb = tuple(int(v) for v in rng.choice([[15, 15, 15], [180, 180, 185], list(needle_rgb)]))
    draw.ellipse([c[0] - hub, c[1] - hub, c[0] + hub, c[1] + hub], fill=(*hub_rgb, 255))

    if rng.random() < 0.6:
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
    return canvas, {"center": c, "tip": tip, "needle": outline, "radius": r}


def _tilt_homography(
    size: int,
    target_center: np.ndarray,
    target_radius: float,
    max_tilt_deg: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Homography from a square canvas to the photo: the dial plane seen off its axis.

    The canvas square is rotated in 3D by up to ``max_tilt_deg`` about a random axis in its
    plane, projected through a pinhole camera, and scaled so the dial's radius is about
    ``target_radius`` around ``target_center``.
    """
    half = size / 2
    corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]], np.float64)
    tilt = math.radians(rng.uniform(0, max_tilt_deg))
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


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A panel, wall or cabinet with clutter that is not a gauge (some of it round)."""
    base = rng.integers(30, 230, size=3).astype(np.float32)
    gy, gx = np.mgrid[0:height, 0:width].astype(np.float32)
    direction = rng.normal(size=2)
    ramp = (gx * direction[0] + gy * direction[1]) / max(height, width)
    image = base[None, None, :] + ramp[..., None] * rng.uniform(-60, 60)
    small = rng.normal(0, rng.uniform(2, 14), size=(height // 8 + 1, width // 8 + 1, 3))
    image += cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    picture = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for _ in range(int(rng.integers(0, 9))):
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        kind = rng.integers(4)
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        if kind == 0:  # panels, labels, cabinet doors
            w, h = rng.uniform(20, width / 2), rng.uniform(10, height / 2)
            draw.rectangle([x, y, x + w, y + h], fill=colour, outline=(0, 0, 0))
        elif kind == 1:  # pipes and cables
            x2, y2 = rng.uniform(0, width), rng.uniform(0, height)
            draw.line([x, y, x2, y2], fill=colour, width=int(rng.integers(2, 18)))
        elif kind == 2:  # knobs, lamps, bolts: round things without a needle
            r = rng.uniform(4, 40)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=(20, 20, 20))
        else:  # text on labels
            font = ImageFont.load_default(int(rng.integers(9, 22)))
            draw.text((x, y), str(rng.integers(0, 99999)), fill=colour, font=font)
    return np.asarray(picture).astype(np.float32)


def _place(rng: np.random.Generator, count: int, height: int, width: int) -> list[tuple]:
    """Non-overlapping (center, radius) places for ``count`` gauges."""
    places: list[tuple[np.ndarray, float]] = []
    largest = min(height, width) * (0.42 if count == 1 else 0.3 if count == 2 else 0.22)
    for _ in range(60 * count):
        if len(places) == count:
            break
        radius = rng.uniform(max(46.0, largest * 0.35), largest)
        center = np.array(
            [rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)]
        )
        if all(np.linalg.norm(center - c) > (radius + r) * 1.1 for c, r in places):
            places.append((center, radius))
    return places


def render_scene(seed: int, index: int, heldout: bool = False) -> Scene:
    """Draws photo ``index`` of the set made with ``seed``: 0 to 3 gauges on a cluttered panel.

    Args:
        seed: the set's seed (training and held-out sets use different ones).
        index: the photo's number in the set.
        heldout: draw the styles training never sees, and stronger tilt.

    Returns:
        The photo, a ``pointer`` and a ``dial`` mask per gauge, and ``truth["gauges"]``: per
        gauge its center, needle tip, needle angle (photo pixels, clockwise from 12), the
        fraction of the scale, the value, and its scale (start and end angle as drawn on the
        face, values, unit).
    """
    rng = np.random.default_rng([seed, index, int(heldout)])
    width = int(rng.integers(480, 641))
    height = int(rng.integers(360, 481))
    image = _background(rng, height, width)
    count = int(rng.choice([0, 1, 2, 3], p=[0.1, 0.6, 0.2, 0.1]))
    annotations: list[Annotation] = []
    gauges = []
    for target_center, target_radius in _place(rng, count, height, width):
        gauge = _design(rng, target_radius, heldout)
        canvas, geometry = _draw_gauge(gauge, rng)
        size = canvas.size[0]
        homography = _tilt_homography(
            size, target_center, target_radius, 40.0 if heldout else 35.0, rng
        )
        rgba = cv2.warpPerspective(
            np.asarray(canvas).astype(np.float32),
            homography,
            (width, height),
            flags=cv2.INTER_AREA if size > 2 * target_radius else cv2.INTER_LINEAR,
        )
        alpha = rgba[..., 3:4] / 255.0
        image = image * (1 - alpha) + rgba[..., :3] * alpha

        circle = np.array(
            [geometry["center"] + geometry["radius"] * _unit_vector(a) for a in range(0, 360, 6)]
        )
        dial = _map_points(homography, circle)
        needle = _map_points(homography, geometry["needle"])
        center, tip = _map_points(homography, np.array([geometry["center"], geometry["tip"]]))
        for category, outline in (("pointer", needle), ("dial", dial)):
            clipped = np.clip(outline, 0, [width - 1, height - 1])
            x0, y0 = clipped.min(axis=0)
            x1, y1 = clipped.max(axis=0)
            annotations.append(
                Annotation(category, (x0, y0, x1 - x0, y1 - y0), [clipped.reshape(-1).tolist()])
            )
        value = gauge.min_value + gauge.fraction * (gauge.max_value - gauge.min_value)
        gauges.append(
            {
                "center": [round(float(v), 3) for v in center],
                "tip": [round(float(v), 3) for v in tip],
                "needle_angle_deg": round(angle_clockwise_from_up(*(tip - center)), 3),
                "fraction": round(gauge.fraction, 5),
                "value": round(value, 5),
                "meter_type": gauge.meter_type,
                "scale": {
                    "start_deg": gauge.start_deg,
                    "end_deg": (gauge.start_deg + gauge.sweep_deg) % 360.0,
                    "sweep_deg": gauge.sweep_deg,
                    "min_value": gauge.min_value,
                    "max_value": gauge.max_value,
                    "unit": gauge.unit,
                },
                "face": gauge.face,
                "needle": gauge.needle,
            }
        )

    # Light, blur, noise: the camera.
    image *= rng.uniform(0.6, 1.25)
    image += rng.uniform(-25, 25)
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.6))
    image += rng.normal(0, rng.uniform(0, 7), size=image.shape)
    return Scene(
        image=np.clip(image, 0, 255).astype(np.uint8),
        annotations=annotations,
        truth={"gauges": gauges},
        jpeg_quality=int(rng.integers(55, 96)),
    )
