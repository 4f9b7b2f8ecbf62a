"""Procedurally drawn photos of power-line insulator strings, with missing and broken discs.

A scene is a sky, a backdrop (steel lattice, ground, ...), clutter that is not an insulator
(conductors, poles, marker balls, dampers, signs, birds), then 0-4 insulator strings, then a
photometric pass (exposure, colour cast, blur, sensor noise). Everything is drawn with OpenCV's
anti-aliased primitives at sub-pixel precision, straight into the photo, so it is cheap.

A string is built along an axis ``u`` (from its tower end to its conductor end) with the normal
``n``: end fittings at both ends, a metal pin/rod along the axis, and a disc (or silicone shed)
every ``pitch`` pixels, each an ellipse seen side-on with a dark underside crescent, shading
towards the light and a specular spot. Every drawn point is accumulated, so the ``insulator``
box is exact; a ``defect`` box is the axis-aligned box of the disc's place (diameter across the
axis, one pitch along it).

Training and held-out scenes draw from disjoint style names (sky, backdrop, material), so the
held-out set measures generalisation to looks the detector never saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from training.coco import Annotation, Scene

__all__ = [
    "BACKDROP_STYLES",
    "CATEGORIES",
    "HELDOUT_BACKDROP_STYLES",
    "HELDOUT_MATERIAL_STYLES",
    "HELDOUT_SKY_STYLES",
    "MATERIAL_STYLES",
    "SKY_STYLES",
    "render_scene",
]

# Index order is the model's CLASS_NAMES.
CATEGORIES: tuple[str, ...] = ("insulator", "defect")

# Styles drawn for training; held-out scenes draw only the HELDOUT_* ones, which training never
# sees (every held-out image is unseen in its sky, its backdrop and its insulators).
SKY_STYLES = ("blue", "overcast", "clouds")
HELDOUT_SKY_STYLES = ("dusk", "haze")
BACKDROP_STYLES = ("open", "tower", "ground")
HELDOUT_BACKDROP_STYLES = ("forest", "snow", "gantry")
MATERIAL_STYLES = (
    "glass_teal",
    "porcelain_brown",
    "porcelain_white",
    "composite_grey",
    "composite_red",
)
HELDOUT_MATERIAL_STYLES = ("glass_green", "porcelain_grey_aero", "composite_blue")

_SHIFT = 4  # OpenCV's fractional bits: vertices at 1/16 px make thin shapes smooth
_ONE = 1 << _SHIFT
_AA = cv2.LINE_AA
_EMPTY_FRACTION = 0.1
# Share of strings with a defect: held-out photos keep the 0.4 they were always drawn with;
# training draws more, since defects are the rare, hard class (docs/accuracy.md, 2026-12-06).
_DEFECT_FRACTION = 0.4
_TRAINING_DEFECT_FRACTION = 0.7
# A defect box's short side must stay >= ~12 px after the detector's resize to 384 px short
# side; images are up to 480 px high (scale 0.8), so defective strings get a pitch >= 16 px.
_DEFECT_MIN_PITCH = 16.0
_MIN_PITCH = 11.0
_MAX_PITCH = 40.0
_MARGIN = 4.0
_CIRCLE = np.linspace(0, 2 * math.pi, 28, endpoint=False)[:, None]
_COS, _SIN = np.cos(_CIRCLE), np.sin(_CIRCLE)
_CORNERS = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])


@dataclass(frozen=True)
class _Material:
    """How one insulator type looks.

    Attributes:
        shape: ``bell`` (cap-and-pin disc), ``aero`` (flat aerodynamic disc) or ``shed``
            (silicone sheds on a rod, alternating large and small).
        body: lit body colour, RGB.
        highlight: specular colour, RGB.
        alpha: opacity of the body (glass lets the background through).
        gloss: strength of the specular spot, 0-1.
        radius: disc radius over the pitch (range).
        thickness: disc half-thickness over its radius (range).
    """

    shape: str
    body: tuple[int, int, int]
    highlight: tuple[int, int, int]
    alpha: float
    gloss: float
    radius: tuple[float, float]
    thickness: tuple[float, float]


_MATERIALS = {
    "glass_teal": _Material(
        "bell", (70, 155, 150), (225, 255, 250), 0.72, 1.0, (0.8, 0.95), (0.28, 0.36)
    ),
    "porcelain_brown": _Material(
        "bell", (125, 58, 32), (245, 200, 175), 1.0, 0.9, (0.8, 0.95), (0.28, 0.38)
    ),
    "porcelain_white": _Material(
        "bell", (222, 222, 212), (255, 255, 255), 1.0, 0.8, (0.8, 0.95), (0.28, 0.38)
    ),
    "composite_grey": _Material(
        "shed", (140, 142, 146), (205, 205, 210), 1.0, 0.35, (1.15, 1.5), (0.1, 0.14)
    ),
    "composite_red": _Material(
        "shed", (150, 62, 48), (215, 150, 135), 1.0, 0.35, (1.15, 1.5), (0.1, 0.14)
    ),
    "glass_green": _Material(
        "bell", (80, 150, 70), (230, 255, 220), 0.72, 1.0, (0.8, 0.95), (0.28, 0.36)
    ),
    "porcelain_grey_aero": _Material(
        "aero", (150, 152, 158), (250, 250, 255), 1.0, 0.8, (1.0, 1.15), (0.12, 0.16)
    ),
    "composite_blue": _Material(
        "shed", (70, 105, 165), (170, 195, 235), 1.0, 0.35, (1.15, 1.5), (0.1, 0.14)
    ),
}


@dataclass
class _String:
    """One planned insulator string, in photo pixels."""

    start: np.ndarray  # tower end, outer edge of the end fitting
    u: np.ndarray  # unit axis, start to conductor end
    discs: int
    pitch: float
    radius: float
    thickness: float  # half-thickness of a disc
    fitting: float  # length of each end fitting
    material: str
    defects: dict[int, str] = field(default_factory=dict)  # disc index -> missing | broken

    @property
    def n(self) -> np.ndarray:
        return np.array([-self.u[1], self.u[0]])

    @property
    def length(self) -> float:
        return self.pitch * self.discs + 2 * self.fitting

    @property
    def end(self) -> np.ndarray:
        return self.start + self.u * self.length

    def centre(self, i: int) -> np.ndarray:
        return self.start + self.u * (self.fitting + self.pitch * (i + 0.5))

    def disc_radius(self, i: int) -> float:
        shed = _MATERIALS[self.material].shape == "shed"
        return self.radius * (0.72 if shed and i % 2 else 1.0)


def render_scene(seed: int, index: int, heldout: bool = False) -> Scene:
    """Renders one synthetic photo of insulator strings with its boxes.

    Args:
        seed: the dataset's seed.
        index: the image's index in the dataset.
        heldout: draw only the held-out styles (``HELDOUT_*``) instead of the training ones.

    Returns:
        The scene: an RGB image 480-640 px wide and 360-480 px high, one ``insulator`` box per
        string (end fittings included) and one ``defect`` box per missing or broken disc, and
        ``truth`` with the counts and the style names used.
    """
    rng = np.random.default_rng([seed, index, int(heldout)])
    width, height = int(rng.integers(480, 641)), int(rng.integers(360, 481))
    skies = HELDOUT_SKY_STYLES if heldout else SKY_STYLES
    backdrops = HELDOUT_BACKDROP_STYLES if heldout else BACKDROP_STYLES
    materials = HELDOUT_MATERIAL_STYLES if heldout else MATERIAL_STYLES
    sky = str(rng.choice(skies))
    backdrop = str(rng.choice(backdrops))

    image = _SKIES[sky](rng, height, width)
    _BACKDROPS[backdrop](rng, image)
    _draw_clutter(rng, image)

    defect_fraction = _DEFECT_FRACTION if heldout else _TRAINING_DEFECT_FRACTION
    strings = _plan_strings(rng, width, height, materials, defect_fraction)
    light = _unit(rng.uniform(-math.pi, math.pi))
    for string in strings:
        _draw_attachments(rng, image, string)
    annotations = []
    for string in strings:
        box, defect_boxes = _draw_string(rng, image, string, light)
        annotations.append(Annotation("insulator", box))
        annotations.extend(Annotation("defect", _clip_box(d, box)) for d in defect_boxes)

    image = _photometric(rng, image)
    defects = [kind for s in strings for kind in s.defects.values()]
    truth = {
        "strings": len(strings),
        "defects": len(defects),
        "missing": defects.count("missing"),
        "broken": defects.count("broken"),
        "sky": sky,
        "backdrop": backdrop,
        "materials": sorted({s.material for s in strings}),
        "style": f"{sky}/{backdrop}",
    }
    return Scene(image, annotations, truth, jpeg_quality=int(rng.integers(60, 96)))


# --- geometry and drawing helpers -------------------------------------------------------------


def _unit(angle: float) -> np.ndarray:
    return np.array([math.cos(angle), math.sin(angle)])


def _ellipse(centre: np.ndarray, u: np.ndarray, across: float, along: float) -> np.ndarray:
    """Outline of an ellipse with semi-axes ``across`` (along the normal) and ``along`` (u)."""
    n = np.array([-u[1], u[0]])
    return centre + n * (across * _COS) + u * (along * _SIN)


def _rect(centre: np.ndarray, u: np.ndarray, across: float, along: float) -> np.ndarray:
    n = np.array([-u[1], u[0]])
    return centre + _CORNERS[:, :1] * (n * across) + _CORNERS[:, 1:] * (u * along)


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points) * _ONE).astype(np.int32)


def _colour(rgb: np.ndarray | tuple[float, ...]) -> tuple[float, float, float]:
    # plain floats: this runs for every primitive, where np.clip's overhead would dominate
    r, g, b = (min(255.0, max(0.0, float(v))) for v in rgb)
    return r, g, b


def _fill(image: np.ndarray, points: np.ndarray, colour: tuple, alpha: float = 1.0) -> None:
    """Fills a polygon, blending it at ``alpha`` over what is already drawn."""
    if alpha >= 1.0:
        cv2.fillPoly(image, [_fixed(points)], _colour(colour), _AA, _SHIFT)
        return
    height, width = image.shape[:2]
    x0, y0 = np.maximum(np.floor(points.min(axis=0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(points.max(axis=0)).astype(int) + 2, (width, height))
    if x1 <= x0 or y1 <= y0:
        return
    roi = image[y0:y1, x0:x1]
    layer = roi.copy()
    cv2.fillPoly(layer, [_fixed(points - (x0, y0))], _colour(colour), _AA, _SHIFT)
    roi[:] = cv2.addWeighted(layer, alpha, roi, 1.0 - alpha, 0.0)


def _line(image: np.ndarray, points: np.ndarray, colour: tuple, thickness: float) -> None:
    cv2.polylines(
        image, [_fixed(points)], False, _colour(colour), max(1, round(thickness)), _AA, _SHIFT
    )


def _beam(
    image: np.ndarray, p0: np.ndarray, p1: np.ndarray, colour: tuple, thickness: float
) -> None:
    """A steel member: a thick line with a lit edge, so it reads as angle steel."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    _line(image, np.array([p0, p1]), colour, thickness)
    d = p1 - p0
    norm = float(np.hypot(*d))
    if thickness >= 3 and norm > 0:
        offset = np.array([-d[1], d[0]]) / norm * thickness * 0.25
        _line(image, np.array([p0 + offset, p1 + offset]), np.asarray(colour) * 1.35 + 15, 1)


def _clip_box(
    box: tuple[float, float, float, float], outer: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    x0, y0 = max(box[0], outer[0]), max(box[1], outer[1])
    x1 = min(box[0] + box[2], outer[0] + outer[2])
    y1 = min(box[1] + box[3], outer[1] + outer[3])
    return x0, y0, x1 - x0, y1 - y0


def _noise(
    rng: np.random.Generator, height: int, width: int, cells: int, octaves: int = 3
) -> np.ndarray:
    """Smooth value noise, roughly in [-1, 1], from upsampled random grids."""
    # octaves are summed on the finest grid, so only one resize is image-sized
    fine_w = cells * 2 ** (octaves - 1) + 1
    fine_h = max(2, round(fine_w * height / width)) + 1
    total = np.zeros((fine_h, fine_w), np.float32)
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        cw = cells * 2**octave
        ch = max(2, round(cw * height / width))
        grid = rng.standard_normal((ch + 1, cw + 1), dtype=np.float32)
        total += amplitude * cv2.resize(grid, (fine_w, fine_h), interpolation=cv2.INTER_CUBIC)
        norm += amplitude
        amplitude *= 0.5
    return cv2.resize(total / norm, (width, height), interpolation=cv2.INTER_CUBIC)


def _jitter(rng: np.random.Generator, rgb: tuple[float, ...], amount: float) -> np.ndarray:
    return np.asarray(rgb, np.float32) + rng.uniform(-amount, amount, 3).astype(np.float32)


def _gradient(
    rng: np.random.Generator, height: int, width: int, top: np.ndarray, bottom: np.ndarray
) -> np.ndarray:
    # smooth, so computed on a coarse grid and upsampled
    small_h, small_w = height // 8 + 2, width // 8 + 2
    y = np.linspace(0, 1, small_h, dtype=np.float32)[:, None] ** rng.uniform(0.6, 1.6)
    x = np.linspace(-1, 1, small_w, dtype=np.float32)[None, :]
    t = np.clip(y + rng.uniform(-0.25, 0.25) * x, 0, 1)[..., None]
    return cv2.resize(top + (bottom - top) * t, (width, height), interpolation=cv2.INTER_LINEAR)


# --- skies ------------------------------------------------------------------------------------


def _sky_blue(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    top = _jitter(rng, (75, 135, 215), 25)
    bottom = _jitter(rng, (185, 210, 240), 15)
    return _finish(_gradient(rng, height, width, top, bottom))


def _sky_overcast(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    grey = rng.uniform(150, 200)
    top = np.float32([grey, grey, grey + rng.uniform(0, 12)])
    bottom = top + rng.uniform(10, 40)
    sky = _gradient(rng, height, width, top, bottom)
    sky += (_noise(rng, height, width, 3) * rng.uniform(8, 22))[..., None]
    return _finish(sky)


def _sky_clouds(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    sky = _gradient(
        rng, height, width, _jitter(rng, (70, 130, 210), 25), _jitter(rng, (175, 205, 240), 15)
    )
    density = _noise(rng, height, width, 2, 4)
    cover = np.clip((density - rng.uniform(-0.3, 0.5)) / rng.uniform(0.2, 0.6), 0, 1)[..., None]
    shade = 225 + 30 * _noise(rng, height, width, 4, 2)[..., None]
    return _finish(sky + (shade - sky) * cover)


def _sky_dusk(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    sky = _gradient(
        rng, height, width, _jitter(rng, (55, 50, 105), 20), _jitter(rng, (245, 150, 80), 20)
    )
    # a low sun glow somewhere along the bottom edge
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    sx, sy = rng.uniform(0, width), height * rng.uniform(0.7, 1.2)
    glow = np.exp(-((xx - sx) ** 2 + (yy - sy) ** 2) / (2 * (0.35 * width) ** 2))[..., None]
    sky += glow * np.float32([60, 35, 5])
    return _finish(sky)


def _sky_haze(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    top = _jitter(rng, (205, 200, 178), 12)
    sky = _gradient(rng, height, width, top, top + np.float32([20, 18, 12]))
    sky += (_noise(rng, height, width, 2) * 8)[..., None]
    return _finish(sky)


def _finish(canvas: np.ndarray) -> np.ndarray:
    return np.clip(canvas, 0, 255).astype(np.uint8)


_SKIES = {
    "blue": _sky_blue,
    "overcast": _sky_overcast,
    "clouds": _sky_clouds,
    "dusk": _sky_dusk,
    "haze": _sky_haze,
}


# --- backdrops --------------------------------------------------------------------------------


def _backdrop_open(rng: np.random.Generator, image: np.ndarray) -> None:
    """Sky only; sometimes a low distant ridge."""
    if rng.random() < 0.3:
        _terrain(rng, image, rng.uniform(0.85, 1.0), (95, 110, 95), (100, 120, 80), texture=0.1)


def _backdrop_ground(rng: np.random.Generator, image: np.ndarray) -> None:
    palette = [(90, 125, 55), (120, 105, 75), (105, 120, 70), (140, 120, 85)]
    ground = palette[int(rng.integers(len(palette)))]
    _terrain(rng, image, rng.uniform(0.4, 0.9), (55, 85, 50), ground, texture=0.18)


def _backdrop_forest(rng: np.random.Generator, image: np.ndarray) -> None:
    _terrain(
        rng,
        image,
        rng.uniform(0.2, 0.5),
        (35, 60, 35),
        (40, 70, 38),
        texture=0.35,
        ridge=rng.uniform(0.08, 0.2),
    )


def _backdrop_snow(rng: np.random.Generator, image: np.ndarray) -> None:
    _terrain(rng, image, rng.uniform(0.4, 0.85), (90, 100, 110), (225, 230, 240), texture=0.06)
    height, width = image.shape[:2]
    for _ in range(int(rng.integers(3, 12))):  # shrubs and rocks poking through
        c = np.array([rng.uniform(0, width), rng.uniform(0.75, 1.0) * height])
        _fill(
            image,
            _ellipse(c, np.array([0.0, 1.0]), rng.uniform(2, 6), rng.uniform(4, 14)),
            _jitter(rng, (70, 65, 60), 15),
        )


def _terrain(
    rng: np.random.Generator,
    image: np.ndarray,
    horizon: float,
    ridge_rgb: tuple,
    ground_rgb: tuple,
    texture: float,
    ridge: float | None = None,
) -> None:
    """Ground below a horizon at ``horizon`` x height, with a bumpy tree line along it."""
    height, width = image.shape[:2]
    y_h = int(horizon * height)
    if y_h >= height:
        return
    ridge = rng.uniform(0.02, 0.1) if ridge is None else ridge
    profile = _noise(rng, 1, width, int(rng.integers(6, 20)), 3)[0]
    tops = np.clip(y_h - ridge * height * (0.6 + 0.5 * profile), 0, height).astype(int)
    rows = np.arange(height)[:, None]
    mask = rows >= tops[None, :]
    y0 = int(tops.min())
    region = image[y0:]
    sub = mask[y0:]
    h = height - y0
    depth = np.clip((np.arange(h, dtype=np.float32) + y0 - y_h) / max(1, height - y_h), 0, 1)
    base = np.where((np.arange(h) + y0 < y_h)[:, None], np.float32(0), depth[:, None])[..., None]
    colour = np.asarray(ridge_rgb, np.float32) + (
        _jitter(rng, ground_rgb, 12) - np.asarray(ridge_rgb, np.float32)
    ) * np.minimum(1.0, base * 4 + 0.7 * (base > 0))
    fine = cv2.GaussianBlur(rng.standard_normal((h, width), dtype=np.float32), (0, 0), 0.8)
    coarse = _noise(rng, h, width, 5, 3)
    colour = colour * (1 + texture * (coarse + 0.8 * fine))[..., None]
    region[sub] = np.clip(colour, 0, 255).astype(np.uint8)[sub]


def _backdrop_tower(rng: np.random.Generator, image: np.ndarray) -> None:
    """A steel lattice tower seen from nearby: converging legs, bracing, a cross-arm."""
    height, width = image.shape[:2]
    steel = np.float32([1, 1, 1.04]) * rng.uniform(85, 165)
    roll = rng.uniform(-0.35, 0.35)
    rot = np.array([[math.cos(roll), -math.sin(roll)], [math.sin(roll), math.cos(roll)]])
    centre = np.array([width / 2, height / 2])

    def place(p: tuple[float, float]) -> np.ndarray:
        return (np.asarray(p) - centre) @ rot.T + centre

    x_mid = rng.uniform(-0.2, 1.2) * width
    bottom_half = rng.uniform(0.3, 0.8) * width
    top_half = bottom_half * rng.uniform(0.35, 0.75)
    y_top, y_bottom = rng.uniform(-0.6, 0.3) * height, height * rng.uniform(1.1, 1.6)
    levels = int(rng.integers(3, 7))
    ys = np.linspace(y_top, y_bottom, levels + 1)
    half = top_half + (bottom_half - top_half) * (ys - y_top) / (y_bottom - y_top)
    left = [place((x_mid - h, y)) for h, y in zip(half, ys, strict=True)]
    right = [place((x_mid + h, y)) for h, y in zip(half, ys, strict=True)]
    brace = rng.uniform(2, 5)
    for i in range(levels):
        _beam(image, left[i], right[i], steel, brace)
        _beam(image, left[i], right[i + 1], steel * 0.9, brace)
        _beam(image, right[i], left[i + 1], steel * 0.9, brace)
    leg = rng.uniform(6, 13)
    _beam(image, left[0], left[-1], steel * 0.85, leg)
    _beam(image, right[0], right[-1], steel * 0.85, leg)
    if rng.random() < 0.6:  # a lattice cross-arm running off the frame
        y_arm = rng.uniform(0.05, 0.5) * height
        depth = rng.uniform(15, 40)
        side = -1 if rng.random() < 0.5 else 1
        x0, x1 = x_mid, x_mid + side * 1.5 * width
        _beam(image, place((x0, y_arm)), place((x1, y_arm)), steel, brace + 1)
        _beam(image, place((x0, y_arm + depth)), place((x1, y_arm + depth)), steel, brace + 1)
        xs = np.arange(x0, x1, side * depth)
        for i, x in enumerate(xs[:-1]):
            a, b = (0, depth) if i % 2 else (depth, 0)
            _beam(
                image,
                place((x, y_arm + a)),
                place((xs[i + 1], y_arm + b)),
                steel * 0.9,
                max(1.5, brace - 1),
            )
    for _ in range(int(rng.integers(0, 3))):  # nearer members crossing the frame
        p0 = np.array([rng.uniform(-0.2, 1.2) * width, -20.0])
        p1 = np.array([rng.uniform(-0.2, 1.2) * width, height + 20.0])
        _beam(image, p0, p1, steel * rng.uniform(0.7, 1.1), rng.uniform(4, 12))


def _backdrop_gantry(rng: np.random.Generator, image: np.ndarray) -> None:
    """Substation steelwork: painted I-beams in a rectangular frame and tubular busbars."""
    height, width = image.shape[:2]
    _terrain(rng, image, rng.uniform(0.7, 1.0), (110, 110, 100), (150, 145, 130), texture=0.1)
    paint = _jitter(rng, (115, 135, 120), 25)
    for _ in range(int(rng.integers(1, 3))):
        x = rng.uniform(0, width)
        w = rng.uniform(12, 26)
        _fill(
            image,
            _rect(np.array([x, height / 2]), np.array([0.0, 1.0]), w / 2, height),
            paint * 0.8,
        )
        _line(image, np.array([[x - w / 4, -5], [x - w / 4, height + 5]]), paint * 1.2, 2)
    for _ in range(int(rng.integers(1, 3))):
        y = rng.uniform(0.05, 0.6) * height
        w = rng.uniform(14, 30)
        _fill(image, _rect(np.array([width / 2, y]), np.array([1.0, 0.0]), w / 2, width), paint)
        _line(image, np.array([[-5, y - w / 3], [width + 5, y - w / 3]]), paint * 1.25, 2)
        _line(image, np.array([[-5, y + w / 3], [width + 5, y + w / 3]]), paint * 0.7, 2)
    for _ in range(int(rng.integers(0, 3))):
        y = rng.uniform(0.1, 0.9) * height
        _line(
            image,
            np.array([[-5, y], [width + 5, y + rng.uniform(-30, 30)]]),
            _jitter(rng, (190, 190, 185), 20),
            rng.uniform(4, 9),
        )


_BACKDROPS = {
    "open": _backdrop_open,
    "tower": _backdrop_tower,
    "ground": _backdrop_ground,
    "forest": _backdrop_forest,
    "snow": _backdrop_snow,
    "gantry": _backdrop_gantry,
}


# --- clutter ----------------------------------------------------------------------------------


def _catenary(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    t = np.linspace(0, 1, 40)[:, None]
    p0 = np.array([-30.0, rng.uniform(-0.2, 1.1) * height])
    p1 = np.array([width + 30.0, rng.uniform(-0.2, 1.1) * height])
    sag = rng.uniform(0, 0.3) * height
    points = p0 + (p1 - p0) * t + np.array([0.0, 1.0]) * (4 * sag * t * (1 - t))
    roll = rng.uniform(-0.5, 0.5)
    rot = np.array([[math.cos(roll), -math.sin(roll)], [math.sin(roll), math.cos(roll)]])
    centre = np.array([width / 2, height / 2])
    return (points - centre) @ rot.T + centre


def _draw_clutter(rng: np.random.Generator, image: np.ndarray) -> None:
    """Things that are not insulators: wires, poles, marker balls, dampers, signs, birds."""
    height, width = image.shape[:2]
    wires = []
    for _ in range(int(rng.integers(0, 5))):
        points = _catenary(rng, width, height)
        wires.append(points)
        shade = rng.uniform(20, 70) if rng.random() < 0.75 else rng.uniform(150, 210)
        _line(image, points, (shade, shade, shade), rng.uniform(1, 3.5))
    if rng.random() < 0.25:  # a wooden or concrete pole
        wood = rng.random() < 0.5
        colour = _jitter(rng, (110, 80, 50) if wood else (160, 160, 155), 15)
        x = rng.uniform(0, width)
        top = np.array([x + rng.uniform(-20, 20), rng.uniform(-0.2, 0.5) * height])
        base = np.array([x, height + 10.0])
        thick = rng.uniform(8, 22)
        _line(image, np.array([top, base]), colour, thick)
        _line(image, np.array([top, base]) + thick * 0.25, colour * 1.25, max(1, thick * 0.2))
        if rng.random() < 0.5:
            arm = rng.uniform(30, 90)
            _line(
                image,
                np.array([top + np.array([-arm, 12.0]), top + np.array([arm, 12.0])]),
                colour * 0.9,
                thick * 0.5,
            )
    for _ in range(int(rng.integers(0, 3)) if wires else 0):
        wire = wires[int(rng.integers(len(wires)))]
        at = wire[int(rng.integers(5, 35))]
        kind = rng.random()
        if kind < 0.4:  # aircraft warning sphere
            r = rng.uniform(6, 18)
            colour = [(235, 110, 30), (225, 50, 40), (240, 240, 235)][int(rng.integers(3))]
            _fill(image, _ellipse(at, np.array([0.0, 1.0]), r, r), np.asarray(colour) * 0.7)
            _fill(image, _ellipse(at - r * 0.15, np.array([0.0, 1.0]), r * 0.8, r * 0.8), colour)
        else:  # Stockbridge damper: two weights on a short messenger cable
            r = rng.uniform(3, 6)
            span = rng.uniform(10, 22)
            dark = _jitter(rng, (80, 80, 85), 20)
            _line(image, np.array([at, at + np.array([0.0, r * 2])]), dark, 2)
            for side in (-1, 1):
                _fill(
                    image,
                    _rect(at + np.array([side * span, r * 2]), np.array([1.0, 0.0]), r, span * 0.3),
                    dark,
                )
    if rng.random() < 0.15:  # a warning sign plate
        c = np.array([rng.uniform(0, width), rng.uniform(0.3, 1.0) * height])
        s = rng.uniform(10, 25)
        colour = [(230, 200, 40), (220, 40, 35), (240, 240, 240)][int(rng.integers(3))]
        _fill(image, _rect(c, np.array([0.0, 1.0]), s * 1.1, s * 1.1), (30, 30, 30))
        _fill(image, _rect(c, np.array([0.0, 1.0]), s, s), colour)
    for _ in range(int(rng.integers(0, 4)) if rng.random() < 0.2 else 0):  # birds
        c = np.array([rng.uniform(0, width), rng.uniform(0, 0.6) * height])
        s = rng.uniform(3, 8)
        _line(
            image,
            np.array([c + np.array([-s, -s * 0.5]), c, c + np.array([s, -s * 0.6])]),
            (35, 35, 40),
            1.5,
        )


# --- insulator strings ------------------------------------------------------------------------


def _plan_strings(
    rng: np.random.Generator,
    width: int,
    height: int,
    materials: tuple[str, ...],
    defect_fraction: float,
) -> list[_String]:
    """Chooses 0-4 non-overlapping strings that lie wholly inside the photo."""
    if rng.random() < _EMPTY_FRACTION:
        return []
    wanted = int(rng.choice([1, 1, 2, 2, 3, 4]))
    mode = str(rng.choice(["suspension", "suspension", "tension", "vee", "any"]))
    shared = str(rng.choice(materials))
    parallel = rng.random() < 0.4
    strings: list[_String] = []
    for k in range(wanted):
        material = shared if rng.random() < 0.75 else str(rng.choice(materials))
        for _attempt in range(25):
            if parallel and strings:
                candidate = _parallel_copy(rng, strings[-1], material, defect_fraction)
            else:
                candidate = _random_string(rng, width, height, material, mode, k, defect_fraction)
            if (
                candidate is not None
                and _fits(candidate, width, height)
                and not any(_too_close(candidate, other) for other in strings)
            ):
                strings.append(candidate)
                break
    return strings


def _axis(rng: np.random.Generator, mode: str, k: int) -> float:
    if mode == "suspension":
        return math.pi / 2 + rng.normal(0, 0.1)
    if mode == "tension":
        return rng.normal(0, 0.15) + (math.pi if rng.random() < 0.5 else 0)
    if mode == "vee":
        return math.pi / 2 + (1 if k % 2 else -1) * rng.uniform(0.3, 0.8)
    return rng.uniform(-math.pi, math.pi)


def _random_string(
    rng: np.random.Generator,
    width: int,
    height: int,
    material: str,
    mode: str,
    k: int,
    defect_fraction: float,
) -> _String | None:
    spec = _MATERIALS[material]
    defective = rng.random() < defect_fraction
    u = _unit(_axis(rng, mode, k))
    radius_ratio = rng.uniform(*spec.radius)
    fitting_ratio = rng.uniform(1.2, 2.2) if spec.shape == "shed" else rng.uniform(0.7, 1.1)
    min_pitch = _DEFECT_MIN_PITCH if defective else _MIN_PITCH
    discs = int(rng.integers(8 if spec.shape == "shed" else 5, 21))
    while discs >= 5:
        span = discs + 2 * fitting_ratio
        # the string's box: its length along u plus its diameter along n, both scale with pitch
        extent_x = span * abs(u[0]) + 2 * radius_ratio * abs(u[1])
        extent_y = span * abs(u[1]) + 2 * radius_ratio * abs(u[0])
        high = min(
            _MAX_PITCH,
            450 / span,
            (width - 2 * _MARGIN) / extent_x,
            (height - 2 * _MARGIN) / extent_y,
        )
        low = max(min_pitch, 80 / span)
        if low <= high:
            break
        discs -= 1
    else:
        return None
    pitch = low + (high - low) * rng.random() ** 1.5
    radius = radius_ratio * pitch
    half = np.array([extent_x, extent_y]) * pitch / 2
    centre = np.array(
        [
            rng.uniform(_MARGIN + half[0], width - _MARGIN - half[0]),
            rng.uniform(_MARGIN + half[1], height - _MARGIN - half[1]),
        ]
    )
    string = _String(
        start=centre - u * (span * pitch / 2),
        u=u,
        discs=discs,
        pitch=pitch,
        radius=radius,
        thickness=radius * rng.uniform(*spec.thickness),
        fitting=fitting_ratio * pitch,
        material=material,
    )
    if defective:
        count = 1 if rng.random() < 0.7 else 2
        # composite: only large sheds fail, a missing small one would hardly be visible
        candidates = np.arange(0, discs, 2 if spec.shape == "shed" else 1)
        picks = rng.choice(candidates, size=count, replace=False)
        if count == 2 and abs(int(picks[0]) - int(picks[1])) < 2:
            picks = picks[:1]
        string.defects = {int(i): str(rng.choice(["missing", "broken"])) for i in picks}
    return string


def _parallel_copy(
    rng: np.random.Generator, other: _String, material: str, defect_fraction: float
) -> _String:
    """The next string of a double string or of the next phase: same size, side by side."""
    spacing = other.radius * rng.uniform(2.3, 5.0) * (1 if rng.random() < 0.5 else -1)
    shift = other.n * spacing + other.u * rng.normal(0, other.pitch)
    spec = _MATERIALS[material]
    string = _String(
        start=other.start + shift,
        u=other.u.copy(),
        discs=other.discs,
        pitch=other.pitch,
        radius=other.radius,
        thickness=other.radius * rng.uniform(*spec.thickness),
        fitting=other.fitting,
        material=material,
    )
    if other.pitch >= _DEFECT_MIN_PITCH and rng.random() < defect_fraction:
        step = 2 if spec.shape == "shed" else 1
        i = int(rng.integers(0, other.discs, endpoint=False)) // step * step
        string.defects = {i: str(rng.choice(["missing", "broken"]))}
    return string


def _corners(string: _String) -> np.ndarray:
    r = string.radius
    n = string.n
    return np.array(
        [string.start + n * r, string.start - n * r, string.end + n * r, string.end - n * r]
    )


def _fits(string: _String, width: int, height: int) -> bool:
    c = _corners(string)
    return bool(
        c.min() >= _MARGIN
        and c[:, 0].max() <= width - _MARGIN
        and c[:, 1].max() <= height - _MARGIN
    )


def _too_close(a: _String, b: _String) -> bool:
    ta = np.linspace(0, a.length, 24)[:, None]
    tb = np.linspace(0, b.length, 24)[:, None]
    pa = a.start + a.u * ta
    pb = b.start + b.u * tb
    gap = np.min(np.linalg.norm(pa[:, None] - pb[None], axis=-1))
    return bool(gap < a.radius + b.radius + 6)


def _draw_attachments(rng: np.random.Generator, image: np.ndarray, string: _String) -> None:
    """What the string hangs from and holds: a link to the tower and the conductor."""
    height, width = image.shape[:2]
    reach = float(width + height)
    if rng.random() < 0.7:
        steel = np.float32([1, 1, 1.04]) * rng.uniform(90, 160)
        _beam(image, string.start, string.start - string.u * reach, steel, rng.uniform(2, 6))
    if rng.random() < 0.75:
        shade = rng.uniform(25, 80)
        if abs(string.u[1]) > 0.8:  # suspension: the conductor passes through the clamp
            side = np.array([1.0, rng.normal(0, 0.1)])
            points = np.array([string.end - side * reach, string.end, string.end + side * reach])
        else:
            points = np.array([string.end, string.end + string.u * reach])
        _line(image, points, (shade, shade, shade), rng.uniform(2, 4.5))


def _draw_string(
    rng: np.random.Generator, image: np.ndarray, string: _String, light: np.ndarray
) -> tuple[tuple[float, float, float, float], list[tuple[float, float, float, float]]]:
    """Draws a string; returns its box and the boxes of its defects (``x, y, w, h``)."""
    spec = _MATERIALS[string.material]
    u, n = string.u, string.n
    lit = 1.0 if float(n @ light) >= 0 else -1.0
    metal = np.float32([1, 1, 1.03]) * rng.uniform(120, 185)
    drawn: list[np.ndarray] = []

    def fill(points: np.ndarray, colour: tuple | np.ndarray, alpha: float = 1.0) -> None:
        drawn.append(points)
        _fill(image, points, tuple(colour), alpha)

    # pin (disc strings) or fibreglass rod under silicone (composite), end to end
    first, last = string.centre(0), string.centre(string.discs - 1)
    if spec.shape == "shed":
        rod = string.radius * 0.16
        body = np.asarray(spec.body, np.float32)
        fill(_rect((first + last) / 2, u, rod, float(np.linalg.norm(last - first)) / 2), body * 0.7)
        fill(
            _rect(
                (first + last) / 2 + n * lit * rod * 0.35,
                u,
                rod * 0.35,
                float(np.linalg.norm(last - first)) / 2,
            ),
            body,
        )
    else:
        pin = max(1.2, string.radius * 0.09)
        fill(
            _rect((first + last) / 2, u, pin, float(np.linalg.norm(last - first)) / 2 + 2),
            metal * 0.7,
        )
    _draw_fittings(string, metal, lit, fill)

    for i in range(string.discs):
        kind = string.defects.get(i)
        c = string.centre(i)
        if spec.shape != "shed":
            # cap on top of the shell, kept when the shell is gone (that is how they fail)
            cap = c - u * (string.thickness * 0.75 + string.pitch * 0.12)
            fill(_rect(cap, u, string.radius * 0.22, string.pitch * 0.16), metal * 0.85)
            fill(
                _rect(
                    cap + n * lit * string.radius * 0.08,
                    u,
                    string.radius * 0.07,
                    string.pitch * 0.14,
                ),
                metal * 1.2,
            )
        if kind == "missing":
            if spec.shape == "shed":  # the torn root of the shed stays on the rod
                fill(
                    _ellipse(c, u, string.radius * 0.3, string.thickness * 1.3),
                    np.asarray(spec.body, np.float32) * 0.45,
                )
            continue
        if kind == "broken":
            _draw_broken_disc(rng, image, string, i, light, lit)
            drawn.append(_ellipse(c, u, string.disc_radius(i), string.thickness * 1.2))
        else:
            for points, colour, alpha in _disc_layers(string, i, light, lit):
                fill(points, colour, alpha)

    everything = np.concatenate(drawn)
    height, width = image.shape[:2]
    x0, y0 = np.maximum(everything.min(axis=0), 0)
    x1, y1 = np.minimum(everything.max(axis=0), (width, height))
    box = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
    defect_boxes = []
    for i in sorted(string.defects):
        corners = _rect(string.centre(i), u, string.radius, string.pitch / 2)
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        defect_boxes.append(
            (float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))
        )
    return box, defect_boxes


def _draw_fittings(string: _String, metal: np.ndarray, lit: float, fill) -> None:
    """Clevis and yoke at the tower end, socket and conductor clamp at the other."""
    u, r, f = string.u, string.radius, string.fitting
    start, end = string.start, string.end
    body_start = start + u * f
    body_end = end - u * f
    fill(_rect(start + u * f * 0.1, u, r * 0.5, f * 0.1), metal * 0.75)  # yoke plate
    fill(_ellipse(start + u * f * 0.35, u, r * 0.2, f * 0.2), metal * 0.8)  # clevis eye
    fill(_ellipse(start + u * f * 0.35, u, r * 0.09, f * 0.09), metal * 0.45)
    fill(_rect((start + u * f * 0.55 + body_start) / 2, u, r * 0.16, f * 0.25), metal)
    fill(
        _rect(
            (start + u * f * 0.55 + body_start) / 2 + string.n * lit * r * 0.06,
            u,
            r * 0.05,
            f * 0.22,
        ),
        metal * 1.25,
    )
    fill(_rect((body_end + end - u * f * 0.5) / 2, u, r * 0.16, f * 0.27), metal)  # socket
    clamp = end - u * f * 0.25
    fill(_rect(clamp, u, r * 0.55, f * 0.25), metal * 0.8)  # suspension/tension clamp
    fill(_rect(clamp - u * f * 0.08, u, r * 0.5, f * 0.08), metal * 1.15)
    for side in (-1, 1):
        fill(_ellipse(clamp + string.n * side * r * 0.32, u, r * 0.08, r * 0.08), metal * 0.45)


def _disc_layers(
    string: _String, i: int, light: np.ndarray, lit: float
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """A disc seen side-on: dark ribbed underside, shaded top, specular spot; back to front."""
    spec = _MATERIALS[string.material]
    u, n = string.u, string.n
    c = string.centre(i)
    r, t = string.disc_radius(i), string.thickness
    body = np.asarray(spec.body, np.float32)
    glint = np.asarray(spec.highlight, np.float32)
    a = spec.alpha
    layers = [(_ellipse(c + u * t * 0.3, u, r * 0.98, t * 0.85), body * 0.45, a)]
    if spec.shape == "bell":  # the ribs under the shell
        for k, scale in enumerate((0.78, 0.56)):
            layers.append(
                (
                    _ellipse(c + u * t * (0.55 + 0.1 * k), u, r * scale, t * 0.45),
                    body * (0.3 + 0.12 * k),
                    a,
                )
            )
    layers.append((_ellipse(c - u * t * 0.1, u, r, t * 0.8), body * 0.8, a))
    for k, (scale, mix) in enumerate(((0.78, 0.15), (0.55, 0.35))):
        centre = c - u * t * (0.15 + 0.1 * k) + n * lit * r * (0.12 + 0.1 * k)
        colour = body + (glint - body) * mix * spec.gloss + 20 * (k + 1) * (1 - spec.gloss)
        layers.append((_ellipse(centre, u, r * scale, t * 0.7 * scale), colour, a))
    spot = c - u * t * 0.35 + n * lit * r * 0.5
    layers.append((_ellipse(spot, u, r * 0.16, t * 0.18 + 0.5), glint, 0.9 * spec.gloss))
    return layers


def _draw_broken_disc(
    rng: np.random.Generator,
    image: np.ndarray,
    string: _String,
    i: int,
    light: np.ndarray,
    lit: float,
) -> None:
    """A disc with a chunk knocked out of one side: jagged dark fracture edge and a crack."""
    u, n = string.u, string.n
    c = string.centre(i)
    r, t = string.disc_radius(i), string.thickness
    height, width = image.shape[:2]
    x0, y0 = np.maximum(np.floor(c - r - t - 3).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(c + r + t + 4).astype(int), (width, height))
    before = image[y0:y1, x0:x1].copy()
    for points, colour, alpha in _disc_layers(string, i, light, lit):
        _fill(image, points, tuple(colour), alpha)

    side = 1.0 if rng.random() < 0.5 else -1.0
    along = t * 1.15
    centre = c + u * t * 0.15

    def rim(phi: float) -> np.ndarray:
        return centre + n * side * r * math.cos(phi) + u * along * math.sin(phi)

    # a thin shed needs a deeper bite than a thick disc to show at the detector's scale
    low = 1.15 if _MATERIALS[string.material].shape == "shed" else 0.9
    phi_a, phi_b = rng.uniform(low, 1.55), rng.uniform(low, 1.55)
    a, b = rim(-phi_a), rim(phi_b)
    steps = np.linspace(0, 1, 7)[1:-1, None]
    jag = a + (b - a) * steps + n * side * rng.uniform(-0.12, 0.12, (5, 1)) * r
    jag = np.vstack([a, jag, b])
    beyond = n * side * 2 * r
    chunk = np.vstack([jag, b + beyond + u * along * 2, a + beyond - u * along * 2])

    mask = np.zeros(before.shape[:2], np.uint8)
    cv2.fillPoly(mask, [_fixed(chunk - (x0, y0))], 255, _AA, _SHIFT)
    keep = (mask.astype(np.float32) / 255)[..., None]
    roi = image[y0:y1, x0:x1]
    roi[:] = (roi * (1 - keep) + before * keep).astype(np.uint8)

    # the exposed fracture face: a pale band inside the break (glass glints, silicone is dull)
    spec = _MATERIALS[string.material]
    body = np.asarray(spec.body, np.float32)
    face = {"shed": body * 0.6}.get(spec.shape, body + (np.float32([240, 235, 225]) - body) * 0.6)
    taper = np.array([0, 1, 1, 1, 1, 1, 0], np.float32)[:, None]
    inner = jag - n * side * r * rng.uniform(0.12, 0.2) * taper
    _fill(image, np.vstack([jag, inner[::-1]]), face)
    dark = body * 0.25
    edge = max(1.0, r / 14)
    _line(image, jag, dark, edge)
    _line(image, inner, body * 0.5, 1)
    start = inner[int(rng.integers(2, 5))]
    target = c - n * side * r * rng.uniform(0.1, 0.5) + u * t * rng.uniform(-0.5, 0.5)
    crack = start + (target - start) * np.linspace(0, 1, 4)[:, None]
    crack[1:-1] += n * rng.uniform(-0.08, 0.08, (2, 1)) * r
    _line(image, crack, dark, max(1.0, edge * 0.7))


# --- photometric ------------------------------------------------------------------------------


def _photometric(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Exposure, contrast, gamma and colour cast through one lookup table; blur; sensor noise."""
    levels = np.arange(256, dtype=np.float32)[:, None] / 255
    gain = rng.uniform(0.75, 1.2) * rng.uniform(0.92, 1.08, 3).astype(np.float32)
    contrast = rng.uniform(0.75, 1.2)
    curve = (levels - 0.5) * contrast + 0.5
    curve = np.clip(curve * gain, 0, 1) ** rng.uniform(0.8, 1.25)
    table = np.clip(curve * 255 + 0.5, 0, 255).astype(np.uint8).reshape(256, 1, 3)
    image = cv2.LUT(image, table)
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.3))
    sigma = rng.uniform(1.0, 6.0)
    noise = rng.standard_normal(image.shape[:2], dtype=np.float32) * sigma
    return cv2.add(image, cv2.cvtColor(noise, cv2.COLOR_GRAY2RGB), dtype=cv2.CV_8U)
