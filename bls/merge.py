"""The router's answer: every detector's results for one image, tagged by model, in one document.

The answer is two tensors. ``DETECTIONS`` holds one JSON document (any language parses it)::

    {"image": {"height": 427, "width": 640},
     "models": {
       "pointer": {"status": "ok", "instances": [
         {"class": "pointer", "class_id": 0, "score": 0.91, "box": [x1, y1, x2, y2],
          "mask": {"rect": [x, y, width, height], "offset": 0}},
         {"class": "dial", "class_id": 1, "score": 0.98, "box": [x1, y1, x2, y2],
          "mask": {"rect": [x, y, width, height], "offset": 1504},
          "keypoints": {"scale_start": [x, y, score], ..., "center": [x, y, score]}}, ...]},
       "insulator": {"status": "error", "error": "insulator: ...", "instances": []}},
     "readings": [
       {"dial": 1, "needle": 0, "center": [412.5, 300.1], "needle_angle_deg": 217.4,
        "fraction": 0.63, "value": 1.01, "unit": "MPa", "status": "ok"}]}

Boxes and keypoints are in original image pixels. An instance has ``keypoints`` when its
detector has a keypoint head (its ``KEYPOINTS`` output) and its class carries them (a meter's
dials, not its needles): each named as the detector's YAML ``KEYPOINT_NAMES`` says, with
detectron2's score of its heatmap's peak. ``readings`` (``bls/meters/``), one per detected
dial, is there when the meter detector was asked for. Mask pixels stay out of the JSON: ``MASKS``
(``uint8``) concatenates every mask crop, and each instance's mask is the ``width * height``
bytes from ``offset``, row-major, 1 inside, placed at ``(x, y)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.tensors import Detections

__all__ = ["KeypointLayout", "merge_answer"]


@dataclass(frozen=True)
class KeypointLayout:
    """What a detector's ``KEYPOINTS`` rows are, and on which instances they mean something.

    Attributes:
        names: the YAML's ``KEYPOINT_NAMES``, in the order of each row's keypoints.
        classes: the class names whose instances carry keypoints; the head predicts some for
            every instance, but those of other classes were never trained to be anywhere.
    """

    names: Sequence[str]
    classes: frozenset[str]


def merge_answer(
    height: int,
    width: int,
    results: Mapping[str, Detections | str],
    class_names: Mapping[str, list[str]],
    readings: list[dict[str, Any]] | None = None,
    keypoints: Mapping[str, KeypointLayout] | None = None,
    dropped_on_dials: Mapping[str, int] | None = None,
) -> tuple[bytes, np.ndarray]:
    """Builds the answer for one image.

    Args:
        height: original image height.
        width: original image width.
        results: per detector, in answer order: its result, or the error message it failed with.
        class_names: per detector, its ``CLASS_NAMES``.
        readings: the meter readings (``Reading.to_json()``), or ``None`` to leave them out.
        keypoints: per detector with a keypoint head, its layout; a detector's keypoints are
            left out of the answer without one.
        dropped_on_dials: per detector whose boxes on the meters' dials were dropped
            (``bls.on_dials``), how many: its entry's ``dropped_on_dials``.

    Returns:
        ``(detections_json, masks)``: the UTF-8 JSON document and the concatenated mask crops.
    """
    models: dict[str, Any] = {}
    mask_chunks: list[np.ndarray] = []
    offset = 0
    for model, result in results.items():
        if isinstance(result, str):
            models[model] = {"status": "error", "error": result, "instances": []}
            continue
        names = class_names[model]
        layout = (keypoints or {}).get(model)
        if result.keypoints is None:
            layout = None
        elif layout is not None and result.keypoints.shape[1:] != (len(layout.names), 3):
            raise ValueError(
                f"{model}: KEYPOINTS has shape {list(result.keypoints.shape)}, expected "
                f"[N, {len(layout.names)}, 3] for KEYPOINT_NAMES {list(layout.names)}"
            )
        instances = []
        for i in range(len(result.scores)):
            class_id = int(result.classes[i])
            instance: dict[str, Any] = {
                "class": names[class_id] if 0 <= class_id < len(names) else str(class_id),
                "class_id": class_id,
                "score": float(result.scores[i]),
                "box": [float(v) for v in result.boxes[i]],
            }
            if result.mask_rects is not None:
                rect = [int(v) for v in result.mask_rects[i]]
                instance["mask"] = {"rect": rect, "offset": offset}
                offset += rect[2] * rect[3]
            if layout is not None and instance["class"] in layout.classes:
                instance["keypoints"] = {
                    name: [float(v) for v in point]
                    for name, point in zip(layout.names, result.keypoints[i], strict=True)
                }
            instances.append(instance)
        if result.masks is not None:
            mask_chunks.append(result.masks)
        models[model] = {"status": "ok", "instances": instances}
        if dropped_on_dials is not None and model in dropped_on_dials:
            models[model]["dropped_on_dials"] = dropped_on_dials[model]
    document: dict[str, Any] = {"image": {"height": height, "width": width}, "models": models}
    if readings is not None:
        document["readings"] = readings
    masks = np.concatenate(mask_chunks) if mask_chunks else np.zeros(0, dtype=np.uint8)
    return json.dumps(document).encode(), masks.astype(np.uint8, copy=False)
