"""The config.pbtxt files are the single source of names, types and shapes: check they agree."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from bls.routing import parse_detectors
from pipelines.detector import load_config as load_detectron2_config
from pipelines.preprocess import Resize
from server.launch import REPO_ROOT
from tests.support import served_preprocess_config

REPOSITORY = REPO_ROOT / "repository"


def load_config(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


CONFIGS = {path.parent.name: load_config(path) for path in REPOSITORY.glob("*/config.pbtxt")}


def tensors(config: model_config_pb2.ModelConfig, kind: str) -> dict[str, tuple[int, list[int]]]:
    return {t.name: (t.data_type, list(t.dims)) for t in getattr(config, kind)}


def test_repository_has_the_expected_models() -> None:
    assert {"preprocess", "preprocess_ensemble"} <= set(CONFIGS)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_layout(name: str) -> None:
    config = CONFIGS[name]
    assert config.name == name, "name in config.pbtxt must equal its folder"
    version = REPOSITORY / name / "1"
    assert version.is_dir(), "every model, ensembles too, needs a version folder"
    if config.backend == "python":
        assert (version / "model.py").is_file()
    else:
        assert config.platform == "ensemble"


@pytest.mark.parametrize("name", sorted(n for n, c in CONFIGS.items() if c.platform == "ensemble"))
def test_ensemble_maps_agree_with_its_steps(name: str) -> None:
    ensemble = CONFIGS[name]
    available = tensors(ensemble, "input")
    for step in ensemble.ensemble_scheduling.step:
        model = CONFIGS[step.model_name]
        assert ensemble.max_batch_size <= model.max_batch_size
        model_inputs = tensors(model, "input")
        model_outputs = tensors(model, "output")
        assert set(step.input_map) == set(model_inputs), f"{step.model_name}: unmapped inputs"
        for model_name, ensemble_name in step.input_map.items():
            assert ensemble_name in available, f"{ensemble_name} is not produced before use"
            assert available[ensemble_name][0] == model_inputs[model_name][0]
        for model_name, ensemble_name in step.output_map.items():
            assert model_name in model_outputs, f"{step.model_name} has no output {model_name}"
            available[ensemble_name] = model_outputs[model_name]
    for name_, (dtype, dims) in tensors(ensemble, "output").items():
        assert name_ in available, f"ensemble output {name_} is produced by no step"
        assert available[name_] == (dtype, dims), f"{name_}: type or shape differs from its step"


def test_each_detector_gets_the_image_its_yaml_asks_for() -> None:
    """The router's and the ensembles' image for each detector is resized as its YAML says."""
    preprocess = served_preprocess_config()
    router = parse_detectors(CONFIGS["inspect"].parameters["detectors"].string_value)
    assert set(router) == {"pointer", "insulator"}
    for detector, image_output in router.items():
        parameters = {k: v.string_value for k, v in CONFIGS[detector].parameters.items()}
        cfg = load_detectron2_config(REPOSITORY / detector / parameters["detectron2_config"])
        assert preprocess.resize(image_output) == Resize(
            cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, cfg.INPUT.FORMAT
        ), f"{image_output} must be resized as {parameters['detectron2_config']} says"
        # Its ensemble hands it the same image.
        steps = CONFIGS[f"{detector}_ensemble"].ensemble_scheduling.step
        [preprocess_step] = [s for s in steps if s.model_name == "preprocess"]
        [detector_step] = [s for s in steps if s.model_name == detector]
        image_input = CONFIGS[detector].input[0].name
        assert preprocess_step.output_map[image_output] == detector_step.input_map[image_input]
    assert {name for name, _ in preprocess.images} == set(router.values())


def test_preprocess_outputs_are_what_the_pipeline_returns() -> None:
    outputs = CONFIGS["preprocess"].output
    *images, original_size = outputs
    assert [image.name for image in images] == [n for n, _ in served_preprocess_config().images]
    for image in images:
        assert (image.data_type, list(image.dims)) == (model_config_pb2.TYPE_UINT8, [-1, -1, 3])
    assert (original_size.data_type, list(original_size.dims)) == (
        model_config_pb2.TYPE_INT32,
        [2],
    )
