"""Weights to train from: detectron2's model zoo, ImageNet backbones, the demo models.

Serving loads a checkpoint strictly (:func:`pipelines.detector.load_weights`). Fine-tuning
starts from weights made for another task: a COCO Mask R-CNN has heads for 80 classes, an
ImageNet backbone has no detector at all. So loading for training takes every weight whose name
and shape fit the model, leaves the others as the model initialised them, and names them
(:class:`WeightsReport`). It refuses, naming the file, a checkpoint of another architecture,
which would seem to start training from it while starting from nothing:

- its backbone body (the ResNet under the FPN) is not the model's: another depth, another
  normalisation, missing altogether;
- it is a detector whose heads are of another kind: none of its proposal or ROI head weights
  fits the model (a CenterNet2 checkpoint for a Mask R-CNN, or the reverse). A backbone alone,
  as ImageNet checkpoints are, is fine.

``MODEL.WEIGHTS`` is read as detectron2 reads it: a ``detectron2://`` or ``https://`` address
is fetched and cached by detectron2 itself (where there is internet), a ``.pkl`` in the model
zoo's or Caffe2's format, a ``.pth`` of detectron2's (``model_final.pth``, the demo weights);
Caffe2 names are matched to the model's by detectron2's heuristics.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.checkpoint.c2_model_loading import align_and_update_state_dicts
from detectron2.config import CfgNode

from pipelines.detector import UNTRAINED_KEY, CheckpointError

__all__ = ["CheckpointError", "WeightsReport", "fit_weights", "load_for_training"]

logger = logging.getLogger("training")

# Parts of a detector other than its backbone.
_HEADS = ("proposal_generator.", "roi_heads.")
# A frozen batch norm's statistics: Caffe2's ImageNet files fold them into scale and bias and
# leave them out; detectron2 then loads identity statistics (FrozenBatchNorm2d).
_FOLDED_STATISTICS = (".running_mean", ".running_var")


@dataclass(frozen=True)
class WeightsReport:
    """What loading a checkpoint for training took and left.

    Attributes:
        source: ``MODEL.WEIGHTS`` as given.
        loaded: the model's weights taken from the file.
        reshaped: ``(name, shape in the file, shape in the model)`` of weights the file has in
            another shape (heads of another number of classes): re-initialised.
        absent: the model's weights the file lacks (a head it has not): re-initialised.
        unused: weights of the file the model has no place for.
        untrained: the file is marked as holding no training (``pipelines.untrained``).
    """

    source: str
    loaded: tuple[str, ...]
    reshaped: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]
    absent: tuple[str, ...]
    unused: tuple[str, ...]
    untrained: bool = False

    @property
    def reinitialised(self) -> list[str]:
        """The model's weights that start as the model initialised them, not from the file."""
        return [name for name, _, _ in self.reshaped] + list(self.absent)

    def summary(self) -> str:
        """A few lines for the training log: what was taken, what starts afresh and why."""
        total = len(self.loaded) + len(self.reshaped) + len(self.absent)
        lines = [f"{self.source}: {len(self.loaded)} of the model's {total} weights loaded."]
        if self.reshaped:
            shapes = ", ".join(
                f"{name} (file {list(file)}, model {list(model)})"
                for name, file, model in self.reshaped
            )
            lines.append(
                f"Re-initialised, of another shape in the file (another number of classes?): "
                f"{shapes}."
            )
        if self.absent:
            lines.append(f"Re-initialised, not in the file: {_modules(self.absent)}.")
        if self.unused:
            lines.append(f"Not used, the model has no place for them: {_modules(self.unused)}.")
        return "\n".join(lines)


def _modules(names: Iterable[str]) -> str:
    """Weight names as the modules holding them, siblings braced:
    ``roi_heads.box_head.{fc1,fc2}``."""
    modules = list(dict.fromkeys(name.rpartition(".")[0] or name for name in names))
    children: dict[str, list[str]] = {}
    for module in modules:
        parent, _, child = module.rpartition(".")
        children.setdefault(parent, []).append(child)
    parts = []
    for parent, kids in children.items():
        inner = kids[0] if len(kids) == 1 else "{" + ",".join(kids) + "}"
        parts.append(f"{parent}.{inner}" if parent else inner)
    return ", ".join(parts)


def _backbone_body(names: Iterable[str]) -> str:
    """The prefix of a model's backbone body: the ResNet under an FPN, else the backbone."""
    under_fpn = "backbone.bottom_up."
    return under_fpn if any(n.startswith(under_fpn) for n in names) else "backbone."


def fit_weights(
    model_state: Mapping[str, torch.Tensor],
    file_state: Mapping[str, torch.Tensor],
    source: str,
    architecture: str = "",
) -> WeightsReport:
    """Which of a checkpoint's weights fit a model, by name and shape.

    Args:
        model_state: the model's ``state_dict()``.
        file_state: the checkpoint's weights, named as the model names them.
        source: the checkpoint, for messages.
        architecture: the model in words, for messages.

    Raises:
        CheckpointError: the checkpoint is of another architecture (see the module's
            docstring); the message names the file and the first mismatches.
    """
    body = _backbone_body(model_state)
    model_body = [n for n in model_state if n.startswith(body)]
    missing = [n for n in model_body if n not in file_state and not n.endswith(_FOLDED_STATISTICS)]
    wrong = [
        f"{n} (file {list(file_state[n].shape)}, model {list(model_state[n].shape)})"
        for n in model_body
        if n in file_state and file_state[n].shape != model_state[n].shape
    ]
    extra = [n for n in file_state if n.startswith(body) and n not in model_state]
    if missing or wrong or extra:
        problems = [
            f"{len(found)} {what} (e.g. {', '.join(found[:3])})"
            for found, what in (
                (missing, "backbone weights missing"),
                (wrong, "of another shape"),
                (extra, "the model's backbone has not"),
            )
            if found
        ]
        raise CheckpointError(
            f"{source} is not a checkpoint of the model's backbone{architecture}: "
            f"{'; '.join(problems)}. "
            "Start from weights of the same backbone (training/recipes/ names some), or from "
            'none (MODEL.WEIGHTS "").'
        )
    fits = {
        n for n, v in file_state.items() if n in model_state and v.shape == model_state[n].shape
    }
    file_heads = [n for n in file_state if n.startswith(_HEADS)]
    if file_heads and not any(n.startswith(_HEADS) for n in fits):
        raise CheckpointError(
            f"{source} holds a detector of another kind than the model{architecture}: none of its "
            f"{len(file_heads)} head weights fits the model (e.g. {', '.join(file_heads[:3])}). "
            "Start from a checkpoint of this architecture, or from a backbone alone (an ImageNet "
            "one)."
        )
    return WeightsReport(
        source=source,
        loaded=tuple(n for n in model_state if n in fits),
        reshaped=tuple(
            (n, tuple(file_state[n].shape), tuple(model_state[n].shape))
            for n in model_state
            if n in file_state and n not in fits
        ),
        absent=tuple(
            n
            for n in model_state
            if n not in file_state and not (n.startswith(body) and n.endswith(_FOLDED_STATISTICS))
        ),
        unused=tuple(n for n in file_state if n not in model_state),
    )


class _Reader(DetectionCheckpointer):
    """detectron2's reading of a checkpoint (addresses, formats), without its loading, which
    would only warn about what does not fit."""

    checkpoint: dict[str, Any] | None = None

    def _load_model(self, checkpoint: dict[str, Any]) -> None:
        self.checkpoint = checkpoint
        # None tells fvcore there is no report of incompatible keys to log.
        return None


def _read(model: torch.nn.Module, weights: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The checkpoint's weights, named as the model names them, and its other entries."""
    address = urlparse(weights)
    is_local = address.scheme in ("", "file")
    if is_local and not os.path.isfile(weights):
        raise CheckpointError(f"MODEL.WEIGHTS: weights file not found: {weights}")
    reader = _Reader(model)
    try:
        reader.load(weights, checkpointables=[])
    except Exception as error:  # whatever detectron2, iopath or pickle raise: name the file
        if is_local:
            raise CheckpointError(f"cannot read weights file {weights}: {error}") from error
        raise CheckpointError(
            f"cannot fetch MODEL.WEIGHTS {weights}: {error}. detectron2 downloads it once "
            "where there is internet; elsewhere download it and give the local file."
        ) from error
    checkpoint = reader.checkpoint or {}
    state = checkpoint.get("model")
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{weights} holds no 'model' weights (keys: {sorted(checkpoint)})")
    state = {
        name: torch.from_numpy(np.ascontiguousarray(value))
        if isinstance(value, np.ndarray)
        else torch.as_tensor(value)
        for name, value in state.items()
    }
    if checkpoint.get("matching_heuristics", False):
        state = align_and_update_state_dicts(
            model.state_dict(), state, c2_conversion=checkpoint.get("__author__") == "Caffe2"
        )
    return state, checkpoint


def _architecture(cfg: CfgNode) -> str:
    """`` (ResNet-18 GN, build_resnet_fpn_backbone, RPN, StandardROIHeads)``, for messages."""
    model = cfg.MODEL
    parts = [model.BACKBONE.NAME, model.PROPOSAL_GENERATOR.NAME, model.ROI_HEADS.NAME]
    if "resnet" in model.BACKBONE.NAME:
        parts.insert(0, f"ResNet-{model.RESNETS.DEPTH} {model.RESNETS.NORM}")
    return f" ({', '.join(parts)})"


def load_for_training(model: torch.nn.Module, cfg: CfgNode) -> WeightsReport | None:
    """Loads ``cfg.MODEL.WEIGHTS`` into ``model`` for training: every weight that fits; the
    others keep the model's initial values and are named in the report (and the log).

    Returns:
        What was loaded and what was not; ``None`` when ``MODEL.WEIGHTS`` is empty (training
        starts from the model's initial weights).

    Raises:
        CheckpointError: the weights cannot be found, fetched or read, or are of another
            architecture; the message names the file.
    """
    weights = cfg.MODEL.WEIGHTS
    if not weights:
        logger.info("MODEL.WEIGHTS is empty: training starts from randomly initialised weights.")
        return None
    state, checkpoint = _read(model, weights)
    report = fit_weights(model.state_dict(), state, weights, _architecture(cfg))
    if checkpoint.get(UNTRAINED_KEY, False):
        report = replace(report, untrained=True)
    with torch.no_grad():
        model.load_state_dict({name: state[name] for name in report.loaded}, strict=False)
    logger.info(report.summary())
    if report.untrained:
        logger.warning(
            "%s holds UNTRAINED weights (pipelines.untrained): fine-tuning starts from nothing.",
            weights,
        )
    return report
