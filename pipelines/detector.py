"""detectron2 detectors as served by the python-backend models ``pointer`` and ``insulator``.

Takes what the ``preprocess`` model produces (resized HWC ``uint8`` images and their original
sizes), runs a batch as one detectron2 forward, and returns per-image numpy arrays in original
image pixel coordinates: boxes, scores, classes and, for models with a mask head, masks cropped
to their box, and for models with a keypoint head the keypoints.

Per-class score thresholds (:func:`load_score_thresholds`, the served model's
``score_thresholds`` file) replace the YAML's single ``SCORE_THRESH_TEST`` where they are given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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
    "UNTRAINED_KEY",
    "CheckpointError",
    "Detector",
    "ScoreThresholdsError",
    "channels_last",
    "check_score_thresholds",
    "fold_frozen_batch_norms",
    "load_config",
    "load_score_thresholds",
    "load_weights",
    "mask_rect",
    "paste_masks_into_boxes",
    "read_yaml_config",
]

# Set in checkpoints made by pipelines.untrained; a checkpoint carrying it holds no training.
UNTRAINED_KEY = "__untrained__"


class CheckpointError(ValueError):
    """A weights file is missing or does not fit the model; the message names the file."""


class ScoreThresholdsError(ValueError):
    """Per-class score thresholds that cannot be served; the message names their source."""


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

        Raises:
            CheckpointError: the weights are missing or do not fit.
            ScoreThresholdsError: ``score_thresholds`` do not fit the YAML's classes.
        """
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
