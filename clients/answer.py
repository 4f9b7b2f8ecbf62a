"""Reads the ``inspect`` router's answer, draws it onto the photo, and writes answers as a COCO
dataset to correct rather than draw from nothing (:class:`CocoInstances`).

The answer is a JSON document (``DETECTIONS``) plus the mask crops (``MASKS``); see
``bls/merge.py`` for the format. Nothing here needs detectron2.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "Answer",
    "CocoInstances",
    "Instance",
    "ModelResult",
    "draw_answer",
    "format_answer",
    "format_reading",
    "mask_polygons",
    "parse_answer",
]

# One colour per model, cycled: needles and insulators stay apart on the picture.
_COLOURS = [(230, 57, 70), (29, 161, 242), (46, 204, 113), (241, 196, 15)]
# Readings: center, needle direction and value.
_READING_COLOUR = (255, 221, 0)
# A dial's scale as its keypoints place it: where it starts (fraction 0), where it ends (1).
_SCALE_START_COLOUR = (57, 255, 20)
_SCALE_END_COLOUR = (255, 0, 255)
_SCALE_ARC_COLOUR = (0, 229, 255)
# Degrees between the points of a drawn scale arc.
_ARC_STEP_DEG = 3.0


@dataclass
class Instance:
    """One detection, in original image pixels."""

    class_name: str
    class_id: int
    score: float
    box: tuple[float, float, float, float]
    mask: np.ndarray | None = None  # bool [height, width] of the crop at mask_origin
    mask_origin: tuple[int, int] = (0, 0)
    # name -> (x, y, score), in the detector's KEYPOINT_NAMES order; None without keypoints.
    keypoints: dict[str, tuple[float, float, float]] | None = None


@dataclass
class ModelResult:
    """One detector's part of the answer."""

    status: str
    error: str | None = None
    instances: list[Instance] = field(default_factory=list)
    # How many of its boxes the server dropped for lying on a meter's dial (bls/on_dials.py);
    # None where that check did not run.
    dropped_on_dials: int | None = None


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
            if "keypoints" in item:
                instance.keypoints = {
                    name: (float(x), float(y), float(score))
                    for name, (x, y, score) in item["keypoints"].items()
                }
            instances.append(instance)
        models[name] = ModelResult(
            part["status"], part.get("error"), instances, part.get("dropped_on_dials")
        )
    return Answer(
        document["image"]["height"], document["image"]["width"], models, document.get("readings")
    )


def format_reading(index: int, reading: dict[str, Any]) -> str:
    """One line: ``dial 0: 1.01 MPa (63% of scale, needle 217.4 deg)``.

    A reading that says where its scale came from (``scale``, from the dial's keypoints) gives
    its status and its scale too, and a withheld value the evidence at hand:
    ``dial 0: 1.01 MPa [ok] (63% of scale, needle 217.4 deg, scale seen 225.0 to 135.0 deg)``,
    ``dial 1: no reading [scale mismatch] (needle 12.0 deg, scale seen 200.0 to 100.0 deg)``.
    """
    if "scale" in reading:
        return _format_scaled_reading(index, reading)
    if reading["status"] != "ok":
        return f"dial {index}: no reading ({reading['status']})"
    angle = f"needle {reading['needle_angle_deg']:.1f} deg"
    if reading["value"] is None:
        return f"dial {index}: {angle} (no calibration)"
    return (
        f"dial {index}: {reading['value']:.3g} {reading['unit']} "
        f"({reading['fraction']:.0%} of scale, {angle})"
    )


def _format_scaled_reading(index: int, reading: dict[str, Any]) -> str:
    status = reading["status"]
    ok = status == "ok"
    value, fraction = reading.get("value"), reading.get("fraction")
    details = []
    if ok and value is not None:
        shown = f"{value:.3g} {reading.get('unit') or ''}".rstrip()
        details.append(f"{fraction:.0%} of scale")
    elif ok and fraction is not None:
        shown = f"{fraction:.0%} of scale"
    else:
        shown = "no reading"
    if reading.get("needle_angle_deg") is not None:
        details.append(f"needle {reading['needle_angle_deg']:.1f} deg")
    if reading["scale"] is not None:
        details.append(_format_scale(reading["scale"]))
    suffix = f" ({', '.join(details)})" if details else ""
    return f"dial {index}: {shown} [{status}]{suffix}"


def _format_scale(scale: dict[str, Any]) -> str:
    """``scale seen 225.0 to 135.0 deg``: where the scale starts and ends (clockwise on the
    face), and whence that is known (``seen`` on the dial, or ``from calibration``)."""
    source = scale.get("source")
    whence = "" if source is None else " seen" if source == "seen" else f" from {source}"
    return f"scale{whence} {scale['start_deg']:.1f} to {scale['end_deg']:.1f} deg"


def format_answer(answer: Answer, min_score: float = 0.0, top: int = 5) -> str:
    """A few readable lines: per model its status, count and best instances."""
    lines = [f"image {answer.width}x{answer.height}"]
    for name, result in answer.models.items():
        if result.status != "ok":
            lines.append(f"  {name}: ERROR {result.error}")
            continue
        shown = [i for i in result.instances if i.score >= min_score]
        dropped = f", {result.dropped_on_dials} dropped on dials" if result.dropped_on_dials else ""
        lines.append(f"  {name}: {len(shown)} instance(s){dropped}")
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
    """The photo with masks tinted, boxes outlined and labelled ``class score``, each dial's
    scale (its start green, its end magenta, the arc between them) where the answer has keypoints,
    and each reading's needle and value."""
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
    _draw_scales(draw, answer, min_score)
    _draw_readings(draw, answer)
    return canvas


def _draw_scales(draw: ImageDraw.ImageDraw, answer: Answer, min_score: float) -> None:
    """Each instance's scale as its keypoints place it: its start and end marked, and the arc
    between them drawn clockwise around the center (through scale_mid when there is one)."""
    for result in answer.models.values():
        for inst in result.instances:
            points = inst.keypoints or {}
            if inst.score < min_score or not {"scale_start", "scale_end"} <= points.keys():
                continue
            ends = [points["scale_start"][:2], points["scale_end"][:2]]
            if "center" in points:
                via = [points["scale_mid"][:2]] if "scale_mid" in points else []
                arc = _arc(points["center"][:2], [ends[0], *via, ends[1]])
                draw.line(arc, fill=_SCALE_ARC_COLOUR, width=2)
            for (x, y), colour in zip(ends, (_SCALE_START_COLOUR, _SCALE_END_COLOUR), strict=True):
                draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour, outline=(0, 0, 0))


def _arc(
    center: tuple[float, float], through: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Points clockwise around ``center`` from each of ``through`` to the next, the radius
    going linearly from one's distance to the next's (a tilted dial's face is an ellipse)."""
    cx, cy = center
    arc = [through[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(through):
        r0, r1 = math.hypot(x0 - cx, y0 - cy), math.hypot(x1 - cx, y1 - cy)
        # Clockwise from 12 o'clock, image y downwards.
        a0 = math.atan2(x0 - cx, cy - y0)
        sweep = (math.atan2(x1 - cx, cy - y1) - a0) % (2 * math.pi)
        steps = max(1, math.ceil(math.degrees(sweep) / _ARC_STEP_DEG))
        for step in range(1, steps + 1):
            t = step / steps
            angle, radius = a0 + t * sweep, r0 + t * (r1 - r0)
            arc.append((cx + radius * math.sin(angle), cy - radius * math.cos(angle)))
    return arc


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


# Outlines are traced on a mask enlarged this many times: a polygon through the centres of a
# mask's edge pixels lies half a pixel inside it, which takes a third off a needle 3 px wide.
_TRACE_SCALE = 4


def mask_polygons(
    mask: np.ndarray, origin: tuple[int, int] = (0, 0), tolerance: float = 0.5
) -> list[list[float]]:
    """The outlines of a mask as COCO polygons, in image pixels (continuous coordinates, the
    image's top-left corner at 0, 0).

    Each outline runs along its pixels' outer edges, within ``1 / 8`` px, and is simplified to
    within ``tolerance`` px (Douglas-Peucker). Holes are left out: COCO polygons have none.

    Args:
        mask: ``bool [height, width]``, a crop of the image.
        origin: ``(x, y)`` of the crop's top-left pixel in the image.
        tolerance: how far a simplified outline may stray from the traced one, in pixels.

    Returns:
        Flat ``[x0, y0, x1, y1, ...]`` lists of 3 points or more, one per separate part.
    """
    if not mask.any():
        return []
    scale = _TRACE_SCALE
    enlarged = np.kron(mask.astype(np.uint8), np.ones((scale, scale), np.uint8))
    contours, _ = cv2.findContours(enlarged, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    polygons = []
    for contour in contours:
        simplified = cv2.approxPolyDP(contour, tolerance * scale, closed=True)
        points = simplified.reshape(-1, 2).astype(np.float64)
        if len(points) < 3:
            continue
        # Enlarged pixel k spans [k, k + 1) / scale of the crop; its centre is (k + 0.5) / scale.
        points = (points + 0.5) / scale + np.asarray(origin, dtype=np.float64)
        polygons.append([round(float(v), 2) for v in points.reshape(-1)])
    return polygons


@dataclass
class CocoInstances:
    """One detector's answers as a COCO instances dataset, built photo by photo: a draft for a
    labelling tool (CVAT, labelme) to correct, which ``training.train`` takes as it is.

    Category ids are 1-based in ``class_names`` order (the detector's ``CLASS_NAMES``), so a
    model trained on the file has the served model's classes. Each object has its box, its
    outline where the detector has masks, its keypoints where the detector has a keypoint head
    (COCO's pixel-index convention: half a pixel less than the answer's continuous coordinates;
    all zero on classes without them), and its ``score``, an extra field that tools keep as an
    attribute and training ignores.

    Attributes:
        model: the detector, as the answer names it.
        class_names: its ``CLASS_NAMES``.
        keypoint_names: its ``KEYPOINT_NAMES`` where it serves keypoints, else empty.
        description: stored in the file's ``info``.
    """

    model: str
    class_names: list[str]
    keypoint_names: list[str] = field(default_factory=list)
    description: str = ""
    images: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)

    def add(self, file_name: str, answer: Answer, min_score: float = 0.0) -> int:
        """Adds one photo and the detector's instances in it scoring at least ``min_score``.

        Args:
            file_name: the photo's path relative to the image folder.
            answer: the router's answer for the photo, which ran :attr:`model` successfully.
            min_score: the lowest score kept.

        Returns:
            How many instances were added (an instance whose mask is empty is left out).

        Raises:
            ValueError: the answer has no successful result of :attr:`model`, or names a class
                that is not in :attr:`class_names` at its index.
        """
        result = answer.models.get(self.model)
        if result is None or result.status != "ok":
            raise ValueError(f"{file_name}: the answer has no result of {self.model}")
        image_id = len(self.images) + 1
        self.images.append(
            {"id": image_id, "file_name": file_name, "width": answer.width, "height": answer.height}
        )
        added = 0
        for instance in result.instances:
            if instance.score < min_score:
                continue
            entry = self._annotation(file_name, instance, image_id)
            if entry is not None:
                self.annotations.append(entry)
                added += 1
        return added

    def _annotation(
        self, file_name: str, instance: Instance, image_id: int
    ) -> dict[str, Any] | None:
        index = instance.class_id
        if not (0 <= index < len(self.class_names)) or self.class_names[index] != (
            instance.class_name
        ):
            raise ValueError(
                f"{file_name}: {self.model} answered class {instance.class_name!r} (id "
                f"{index}), which is not in its CLASS_NAMES {self.class_names} at that index"
            )
        x1, y1, x2, y2 = instance.box
        entry: dict[str, Any] = {
            "id": len(self.annotations) + 1,
            "image_id": image_id,
            "category_id": index + 1,
            "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
            "area": round((x2 - x1) * (y2 - y1), 2),
            "iscrowd": 0,
            "score": round(instance.score, 4),
        }
        if instance.mask is not None:
            polygons = mask_polygons(instance.mask, instance.mask_origin)
            if not polygons:
                return None
            entry["segmentation"] = polygons
            entry["area"] = int(instance.mask.sum())
        if self.keypoint_names:
            points = instance.keypoints or {}
            flat: list[float] = []
            for name in self.keypoint_names:
                if name in points:
                    x, y, _ = points[name]
                    flat += [round(x - 0.5, 2), round(y - 0.5, 2), 2]
                else:
                    flat += [0.0, 0.0, 0]
            entry["keypoints"] = flat
            entry["num_keypoints"] = sum(1 for v in flat[2::3] if v > 0)
        return entry

    def document(self) -> dict[str, Any]:
        """The COCO instances document."""
        extra: dict[str, Any] = (
            {"keypoints": list(self.keypoint_names), "skeleton": []} if self.keypoint_names else {}
        )
        return {
            "info": {"description": self.description},
            "categories": [
                {"id": i + 1, "name": name, "supercategory": self.model, **extra}
                for i, name in enumerate(self.class_names)
            ],
            "images": self.images,
            "annotations": self.annotations,
        }
