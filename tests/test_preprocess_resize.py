"""What the models check against their neighbours' YAMLs when they load (issue 38): preprocess
resizes each detector's image as that detector's YAML says, or refuses to load; inspect's
needle class is one of the meter detector's classes."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from bls.repository import model_tensors
from pipelines.preprocess import (
    PreprocessConfig,
    Resize,
    detector_resize,
    parse_image_parameter,
)
from server.launch import REPO_ROOT, ServerStartError
from tests.support import server_on

REPOSITORY = REPO_ROOT / "repository"
IMAGES = ["POINTER_IMAGE", "INSULATOR_IMAGE"]
# The demo YAMLs' INPUT sizes, and the R50 recipes' (detectron2's defaults), as written in them.
DEMO_POINTER = Resize(320, 576, "BGR")
DEMO_INSULATOR = Resize(384, 640, "BGR")
R50 = Resize(800, 1333, "BGR")


def copy_configs(destination: Path) -> Path:
    """The repository's configs, YAMLs and calibrations, without weights or code."""
    for config in REPOSITORY.glob("*/config.pbtxt"):
        folder = destination / config.parent.name
        folder.mkdir(parents=True)
        for path in config.parent.glob("*.*"):
            if path.suffix in (".pbtxt", ".yaml"):
                shutil.copy2(path, folder / path.name)
    return destination


def set_parameter(config: Path, key: str, value: str) -> None:
    """Replaces the value of parameter ``key`` in a config.pbtxt (which must have it)."""
    text, count = re.subn(
        rf'(key: "{key}", value: {{ string_value: )"[^"]*"', rf'\1"{value}"', config.read_text()
    )
    assert count == 1, f"{config} has no parameter {key}"
    config.write_text(text)


def preprocess_config(repository: Path) -> PreprocessConfig:
    """The preprocess model's config as the model builds it when it loads."""
    parameters = model_tensors(repository, "preprocess").parameters
    return PreprocessConfig.from_parameters(parameters, IMAGES, model_dir=repository / "preprocess")


def test_the_served_preprocess_resizes_as_each_detectors_yaml() -> None:
    config = preprocess_config(REPOSITORY)
    assert config.images == (("POINTER_IMAGE", DEMO_POINTER), ("INSULATOR_IMAGE", DEMO_INSULATOR))
    for output in IMAGES:
        detector, written = parse_image_parameter(
            model_tensors(REPOSITORY, "preprocess").parameters[output]
        )
        assert detector == output.removesuffix("_IMAGE").lower()
        assert written == config.resize(output)


def test_a_detector_alone_takes_the_resize_its_yaml_has(tmp_path: Path) -> None:
    repository = copy_configs(tmp_path)
    set_parameter(
        repository / "pointer" / "config.pbtxt", "detectron2_config", "mask_rcnn_R50_FPN.yaml"
    )
    set_parameter(repository / "preprocess" / "config.pbtxt", "POINTER_IMAGE", "detector=pointer")
    set_parameter(
        repository / "preprocess" / "config.pbtxt", "INSULATOR_IMAGE", "detector=insulator"
    )
    config = preprocess_config(repository)
    assert config.resize("POINTER_IMAGE") == R50
    assert config.resize("INSULATOR_IMAGE") == DEMO_INSULATOR
    # An RGB model gets RGB.
    yaml = repository / "insulator" / "centernet2_R18_FPN_demo.yaml"
    yaml.write_text(yaml.read_text().replace('FORMAT: "BGR"', 'FORMAT: "RGB"'))
    assert preprocess_config(repository).resize("INSULATOR_IMAGE") == Resize(384, 640, "RGB")


def test_a_written_resize_that_is_not_the_yamls_fails_naming_both_files(tmp_path: Path) -> None:
    """The user serves an 800-px model and forgets preprocess: refused, not 320-px images."""
    repository = copy_configs(tmp_path)
    set_parameter(
        repository / "pointer" / "config.pbtxt", "detectron2_config", "mask_rcnn_R50_FPN.yaml"
    )
    with pytest.raises(ValueError) as error:
        preprocess_config(repository)
    message = str(error.value)
    assert message.startswith(f"{repository / 'preprocess' / 'config.pbtxt'}: POINTER_IMAGE: ")
    assert "resized to 'shortest_edge=320 max_size=576 channel_order=BGR'" in message
    assert (
        f"{repository / 'pointer' / 'mask_rcnn_R50_FPN.yaml'} (pointer's detectron2_config)"
        in message
    )
    assert "INPUT.MIN_SIZE_TEST 800, INPUT.MAX_SIZE_TEST 1333, INPUT.FORMAT BGR" in message
    assert "'detector=pointer shortest_edge=800 max_size=1333 channel_order=BGR'" in message
    # Written as the YAML says, it loads.
    set_parameter(
        repository / "preprocess" / "config.pbtxt",
        "POINTER_IMAGE",
        "detector=pointer shortest_edge=800 max_size=1333 channel_order=BGR",
    )
    assert preprocess_config(repository).resize("POINTER_IMAGE") == R50


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("detector=pointr", "no model 'pointr' in"),
        ("detector=preprocess", "has no detectron2_config parameter: it is not a detector"),
        ("detector=", "detector= names no detector"),
        ("detector=pointer max_size=576", "expected 'detector=NAME'"),
        ("shortest_edge=320 max_size=576 channel_order=BGR colour=yes", "expected 'detector=NAME'"),
    ],
)
def test_a_bad_image_parameter_names_the_file_the_output_and_the_problem(
    tmp_path: Path, value: str, problem: str
) -> None:
    repository = copy_configs(tmp_path)
    set_parameter(repository / "preprocess" / "config.pbtxt", "POINTER_IMAGE", value)
    with pytest.raises(ValueError, match=re.escape(problem)) as error:
        preprocess_config(repository)
    assert str(error.value).startswith(
        f"{repository / 'preprocess' / 'config.pbtxt'}: POINTER_IMAGE: "
    )


def test_a_missing_yaml_is_named(tmp_path: Path) -> None:
    repository = copy_configs(tmp_path)
    set_parameter(repository / "pointer" / "config.pbtxt", "detectron2_config", "gone.yaml")
    with pytest.raises(ValueError, match=re.escape(str(repository / "pointer" / "gone.yaml"))):
        detector_resize(repository, "pointer")


def test_without_a_repository_a_written_resize_is_taken_and_a_detector_alone_is_refused() -> None:
    """Callers with no repository at hand (tests, a DALI model serialised elsewhere)."""
    parameters = {"max_bytes": "1", "max_pixels": "1", "POINTER_IMAGE": "detector=pointer"}
    with pytest.raises(ValueError, match="no model repository was given"):
        PreprocessConfig.from_parameters(parameters, ["POINTER_IMAGE"])
    parameters["POINTER_IMAGE"] = "detector=pointer shortest_edge=10 max_size=20 channel_order=RGB"
    config = PreprocessConfig.from_parameters(parameters, ["POINTER_IMAGE"])
    assert config.resize("POINTER_IMAGE") == Resize(10, 20, "RGB")


def test_without_its_detector_a_written_resize_serves_as_it_is(tmp_path: Path) -> None:
    """Preprocessing served alone: there is no detector to feed the wrong size."""
    repository = copy_configs(tmp_path)
    shutil.rmtree(repository / "insulator")
    assert preprocess_config(repository).resize("INSULATOR_IMAGE") == DEMO_INSULATOR
    set_parameter(
        repository / "preprocess" / "config.pbtxt", "INSULATOR_IMAGE", "detector=insulator"
    )
    with pytest.raises(ValueError, match="no model 'insulator' in"):
        preprocess_config(repository)


def test_a_resize_reads_back_as_written() -> None:
    for resize in (DEMO_POINTER, Resize(1, 2, "RGB")):
        assert Resize.parse(resize.parameter()) == resize


@pytest.mark.server
def test_preprocess_and_inspect_fail_their_load_on_a_neighbours_yaml(tmp_path: Path) -> None:
    """Through the real server: preprocess on an input size its detector's YAML does not have,
    inspect on a needle class its meter detector does not have; each names the files."""
    repository = tmp_path / "repository"
    shutil.copytree(REPOSITORY / "preprocess", repository / "preprocess")
    shutil.copytree(REPOSITORY / "inspect", repository / "inspect")
    # The detectors' configs and YAMLs only, which the two read: without a version folder the
    # server serves no detector, and starts no stub for one.
    for detector in ("pointer", "insulator"):
        folder = repository / detector
        folder.mkdir()
        for path in (REPOSITORY / detector).glob("*.*"):
            if path.suffix in (".pbtxt", ".yaml"):
                shutil.copy2(path, folder / path.name)
    set_parameter(
        repository / "pointer" / "config.pbtxt", "detectron2_config", "mask_rcnn_R50_FPN.yaml"
    )
    set_parameter(repository / "inspect" / "config.pbtxt", "needle_class", "needle")
    server = server_on(repository, tmp_path)
    with server, pytest.raises(ServerStartError):
        server.wait_until_ready(timeout_s=300)
    log = server.log_text()
    assert (
        f"{repository / 'preprocess' / 'config.pbtxt'}: POINTER_IMAGE: resized to "
        "'shortest_edge=320 max_size=576 channel_order=BGR', but "
        f"{repository / 'pointer' / 'mask_rcnn_R50_FPN.yaml'}"
    ) in log
    assert (
        f"inspect: needle_class 'needle' in {repository / 'inspect' / 'config.pbtxt'} is not a "
        f"class of {repository / 'pointer' / 'mask_rcnn_R50_FPN.yaml'}: its CLASS_NAMES are "
        "['pointer', 'dial']"
    ) in log
