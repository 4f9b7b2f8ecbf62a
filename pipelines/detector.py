"""detectron2 detectors as served by the python-backend models ``pointer`` and ``insulator``.

Takes what the ``preprocess`` model produces (resized HWC ``uint8`` images and their original
sizes), runs a batch as one detectron2 forward, and returns per-image numpy arrays in original
image pixel coordinates: boxes, scores, classes and, for models with a mask head, masks cropped
to their box, and for models with a keypoint head the keypoints.

Per-class score thresholds (:func:`load_score_thresholds`, the served model's
``score_thresholds`` file) replace the YAML's single ``SCORE_THRESH_TEST`` where they are given.

A lower precision (:func:`parse_precision`, the served model's ``precision`` parameter) runs the
convolutions and fully connected layers of the backbone, FPN and heads in bfloat16 (a CPU) or
float16 (a GPU) where the hardware computes it natively (:func:`served_precision`); box decoding,
NMS, ROIAlign, keypoint decoding and mask pasting stay float32 (:func:`lower_precision`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from centernet.config import add_centernet_config
from detectron2.config import CfgNode, get_cfg
from detectron2.layers import Conv2d, FrozenBatchNorm2d
from detectron2.layers.mask_ops import _do_paste_mask
from detectron2.modeling import build_model
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Instances

from pipelines.roi_align import use_gather_roi_align
from pipelines.tensors import Detections

__all__ = [
    "PRECISIONS",
    "UNTRAINED_KEY",
    "CheckpointError",
    "Detector",
    "PrecisionError",
    "ScoreThresholdsError",
    "channels_last",
    "check_score_thresholds",
    "fold_frozen_batch_norms",
    "load_config",
    "load_score_thresholds",
    "load_weights",
    "lower_precision",
    "mask_rect",
    "parse_precision",
    "paste_masks_into_boxes",
    "read_yaml_config",
    "served_precision",
]

# Set in checkpoints made by pipelines.untrained; a checkpoint carrying it holds no training.
UNTRAINED_KEY = "__untrained__"


class CheckpointError(ValueError):
    """A weights file is missing or does not fit the model; the message names the file."""


class ScoreThresholdsError(ValueError):
    """Per-class score thresholds that cannot be served; the message names their source."""


class PrecisionError(ValueError):
    """A precision that is unknown or that the model's device cannot honour."""


# The names a detector's precision is given by, as config.pbtxt's ``precision`` parameter.
PRECISIONS: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def check_score_thresholds(
    thresholds: Mapping[str, object], class_names: Sequence[str], source: str
) -> dict[str, float]:
    """Per-class score thresholds as a detector serves them: one number in ``[0, 1]`` for each
    of its classes, and nothing else.

    Args:
        thresholds: class name -> threshold, e.g. as read from a YAML file.
        class_names: the detector's ``CLASS_NAMES``.
        source: where the thresholds come from, for the error message (a file's path).

    Returns:
        class name -> threshold, in ``class_names`` order.

    Raises:
        ScoreThresholdsError: a class the detector does not have, one of its classes left out,
            or a value that is not a number in ``[0, 1]``.
    """
    unknown = [str(name) for name in thresholds if name not in class_names]
    if unknown:
        raise ScoreThresholdsError(
            f"{source}: unknown class(es) {unknown}; the detector's classes are {list(class_names)}"
        )
    missing = [name for name in class_names if name not in thresholds]
    if missing:
        raise ScoreThresholdsError(
            f"{source}: no threshold for class(es) {missing}; give one for each of "
            f"{list(class_names)}"
        )
    checked = {}
    for name in class_names:
        value = thresholds[name]
        # YAML reads yes/no as booleans, which are ints to Python.
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not 0.0 <= value <= 1.0
            or math.isnan(value)
        ):
            raise ScoreThresholdsError(
                f"{source}: the threshold of class {name!r} must be a number in [0, 1], "
                f"got {value!r}"
            )
        checked[name] = float(value)
    return checked


def load_score_thresholds(path: Path, class_names: Sequence[str]) -> dict[str, float]:
    """Reads a YAML file of per-class score thresholds, ``class name: threshold`` at its top.

    Args:
        path: the file (a model's ``score_thresholds`` parameter, resolved).
        class_names: the detector's ``CLASS_NAMES``.

    Returns:
        class name -> threshold, in ``class_names`` order.

    Raises:
        ScoreThresholdsError: the file is missing, is not YAML, is not a mapping of class names
            to thresholds, or fails :func:`check_score_thresholds`.
    """
    if not path.is_file():
        raise ScoreThresholdsError(f"score thresholds file not found: {path}")
    try:
        content = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ScoreThresholdsError(f"{path}: not a YAML file: {error}") from error
    if not isinstance(content, dict):
        raise ScoreThresholdsError(
            f"{path}: expected a mapping of class name to score threshold, got "
            f"{type(content).__name__}"
        )
    return check_score_thresholds(content, class_names, str(path))


def read_yaml_config(path: Path) -> CfgNode:
    """A detector's YAML merged over detectron2's defaults, CenterNet2's keys,
    ``CLASS_NAMES`` and ``KEYPOINT_NAMES``; not frozen, for callers that add their own settings.

    Raises:
        FileNotFoundError: the YAML does not exist.
    """
    if not path.is_file():
        raise FileNotFoundError(f"detectron2 config not found: {path}")
    cfg = get_cfg()
    add_centernet_config(cfg)
    cfg.CLASS_NAMES = []
    cfg.KEYPOINT_NAMES = []
    cfg.merge_from_file(str(path))
    return cfg


def load_config(path: Path, device: str = "cpu") -> CfgNode:
    """Reads a detector's YAML into a frozen detectron2 config.

    The YAML is merged over detectron2's defaults plus CenterNet2's keys (harmless for Mask
    R-CNN) and this project's ``CLASS_NAMES`` and ``KEYPOINT_NAMES``.

    Raises:
        FileNotFoundError: the YAML does not exist.
        ValueError: ``CLASS_NAMES`` does not have one name per class, or a model with a
            keypoint head (``MODEL.KEYPOINT_ON``) does not name each of its keypoints once.
    """
    cfg = read_yaml_config(path)
    cfg.MODEL.DEVICE = device
    cfg.MODEL.WEIGHTS = ""  # weights come from load_weights, never from a URL
    if len(cfg.CLASS_NAMES) != cfg.MODEL.ROI_HEADS.NUM_CLASSES:
        raise ValueError(
            f"{path}: CLASS_NAMES has {len(cfg.CLASS_NAMES)} names but "
            f"MODEL.ROI_HEADS.NUM_CLASSES is {cfg.MODEL.ROI_HEADS.NUM_CLASSES}"
        )
    if cfg.MODEL.KEYPOINT_ON:
        names = list(cfg.KEYPOINT_NAMES)
        expected = cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS
        if len(names) != expected or len(set(names)) != len(names):
            raise ValueError(
                f"{path}: MODEL.KEYPOINT_ON needs KEYPOINT_NAMES with one distinct name per "
                f"keypoint: MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS is {expected}, "
                f"KEYPOINT_NAMES is {names}"
            )
    cfg.freeze()
    return cfg


def load_weights(model: torch.nn.Module, path: Path) -> dict[str, Any]:
    """Loads a detectron2 training checkpoint (``model_final.pth``) into ``model``, strictly.

    detectron2's own checkpointer only warns about missing or mis-shaped weights and serves
    whatever is left; a server must refuse instead. The file is unpickled as detectron2 does
    (``weights_only=False``: a training checkpoint holds optimizer and scheduler state), so only
    load weights you trust.

    Returns:
        The checkpoint's other entries (e.g. :data:`UNTRAINED_KEY`).

    Raises:
        CheckpointError: the file is missing or unreadable, or its weights do not fit the model;
            the message names the file and the first mismatches.
    """
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise CheckpointError(f"cannot read weights file {path}: {error}") from error
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} is not a detectron2 checkpoint (a dict with 'model')")
    state = checkpoint.pop("model", None)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds no 'model' state dict (keys: {sorted(checkpoint)})")
    # Weights may be stored in fp16 (training.export halves them); the model computes in fp32.
    state = {
        k: (t.float() if t.is_floating_point() else t)
        for k, t in ((k, torch.as_tensor(v)) for k, v in state.items())
    }
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [
        f"{k}: file {tuple(state[k].shape)}, model {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if state[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} weights missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unknown weights (e.g. {', '.join(unexpected[:3])})")
    if wrong_shape:
        problems.append(
            f"{len(wrong_shape)} of the wrong shape (e.g. {'; '.join(wrong_shape[:3])})"
        )
    if problems:
        raise CheckpointError(
            f"weights file {path} does not fit the model: {'; '.join(problems)}. "
            "Is it a checkpoint of this architecture with the same NUM_CLASSES?"
        )
    model.load_state_dict(state, strict=True)
    return checkpoint


def mask_rect(box: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """The pixel rectangle a mask is cropped to: its box rounded outwards, clipped to the image.

    Every pixel of a detectron2 mask lies inside it, since detectron2 pastes masks into their
    boxes.

    Returns:
        ``(x, y, width, height)``, as ``MASK_RECTS`` carries it.
    """
    x0 = int(np.clip(np.floor(box[0]), 0, width))
    y0 = int(np.clip(np.floor(box[1]), 0, height))
    x1 = int(np.clip(np.ceil(box[2]), x0, width))
    y1 = int(np.clip(np.ceil(box[3]), y0, height))
    return x0, y0, x1 - x0, y1 - y0


def paste_masks_into_boxes(
    mask_probs: torch.Tensor, boxes: torch.Tensor, height: int, width: int, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Masks pasted straight into their :func:`mask_rect` crops, the compact form clients read.

    detectron2's ``detector_postprocess`` pastes every mask into a full-image plane
    (``bool [N, height, width]``: 100 instances of a 12-megapixel photo are 1.2 GB), of which
    only each box would be kept. On a CPU detectron2 already computes each mask only over its
    box (plus one pixel), so pasting that region alone, with detectron2's own
    ``_do_paste_mask``, gives the very same pixels without the planes.

    Args:
        mask_probs: ``float [N, 1, M, M]``, the mask head's probabilities.
        boxes: ``float [N, 4]``, ``x1, y1, x2, y2`` in original image pixels, clipped.
        height: original image height.
        width: original image width.
        threshold: mask probability threshold (detectron2's is 0.5).

    Returns:
        ``(rects int32 [N, 4] as x, y, width, height; uint8 crops concatenated row-major)``.
    """
    boxes_np = boxes.numpy().astype(np.float32)
    rects = np.zeros((len(boxes_np), 4), dtype=np.int32)
    crops = []
    for i, box in enumerate(boxes_np):
        rects[i] = x0, y0, w, h = mask_rect(box, height, width)
        # One mask at a time, as detectron2 does on a CPU (skip_empty: only its box's region).
        region, (rows, cols) = _do_paste_mask(
            mask_probs[i : i + 1], boxes[i : i + 1], height, width, skip_empty=True
        )
        mask = (region[0] >= threshold).numpy()
        top, left = y0 - rows.start, x0 - cols.start
        crops.append(mask[top : top + h, left : left + w])
    flat = (
        np.concatenate([c.reshape(-1) for c in crops]).astype(np.uint8)
        if crops
        else np.zeros(0, np.uint8)
    )
    return rects, flat


def fold_frozen_batch_norms(model: torch.nn.Module) -> int:
    """Folds each frozen batch norm into the convolution it follows, in place.

    A ``FrozenBatchNorm2d`` after a convolution is a fixed per-channel ``x * scale + shift``;
    scaling the convolution's filters and giving it that shift as bias computes the same up to
    float rounding, one pass over the feature map fewer. The R50 recipes' ResNet has 53 of
    them; the demo models' GroupNorm depends on its input and cannot be folded.

    Returns:
        How many batch norms were folded.
    """
    folded = 0
    for conv in model.modules():
        norm = getattr(conv, "norm", None)
        if not (isinstance(conv, Conv2d) and isinstance(norm, FrozenBatchNorm2d)):
            continue
        with torch.no_grad():
            scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
            shift = norm.bias - norm.running_mean * scale
            if conv.bias is not None:
                shift = shift + conv.bias * scale
            conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
            conv.bias = torch.nn.Parameter(shift, requires_grad=conv.weight.requires_grad)
        conv.norm = None
        folded += 1
    return folded


def channels_last(model: torch.nn.Module) -> None:
    """Runs the model's convolutions in channels-last memory, for a CPU.

    The input turns NHWC before the backbone and the features stay so for the heads:
    :mod:`pipelines.roi_align` reads each position's channels as one row without a copy, and the
    heads' convolutions take NHWC as oneDNN does best (the R50 mask head's transposed convolution
    most; the plain convolutions run about as fast either way on current oneDNN). The same numbers
    up to float rounding. A hook rather than a wrapper keeps ``model.backbone`` the module it
    was.
    """
    model.to(memory_format=torch.channels_last)

    def to_nhwc(_: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return tuple(a.contiguous(memory_format=torch.channels_last) for a in args)

    model.backbone.register_forward_pre_hook(to_nhwc)


def parse_precision(value: str, source: str) -> torch.dtype:
    """The dtype a precision's name stands for (:data:`PRECISIONS`).

    Args:
        value: ``"float32"``, ``"bfloat16"`` or ``"float16"``.
        source: where the value comes from, for the error message.

    Raises:
        PrecisionError: another value; the message names ``source`` and the value.
    """
    dtype = PRECISIONS.get(value.strip().lower())
    if dtype is None:
        raise PrecisionError(
            f"{source}: unknown precision {value!r}; choose one of {', '.join(PRECISIONS)}"
        )
    return dtype


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def served_precision(requested: torch.dtype, device: str | torch.device) -> tuple[torch.dtype, str]:
    """The precision a detector computes in on ``device``, and why where it is not the one asked.

    bfloat16 is a CPU's lower precision (oneDNN's bfloat16 convolutions need AVX512-BF16 or
    AMX) and a GPU's from compute capability 8.0; float16 a GPU's from 7.0 (tensor cores).
    Hardware without them would only emulate the lower precision, slower than float32: it
    serves float32 instead, and the returned reason says so.

    Returns:
        ``(dtype served, reason)``: ``reason`` is empty when the dtype is the one asked for.

    Raises:
        PrecisionError: float16 on a CPU (its lower precision is bfloat16), or a dtype that is
            none of :data:`PRECISIONS`.
    """
    device = torch.device(device)
    if requested not in PRECISIONS.values():
        raise PrecisionError(f"unknown precision {requested}; choose one of {list(PRECISIONS)}")
    if requested == torch.float32:
        return torch.float32, ""
    if device.type == "cpu":
        if requested == torch.float16:
            raise PrecisionError(
                "float16 is a GPU's precision and this model runs on a CPU: use bfloat16 "
                "(on a CPU with AVX512-BF16 or AMX) or float32"
            )
        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return requested, ""
        return torch.float32, (
            "this CPU has no bfloat16 instructions (AVX512-BF16 or AMX): serving float32"
        )
    major, minor = torch.cuda.get_device_capability(device)
    needed = (8, 0) if requested == torch.bfloat16 else (7, 0)
    if (major, minor) >= needed:
        return requested, ""
    return torch.float32, (
        f"{torch.cuda.get_device_name(device)} (compute capability {major}.{minor}) has no fast "
        f"{_name(requested)} (it needs {needed[0]}.{needed[1]} or later): serving float32"
    )


def _as_float32(value: Any) -> Any:
    """``value`` with every lower-precision float tensor in it (nested in lists, tuples and
    dicts) turned float32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return {k: _as_float32(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_as_float32(v) for v in value)
    return value


def _autocast(function: Callable[..., Any], device_type: str, dtype: torch.dtype) -> Any:
    """``function`` computed under autocast to ``dtype``, answering float32."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type, dtype=dtype):
            result = function(*args, **kwargs)
        return _as_float32(result)

    return run


def lower_precision(model: torch.nn.Module, dtype: torch.dtype) -> list[str]:
    """Runs the model's dense layers in ``dtype``, in place: what pays, and nothing that breaks.

    Lowered: the backbone with its FPN, the proposal generator's head (RPN or CenterNet), the
    ROI box heads (every cascade stage's) and the layers of the mask and keypoint heads, each
    under autocast with its convolution and linear weights stored in ``dtype`` once (not cast
    again in every forward), each answering float32. Not lowered, so computed in float32 from
    float32 inputs: anchors and box decoding, NMS (which on half-precision boxes keeps other
    boxes, torchvision #3371), ROIAlign, the box predictor's scores and box deltas, keypoint
    decoding, and mask pasting.

    Returns:
        The lowered parts, by attribute path (e.g. ``"backbone"``, ``"roi_heads.box_head.0"``).
    """
    device_type = next(model.parameters()).device.type
    lowered = []

    def lower(owner: torch.nn.Module, attribute: str, path: str) -> None:
        for layer in owner.modules():
            if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
                layer.to(dtype)
        setattr(owner, attribute, _autocast(getattr(owner, attribute), device_type, dtype))
        lowered.append(path)

    def lower_module(module: torch.nn.Module, path: str) -> None:
        if isinstance(module, torch.nn.ModuleList):
            for i, stage in enumerate(module):
                lower_module(stage, f"{path}.{i}")
        else:
            lower(module, "forward", path)

    lower_module(model.backbone, "backbone")
    generator = getattr(model, "proposal_generator", None)
    for head in ("rpn_head", "centernet_head"):
        if isinstance(getattr(generator, head, None), torch.nn.Module):
            lower_module(getattr(generator, head), f"proposal_generator.{head}")
    roi_heads = getattr(model, "roi_heads", None)
    if isinstance(getattr(roi_heads, "box_head", None), torch.nn.Module):
        lower_module(roi_heads.box_head, "roi_heads.box_head")
    for head in ("mask_head", "keypoint_head"):
        # Their forward decodes too (mask probabilities, keypoint positions): lower the layers.
        module = getattr(roi_heads, head, None)
        if isinstance(module, torch.nn.Module) and callable(getattr(module, "layers", None)):
            lower(module, "layers", f"roi_heads.{head}.layers")
    return lowered


class Detector:
    """A detectron2 model that takes preprocessed images in batches.

    Examples:
        >>> detector = Detector(Path("repository/pointer/mask_rcnn_R50_FPN.yaml"),
        ...                     Path("repository/pointer/weights/untrained.pth"))
        >>> [detections] = detector([(image_hwc_uint8, (427, 640))])
    """

    def __init__(
        self,
        config_path: Path,
        weights_path: Path,
        device: str = "cpu",
        score_thresholds: Mapping[str, float] | None = None,
        precision: torch.dtype = torch.float32,
    ) -> None:
        """Builds the model and loads its weights.

        Args:
            config_path: the detector's detectron2 YAML.
            weights_path: its checkpoint.
            device: ``"cpu"`` or ``"cuda:N"``.
            score_thresholds: class name -> the least score of a detection of that class that
                is answered, for every class; ``None`` keeps the YAML's ``SCORE_THRESH_TEST``
                for all of them. detectron2 then runs at the lowest of them and the others are
                applied to its result, so a class's detections are those detectron2 finds at
                the lowest threshold, but for one thing: ``TEST.DETECTIONS_PER_IMAGE`` caps
                them all together, and where it is reached a detection kept by the lowest
                threshold only can take the place of one above its own.
            precision: the dtype to compute the dense layers in (:func:`lower_precision`):
                ``torch.float32`` (detectron2's answers), ``torch.bfloat16`` (a CPU with
                AVX512-BF16 or AMX, a GPU from compute capability 8.0) or ``torch.float16`` (a
                GPU from 7.0). Hardware without it serves float32: :attr:`precision` is the
                dtype served and :attr:`precision_fallback` says why it differs.

        Raises:
            CheckpointError: the weights are missing or do not fit.
            ScoreThresholdsError: ``score_thresholds`` do not fit the YAML's classes.
            PrecisionError: ``precision`` cannot be served on ``device`` (float16 on a CPU);
                raised before the weights load.
        """
        self.precision, self.precision_fallback = served_precision(precision, device)
        self.cfg = load_config(config_path, device)
        self.class_names: list[str] = list(self.cfg.CLASS_NAMES)
        self.score_thresholds: dict[str, float] | None = None
        # Per class index, as the model's scores are (float32); None without thresholds.
        self._class_thresholds: torch.Tensor | None = None
        if score_thresholds is not None:
            self.score_thresholds = check_score_thresholds(
                score_thresholds, self.class_names, f"score thresholds for {config_path}"
            )
            self._class_thresholds = torch.tensor(
                list(self.score_thresholds.values()), dtype=torch.float32
            )
            lowest = np.float32(self._class_thresholds.min().item())
            self.cfg.defrost()
            # detectron2 keeps scores strictly above its threshold; the float32 just below the
            # lowest keeps every score at or above it, as the per-class test does.
            self.cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = float(
                np.nextafter(lowest, np.float32(-1.0))
            )
            self.cfg.freeze()
        self.device = torch.device(device)
        self.model = build_model(self.cfg).eval()
        extras = load_weights(self.model, weights_path)
        self.untrained = bool(extras.get(UNTRAINED_KEY, False))
        self.has_masks = bool(self.cfg.MODEL.MASK_ON)
        # Empty without a keypoint head; else what each KEYPOINTS row is, in order.
        self.keypoint_names: list[str] = (
            list(self.cfg.KEYPOINT_NAMES) if self.cfg.MODEL.KEYPOINT_ON else []
        )
        fold_frozen_batch_norms(self.model)
        if self.device.type == "cpu":
            channels_last(self.model)
            use_gather_roi_align(self.model)
        # The parts computed in the lower precision; empty in float32.
        self.lowered: list[str] = []
        if self.precision != torch.float32:
            self.lowered = lower_precision(self.model, self.precision)

    def __call__(self, images: Sequence[tuple[Any, Sequence[int]]]) -> list[Detections]:
        """Detects objects in preprocessed images, in one detectron2 forward (the caller picks
        the batch: the served model cuts a request batch into ``*_forward_batch_size`` chunks).

        Args:
            images: ``(image, (height, width))`` pairs: the resized HWC ``uint8`` image (numpy
                array or torch tensor, on any device) in the config's ``INPUT.FORMAT``, and the
                original size that results are mapped back to.

        Returns:
            One :class:`Detections` per image, in order.
        """
        inputs = [
            {"image": self._chw_float(image), "height": int(size[0]), "width": int(size[1])}
            for image, size in images
        ]
        with torch.inference_mode():
            if self.has_masks:
                return self._forward_with_masks(inputs)
            return [
                self._to_numpy(self._above_thresholds(output["instances"]))
                for output in self.model(inputs)
            ]

    def _above_thresholds(self, instances: Instances) -> Instances:
        """The instances scored at least their class's threshold (all without thresholds)."""
        if self._class_thresholds is None:
            return instances
        limits = self._class_thresholds.to(instances.scores.device)[instances.pred_classes]
        return instances[instances.scores >= limits]

    def _forward_with_masks(self, inputs: list[dict[str, Any]]) -> list[Detections]:
        """detectron2's forward and postprocessing, with masks pasted only into their boxes.

        ``detector_postprocess`` runs as in ``model(inputs)`` (scaling, clipping, dropping empty
        boxes) but without ``pred_masks``, which would make it paste full-image planes; the mask
        probabilities ride along under another name and are pasted by
        :func:`paste_masks_into_boxes`.
        """
        raw = self.model.inference(inputs, do_postprocess=False)
        detections = []
        for instances, item in zip(raw, inputs, strict=True):
            # Before the masks are pasted: a dropped instance costs no paste.
            instances = self._above_thresholds(instances)
            if instances.has("pred_keypoint_heatmaps"):
                # The logit maps behind pred_keypoints: not served, so not scaled nor copied.
                instances.remove("pred_keypoint_heatmaps")
            probs = instances.pred_masks
            instances.remove("pred_masks")
            instances.mask_probs = probs
            instances = detector_postprocess(instances, item["height"], item["width"]).to("cpu")
            result = self._to_numpy(instances)
            result.mask_rects, result.masks = paste_masks_into_boxes(
                instances.mask_probs, instances.pred_boxes.tensor, item["height"], item["width"]
            )
            detections.append(result)
        return detections

    def _chw_float(self, image: Any) -> torch.Tensor:
        """HWC uint8 (numpy or torch) -> CHW float32 on the model's device, as detectron2 takes."""
        if isinstance(image, np.ndarray):
            # The float copy is made anyway; making it in numpy keeps read-only buffers (Triton's
            # input tensors) away from torch, which warns about them.
            image = torch.from_numpy(image.astype(np.float32))
        return image.to(self.device).permute(2, 0, 1).float()

    def _to_numpy(self, instances: Instances) -> Detections:
        instances = instances.to("cpu")
        keypoints = None
        if self.keypoint_names:
            # x, y scaled to the original image by detector_postprocess, and detectron2's score.
            keypoints = instances.pred_keypoints.numpy().astype(np.float32)
        return Detections(
            boxes=instances.pred_boxes.tensor.numpy().astype(np.float32),
            scores=instances.scores.numpy().astype(np.float32),
            classes=instances.pred_classes.numpy().astype(np.int32),
            keypoints=keypoints,
        )
