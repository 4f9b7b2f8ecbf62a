"""Reads the ``inspect`` router's answer and draws it onto the photo.

The answer is a JSON document (``DETECTIONS``) plus the mask crops (``MASKS``); see
``bls/merge.py`` for the format. Nothing here needs detectron2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["Answer", "Instance", "ModelResult", "draw_answer", "format_answer", "parse_answer"]

# One colour per model, cycled: needles and insulators stay apart on the picture.
_COLOURS = [(230, 57, 70), (29, 161, 242), (46, 204, 113), (241, 196, 15)]


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

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (masks as their rectangle and pixel count)."""
        return {
            "image": {"height": self.height, "width": self.width},
            "models": {
                name: {
                    "status": result.status,
                    **({"error": result.error} if result.error else {}),
                    "instances": [
                        {
                            "class": inst.class_name,
                            "class_id": inst.class_id,
                            "score": round(inst.score, 4),
                            "box": [round(v, 1) for v in inst.box],
                            **(
                                {
                                    "mask_rect": [*inst.mask_origin, *inst.mask.shape[::-1]],
                                    "mask_pixels": int(inst.mask.sum()),
                                }
                                if inst.mask is not None
                                else {}
                            ),
                        }
                        for inst in result.instances
                    ],
                }
                for name, result in self.models.items()
            },
        }


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
    return Answer(document["image"]["height"], document["image"]["width"], models)


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
    return canvas
