"""The config.pbtxt files are the single source of names, types and shapes: check they agree."""

from __future__ import annotations

import pytest
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2

from bls.repository import parse_config
from bls.routing import parse_detectors
from pipelines.detector import load_config as load_detectron2_config
from pipelines.ocr import OCR
from pipelines.preprocess import Resize
from pipelines.tensors import (
    KEYPOINTS,
    MASK_DETECTOR,
    ROUTER,
    Contract,
    TensorSpec,
    config_mismatches,
    detector_contract,
    ensemble_contract,
    keypoint_mismatch,
    preprocess_contract,
)
from server.launch import REPO_ROOT
from tests.support import served_preprocess_config

REPOSITORY = REPO_ROOT / "repository"


CONFIGS = {path.parent.name: parse_config(path) for path in REPOSITORY.glob("*/config.pbtxt")}


def tensors(config: model_config_pb2.ModelConfig, kind: str) -> dict[str, tuple[int, list[int]]]:
    return {t.name: (t.data_type, list(t.dims)) for t in getattr(config, kind)}


def test_repository_has_the_expected_models() -> None:
    assert set(CONFIGS) == {
        "preprocess",
        "preprocess_ensemble",
        "pointer",
        "pointer_ensemble",
        "insulator",
        "insulator_ensemble",
        "inspect",
        "ocr",
    }


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


def contracts() -> dict[str, Contract]:
    """Each model's contract, from what the code and the YAMLs say (not from the configs)."""
    images = preprocess_contract([name for name, _ in served_preprocess_config().images])
    found = {"preprocess": images, "preprocess_ensemble": images, "inspect": ROUTER, "ocr": OCR}
    for detector in ("pointer", "insulator"):
        parameters = {k: v.string_value for k, v in CONFIGS[detector].parameters.items()}
        cfg = load_detectron2_config(REPOSITORY / detector / parameters["detectron2_config"])
        keypoints = len(cfg.KEYPOINT_NAMES) if cfg.MODEL.KEYPOINT_ON else 0
        found[detector] = detector_contract(cfg.MODEL.MASK_ON, keypoints)
        found[f"{detector}_ensemble"] = ensemble_contract(found[detector])
    return found


def as_triton_json(config: model_config_pb2.ModelConfig) -> dict:
    """The config in the JSON form Triton hands to ``initialize`` (``args["model_config"]``)."""
    return json_format.MessageToDict(config, preserving_proto_field_name=True)


def test_every_model_has_a_contract() -> None:
    assert set(contracts()) == set(CONFIGS)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_keeps_the_tensor_contract(name: str) -> None:
    assert config_mismatches(as_triton_json(CONFIGS[name]), contracts()[name]) == []


def pointer_config_with_keypoints(dims: list[str]) -> dict:
    """The served pointer's config, as Triton hands it over, with its KEYPOINTS of ``dims``."""
    config = as_triton_json(CONFIGS["pointer"])
    [keypoints] = [o for o in config["output"] if o["name"] == KEYPOINTS]
    keypoints["dims"] = dims
    return config


def pointer_config_without_keypoints() -> dict:
    """The served pointer's config, as Triton hands it over, less its KEYPOINTS."""
    config = as_triton_json(CONFIGS["pointer"])
    config["output"] = [o for o in config["output"] if o["name"] != KEYPOINTS]
    return config


def test_contract_check_finds_tensors_by_name_and_names_each_departure() -> None:
    config = pointer_config_without_keypoints()
    config["output"].reverse()  # order is free: tensors are found by name
    assert config_mismatches(config, MASK_DETECTOR) == []
    config["output"] = [o for o in config["output"] if o["name"] != "SCORES"]
    config["output"][0]["data_type"] = "TYPE_FP16"
    config["input"].append({"name": "EXTRA", "data_type": "TYPE_UINT8", "dims": ["-1"]})
    problems = config_mismatches(config, MASK_DETECTOR)
    assert "output SCORES is missing" in problems
    assert any(p.startswith(f"output {config['output'][0]['name']} is TYPE_FP16") for p in problems)
    assert "unexpected input EXTRA" in problems
    router = as_triton_json(CONFIGS["inspect"])
    router["input"][1].pop("optional")
    assert config_mismatches(router, ROUTER) == ["optional inputs are [], expected ['MODELS']"]


def test_a_keypoint_head_adds_keypoints_after_the_other_outputs() -> None:
    with_keypoints = detector_contract(True, 4)
    assert with_keypoints.inputs == MASK_DETECTOR.inputs
    assert with_keypoints.outputs == (
        *MASK_DETECTOR.outputs,
        TensorSpec(KEYPOINTS, "TYPE_FP32", (-1, 4, 3)),
    )
    assert detector_contract(False, 2).output_names == ["BOXES", "SCORES", "CLASSES", KEYPOINTS]
    assert detector_contract(True, 0) == detector_contract(True) == MASK_DETECTOR


def test_keypoints_are_held_to_the_contract_of_the_yamls_head() -> None:
    config = pointer_config_with_keypoints(["-1", "4", "3"])
    assert config_mismatches(config, detector_contract(True, 4)) == []
    assert config_mismatches(config, detector_contract(True)) == ["unexpected output KEYPOINTS"]
    assert config_mismatches(pointer_config_without_keypoints(), detector_contract(True, 4)) == [
        "output KEYPOINTS is missing"
    ]
    assert config_mismatches(config, detector_contract(True, 5)) == [
        "output KEYPOINTS is TYPE_FP32 [-1, 4, 3], expected TYPE_FP32 [-1, 5, 3]"
    ]


CONFIG_PBTXT = REPOSITORY / "pointer" / "config.pbtxt"
KEYPOINT_YAML = REPOSITORY / "pointer" / "mask_rcnn_R18_FPN_demo.yaml"
PLAIN_YAML = REPOSITORY / "pointer" / "mask_rcnn_R50_FPN.yaml"


def test_keypoints_declared_without_a_keypoint_head_name_both_files() -> None:
    declared = pointer_config_with_keypoints(["-1", "4", "3"])
    problem = keypoint_mismatch(declared, 0, CONFIG_PBTXT, PLAIN_YAML)
    assert problem is not None
    assert problem.startswith(
        f"{CONFIG_PBTXT} declares output KEYPOINTS but {PLAIN_YAML} has no keypoint head"
    )
    assert keypoint_mismatch(declared, 4, CONFIG_PBTXT, KEYPOINT_YAML) is None


def test_a_keypoint_head_without_keypoints_declared_names_both_files() -> None:
    plain = pointer_config_without_keypoints()
    problem = keypoint_mismatch(plain, 4, CONFIG_PBTXT, KEYPOINT_YAML)
    assert problem is not None
    assert problem.startswith(
        f"{KEYPOINT_YAML} has a keypoint head (4 keypoints) but {CONFIG_PBTXT} declares no "
        "output KEYPOINTS: add it as TYPE_FP32 dims [ -1, 4, 3 ]"
    )
    assert keypoint_mismatch(plain, 0, CONFIG_PBTXT, PLAIN_YAML) is None


def test_keypoints_of_another_count_name_both_files() -> None:
    declared = pointer_config_with_keypoints(["-1", "17", "3"])
    assert keypoint_mismatch(declared, 4, CONFIG_PBTXT, KEYPOINT_YAML) == (
        f"{CONFIG_PBTXT} declares output KEYPOINTS as TYPE_FP32 [ -1, 17, 3 ] but {KEYPOINT_YAML} "
        "has 4 keypoints: expected TYPE_FP32 dims [ -1, 4, 3 ]"
    )
