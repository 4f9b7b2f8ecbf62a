"""What the router learns from the model repository: the tensors, classes and keypoints of its
detectors.

The router calls ``preprocess`` and the detectors by name. Their tensor names, class names and
keypoint names are read from their own ``config.pbtxt`` and detectron2 YAML, so they are written
down once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

__all__ = [
    "ModelTensors",
    "class_names",
    "keypoint_names",
    "model_tensors",
    "parse_config",
    "read_config",
]


@dataclass(frozen=True)
class ModelTensors:
    """Input and output names of a model, in ``config.pbtxt`` order."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    parameters: dict[str, str]


def parse_config(path: Path) -> model_config_pb2.ModelConfig:
    """Parses one ``config.pbtxt``: the one parser of model configs in this project."""
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def read_config(repository: Path, model: str) -> model_config_pb2.ModelConfig:
    """Parses ``repository/<model>/config.pbtxt``.

    Raises:
        FileNotFoundError: the model has no config in this repository.
    """
    path = repository / model / "config.pbtxt"
    if not path.is_file():
        raise FileNotFoundError(f"no model {model!r} in {repository} ({path} is missing)")
    return parse_config(path)


def model_tensors(repository: Path, model: str) -> ModelTensors:
    """Input and output names and parameters of ``model``."""
    config = read_config(repository, model)
    return ModelTensors(
        inputs=tuple(t.name for t in config.input),
        outputs=tuple(t.name for t in config.output),
        parameters={k: v.string_value for k, v in config.parameters.items()},
    )


def _detector_yaml(repository: Path, detector: str) -> tuple[Path, dict[str, Any]]:
    """The detectron2 YAML a detector's ``detectron2_config`` names: its path and its top level,
    read as plain YAML (the router needs names, not detectron2)."""
    tensors = model_tensors(repository, detector)
    yaml_path = repository / detector / tensors.parameters["detectron2_config"]
    return yaml_path, yaml.safe_load(yaml_path.read_text()) or {}


def class_names(repository: Path, detector: str) -> list[str]:
    """``CLASS_NAMES`` of the detectron2 YAML a detector's ``detectron2_config`` names.

    Raises:
        ValueError: the YAML names no classes.
    """
    yaml_path, top = _detector_yaml(repository, detector)
    names = top.get("CLASS_NAMES")
    if not names:
        raise ValueError(f"{yaml_path} has no CLASS_NAMES")
    return [str(name) for name in names]


def keypoint_names(repository: Path, detector: str) -> list[str]:
    """``KEYPOINT_NAMES`` of the detectron2 YAML a detector's ``detectron2_config`` names, in
    the order of its ``KEYPOINTS`` output; empty when the YAML names none.

    Raises:
        ValueError: ``KEYPOINT_NAMES`` is not a list, or names a keypoint twice.
    """
    yaml_path, top = _detector_yaml(repository, detector)
    names = top.get("KEYPOINT_NAMES") or []
    if not isinstance(names, list) or len(set(map(str, names))) != len(names):
        raise ValueError(f"{yaml_path}: KEYPOINT_NAMES must be a list of distinct names: {names!r}")
    return [str(name) for name in names]
