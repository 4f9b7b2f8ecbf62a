"""The model repository's tensor contract: what each model takes and gives, by name.

Python code finds every tensor by one of these names, never by its position in a
``config.pbtxt``; ``tests/test_model_configs.py`` holds every ``config.pbtxt`` to this module, and
each model checks its own config against it when it loads. Torch-free: the router, the bench and
the tests import it.

==================  =====================================  ====================================
model               inputs                                 outputs
==================  =====================================  ====================================
preprocess          JPEG                                   one image per detector, ORIGINAL_SIZE
pointer, insulator  IMAGE, ORIGINAL_SIZE                   BOXES, SCORES, CLASSES[, MASK_RECTS,
                                                           MASKS][, KEYPOINTS]
*_ensemble          JPEG                                   its detector's outputs
inspect             JPEG, MODELS (optional)                DETECTIONS, MASKS
==================  =====================================  ====================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BOXES",
    "CLASSES",
    "DETECTIONS",
    "DETECTOR",
    "IMAGE",
    "INVALID_INPUT",
    "JPEG",
    "KEYPOINTS",
    "MASKS",
    "MASK_DETECTOR",
    "MASK_RECTS",
    "MODELS",
    "ORIGINAL_SIZE",
    "ROUTER",
    "SCORES",
    "Contract",
    "Detections",
    "TensorSpec",
    "config_mismatches",
    "detector_contract",
    "ensemble_contract",
    "keypoint_mismatch",
    "preprocess_contract",
]

JPEG = "JPEG"
"""``uint8 [bytes]``: one JPEG file's bytes, as read from disk."""
ORIGINAL_SIZE = "ORIGINAL_SIZE"
"""``int32 [2]``: the photo's ``height, width``; detections come back in its pixels."""
IMAGE = "IMAGE"
"""``uint8 [H, W, 3]``: a photo resized for one detector, in its YAML's channel order."""
BOXES = "BOXES"
"""``float32 [N, 4]``: ``x1, y1, x2, y2`` in original pixels."""
SCORES = "SCORES"
"""``float32 [N]``."""
CLASSES = "CLASSES"
"""``int32 [N]``: index into the detector's ``CLASS_NAMES``."""
MASK_RECTS = "MASK_RECTS"
"""``int32 [N, 4]``: ``x, y, width, height`` of each mask's crop, in original pixels."""
MASKS = "MASKS"
"""``uint8 [sum(width * height)]``: every crop row-major, concatenated; 1 inside."""
KEYPOINTS = "KEYPOINTS"
"""``float32 [N, K, 3]``: ``x, y, score`` of each instance's ``K`` keypoints (the YAML's
``KEYPOINT_NAMES``, in order), in original pixels; detectron2's ``pred_keypoints``."""
MODELS = "MODELS"
"""``bytes [1]``: which detectors ``inspect`` runs (``pointer``, ``insulator`` or ``both``)."""
DETECTIONS = "DETECTIONS"
"""``bytes [1]``: ``inspect``'s JSON answer (``bls.merge``)."""

INVALID_INPUT = "invalid input: "
"""How every refusal's message (``INVALID_ARG``) starts. A BLS caller needs it to tell its
callee's refusal from a fault: the python backend (pytriton 0.7.0's) hands a BLS caller every
error as ``INTERNAL``."""


@dataclass(frozen=True)
class TensorSpec:
    """One tensor as ``config.pbtxt`` declares it (without the batch dimension)."""

    name: str
    data_type: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class Contract:
    """What a model takes and gives. ``optional`` inputs may be left out of a request."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    optional: frozenset[str] = frozenset()

    @property
    def output_names(self) -> list[str]:
        """The outputs' names, in contract order."""
        return [spec.name for spec in self.outputs]


_SIZE = TensorSpec(ORIGINAL_SIZE, "TYPE_INT32", (2,))
_JPEG = TensorSpec(JPEG, "TYPE_UINT8", (-1,))
_DETECTIONS = (
    TensorSpec(BOXES, "TYPE_FP32", (-1, 4)),
    TensorSpec(SCORES, "TYPE_FP32", (-1,)),
    TensorSpec(CLASSES, "TYPE_INT32", (-1,)),
)
_MASKS = (
    TensorSpec(MASK_RECTS, "TYPE_INT32", (-1, 4)),
    TensorSpec(MASKS, "TYPE_UINT8", (-1,)),
)

DETECTOR = Contract(
    inputs=(TensorSpec(IMAGE, "TYPE_UINT8", (-1, -1, 3)), _SIZE), outputs=_DETECTIONS
)
MASK_DETECTOR = Contract(inputs=DETECTOR.inputs, outputs=_DETECTIONS + _MASKS)
ROUTER = Contract(
    inputs=(_JPEG, TensorSpec(MODELS, "TYPE_STRING", (1,))),
    outputs=(TensorSpec(DETECTIONS, "TYPE_STRING", (1,)), _MASKS[1]),
    optional=frozenset({MODELS}),
)


def detector_contract(has_masks: bool, num_keypoints: int = 0) -> Contract:
    """A detector's contract: Mask R-CNN-like models add the mask outputs, models with a
    keypoint head (``MODEL.KEYPOINT_ON``) add :data:`KEYPOINTS` after them, with the head's
    ``num_keypoints`` as its second dimension."""
    contract = MASK_DETECTOR if has_masks else DETECTOR
    if num_keypoints <= 0:
        return contract
    keypoints = TensorSpec(KEYPOINTS, "TYPE_FP32", (-1, num_keypoints, 3))
    return Contract(inputs=contract.inputs, outputs=(*contract.outputs, keypoints))


def preprocess_contract(image_outputs: Sequence[str]) -> Contract:
    """``preprocess``'s contract: one resized image output per name, then the original size."""
    images = tuple(TensorSpec(name, "TYPE_UINT8", (-1, -1, 3)) for name in image_outputs)
    return Contract(inputs=(_JPEG,), outputs=(*images, _SIZE))


def ensemble_contract(detector: Contract) -> Contract:
    """A ``*_ensemble``'s contract: a JPEG in, its detector's outputs out."""
    return Contract(inputs=(_JPEG,), outputs=detector.outputs)


def _declared(model_config: Mapping[str, Any], kind: str) -> dict[str, TensorSpec]:
    return {
        t["name"]: TensorSpec(t["name"], t["data_type"], tuple(int(d) for d in t["dims"]))
        for t in model_config.get(kind, [])
    }


def config_mismatches(model_config: Mapping[str, Any], contract: Contract) -> list[str]:
    """How a model's parsed config (Triton's JSON form, as ``initialize`` gets it) departs
    from ``contract``: one line per missing, extra or differently typed tensor; empty if none.

    Order does not matter: tensors are found by name.
    """
    problems = []
    for kind, expected in (("input", contract.inputs), ("output", contract.outputs)):
        declared = _declared(model_config, kind)
        for spec in expected:
            found = declared.pop(spec.name, None)
            if found is None:
                problems.append(f"{kind} {spec.name} is missing")
            elif found != spec:
                problems.append(
                    f"{kind} {spec.name} is {found.data_type} {list(found.dims)}, expected "
                    f"{spec.data_type} {list(spec.dims)}"
                )
        problems.extend(f"unexpected {kind} {name}" for name in declared)
    optional = {
        t["name"] for t in model_config.get("input", []) if t.get("optional", False) is True
    }
    if optional != set(contract.optional):
        problems.append(
            f"optional inputs are {sorted(optional)}, expected {sorted(contract.optional)}"
        )
    return problems


def keypoint_mismatch(
    model_config: Mapping[str, Any], num_keypoints: int, config_path: Path, yaml_path: Path
) -> str | None:
    """Whether a detector's ``config.pbtxt`` declares :data:`KEYPOINTS` as its detectron2 YAML
    asks: exactly when the YAML has a keypoint head, with its number of keypoints.

    Args:
        model_config: the parsed ``config.pbtxt`` (Triton's JSON form).
        num_keypoints: the YAML's ``MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS`` when its
            ``MODEL.KEYPOINT_ON``, else 0.
        config_path: the ``config.pbtxt``, named in the message.
        yaml_path: the YAML, named in the message.

    Returns:
        ``None`` when they agree, else what disagrees and how to mend it, naming both files.
    """
    declared = next((t for t in model_config.get("output", []) if t["name"] == KEYPOINTS), None)
    if declared is None and num_keypoints <= 0:
        return None
    if declared is None:
        return (
            f"{yaml_path} has a keypoint head ({num_keypoints} keypoints) but {config_path} "
            f"declares no output {KEYPOINTS}: add it as TYPE_FP32 dims [ -1, {num_keypoints}, 3 ] "
            "(and to the model's ensemble), or serve a YAML without MODEL.KEYPOINT_ON"
        )
    if num_keypoints <= 0:
        return (
            f"{config_path} declares output {KEYPOINTS} but {yaml_path} has no keypoint head "
            f"(MODEL.KEYPOINT_ON is off): remove {KEYPOINTS} from it (and from the model's "
            "ensemble), or serve a YAML with a keypoint head and weights trained with it"
        )
    dims = [int(d) for d in declared["dims"]]
    if (declared["data_type"], dims) != ("TYPE_FP32", [-1, num_keypoints, 3]):
        return (
            f"{config_path} declares output {KEYPOINTS} as {declared['data_type']} "
            f"[ {', '.join(map(str, dims))} ] but {yaml_path} has {num_keypoints} keypoints: "
            f"expected TYPE_FP32 dims [ -1, {num_keypoints}, 3 ]"
        )
    return None


@dataclass
class Detections:
    """One image's detections in original pixels: a detector's outputs, named by field.

    The one record of a detection on the server side: the detectors return it, ``inspect``
    rebuilds it from their responses and merges it into its answer.
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    mask_rects: np.ndarray | None = None
    masks: np.ndarray | None = None
    # float32 [N, K, 3], x, y, score: see KEYPOINTS.
    keypoints: np.ndarray | None = None

    def outputs(self) -> dict[str, np.ndarray]:
        """The arrays by output name; the mask outputs only when there are masks, the keypoints
        only when there are keypoints."""
        outputs = {BOXES: self.boxes, SCORES: self.scores, CLASSES: self.classes}
        if self.mask_rects is not None and self.masks is not None:
            outputs[MASK_RECTS] = self.mask_rects
            outputs[MASKS] = self.masks
        if self.keypoints is not None:
            outputs[KEYPOINTS] = self.keypoints
        return outputs

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, np.ndarray]) -> Detections:
        """The record of a detector's outputs by name (the mask and keypoint ones may be
        absent)."""
        return cls(
            boxes=outputs[BOXES],
            scores=outputs[SCORES],
            classes=outputs[CLASSES],
            mask_rects=outputs.get(MASK_RECTS),
            masks=outputs.get(MASKS),
            keypoints=outputs.get(KEYPOINTS),
        )
