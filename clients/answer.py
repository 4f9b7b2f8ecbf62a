"""Reads the ``inspect`` router's answer and draws it onto the photo.

The answer is a JSON document (``DETECTIONS``) plus the mask crops (``MASKS``); see
``bls/merge.py`` for the format. Nothing here needs detectron2.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "Answer",
    "Instance",
    "ModelResult",
    "draw_answer",
    "format_answer",
    "format_reading",
    "parse_answer",
]

# One colour per model, cycled: needles and insulators stay apart on the picture.
_COLOURS = [(230, 57, 70), (29, 161, 242), (46, 204, 113), (241, 196, 15)]
# Readings: center, needle direction and value.
_READING_COLOUR = (255, 221, 0)


@dataclass
class Instance:
    """One detection, in original image pixels."""

    class_name: str
    class_id: int
    score: float
    box: tuple[float, float, float, float]
    mask: np.ndarray | None = None  # bool [height, width] of the crop at mask_origin
    mask_origin: tuple[int, int] = (0, 0)


@dataclass
class ModelResult:
    """One detector's part of the answer."""

    status: str
    error: str | None = None
    instances: list[Instance] = field(default_factory=list)


@dataclass
class Answer:
    """The whole answer for one image."""

    height: int
    width: int
    models: dict[str, ModelResult]
    # The meter readings as the server sent them (bls/merge.py); None when none were asked for.
    readings: list[dict[str, Any]] | None = None


def parse_answer(detections: bytes, masks: np.ndarray) -> Answer:
    """Parses ``DETECTIONS`` and cuts each instance's mask out of ``MASKS``."""
    document = json.loads(detections)
    models = {}
    for name, part in document["models"].items():
        instances = []
        for item in part["instances"]:
            instance = Instance(
                class_name=item["class"],
                class_id=item["class_id"],
                score=item["score"],
                box=tuple(item["box"]),
            )
            if "mask" in item:
                x, y, w, h = item["mask"]["rect"]
                offset = item["mask"]["offset"]
                instance.mask = masks[offset : offset + w * h].reshape(h, w).astype(bool)
                instance.mask_origin = (x, y)
            instances.append(instance)
        models[name] = ModelResult(part["status"], part.get("error"), instances)
    return Answer(
        document["image"]["height"], document["image"]["width"], models, document.get("readings")
    )


def format_reading(index: int, reading: dict[str, Any]) -> str:
    """One line: ``dial 0: 1.01 MPa (63% of scale, needle 217.4 deg)``."""
    if reading["status"] != "ok":
        return f"dial {index}: no reading ({reading['status']})"
    angle = f"needle {reading['needle_angle_deg']:.1f} deg"
    if reading["value"] is None:
        return f"dial {index}: {angle} (no calibration)"
    return (
        f"dial {index}: {reading['value']:.3g} {reading['unit']} "
        f"({reading['fraction']:.0%} of scale, {angle})"
    )


def format_answer(answer: Answer, min_score: float = 0.0, top: int = 5) -> str:
    """A few readable lines: per model its status, count and best instances."""
    lines = [f"image {answer.width}x{answer.height}"]
    for name, result in answer.models.items():
        if result.status != "ok":
            lines.append(f"  {name}: ERROR {result.error}")
            continue
        shown = [i for i in result.instances if i.score >= min_score]
        lines.append(f"  {name}: {len(shown)} instance(s)")
        for inst in shown[:top]:
            x1, y1, x2, y2 = inst.box
            mask = f", mask {int(inst.mask.sum())} px" if inst.mask is not None else ""
            lines.append(
                f"    {inst.class_name:<10} {inst.score:.3f}  "
                f"box ({x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}){mask}"
            )
        if len(shown) > top:
            lines.append(f"    ... {len(shown) - top} more")
    if answer.readings is not None:
        lines.append(f"  readings: {len(answer.readings)}")
        lines.extend(f"    {format_reading(i, r)}" for i, r in enumerate(answer.readings))
    return "\n".join(lines)


def draw_answer(image: Image.Image, answer: Answer, min_score: float = 0.0) -> Image.Image:
    """The photo with masks tinted, boxes outlined and labelled ``class score``."""
    canvas = image.convert("RGB")
    overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    for index, result in enumerate(answer.models.values()):
        colour = _COLOURS[index % len(_COLOURS)]
        for inst in result.instances:
            if inst.score < min_score or inst.mask is None:
                continue
            tint = Image.new("RGBA", inst.mask.shape[::-1], (*colour, 110))
            alpha = Image.fromarray(inst.mask.astype(np.uint8) * 110)
            tint.putalpha(alpha)
            overlay.alpha_composite(tint, dest=inst.mask_origin)
    canvas = Image.alpha_composite(canvas.convert("RGBA"), overlay).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    for index, result in enumerate(answer.models.values()):
        colour = _COLOURS[index % len(_COLOURS)]
        for inst in result.instances:
            if inst.score < min_score:
                continue
            draw.rectangle(inst.box, outline=colour, width=2)
            label = f"{inst.class_name} {inst.score:.2f}"
            x, y = inst.box[0], max(inst.box[1] - 11, 0)
            draw.rectangle(draw.textbbox((x, y), label), fill=colour)
            draw.text((x, y), label, fill=(255, 255, 255))
    _draw_readings(draw, answer)
    return canvas


def _draw_readings(draw: ImageDraw.ImageDraw, answer: Answer) -> None:
    """Each reading's center, the needle's direction from it, and what it reads."""
    dials = answer.models.get("pointer")
    for index, reading in enumerate(answer.readings or []):
        cx, cy = reading["center"]
        draw.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], fill=_READING_COLOUR)
        if reading["needle_angle_deg"] is not None and dials is not None:
            x1, y1, x2, y2 = dials.instances[reading["dial"]].box
            length = min(x2 - x1, y2 - y1) / 2
            angle = math.radians(reading["needle_angle_deg"])
            tip = (cx + length * math.sin(angle), cy - length * math.cos(angle))
            draw.line([(cx, cy), tip], fill=_READING_COLOUR, width=3)
        label = format_reading(index, reading).split(" (")[0]
        draw.rectangle(draw.textbbox((cx + 8, cy + 8), label), fill=(0, 0, 0))
        draw.text((cx + 8, cy + 8), label, fill=_READING_COLOUR)
