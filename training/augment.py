"""Photometric augmentation for training: the colours and light of photos the training set lacks.

The synthetic sets draw a handful of face, needle, material and sky colours; cameras add white
balance, exposure and contrast of their own. Without this the demo pointer model found 43% of the
needles on held-out yellow faces and 91% on the faces it had seen (120 held-out photos). White
balance and hue rotation cannot turn an unsaturated face into a saturated one, so a share of
the draws are colour filters instead: strong per-channel gains that make white any pale or vivid
colour and leave black black, as a tinted face or coloured light does. Geometry is untouched, so
boxes and masks need no change.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from functools import partial

import cv2
import detectron2.data.transforms as T
import numpy as np

__all__ = ["Jitter", "PhotometricJitter", "apply_jitter"]


@dataclass(frozen=True)
class Jitter:
    """One draw of :class:`PhotometricJitter`.

    Attributes:
        gains: per-channel multipliers, in the image's channel order (white balance).
        hue_shift: hue rotation in OpenCV's 8-bit hue units (180 a full turn).
        saturation: multiplier of the HSV saturation.
        brightness: multiplier of every pixel.
        contrast: blend factor against the image's mean grey (1 keeps it).
    """

    gains: tuple[float, float, float]
    hue_shift: int
    saturation: float
    brightness: float
    contrast: float


def apply_jitter(image: np.ndarray, jitter: Jitter, rgb: bool) -> np.ndarray:
    """``image`` (``uint8 [H, W, 3]``, RGB when ``rgb`` else BGR) with ``jitter`` applied."""
    work = image.astype(np.float32) * np.asarray(jitter.gains, np.float32)
    work = np.clip(work, 0, 255).astype(np.uint8)
    if jitter.hue_shift or jitter.saturation != 1.0:
        hsv = cv2.cvtColor(work, cv2.COLOR_RGB2HSV if rgb else cv2.COLOR_BGR2HSV).astype(np.int32)
        hsv[..., 0] = (hsv[..., 0] + jitter.hue_shift) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] * jitter.saturation, 0, 255)
        work = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB if rgb else cv2.COLOR_HSV2BGR)
    work = work.astype(np.float32) * jitter.brightness
    mean = work.mean()
    work = (work - mean) * jitter.contrast + mean
    return np.clip(np.rint(work), 0, 255).astype(np.uint8)


class PhotometricJitter(T.Augmentation):
    """detectron2 augmentation: random white balance, hue, saturation, brightness and contrast.

    Args:
        image_format: the config's ``INPUT.FORMAT`` (``"BGR"`` or ``"RGB"``).
        probability: share of images jittered at all; the rest pass unchanged.
        max_gain: per-channel gains are drawn from ``[1 - max_gain, 1 + max_gain]``.
        tint_probability: share of jittered images whose gains are a colour filter instead:
            white becomes a colour of any hue and of a saturation drawn from ``tint_saturation``.
        hue_probability: share of jittered images whose hue is also rotated (by any angle).
        saturation, brightness, contrast: ``(low, high)`` ranges of their multipliers.
    """

    def __init__(
        self,
        image_format: str,
        probability: float = 0.8,
        max_gain: float = 0.3,
        tint_probability: float = 0.3,
        tint_saturation: tuple[float, float] = (0.3, 0.85),
        hue_probability: float = 0.5,
        saturation: tuple[float, float] = (0.4, 1.6),
        brightness: tuple[float, float] = (0.7, 1.3),
        contrast: tuple[float, float] = (0.7, 1.3),
    ) -> None:
        super().__init__()
        if image_format not in ("BGR", "RGB"):
            raise ValueError(f"PhotometricJitter takes BGR or RGB images, not {image_format!r}")
        self.rgb = image_format == "RGB"
        self.probability = probability
        self.max_gain = max_gain
        self.tint_probability = tint_probability
        self.tint_saturation = tint_saturation
        self.hue_probability = hue_probability
        self.saturation = saturation
        self.brightness = brightness
        self.contrast = contrast

    def draw(self, rng: np.random.Generator | None = None) -> Jitter | None:
        """One random draw; ``None`` for an image left unchanged."""
        rng = rng or np.random.default_rng(np.random.randint(2**31))
        if rng.random() >= self.probability:
            return None
        if rng.random() < self.tint_probability:
            # Any hue is as likely as any other, so the channel order needs no care here.
            gains = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*self.tint_saturation), 1.0)
        else:
            gains = rng.uniform(1 - self.max_gain, 1 + self.max_gain, size=3)
        hue = int(rng.integers(0, 180)) if rng.random() < self.hue_probability else 0
        return Jitter(
            gains=(float(gains[0]), float(gains[1]), float(gains[2])),
            hue_shift=hue,
            saturation=float(rng.uniform(*self.saturation)),
            brightness=float(rng.uniform(*self.brightness)),
            contrast=float(rng.uniform(*self.contrast)),
        )

    def get_transform(self, image: np.ndarray) -> T.Transform:
        jitter = self.draw()
        if jitter is None:
            return T.NoOpTransform()
        return T.ColorTransform(partial(apply_jitter, jitter=jitter, rgb=self.rgb))
