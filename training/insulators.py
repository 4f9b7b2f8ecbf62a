"""Procedurally drawn photos of power-line insulator strings with four kinds of defect, and
photos of the things a detector could mistake for them.

A photo is a background, things that are not insulators, then (in most photos) insulator strings
(:func:`paint_strings`), then (in some) analog gauges, then a camera pass. Everything is drawn
with OpenCV's anti-aliased primitives at sub-pixel precision, straight into the photo, so it is
cheap. What one renderer would fix is drawn at random, so that a detector trained on these photos
learns what an insulator is rather than how this renderer draws one:

- background (``BACKGROUNDS``): a sky with a backdrop (steel lattice, ground, ...), one plain
  colour, a texture (value noise, stripes, tiles) or a cluttered panel;
- drawing (``SHADINGS``): shaded (dark ribbed underside, highlights, a specular spot), two-tone or
  flat solid fills, with contour lines around discs and fittings (dark, a dark shade of the
  disc's colour, or any colour) or none;
- the disc's outline seen side-on (``PROFILES``): an ellipse, a bell or a rounded box;
- end fittings (``FITTINGS``): clevis, yoke, socket and clamp, a plain link, or none;
- palette: the material's own colours, or any colour of its family (any hue for silicone sheds,
  browns, greys and whites for porcelain, greens and blues for glass);
- scale and viewpoint: strings from about 50 px long to filling the photo, at any axis angle,
  seen edge-on or from below (the discs' faces showing, so they overlap), and nearer at one end
  (a perspective taper);
- camera: exposure, colour cast, gamma, blur or motion blur, lost resolution, sensor noise, or
  none of these (a clean drawing); JPEG quality 40-95.

A string is built along an axis ``u`` (from its tower end to its conductor end) with the normal
``n``: end fittings at both ends (where drawn), a metal pin or rod along the axis, and a disc (or
silicone shed) every ``pitch`` pixels. Every drawn outline is accumulated, so the ``insulator``
box is tight around what is drawn; a ``defect`` box is the axis-aligned box of the defective
disc's place (diameter across the axis, one pitch along it). Defects (``DEFECT_KINDS``): a
missing disc (its metal cap, or a shed's torn root, stays), a broken disc (a chunk knocked out,
a pale fracture face), a cracked disc (dark crack lines across it) and a burnt disc (a
flashover's sooty black patch).

A fifth of the photos are negatives: no string, only look-alikes (round lamps and knobs, printed
numerals and labels, cables, lattice steel, fittings) and, in most, analog gauges drawn by
:func:`training.gauges.paint_gauges`, unlabelled here. Some photos show strings and gauges
together, as a substation would, with the strings labelled.

Training and held-out scenes draw from disjoint style names (sky, backdrop, material), so the
held-out set measures generalisation to looks the detector never saw; the randomisation above
applies to both.
"""

from __future__ import annotations

import colorsys
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
from matplotlib.path import Path as Polygon

from training.coco import Annotation, Scene

__all__ = [
    "BACKDROP_STYLES",
    "BACKGROUNDS",
    "CATEGORIES",
    "DEFECT_KINDS",
    "FITTINGS",
    "HELDOUT_BACKDROP_STYLES",
    "HELDOUT_MATERIAL_STYLES",
    "HELDOUT_SKY_STYLES",
    "MATERIAL_STYLES",
    "PROFILES",
    "SHADINGS",
    "SKY_STYLES",
    "paint_background",
    "paint_clutter",
    "paint_lookalikes",
    "paint_strings",
    "render_scene",
]

# Index order is the model's CLASS_NAMES.
CATEGORIES: tuple[str, ...] = ("insulator", "defect")
DEFECT_KINDS: tuple[str, ...] = ("missing", "broken", "cracked", "burnt")

# Styles drawn for training; held-out scenes draw only the HELDOUT_* ones, which training never
# sees (every held-out image is unseen in its sky, its backdrop and its insulators' materials).
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

# Drawn for both splits: how a renderer might draw, not what it draws.
BACKGROUNDS = ("photo", "plain", "texture", "panel")
SHADINGS = ("shaded", "two_tone", "flat")
PROFILES = ("ellipse", "bell", "box")
FITTINGS = ("full", "simple", "none")
_BACKGROUND_SHARES = (0.55, 0.12, 0.15, 0.18)
_SHADING_SHARES = (0.45, 0.2, 0.35)
_PROFILE_SHARES = (0.6, 0.25, 0.15)
_FITTING_SHARES = (0.75, 0.15, 0.1)

# Photos without a string (of which most show gauges), and photos with strings and gauges.
_NEGATIVE_SHARE = 0.2
_NEGATIVE_METERS_SHARE = 0.7
_MIXED_SHARE = 0.12
_OWN_PALETTE_SHARE = 0.5  # strings in their material's own colours, the rest in any of its family
_VIEW_SHARE = 0.35  # strings seen from below, their discs' faces showing
_TAPER_SHARE = 0.3  # strings nearer the camera at one end
_CLEAN_SHARE = 0.1  # photos without any camera effect but JPEG

_SHIFT = 4  # OpenCV's fractional bits: vertices at 1/16 px make thin shapes smooth
_ONE = 1 << _SHIFT
_AA = cv2.LINE_AA
# Share of strings with a defect: held-out photos keep the 0.4 they were always drawn with;
# training draws more, since defects are the rare, hard class (docs/accuracy.md, 2026-12-06).
_DEFECT_FRACTION = 0.4
_TRAINING_DEFECT_FRACTION = 0.7
# A defect box's short side must stay >= ~12 px after the detector's resize to 384 px short
# side; images are up to 480 px high (scale 0.8), so a defective disc's pitch is >= 16 px.
_DEFECT_MIN_PITCH = 16.0
_MIN_PITCH = 6.0
_MAX_PITCH = 64.0
_MIN_LENGTH = 50.0
_MARGIN = 4.0
_CIRCLE = np.linspace(0, 2 * math.pi, 28, endpoint=False)[:, None]
_COS, _SIN = np.cos(_CIRCLE), np.sin(_CIRCLE)
_CORNERS = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])


def _mirrored(half: list[tuple[float, float]]) -> np.ndarray:
    """A closed outline symmetric about the axis from the half on the ``+n`` side, as
    ``(across, along)`` unit coordinates."""
    right = np.array(half, np.float64)
    left = (right * (-1.0, 1.0))[::-1]
    if right[-1, 0] == 0:
        left = left[1:]
    if right[0, 0] == 0:
        left = left[:-1]
    return np.vstack([right, left])


# Disc outlines seen side-on in (across, along) units of (radius, half-thickness); -along is the
# cap's (tower) side.
_PROFILE_OUTLINES = {
    "ellipse": np.hstack([_COS, _SIN]),
    "bell": _mirrored(
        [
            (0.0, -1.0),
            (0.35, -0.88),
            (0.68, -0.5),
            (0.93, 0.0),
            (1.0, 0.45),
            (0.9, 0.7),
            (0.55, 0.45),
            (0.25, 0.5),
        ]
    ),
    "box": _mirrored([(0.0, -1.0), (0.82, -1.0), (1.0, -0.6), (1.0, 0.6), (0.82, 1.0), (0.0, 1.0)]),
}


@dataclass(frozen=True)
class _Material:
    """How one insulator type looks.

    Attributes:
        shape: ``bell`` (cap-and-pin disc), ``aero`` (flat aerodynamic disc) or ``shed``
            (silicone sheds on a rod, alternating large and small).
        body: the material's own lit body colour, RGB.
        alpha: opacity of the body (glass lets the background through).
        gloss: strength of the specular spot, 0-1.
        radius: disc radius over the pitch (range).
        thickness: disc half-thickness over its radius, seen edge-on (range).
    """

    shape: str
    body: tuple[int, int, int]
    alpha: float
    gloss: float
    radius: tuple[float, float]
    thickness: tuple[float, float]


_MATERIALS = {
    "glass_teal": _Material("bell", (70, 155, 150), 0.72, 1.0, (0.8, 0.95), (0.28, 0.36)),
    "porcelain_brown": _Material("bell", (125, 58, 32), 1.0, 0.9, (0.8, 0.95), (0.28, 0.38)),
    "porcelain_white": _Material("bell", (222, 222, 212), 1.0, 0.8, (0.8, 0.95), (0.28, 0.38)),
    "composite_grey": _Material("shed", (140, 142, 146), 1.0, 0.35, (1.15, 1.5), (0.1, 0.14)),
    "composite_red": _Material("shed", (150, 62, 48), 1.0, 0.35, (1.15, 1.5), (0.1, 0.14)),
    "glass_green": _Material("bell", (80, 150, 70), 0.72, 1.0, (0.8, 0.95), (0.28, 0.36)),
    "porcelain_grey_aero": _Material("aero", (150, 152, 158), 1.0, 0.8, (1.0, 1.15), (0.12, 0.16)),
    "composite_blue": _Material("shed", (70, 105, 165), 1.0, 0.35, (1.15, 1.5), (0.1, 0.14)),
}


@dataclass(frozen=True)
class _Look:
    """How the strings of one photo are drawn: one renderer's choices, drawn at random.

    Attributes:
        shading: one of :data:`SHADINGS`.
        profile: one of :data:`PROFILES`.
        contour: contour lines around discs and fittings: ``None``, ``dark``, ``body`` (a dark
            shade of each string's colour) or ``colour`` (one colour for everything).
        contour_rgb: the contour colour of ``dark`` and ``colour``.
        contour_width: the contour's thickness, px.
        fittings: one of :data:`FITTINGS`: clevis, yoke, socket and clamp; a plain link at
            each end; or none (then neither tower link nor conductor either).
        light: unit vector towards the light, photo pixels.
    """

    shading: str
    profile: str
    contour: str | None
    contour_rgb: np.ndarray
    contour_width: float
    fittings: str
    light: np.ndarray


@dataclass
class _String:
    """One planned insulator string, in photo pixels; sizes are those at the tower end."""

    start: np.ndarray  # tower end, outer edge of the end fitting
    u: np.ndarray  # unit axis, start to conductor end
    discs: int
    pitch: float
    radius: float
    thickness: float  # half-thickness of a disc along u, as seen (faces showing make it more)
    fitting: float  # length of the tower end's fitting
    material: str
    body: np.ndarray  # lit body colour, RGB
    taper: float = 1.0  # size at the conductor end over the size at the tower end
    reverse: bool = False  # discs drawn from the conductor end back, so they overlap the other way
    defects: dict[int, str] = field(default_factory=dict)  # disc index -> one of DEFECT_KINDS

    @property
    def n(self) -> np.ndarray:
        return np.array([-self.u[1], self.u[0]])

    @property
    def shed(self) -> bool:
        return _MATERIALS[self.material].shape == "shed"

    @property
    def length(self) -> float:
        return (1 + self.taper) / 2 * (self.pitch * self.discs + 2 * self.fitting)

    @property
    def end(self) -> np.ndarray:
        return self.start + self.u * self.length

    @property
    def widest(self) -> float:
        return self.radius * max(1.0, self.taper)

    def scale(self, i: int) -> float:
        """Size of disc ``i`` over the size at the tower end (linear along the string)."""
        return 1.0 + (self.taper - 1.0) * (i + 0.5) / self.discs

    def centre(self, i: int) -> np.ndarray:
        # discs before i take sum_{j<i} scale(j) = i + k i^2 / 2 pitches, k the scale's slope
        k = (self.taper - 1.0) / self.discs
        offset = self.fitting + self.pitch * (i + k * i * i / 2 + self.scale(i) / 2)
        return self.start + self.u * offset

    def disc_radius(self, i: int) -> float:
        return self.radius * self.scale(i) * (0.72 if self.shed and i % 2 else 1.0)

    def disc_thickness(self, i: int) -> float:
        return self.thickness * self.scale(i)

    def disc_pitch(self, i: int) -> float:
        return self.pitch * self.scale(i)


class _Extent:
    """The box around everything drawn for one object, as OpenCV's anti-aliasing draws it: a
    filled polygon spreads about half a pixel beyond its outline, a line of thickness ``t``
    covers about ``t + 2`` pixels across."""

    def __init__(self) -> None:
        self._points: dict[float, list[np.ndarray]] = defaultdict(list)

    def fill(self, points: np.ndarray) -> None:
        self._points[0.5].append(points)

    def stroke(self, points: np.ndarray, thickness: int) -> None:
        self._points[thickness / 2 + 1.0].append(points)

    def box(self, width: int, height: int) -> tuple[float, float, float, float]:
        low, high = np.array([math.inf, math.inf]), np.array([-math.inf, -math.inf])
        for pad, arrays in self._points.items():
            points = np.concatenate(arrays)
            low = np.minimum(low, points.min(axis=0) - pad)
            high = np.maximum(high, points.max(axis=0) + pad)
        x0, y0 = np.maximum(low, 0)
        x1, y1 = np.minimum(high, (width, height))
        return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


def render_scene(seed: int, index: int, heldout: bool = False) -> Scene:
    """Renders one synthetic photo with its insulator and defect boxes.

    Args:
        seed: the dataset's seed.
        index: the image's index in the dataset.
        heldout: draw only the held-out styles (``HELDOUT_*``) instead of the training ones.

    Returns:
        The scene: an RGB image 480-640 px wide and 360-480 px high, one ``insulator`` box per
        string and one ``defect`` box per defective disc (:func:`paint_strings`), and ``truth``:
        :func:`paint_strings`'s counts, ``scene`` (``strings``, ``mixed``: strings and gauges,
        or ``negative``: no string), ``meters`` (gauges drawn, unlabelled), ``lookalikes``,
        ``background`` and ``style``, and for a photographed background its ``sky`` and
        ``backdrop``.
    """
    rng = np.random.default_rng([seed, index, int(heldout)])
    width, height = int(rng.integers(480, 641)), int(rng.integers(360, 481))
    image, style = paint_background(rng, height, width, heldout)
    background = style["background"]

    chance = rng.random()
    kind = "negative" if chance < _NEGATIVE_SHARE else "strings"
    if _NEGATIVE_SHARE <= chance < _NEGATIVE_SHARE + _MIXED_SHARE:
        kind = "mixed"
    if background != "plain":
        paint_clutter(rng, image)
    lookalikes = 0
    if kind == "negative":
        lookalikes = int(rng.integers(3, 13))
    elif background != "plain" and rng.random() < 0.4:
        lookalikes = int(rng.integers(1, 5))
    paint_lookalikes(rng, image, lookalikes)

    canvas = image.astype(np.float32)
    if kind == "negative":
        annotations, truth = [], _strings_truth([], None)
    else:
        count = int(rng.integers(1, 3)) if kind == "mixed" else None
        annotations, truth = paint_strings(canvas, rng, heldout, count)
    meters = 0
    if kind == "mixed" or (kind == "negative" and rng.random() < _NEGATIVE_METERS_SHARE):
        keep_clear = [a.bbox for a in annotations if a.category == "insulator"]
        meters = _paint_meters(canvas, rng, int(rng.integers(1, 4)), heldout, keep_clear)
    truth.update(style, scene=kind, meters=meters, lookalikes=lookalikes)
    return Scene(_photometric(rng, canvas), annotations, truth, int(rng.integers(40, 96)))


def paint_background(
    rng: np.random.Generator, height: int, width: int, heldout: bool
) -> tuple[np.ndarray, dict[str, str]]:
    """Draws the ground a photo starts from: a sky and a backdrop, a plain colour, a texture
    or a panel (:data:`BACKGROUNDS`).

    Args:
        rng: the scene's random generator.
        height, width: the photo's size in pixels.
        heldout: draw only the held-out skies and backdrops (``HELDOUT_*``).

    Returns:
        The picture, ``uint8 [H, W, 3]`` RGB, and its style: ``background`` and ``style``, and
        for a sky its ``sky`` and ``backdrop``.
    """
    background = str(rng.choice(BACKGROUNDS, p=_BACKGROUND_SHARES))
    style: dict[str, str] = {"background": background, "style": background}
    if background != "photo":
        return _BACKGROUNDS[background](rng, height, width), style
    sky = str(rng.choice(HELDOUT_SKY_STYLES if heldout else SKY_STYLES))
    backdrop = str(rng.choice(HELDOUT_BACKDROP_STYLES if heldout else BACKDROP_STYLES))
    image = _SKIES[sky](rng, height, width)
    _BACKDROPS[backdrop](rng, image)
    style.update(sky=sky, backdrop=backdrop, style=f"{sky}/{backdrop}")
    return image, style


def paint_strings(
    image: np.ndarray,
    rng: np.random.Generator,
    heldout: bool,
    count: int | None = None,
    *,
    attachments: bool = True,
) -> tuple[list[Annotation], dict]:
    """Paints insulator strings, with what they hang from and hold, onto a photo in place.

    All strings of one call share a look (shading, disc profile, contours, light); see the
    module's docstring for what is drawn at random.

    Args:
        image: the photo so far, ``float32 [H, W, 3]``, RGB in 0-255; only the pixels drawn on
            change.
        rng: the scene's random generator.
        heldout: draw only the held-out materials (``HELDOUT_MATERIAL_STYLES``), and the
            held-out set's share of defective strings (0.4, training's 0.7).
        count: how many strings to place (fewer where they do not fit); default 1-4 at random.
        attachments: also draw the tower links and conductors at the strings' ends (without
            them only the strings themselves change the photo).

    Returns:
        Per string an ``insulator`` annotation (end fittings included) followed by a ``defect``
        annotation per defective disc, and the truth: ``strings``, ``defects``, a count per
        :data:`DEFECT_KINDS`, ``defect_kinds`` (the kinds present), ``materials``, and, where a
        string was drawn, its look: ``shading``, ``profile``, ``contour`` and ``fittings``.

    Raises:
        ValueError: ``image`` is not ``float32 [H, W, 3]``, or ``count`` is negative.
    """
    if image.dtype != np.float32 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"paint_strings: image must be float32 [H, W, 3], got {image.dtype} {image.shape}"
        )
    if count is not None and count < 0:
        raise ValueError(f"paint_strings: count must be >= 0, got {count}")
    height, width = image.shape[:2]
    wanted = int(rng.choice([1, 1, 2, 2, 3, 4])) if count is None else count
    materials = HELDOUT_MATERIAL_STYLES if heldout else MATERIAL_STYLES
    defect_fraction = _DEFECT_FRACTION if heldout else _TRAINING_DEFECT_FRACTION
    strings = _plan_strings(rng, width, height, materials, defect_fraction, wanted)
    if not strings:
        return [], _strings_truth([], None)

    # OpenCV anti-aliases only 8-bit images: draw on an 8-bit copy, then copy back what changed
    before = np.clip(image, 0, 255).astype(np.uint8)
    drawn = before.copy()
    look = _random_look(rng)
    if attachments and look.fittings != "none":
        for string in strings:
            _draw_attachments(rng, drawn, string)
    annotations = []
    for string in strings:
        box, defect_boxes = _draw_string(rng, drawn, string, look)
        annotations.append(Annotation("insulator", box))
        annotations.extend(Annotation("defect", _clip_box(d, box)) for d in defect_boxes)
    changed = np.any(drawn != before, axis=2)
    image[changed] = drawn[changed]
    return annotations, _strings_truth(strings, look)


def _strings_truth(strings: list[_String], look: _Look | None) -> dict:
    kinds = [kind for s in strings for kind in s.defects.values()]
    truth = {
        "strings": len(strings),
        "defects": len(kinds),
        **{kind: kinds.count(kind) for kind in DEFECT_KINDS},
        "defect_kinds": sorted(set(kinds)),
        "materials": sorted({s.material for s in strings}),
    }
    if look is not None:
        truth.update(
            shading=look.shading,
            profile=look.profile,
            contour=look.contour or "none",
            fittings=look.fittings,
        )
    return truth


def _paint_meters(
    image: np.ndarray,
    rng: np.random.Generator,
    count: int,
    heldout: bool,
    keep_clear: list[tuple[float, float, float, float]],
) -> int:
    """Paints up to ``count`` analog gauges, unlabelled for this model; returns how many."""
    # imported here: training.gauges imports this module to paint strings into its own photos
    from training.gauges import paint_gauges

    _, painted = paint_gauges(image, rng, count, heldout, keep_clear)
    return len(painted)


def _random_look(rng: np.random.Generator) -> _Look:
    shading = str(rng.choice(SHADINGS, p=_SHADING_SHARES))
    profile = str(rng.choice(PROFILES, p=_PROFILE_SHARES))
    contour = None
    if rng.random() < (0.25 if shading == "shaded" else 0.6):
        contour = str(rng.choice(["dark", "body", "colour"], p=[0.5, 0.25, 0.25]))
    rgb = rng.uniform(0, 255, 3) if contour == "colour" else np.full(3, rng.uniform(0, 55))
    return _Look(
        shading=shading,
        profile=profile,
        contour=contour,
        contour_rgb=rgb.astype(np.float32),
        contour_width=float(rng.uniform(1.0, 2.6)),
        fittings=str(rng.choice(FITTINGS, p=_FITTING_SHARES)),
        light=_unit(rng.uniform(-math.pi, math.pi)),
    )


def _palette(rng: np.random.Generator, material: str) -> np.ndarray:
    """A string's body colour: its material's own, or any colour of the material's family."""
    spec = _MATERIALS[material]
    if rng.random() < _OWN_PALETTE_SHARE:
        return _jitter(rng, spec.body, 15)
    if spec.shape == "shed":  # silicone comes in any colour
        hsv = (rng.random(), rng.uniform(0.1, 0.85), rng.uniform(0.25, 0.9))
    elif spec.alpha < 1:  # glass: greens to blues
        hsv = (rng.uniform(0.22, 0.62), rng.uniform(0.25, 0.75), rng.uniform(0.35, 0.8))
    else:  # porcelain: browns, greys, whites
        hsv = [
            (rng.uniform(0.0, 0.09), rng.uniform(0.45, 0.85), rng.uniform(0.25, 0.6)),
            (rng.random(), rng.uniform(0.0, 0.12), rng.uniform(0.35, 0.75)),
            (rng.uniform(0.05, 0.2), rng.uniform(0.0, 0.12), rng.uniform(0.78, 0.97)),
        ][int(rng.integers(3))]
    return np.float32(colorsys.hsv_to_rgb(*hsv)) * 255


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
    # OpenCV puts pixel i's centre at i, COCO's continuous coordinates at i + 0.5
    return np.round((np.asarray(points) - 0.5) * _ONE).astype(np.int32)


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


def _line(
    image: np.ndarray,
    points: np.ndarray,
    colour: tuple | np.ndarray,
    thickness: float,
    closed: bool = False,
) -> None:
    cv2.polylines(
        image, [_fixed(points)], closed, _colour(colour), max(1, round(thickness)), _AA, _SHIFT
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


def paint_clutter(rng: np.random.Generator, image: np.ndarray) -> None:
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


# --- backgrounds other than a photographed sky -------------------------------------------------


def _any_colour(rng: np.random.Generator, low: float = 0.0, high: float = 255.0) -> np.ndarray:
    """A random colour, from greyish to fully saturated."""
    rgb = rng.uniform(low, high, 3).astype(np.float32)
    return rgb.mean() + (rgb - rgb.mean()) * np.float32(rng.uniform(0.15, 1.0))


def _background_plain(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One colour, sometimes with a faint gradient."""
    colour = _any_colour(rng)
    if rng.random() < 0.5:
        return np.full((height, width, 3), np.round(colour), np.uint8)
    return _finish(_gradient(rng, height, width, colour, colour + _jitter(rng, (0, 0, 0), 30)))


def _background_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Two colours mixed by value noise, stripes or tiles at any angle and period."""
    a = _any_colour(rng)
    b = np.clip(a + rng.uniform(-110, 110, 3), 0, 255).astype(np.float32)
    pattern = int(rng.integers(3))
    if pattern == 0:
        cells = int(rng.integers(2, 24))
        mix = np.clip(_noise(rng, height, width, cells, int(rng.integers(1, 4))) * 0.6 + 0.5, 0, 1)
    else:
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        hard = rng.random() < 0.5
        mix = np.zeros((height, width), np.float32)
        for _ in range(pattern):  # stripes, or stripes crossed by stripes: tiles
            angle = rng.uniform(0, math.pi)
            period = rng.uniform(5, 80)
            wave = np.sin(
                (xx * math.cos(angle) + yy * math.sin(angle)) * (2 * math.pi / period)
                + rng.uniform(0, 2 * math.pi)
            )
            wave = (wave > rng.uniform(-0.6, 0.6)).astype(np.float32) if hard else wave * 0.5 + 0.5
            mix = np.maximum(mix, wave)
    return _finish(a + (b - a) * mix[..., None])


def _background_panel(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A wall or cabinet front: a painted surface with panels, doors, rails and pipes on it."""
    base = _any_colour(rng, 30, 230)
    image = _gradient(rng, height, width, base, base + rng.uniform(-40, 40, 3).astype(np.float32))
    image += (_noise(rng, height, width, 6, 2) * rng.uniform(2, 12))[..., None]
    image = _finish(image)
    for _ in range(int(rng.integers(2, 9))):
        x, y = rng.uniform(-0.1, 1.0) * width, rng.uniform(-0.1, 1.0) * height
        w, h = rng.uniform(20, width / 2), rng.uniform(15, height / 2)
        box = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
        colour = _any_colour(rng)
        _fill(image, box, colour)
        if rng.random() < 0.7:
            _line(image, box, colour * rng.uniform(0.3, 0.7), rng.uniform(1, 3), closed=True)
    for _ in range(int(rng.integers(0, 4))):
        y = rng.uniform(0, height)
        _beam(
            image,
            np.array([-5.0, y]),
            np.array([width + 5.0, y + rng.uniform(-40, 40)]),
            rng.uniform(40, 220, 3),
            rng.uniform(3, 16),
        )
    return image


_BACKGROUNDS = {
    "plain": _background_plain,
    "texture": _background_texture,
    "panel": _background_panel,
}


# --- look-alikes --------------------------------------------------------------------------------

_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
)
_WORDS = ("kV", "MPa", "A", "V", "BAR", "L1", "L2", "L3", "N", "DANGER", "No", "kW", "%")


def paint_lookalikes(rng: np.random.Generator, image: np.ndarray, count: int) -> None:
    """Things a detector could take for an insulator or a defect: round lamps and knobs,
    printed numerals and labels, cables, lattice steel and fittings."""
    height, width = image.shape[:2]
    for _ in range(count):
        centre = np.array([rng.uniform(0, width), rng.uniform(0, height)])
        kind = int(rng.integers(6))
        if kind == 0:
            _lamp(rng, image, centre)
        elif kind == 1:
            _knob(rng, image, centre)
        elif kind == 2:
            _label(rng, image, centre)
        elif kind == 3:
            _cables(rng, image, centre)
        elif kind == 4:
            _truss(rng, image, centre)
        else:
            _fitting(rng, image, centre)


def _metal(rng: np.random.Generator) -> np.ndarray:
    return np.float32([1, 1, 1.03]) * rng.uniform(80, 200) * rng.uniform(0.92, 1.08, 3)


def _lamp(rng: np.random.Generator, image: np.ndarray, centre: np.ndarray) -> None:
    """An indicator lamp in its bezel, lit or dark, with a glint."""
    up = np.array([0.0, 1.0])
    r = rng.uniform(4, 30)
    _fill(image, _ellipse(centre, up, r * 1.3, r * 1.3), np.full(3, rng.uniform(20, 200)))
    colours = [(220, 40, 30), (40, 200, 60), (240, 170, 30), (235, 235, 220), (60, 120, 230)]
    colour = _jitter(rng, colours[int(rng.integers(len(colours)))], 20) * rng.uniform(0.45, 1.0)
    _fill(image, _ellipse(centre, up, r, r), colour)
    spot = centre - r * 0.35
    _fill(image, _ellipse(spot, up, r * 0.3, r * 0.25), (255, 255, 255), rng.uniform(0.3, 0.8))


def _knob(rng: np.random.Generator, image: np.ndarray, centre: np.ndarray) -> None:
    """A rotary knob or switch: a skirt with tick marks, a body and a pointer line."""
    up = np.array([0.0, 1.0])
    r = rng.uniform(6, 35)
    ink = np.full(3, 20.0) if rng.random() < 0.6 else np.full(3, 235.0)
    if rng.random() < 0.6:
        _fill(image, _ellipse(centre, up, r * 1.25, r * 1.25), rng.uniform(0, 255, 3))
    for angle in np.linspace(0, 2 * math.pi, int(rng.integers(4, 12)), endpoint=False):
        d = _unit(angle + rng.uniform(-0.1, 0.1))
        _line(image, np.array([centre + d * r * 1.35, centre + d * r * 1.6]), ink, 1.5)
    body = np.full(3, rng.uniform(10, 90)) if rng.random() < 0.6 else rng.uniform(0, 255, 3)
    _fill(image, _ellipse(centre, up, r, r), body)
    d = _unit(rng.uniform(-math.pi, math.pi))
    _line(image, np.array([centre, centre + d * r * 0.9]), (240, 240, 240), max(1.0, r / 8))


def _label(rng: np.random.Generator, image: np.ndarray, centre: np.ndarray) -> None:
    """Printed numerals or a word, on a plate or straight on the surface."""
    form = int(rng.integers(4))
    if form == 0:
        text = str(int(rng.integers(0, 10000)))
    elif form == 1:
        text = f"{rng.uniform(0, 100):.1f}"
    elif form == 2:
        text = f"{int(rng.integers(0, 1000))} {_WORDS[int(rng.integers(len(_WORDS)))]}"
    else:
        text = _WORDS[int(rng.integers(len(_WORDS)))]
    font = _FONTS[int(rng.integers(len(_FONTS)))]
    scale = rng.uniform(0.35, 1.6)
    thickness = int(rng.integers(1, 4))
    (w, h), base = cv2.getTextSize(text, font, scale, thickness)
    x, y = int(centre[0] - w / 2), int(centre[1] + h / 2)
    ink = (20, 20, 20) if rng.random() < 0.6 else tuple(float(v) for v in rng.uniform(0, 255, 3))
    if rng.random() < 0.6:
        pad = rng.uniform(2, 8)
        plate = np.array(
            [
                [x - pad, y - h - pad],
                [x + w + pad, y - h - pad],
                [x + w + pad, y + base + pad],
                [x - pad, y + base + pad],
            ]
        )
        colours = [(235, 235, 230), (240, 200, 40), (200, 40, 40), (40, 90, 170)]
        _fill(image, plate, _jitter(rng, colours[int(rng.integers(len(colours)))], 15))
        if rng.random() < 0.5:
            _line(image, plate, (25, 25, 25), 1, closed=True)
    cv2.putText(image, text, (x, y), font, scale, ink, thickness, _AA)


def _cables(rng: np.random.Generator, image: np.ndarray, centre: np.ndarray) -> None:
    """A cable or a bundle of them, curving through the frame."""
    height, width = image.shape[:2]
    a = np.array([rng.uniform(-0.2, 1.2) * width, rng.uniform(-0.2, 1.2) * height])
    b = np.array([rng.uniform(-0.2, 1.2) * width, rng.uniform(-0.2, 1.2) * height])
    t = np.linspace(0, 1, 32)[:, None]
    curve = (1 - t) ** 2 * a + 2 * t * (1 - t) * centre + t**2 * b
    thickness = rng.uniform(2, 10)
    colours = [(25, 25, 25), (90, 90, 90), (230, 110, 30), (200, 200, 40), (40, 120, 60)]
    shift = np.array([thickness * 1.2, thickness * 1.2]) * _unit(rng.uniform(0, math.pi))
    for k in range(int(rng.integers(1, 5))):
        colour = _jitter(rng, colours[int(rng.integers(len(colours)))], 15)
        _line(image, curve + shift * k, colour, thickness)
        _line(image, curve + shift * k - thickness * 0.2, colour * 1.4 + 20, max(1, thickness / 5))


def _truss(rng: np.random.Generator, image: np.ndarray, centre: np.ndarray) -> None:
    """A section of lattice steel: two chords with zigzag bracing, a repeating pattern."""
    height, width = image.shape[:2]
    u = _unit(rng.uniform(-math.pi, math.pi))
    n = np.array([-u[1], u[0]])
    length = rng.uniform(0.3, 1.2) * (width + height) / 2
    depth = rng.uniform(10, 50)
    steel = _metal(rng) if rng.random() < 0.7 else rng.uniform(40, 220, 3)
    thick = rng.uniform(2, 6)
    a = centre - u * length / 2
    for side in (0.0, 1.0):
        _beam(image, a + n * depth * side, a + u * length + n * depth * side, steel, thick)
    bay = depth * rng.uniform(0.8, 1.6)
    for k in range(int(length // bay)):
        p = a + u * bay * k + n * depth * (k % 2)
        q = a + u * bay * (k + 1) + n * depth * ((k + 1) % 2)
        _beam(image, p, q, steel * 0.9, max(1.5, thick - 1))


def _fitting(rng: np.random.Generator, image: np.ndarray, centre: np.ndarray) -> None:
    """Hardware: a hex bolt, a shackle, a clamp with its bolts, or a length of chain."""
    metal = _metal(rng)
    u = _unit(rng.uniform(-math.pi, math.pi))
    kind = int(rng.integers(4))
    if kind == 0:
        r = rng.uniform(4, 14)
        hexagon = centre + r * np.array(
            [_unit(a) for a in np.linspace(0, 2 * math.pi, 6, endpoint=False) + rng.uniform(0, 1)]
        )
        _fill(image, hexagon, metal)
        _fill(image, _ellipse(centre, u, r * 0.5, r * 0.5), metal * 0.6)
    elif kind == 1:
        r = rng.uniform(6, 20)
        _line(image, _ellipse(centre, u, r * 0.6, r), metal, max(2.0, r / 4), closed=True)
    elif kind == 2:
        a, b = rng.uniform(8, 30), rng.uniform(5, 14)
        _fill(image, _rect(centre, u, a, b), metal)
        for side in (-1, 1):
            _fill(
                image,
                _ellipse(centre + _perp(u) * side * a * 0.7, u, b * 0.4, b * 0.4),
                metal * 0.5,
            )
    else:
        size = rng.uniform(4, 10)
        for k in range(int(rng.integers(5, 13))):
            link = centre + u * size * 1.5 * k
            across, along = (size * 0.45, size) if k % 2 else (size * 0.15, size)
            _line(image, _ellipse(link, u, across, along), metal, max(1.5, size / 4), closed=True)


def _perp(u: np.ndarray) -> np.ndarray:
    return np.array([-u[1], u[0]])


# --- insulator strings --------------------------------------------------------------------------


def _plan_strings(
    rng: np.random.Generator,
    width: int,
    height: int,
    materials: tuple[str, ...],
    defect_fraction: float,
    wanted: int,
) -> list[_String]:
    """Chooses up to ``wanted`` non-overlapping strings that lie wholly inside the photo."""
    mode = str(rng.choice(["suspension", "suspension", "tension", "vee", "any"]))
    shared = str(rng.choice(materials))
    parallel = rng.random() < 0.4
    palettes: dict[str, np.ndarray] = {}
    strings: list[_String] = []
    for k in range(wanted):
        material = shared if rng.random() < 0.75 else str(rng.choice(materials))
        if material not in palettes:
            palettes[material] = _palette(rng, material)
        for _attempt in range(25):
            if parallel and strings:
                candidate = _parallel_copy(
                    rng, strings[-1], material, palettes[material], defect_fraction
                )
            else:
                candidate = _random_string(
                    rng, width, height, material, palettes[material], mode, k, defect_fraction
                )
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


def _random_defects(rng: np.random.Generator, discs: int, shed: bool) -> dict[int, str]:
    count = 1 if rng.random() < 0.7 else 2
    # composite: only large sheds fail, a missing small one would hardly be visible
    candidates = np.arange(0, discs, 2 if shed else 1)
    picks = rng.choice(candidates, size=min(count, len(candidates)), replace=False)
    if len(picks) == 2 and abs(int(picks[0]) - int(picks[1])) < 2:
        picks = picks[:1]
    return {int(i): str(rng.choice(DEFECT_KINDS)) for i in picks}


def _random_string(
    rng: np.random.Generator,
    width: int,
    height: int,
    material: str,
    body: np.ndarray,
    mode: str,
    k: int,
    defect_fraction: float,
) -> _String | None:
    spec = _MATERIALS[material]
    defective = rng.random() < defect_fraction
    u = _unit(_axis(rng, mode, k))
    radius_ratio = rng.uniform(*spec.radius)
    thickness_ratio = rng.uniform(*spec.thickness)
    if rng.random() < _VIEW_SHARE:  # seen from below: each disc's face shows as a wider ellipse
        thickness_ratio += rng.uniform(0.1, 0.45)
    taper = rng.uniform(0.75, 1.3) if rng.random() < _TAPER_SHARE else 1.0
    fitting_ratio = rng.uniform(1.2, 2.2) if spec.shape == "shed" else rng.uniform(0.7, 1.1)
    # the smallest disc of a tapered string keeps a defect's pitch
    min_pitch = _DEFECT_MIN_PITCH / min(1.0, taper) if defective else _MIN_PITCH
    mean_scale, widest = (1 + taper) / 2, radius_ratio * max(1.0, taper)
    discs = int(rng.integers(8 if spec.shape == "shed" else 5, 21))
    while discs >= 5:
        span = (discs + 2 * fitting_ratio) * mean_scale
        # the string's box: its length along u plus its diameter along n, both scale with pitch
        extent_x = span * abs(u[0]) + 2 * widest * abs(u[1])
        extent_y = span * abs(u[1]) + 2 * widest * abs(u[0])
        high = min(_MAX_PITCH, (width - 2 * _MARGIN) / extent_x, (height - 2 * _MARGIN) / extent_y)
        low = max(min_pitch, _MIN_LENGTH / span)
        if low <= high:
            break
        discs -= 1
    else:
        return None
    pitch = low * (high / low) ** rng.random()  # log-uniform: small and large strings alike
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
        thickness=radius * thickness_ratio,
        fitting=fitting_ratio * pitch,
        material=material,
        body=body,
        taper=taper,
        reverse=bool(rng.random() < 0.5),
    )
    if defective:
        string.defects = _random_defects(rng, discs, string.shed)
    return string


def _parallel_copy(
    rng: np.random.Generator,
    other: _String,
    material: str,
    body: np.ndarray,
    defect_fraction: float,
) -> _String:
    """The next string of a double string or of the next phase: same size, side by side."""
    spacing = other.widest * rng.uniform(2.3, 5.0) * (1 if rng.random() < 0.5 else -1)
    shift = other.n * spacing + other.u * rng.normal(0, other.pitch)
    spec = _MATERIALS[material]
    string = _String(
        start=other.start + shift,
        u=other.u.copy(),
        discs=other.discs,
        pitch=other.pitch,
        radius=other.radius,
        thickness=other.thickness
        * float(np.mean(spec.thickness))
        / float(np.mean(_MATERIALS[other.material].thickness)),
        fitting=other.fitting,
        material=material,
        body=body,
        taper=other.taper,
        reverse=other.reverse,
    )
    if other.pitch * min(1.0, other.taper) >= _DEFECT_MIN_PITCH and rng.random() < defect_fraction:
        string.defects = _random_defects(rng, other.discs, string.shed)
    return string


def _corners(string: _String) -> np.ndarray:
    r = string.widest
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
    return bool(gap < a.widest + b.widest + 6)


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


def _contour_colour(look: _Look, string: _String) -> np.ndarray | None:
    if look.contour is None:
        return None
    return string.body * 0.35 if look.contour == "body" else look.contour_rgb


def _draw_string(
    rng: np.random.Generator, image: np.ndarray, string: _String, look: _Look
) -> tuple[tuple[float, float, float, float], list[tuple[float, float, float, float]]]:
    """Draws a string; returns its box and the boxes of its defects (``x, y, w, h``)."""
    u, n = string.u, string.n
    lit = 1.0 if float(n @ look.light) >= 0 else -1.0
    metal = _metal(rng)
    contour = _contour_colour(look, string)
    stroke = max(1, round(look.contour_width))
    shaded = look.shading == "shaded"
    extent = _Extent()

    def fill(
        points: np.ndarray, colour: tuple | np.ndarray, alpha: float = 1.0, outlined: bool = False
    ) -> None:
        _fill(image, points, tuple(colour), alpha)
        if outlined and contour is not None:
            _line(image, points, contour, stroke, closed=True)
            extent.stroke(points, stroke)
        else:
            extent.fill(points)

    # pin (disc strings) or fibreglass rod under silicone (composite), end to end
    first, last = string.centre(0), string.centre(string.discs - 1)
    middle, half_length = (first + last) / 2, float(np.linalg.norm(last - first)) / 2
    if look.fittings == "none":  # the pin or rod then ends past the end discs' places
        half_length += string.pitch * max(1.0, string.taper) / 2
    if string.shed:
        rod = string.radius * 0.16 * min(1.0, string.taper)
        fill(_rect(middle, u, rod, half_length), string.body * 0.7, outlined=True)
        if shaded:
            fill(_rect(middle + n * lit * rod * 0.35, u, rod * 0.35, half_length), string.body)
    else:
        pin = max(1.2, string.radius * 0.09 * min(1.0, string.taper))
        fill(_rect(middle, u, pin, half_length + 2), metal * 0.7)
    if look.fittings == "full":
        _draw_fittings(string, metal, lit, shaded, fill)
    elif look.fittings == "simple":
        for end, scale, sign in ((string.start, 1.0, 1.0), (string.end, string.taper, -1.0)):
            f = string.fitting * scale
            link = _rect(end + u * sign * f / 2, u, string.radius * scale * 0.14, f / 2)
            fill(link, metal, outlined=True)

    order = range(string.discs - 1, -1, -1) if string.reverse else range(string.discs)
    for i in order:
        kind = string.defects.get(i)
        c = string.centre(i)
        r, t, p = string.disc_radius(i), string.disc_thickness(i), string.disc_pitch(i)
        if not string.shed:
            # cap on top of the shell, kept when the shell is gone (that is how they fail)
            cap = c - u * (min(t, 0.4 * p) * 0.75 + p * 0.12)
            fill(_rect(cap, u, r * 0.22, p * 0.16), metal * 0.85, outlined=True)
            if shaded:
                fill(_rect(cap + n * lit * r * 0.08, u, r * 0.07, p * 0.14), metal * 1.2)
        if kind == "missing":
            if string.shed:  # the torn root of the shed stays on the rod
                fill(_ellipse(c, u, r * 0.3, t * 1.3), string.body * 0.45)
            continue
        if kind == "broken":
            _draw_broken_disc(rng, image, string, i, look, lit, extent)
            continue
        for points, colour, alpha, outlined in _disc_layers(string, i, look, lit):
            fill(points, colour, alpha, outlined)
        if kind == "cracked":
            _draw_cracks(rng, image, string, i, extent)
        elif kind == "burnt":
            _draw_burn(rng, image, string, i, extent)

    height, width = image.shape[:2]
    defect_boxes = []
    for i in sorted(string.defects):
        corners = _rect(
            string.centre(i), u, string.radius * string.scale(i), string.disc_pitch(i) / 2
        )
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        defect_boxes.append(
            (float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))
        )
    return extent.box(width, height), defect_boxes


def _draw_fittings(
    string: _String, metal: np.ndarray, lit: float, shaded: bool, fill: Callable[..., None]
) -> None:
    """Clevis and yoke at the tower end, socket and conductor clamp at the other."""
    u, n = string.u, string.n
    r, f = string.radius, string.fitting
    start = string.start
    fill(_rect(start + u * f * 0.1, u, r * 0.5, f * 0.1), metal * 0.75, outlined=True)  # yoke
    fill(_ellipse(start + u * f * 0.35, u, r * 0.2, f * 0.2), metal * 0.8, outlined=True)  # eye
    fill(_ellipse(start + u * f * 0.35, u, r * 0.09, f * 0.09), metal * 0.45)
    link = start + u * f * 0.775
    fill(_rect(link, u, r * 0.16, f * 0.25), metal, outlined=True)
    if shaded:
        fill(_rect(link + n * lit * r * 0.06, u, r * 0.05, f * 0.22), metal * 1.25)
    # the conductor end is nearer or farther by the string's taper
    r, f = r * string.taper, f * string.taper
    end = string.end
    fill(_rect(end - u * f * 0.75, u, r * 0.16, f * 0.27), metal, outlined=True)  # socket
    clamp = end - u * f * 0.25
    fill(_rect(clamp, u, r * 0.55, f * 0.25), metal * 0.8, outlined=True)  # clamp
    fill(_rect(clamp - u * f * 0.08, u, r * 0.5, f * 0.08), metal * 1.15)
    for side in (-1, 1):
        fill(_ellipse(clamp + n * side * r * 0.32, u, r * 0.08, r * 0.08), metal * 0.45)


def _outline(
    profile: str, centre: np.ndarray, u: np.ndarray, across: float, along: float
) -> np.ndarray:
    """A disc's outline of the given profile, centred, ``across`` by ``along`` semi-axes."""
    unit = _PROFILE_OUTLINES[profile]
    n = np.array([-u[1], u[0]])
    return centre + unit[:, :1] * (n * across) + unit[:, 1:] * (u * along)


def _disc_layers(
    string: _String, i: int, look: _Look, lit: float
) -> list[tuple[np.ndarray, np.ndarray, float, bool]]:
    """A disc seen side-on, back to front: ``(outline, colour, alpha, contoured)`` layers.

    Flat: one solid shape. Two-tone: a dark underside and a lit top. Shaded: a dark ribbed
    underside, a shaded top, highlights towards the light and a specular spot.
    """
    spec = _MATERIALS[string.material]
    u, n = string.u, string.n
    c = string.centre(i)
    r, t = string.disc_radius(i), string.disc_thickness(i)
    body = string.body
    a = spec.alpha
    profile = look.profile
    if look.shading == "flat":
        return [(_outline(profile, c, u, r, t), body, a, True)]
    under = (_outline(profile, c + u * t * 0.3, u, r * 0.98, t * 0.85), body * 0.45, a, True)
    top = (_outline(profile, c - u * t * 0.1, u, r, t * 0.8), body * 0.8, a, True)
    if look.shading == "two_tone":
        return [under, (top[0], body, a, True)]
    glint = body + (255 - body) * 0.7
    layers = [under]
    if spec.shape == "bell":  # the ribs under the shell
        for k, scale in enumerate((0.78, 0.56)):
            rib = _ellipse(c + u * t * (0.55 + 0.1 * k), u, r * scale, t * 0.45)
            layers.append((rib, body * (0.3 + 0.12 * k), a, False))
    layers.append(top)
    for k, (scale, mix) in enumerate(((0.78, 0.15), (0.55, 0.35))):
        centre = c - u * t * (0.15 + 0.1 * k) + n * lit * r * (0.12 + 0.1 * k)
        colour = body + (glint - body) * mix * spec.gloss + 20 * (k + 1) * (1 - spec.gloss)
        layers.append((_ellipse(centre, u, r * scale, t * 0.7 * scale), colour, a, False))
    spot = c - u * t * 0.35 + n * lit * r * 0.5
    layers.append((_ellipse(spot, u, r * 0.16, t * 0.18 + 0.5), glint, 0.9 * spec.gloss, False))
    return layers


def _draw_broken_disc(
    rng: np.random.Generator,
    image: np.ndarray,
    string: _String,
    i: int,
    look: _Look,
    lit: float,
    extent: _Extent,
) -> None:
    """A disc with a chunk knocked out of one side: jagged dark fracture edge and a crack."""
    u, n = string.u, string.n
    c = string.centre(i)
    r, t = string.disc_radius(i), string.disc_thickness(i)
    height, width = image.shape[:2]
    x0, y0 = np.maximum(np.floor(c - r - t - 4).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(c + r + t + 5).astype(int), (width, height))
    before = image[y0:y1, x0:x1].copy()
    contour = _contour_colour(look, string)
    stroke = max(1, round(look.contour_width))
    layers = _disc_layers(string, i, look, lit)
    for points, colour, alpha, outlined in layers:
        _fill(image, points, tuple(colour), alpha)
        if outlined and contour is not None:
            _line(image, points, contour, stroke, closed=True)

    side = 1.0 if rng.random() < 0.5 else -1.0
    along = t * 1.15
    centre = c + u * t * 0.15

    def rim(phi: float) -> np.ndarray:
        return centre + n * side * r * math.cos(phi) + u * along * math.sin(phi)

    # a thin shed needs a deeper bite than a thick disc to show at the detector's scale
    low = 1.15 if string.shed else 0.9
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
    roi[:] = np.rint(roi * (1 - keep) + before * keep)
    # what is left of the disc: its layers' points outside the chunk (the cut runs along the jag)
    removed = Polygon(chunk)
    for points, _colour, _alpha, outlined in layers:
        left = points[~removed.contains_points(points)]
        if len(left) and outlined and contour is not None:
            extent.stroke(left, stroke)
        elif len(left):
            extent.fill(left)

    # the exposed fracture face: a pale band inside the break (glass glints, silicone is dull)
    body = string.body
    face = body * 0.6 if string.shed else body + (np.float32([240, 235, 225]) - body) * 0.6
    taper = np.array([0, 1, 1, 1, 1, 1, 0], np.float32)[:, None]
    inner = jag - n * side * r * rng.uniform(0.12, 0.2) * taper
    _fill(image, np.vstack([jag, inner[::-1]]), face)
    dark = body * 0.25
    edge = max(1, round(max(1.0, r / 14)))
    _line(image, jag, dark, edge)
    _line(image, inner, body * 0.5, 1)
    extent.stroke(jag, edge)
    extent.stroke(inner, 1)
    start = inner[int(rng.integers(2, 5))]
    target = c - n * side * r * rng.uniform(0.1, 0.5) + u * t * rng.uniform(-0.5, 0.5)
    crack = start + (target - start) * np.linspace(0, 1, 4)[:, None]
    crack[1:-1] += n * rng.uniform(-0.08, 0.08, (2, 1)) * r
    width_crack = max(1, round(max(1.0, edge * 0.7)))
    _line(image, crack, dark, width_crack)
    extent.stroke(crack, width_crack)


def _draw_cracks(
    rng: np.random.Generator, image: np.ndarray, string: _String, i: int, extent: _Extent
) -> None:
    """One or two jagged crack lines across the disc, dark (pale on a dark disc)."""
    u, n = string.u, string.n
    c = string.centre(i)
    r, t = string.disc_radius(i), string.disc_thickness(i)
    body = string.body
    luma = float(body @ np.float32([0.3, 0.59, 0.11]))
    ink = body * 0.15 if luma > 80 else body + (np.float32([235, 230, 220]) - body) * 0.75
    stroke = max(1, round(min(r / 10, t * 0.6)))
    for _ in range(int(rng.integers(1, 3))):
        side = 1.0 if rng.random() < 0.5 else -1.0
        steps = int(rng.integers(4, 8))
        across = np.linspace(side * rng.uniform(0.7, 0.9), -side * rng.uniform(-0.1, 0.8), steps)
        along = rng.uniform(-0.35, 0.35, steps)
        points = c + across[:, None] * r * n + along[:, None] * t * u
        _line(image, points, ink, stroke)
        extent.stroke(points, stroke)


def _draw_burn(
    rng: np.random.Generator, image: np.ndarray, string: _String, i: int, extent: _Extent
) -> None:
    """A flashover's mark: overlapping sooty black blobs over part of the disc."""
    u, n = string.u, string.n
    c = string.centre(i)
    r, t = string.disc_radius(i), string.disc_thickness(i)
    soot = np.float32([30, 26, 22]) * rng.uniform(0.5, 1.4)
    middle = rng.uniform(-0.3, 0.3)
    for _ in range(int(rng.integers(2, 5))):
        across, along = rng.uniform(0.3, 0.55), rng.uniform(0.45, 0.7)
        wobble = 1 + rng.uniform(-0.15, 0.15, (len(_COS), 1))  # ragged soot, not an ellipse
        reach = 0.95 - across * 1.15
        offset = float(np.clip(middle + rng.normal(0, 0.12), -reach, reach))
        points = (
            c
            + n * (offset * r)
            + u * (t * rng.uniform(-0.1, 0.15))
            + wobble * (_COS * (n * across * r) + _SIN * (u * along * t))
        )
        _fill(image, points, soot, rng.uniform(0.55, 0.85))
        extent.fill(points)


# --- photometric ------------------------------------------------------------------------------


def _photometric(rng: np.random.Generator, canvas: np.ndarray) -> np.ndarray:
    """The camera: exposure, contrast, gamma and colour cast through one lookup table; blur or
    motion blur; lost resolution; sensor noise. Some photos stay a clean drawing."""
    image = np.clip(canvas, 0, 255).astype(np.uint8)
    if rng.random() < _CLEAN_SHARE:
        return image
    height, width = image.shape[:2]
    levels = np.arange(256, dtype=np.float32)[:, None] / 255
    gain = rng.uniform(0.75, 1.2) * rng.uniform(0.92, 1.08, 3).astype(np.float32)
    contrast = rng.uniform(0.75, 1.2)
    curve = (levels - 0.5) * contrast + 0.5
    curve = np.clip(curve * gain, 0, 1) ** rng.uniform(0.8, 1.25)
    table = np.clip(curve * 255 + 0.5, 0, 255).astype(np.uint8).reshape(256, 1, 3)
    image = cv2.LUT(image, table)
    blur = rng.random()
    if blur < 0.3:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.6))
    elif blur < 0.38:  # camera shake
        size = int(rng.integers(3, 10))
        kernel = np.zeros((size, size), np.float32)
        d = _unit(rng.uniform(0, math.pi)) * (size - 1) / 2
        middle = np.array([(size - 1) / 2, (size - 1) / 2])
        _line(kernel, np.array([middle - d, middle + d]), (1.0, 1.0, 1.0), 1)
        image = cv2.filter2D(image, -1, kernel / kernel.sum())
    if rng.random() < 0.12:  # a smaller sensor, or a crop of a larger photo, scaled up
        factor = rng.uniform(0.4, 0.75)
        small = cv2.resize(
            image, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_AREA
        )
        image = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    sigma = rng.uniform(0.5, 6.0) if rng.random() < 0.85 else rng.uniform(6.0, 14.0)
    if rng.random() < 0.3:
        noise = rng.standard_normal(image.shape, dtype=np.float32) * sigma
    else:
        noise = cv2.cvtColor(
            rng.standard_normal(image.shape[:2], dtype=np.float32) * sigma, cv2.COLOR_GRAY2RGB
        )
    return cv2.add(image, noise, dtype=cv2.CV_8U)
