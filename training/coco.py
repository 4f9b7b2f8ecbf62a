"""Synthetic scenes written as COCO instance datasets that detectron2's own tools read.

A generator yields :class:`Scene` records; :func:`write_coco` stores them as JPEGs plus one
``annotations.json`` (COCO "instances" format, polygons for masks, ``bbox`` as ``x, y, w, h``).
Each image entry may carry extra ground truth under ``"truth"`` (e.g. a gauge's needle angle),
which COCO readers ignore and the accuracy tools read.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["Annotation", "Scene", "contact_sheet", "write_coco"]


@dataclass
class Annotation:
    """One object of a scene.

    Attributes:
        category: its class name, one of the dataset's categories.
        bbox: ``x, y, width, height`` in image pixels (COCO's convention).
        polygons: outline(s) as flat ``[x0, y0, x1, y1, ...]`` lists, for mask datasets.
        keypoints: flat ``[x0, y0, v0, x1, y1, v1, ...]`` in continuous pixel coordinates
            (``v`` is COCO's visibility: 0 unlabelled, 2 visible), for keypoint datasets;
            ``None`` for an object of a class without keypoints.
    """

    category: str
    bbox: tuple[float, float, float, float]
    polygons: list[list[float]] | None = None
    keypoints: list[float] | None = None


@dataclass
class Scene:
    """One synthetic photo and its ground truth.

    Attributes:
        image: ``uint8 [H, W, 3]``, RGB.
        annotations: the objects in it (possibly none).
        truth: extra per-image truth stored in the image's COCO entry under ``"truth"``.
        jpeg_quality: the quality it is saved at (JPEG artefacts are part of the augmentation).
    """

    image: np.ndarray
    annotations: list[Annotation]
    truth: dict[str, Any] = field(default_factory=dict)
    jpeg_quality: int = 90


def polygon_area(polygon: Sequence[float]) -> float:
    """Area of a flat ``[x0, y0, x1, y1, ...]`` polygon (shoelace formula)."""
    xy = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    x, y = xy[:, 0], xy[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def write_coco(
    out_dir: Path,
    categories: Sequence[str],
    count: int,
    make_scene: Callable[[int], Scene],
    description: str,
    keypoint_names: Sequence[str] = (),
) -> Path:
    """Renders ``count`` scenes into ``out_dir/images/`` and ``out_dir/annotations.json``.

    Category ids are 1-based in the order given, so detectron2's contiguous ids (sorted by COCO
    id) equal the index into ``categories``, i.e. into the model's ``CLASS_NAMES``. The JSON is
    written last, to a temporary name and renamed, so a finished dataset is never half written.

    Args:
        out_dir: the dataset folder (created).
        categories: class names, in the model's ``CLASS_NAMES`` order.
        count: number of images.
        make_scene: renders image ``i``; must depend on ``i`` (and a fixed seed) only.
        description: stored in the JSON's ``info``.
        keypoint_names: the keypoints of a keypoint dataset, in order; every annotation then
            carries ``keypoints`` (all unlabelled for an object without them), as detectron2
            wants them on every instance of an image.

    Returns:
        The path of ``annotations.json``.
    """
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    category_ids = {name: i + 1 for i, name in enumerate(categories)}
    images, annotations = [], []
    started = time.monotonic()
    for index in range(count):
        scene = make_scene(index)
        height, width = scene.image.shape[:2]
        file_name = f"{index:06d}.jpg"
        Image.fromarray(scene.image).save(images_dir / file_name, quality=scene.jpeg_quality)
        images.append(
            {
                "id": index + 1,
                "file_name": file_name,
                "height": height,
                "width": width,
                "truth": scene.truth,
            }
        )
        for annotation in scene.annotations:
            entry: dict[str, Any] = {
                "id": len(annotations) + 1,
                "image_id": index + 1,
                "category_id": category_ids[annotation.category],
                "bbox": [round(float(v), 2) for v in annotation.bbox],
                "iscrowd": 0,
            }
            if annotation.polygons is not None:
                entry["segmentation"] = [
                    [round(float(v), 2) for v in p] for p in annotation.polygons
                ]
                entry["area"] = sum(polygon_area(p) for p in annotation.polygons)
            else:
                entry["area"] = float(annotation.bbox[2] * annotation.bbox[3])
            if keypoint_names:
                entry["keypoints"] = _coco_keypoints(annotation.keypoints, len(keypoint_names))
                entry["num_keypoints"] = sum(1 for v in entry["keypoints"][2::3] if v > 0)
            annotations.append(entry)
        if (index + 1) % 100 == 0 or index + 1 == count:
            elapsed = time.monotonic() - started
            eta = elapsed / (index + 1) * (count - index - 1)
            print(
                f"\r{out_dir}: {index + 1}/{count} images, ETA {eta:.0f} s",
                end="\n" if index + 1 == count else "",
                file=sys.stderr,
                flush=True,
            )
    document = {
        "info": {"description": description},
        "categories": [
            {
                "id": i,
                "name": name,
                **({"keypoints": list(keypoint_names)} if keypoint_names else {}),
            }
            for name, i in category_ids.items()
        ],
        "images": images,
        "annotations": annotations,
    }
    path = out_dir / "annotations.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(document))
    temporary.replace(path)
    return path


def _coco_keypoints(keypoints: Sequence[float] | None, count: int) -> list[float]:
    """COCO's keypoint list: pixel indices (COCO readers, detectron2's among them, add 0.5 to
    get continuous coordinates back), zeros where unlabelled."""
    if keypoints is None:
        return [0.0] * (3 * count)
    if len(keypoints) != 3 * count:
        raise ValueError(f"{len(keypoints) // 3} keypoints given, the dataset has {count}")
    flat: list[float] = []
    for x, y, v in np.reshape(np.asarray(keypoints, dtype=np.float64), (-1, 3)):
        flat += [round(x - 0.5, 2), round(y - 0.5, 2), int(v)] if v > 0 else [0.0, 0.0, 0]
    return flat


# Outline colours of the classes on a contact sheet, by index into the categories; keypoints by
# their index (a dial's start blue, mid yellow, end magenta, centre cyan).
_SHEET_COLOURS = [(255, 40, 40), (40, 220, 40)]
_KEYPOINT_COLOURS = [(40, 90, 255), (255, 230, 0), (255, 0, 255), (0, 230, 230)]


def contact_sheet(
    scenes: Sequence[Scene], categories: Sequence[str], columns: int = 4, tile: int = 320
) -> Image.Image:
    """The scenes side by side with their labels drawn, to look at a generator's output: each
    object outlined in its class's colour (masks as polygons, else boxes), keypoints as dots."""
    rows = -(-len(scenes) // columns)
    height = tile * 3 // 4
    sheet = Image.new("RGB", (columns * tile, rows * height), (255, 255, 255))
    for index, scene in enumerate(scenes):
        picture = Image.fromarray(scene.image)
        draw = ImageDraw.Draw(picture)
        for annotation in scene.annotations:
            colour = _SHEET_COLOURS[categories.index(annotation.category) % len(_SHEET_COLOURS)]
            if annotation.polygons:
                for polygon in annotation.polygons:
                    draw.polygon(
                        [tuple(p) for p in np.reshape(polygon, (-1, 2))], outline=colour, width=2
                    )
            else:
                x, y, w, h = annotation.bbox
                draw.rectangle([x, y, x + w, y + h], outline=colour, width=2)
            for i, (x, y, v) in enumerate(np.reshape(annotation.keypoints or [], (-1, 3))):
                if v > 0:
                    dot = _KEYPOINT_COLOURS[i % len(_KEYPOINT_COLOURS)]
                    draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=dot)
        picture.thumbnail((tile, height))
        sheet.paste(picture, ((index % columns) * tile, (index // columns) * height))
    return sheet
