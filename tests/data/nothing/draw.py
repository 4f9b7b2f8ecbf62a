"""Draws the photos of nothing in this folder: scenes in which neither demo detector has
anything to find, of several kinds, some with look-alikes (round knobs, lamps, text, wires).

Drawn here, not by the training generators, so that they share none of training's code; kept as
files so that a change of numpy's or PIL's drawing does not change the set under the tests.
Run ``python tests/data/nothing/draw.py`` from the repository root to draw them again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

__all__ = ["KINDS", "draw", "main"]

FOLDER = Path(__file__).resolve().parent
SEED = 41
HEIGHT, WIDTH = 420, 560
FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _smooth_noise(rng: np.random.Generator, scale: int, height: int, width: int) -> np.ndarray:
    """Noise in [0, 1] varying over about ``scale`` pixels (coarse noise, bicubically enlarged)."""
    coarse = rng.random((height // scale + 2, width // scale + 2)).astype(np.float32)
    image = Image.fromarray(coarse).resize(
        ((width // scale + 2) * scale, (height // scale + 2) * scale), Image.Resampling.BICUBIC
    )
    return np.clip(np.asarray(image)[:height, :width], 0.0, 1.0)


def _vertical_gradient(top: tuple, bottom: tuple, height: int, width: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    return np.broadcast_to((1 - t) * np.array(top) + t * np.array(bottom), (height, width, 3))


def _to_image(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def wall(rng: np.random.Generator) -> Image.Image:
    """A painted wall lit from one side, with the paint's mottle."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    light = 170 - 50 * xs / WIDTH - 15 * ys / HEIGHT
    mottle = 12 * (_smooth_noise(rng, 24, HEIGHT, WIDTH) - 0.5)
    grain = rng.normal(0, 2.5, (HEIGHT, WIDTH))
    grey = (light + mottle + grain)[..., None]
    return _to_image(grey * np.array([0.92, 0.97, 1.0]))


def bricks(rng: np.random.Generator) -> Image.Image:
    """A brick wall: rows of bricks of varied red, light mortar between them."""
    image = Image.new("RGB", (WIDTH, HEIGHT), (190, 185, 175))
    draw = ImageDraw.Draw(image)
    brick_w, brick_h, joint = 64, 22, 4
    for row, top in enumerate(range(-4, HEIGHT, brick_h + joint)):
        offset = -(brick_w // 2) * (row % 2)
        for left in range(offset, WIDTH, brick_w + joint):
            red = rng.normal((150, 70, 55), (18, 10, 8))
            draw.rectangle(
                (left, top, left + brick_w - 1, top + brick_h - 1),
                fill=tuple(int(v) for v in np.clip(red, 0, 255)),
            )
    pixels = np.asarray(image, dtype=np.float32)
    pixels += 25 * (_smooth_noise(rng, 40, HEIGHT, WIDTH)[..., None] - 0.5)
    pixels += rng.normal(0, 6, pixels.shape)
    return _to_image(pixels)


def sky(rng: np.random.Generator) -> Image.Image:
    """Blue sky with soft clouds."""
    pixels = _vertical_gradient((70, 125, 200), (175, 205, 235), HEIGHT, WIDTH).copy()
    cloud = (
        _smooth_noise(rng, 90, HEIGHT, WIDTH) * 0.6 + _smooth_noise(rng, 30, HEIGHT, WIDTH) * 0.4
    )
    cover = np.clip((cloud - 0.5) * 3.0, 0.0, 1.0)[..., None]
    pixels = (1 - cover) * pixels + cover * np.array([242.0, 244.0, 248.0])
    return _to_image(pixels + rng.normal(0, 1.5, pixels.shape))


def ground(rng: np.random.Generator) -> Image.Image:
    """Gravel and earth seen from above: brown mottle, pebbles, their shadows."""
    earth = 0.6 * _smooth_noise(rng, 50, HEIGHT, WIDTH) + 0.4 * _smooth_noise(rng, 8, HEIGHT, WIDTH)
    pixels = (70 + 70 * earth)[..., None] * np.array([1.25, 1.0, 0.72])
    image = _to_image(pixels + rng.normal(0, 8, pixels.shape))
    draw = ImageDraw.Draw(image)
    for _ in range(260):
        x, y = rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT)
        rx, ry = rng.uniform(2, 9), rng.uniform(2, 7)
        grey = rng.uniform(90, 200)
        draw.ellipse((x - rx + 2, y - ry + 2, x + rx + 2, y + ry + 2), fill=(45, 38, 30))
        pebble = (int(grey), int(grey * 0.95), int(grey * 0.85))
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=pebble)
    return image.filter(ImageFilter.GaussianBlur(0.6))


def wires(rng: np.random.Generator) -> Image.Image:
    """Overcast sky crossed by power lines and a bare wooden pole, with no insulator on it."""
    pixels = _vertical_gradient((165, 170, 178), (205, 208, 212), HEIGHT, WIDTH)
    image = _to_image(pixels + 6 * (_smooth_noise(rng, 60, HEIGHT, WIDTH)[..., None] - 0.5))
    draw = ImageDraw.Draw(image)
    pole_x = int(WIDTH * 0.7)
    draw.rectangle((pole_x - 9, 0, pole_x + 9, HEIGHT), fill=(95, 75, 55))
    xs = np.arange(-20, WIDTH + 21, 4, dtype=np.float32)
    for k, height in enumerate((60.0, 110.0, 160.0)):
        sag = 25 + 10 * k
        ys = height + sag * (1 - ((xs - WIDTH / 2) / (WIDTH / 2 + 20)) ** 2)
        draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=(35, 35, 40), width=2)
    return image


def pipes(rng: np.random.Generator) -> Image.Image:
    """Pipework on a wall: shaded pipes joined by bolted round flanges, and a valve's handwheel
    with spokes, round look-alikes of a meter's face."""
    image = wall(rng)
    draw = ImageDraw.Draw(image)

    def pipe(box: tuple[int, int, int, int], horizontal: bool) -> None:
        left, top, right, bottom = box
        across = bottom - top if horizontal else right - left
        for k in range(across):
            light = 150 + 80 * np.sin(np.pi * (k + 0.5) / across) - 40 * k / across
            colour = (int(light * 0.75), int(light * 0.8), int(light * 0.85))
            if horizontal:
                draw.line((left, top + k, right, top + k), fill=colour)
            else:
                draw.line((left + k, top, left + k, bottom), fill=colour)

    pipe((0, 120, WIDTH, 160), horizontal=True)
    pipe((380, 160, 420, HEIGHT), horizontal=False)
    pipe((0, 300, 380, 330), horizontal=True)
    for x, y, radius in ((150, 140, 34), (400, 250, 32), (250, 315, 26)):
        draw.ellipse(
            (x - radius, y - radius, x + radius, y + radius),
            fill=(120, 125, 130),
            outline=(60, 60, 65),
            width=2,
        )
        for bolt in range(8):
            angle = 2 * np.pi * bolt / 8
            bx, by = x + 0.75 * radius * np.cos(angle), y + 0.75 * radius * np.sin(angle)
            draw.ellipse((bx - 3, by - 3, bx + 3, by + 3), fill=(70, 70, 70))
    # The handwheel of a valve on the lower pipe: rim, five spokes, hub.
    x, y, radius = 100, 240, 46
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=(160, 30, 30), width=7)
    for spoke in range(5):
        angle = 2 * np.pi * spoke / 5 + rng.uniform(0, 1)
        tip = (x + radius * np.cos(angle), y + radius * np.sin(angle))
        draw.line((x, y, *tip), fill=(150, 28, 28), width=5)
    draw.ellipse((x - 9, y - 9, x + 9, y + 9), fill=(110, 20, 20))
    draw.rectangle((x - 6, y + 9, x + 6, 300), fill=(100, 100, 105))
    return image.filter(ImageFilter.GaussianBlur(0.5))


def _label(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, size: int) -> None:
    font = ImageFont.truetype(str(FONTS / "DejaVuSans-Bold.ttf"), size)
    draw.text(xy, text, fill=(25, 25, 25), font=font, anchor="mm")


def panel(rng: np.random.Generator) -> Image.Image:
    """A control cabinet's door: round knobs with a pointer mark, indicator lamps, push buttons,
    switches, a digital display and printed labels; the round look-alikes of a meter."""
    base = np.array([196.0, 198.0, 192.0])
    shade = 10 * (_smooth_noise(rng, 80, HEIGHT, WIDTH)[..., None] - 0.5)
    image = _to_image(base + shade + rng.normal(0, 2, (HEIGHT, WIDTH, 3)))
    draw = ImageDraw.Draw(image)
    for x, y in ((14, 14), (WIDTH - 14, 14), (14, HEIGHT - 14), (WIDTH - 14, HEIGHT - 14)):
        draw.ellipse((x - 6, y - 6, x + 6, y + 6), fill=(150, 150, 150), outline=(90, 90, 90))
        draw.line((x - 4, y, x + 4, y), fill=(70, 70, 70), width=2)
    names = ("PUMP 1", "PUMP 2", "FAN", "HEATER")
    for k, name in enumerate(names):
        x = 90 + k * 125
        # A rotary knob: a dark disc with a white pointer mark, its positions printed around it.
        angle = np.deg2rad(rng.uniform(-120, 120))
        draw.ellipse((x - 30, 85, x + 30, 145), fill=(40, 40, 44), outline=(15, 15, 15), width=2)
        tip = (x + 24 * np.sin(angle), 115 - 24 * np.cos(angle))
        draw.line((x, 115, *tip), fill=(235, 235, 235), width=4)
        _label(draw, (x - 38, 70), "OFF", 11)
        _label(draw, (x + 38, 70), "ON", 11)
        _label(draw, (x, 160), name, 14)
        # An indicator lamp: a coloured dome in a chrome ring, with its highlight.
        colour = [(220, 40, 35), (40, 190, 70), (240, 190, 30), (235, 235, 225)][k]
        draw.ellipse((x - 22, 190, x + 22, 234), fill=(170, 170, 175), outline=(80, 80, 80))
        draw.ellipse((x - 16, 196, x + 16, 228), fill=colour)
        draw.ellipse((x - 9, 201, x - 1, 209), fill=(255, 255, 250))
        _label(draw, (x, 250), "RUN" if k % 2 == 0 else "FAULT", 12)
        # Push buttons and a toggle switch.
        draw.rectangle((x - 40, 280, x - 6, 310), fill=(30, 110, 45), outline=(10, 10, 10))
        draw.rectangle((x + 6, 280, x + 40, 310), fill=(170, 30, 30), outline=(10, 10, 10))
        _label(draw, (x - 23, 322), "START", 10)
        _label(draw, (x + 23, 322), "STOP", 10)
        draw.rectangle((x - 10, 345, x + 10, 390), fill=(120, 120, 125), outline=(60, 60, 60))
        draw.rectangle((x - 4, 352, x + 4, 368), fill=(230, 230, 230))
    draw.rectangle((WIDTH // 2 - 90, 18, WIDTH // 2 + 90, 52), fill=(20, 30, 20))
    font = ImageFont.truetype(str(FONTS / "DejaVuSansMono-Bold.ttf"), 24)
    draw.text((WIDTH // 2, 35), "0173.4 kWh", fill=(90, 240, 110), font=font, anchor="mm")
    return image.filter(ImageFilter.GaussianBlur(0.5))


# name -> drawing; each photo gets its own stream of the seed, so one kind's drawing can change
# without changing the others.
KINDS: dict[str, Callable[[np.random.Generator], Image.Image]] = {
    "wall": wall,
    "bricks": bricks,
    "sky": sky,
    "ground": ground,
    "wires": wires,
    "pipes": pipes,
    "panel": panel,
}


def draw(name: str) -> Image.Image:
    """The photo of nothing of kind ``name``, drawn from the fixed seed."""
    index = list(KINDS).index(name)
    return KINDS[name](np.random.default_rng([SEED, index]))


def main() -> None:
    """Draws every kind into this folder as ``<kind>.jpg``."""
    for name in KINDS:
        draw(name).save(FOLDER / f"{name}.jpg", "JPEG", quality=88)


if __name__ == "__main__":
    main()
