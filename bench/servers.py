"""The servers the benchmark starts: the shipped repository, a one-at-a-time copy of it, and
(``--precision``) a copy whose detectors serve a lower precision."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from bls.repository import parse_config
from pipelines.detector import read_yaml_config
from server.launch import REPO_ROOT, Ports, TritonServer

__all__ = [
    "DETECTOR_PATHS",
    "ECHO_MODEL",
    "PRECISION_MODELS",
    "PRODUCTION",
    "UNBATCHED_MODELS",
    "drop_output",
    "set_precision",
    "start_server",
    "strip_dynamic_batching",
    "switch_to_production",
    "write_bench_repository",
    "write_precision_repository",
    "write_production_repository",
]

ECHO_MODEL = "bench_echo"
# The insulator path, which the throughput section drives, without dynamic batching.
UNBATCHED_MODELS = ("preprocess", "insulator", "insulator_ensemble")

_ECHO_CONFIG = f"""\
# Written by bench/servers.py: raw bytes in, their count out (transport timing only).
name: "{ECHO_MODEL}"
backend: "python"
max_batch_size: 0
input [ {{ name: "JPEG", data_type: TYPE_UINT8, dims: [ -1 ] }} ]
output [ {{ name: "SIZE", data_type: TYPE_INT64, dims: [ 1 ] }} ]
instance_group [ {{ kind: KIND_CPU, count: 1 }} ]
"""

# A whole "dynamic_batching { ... }" block; the configs here nest no braces inside it.
_DYNAMIC_BATCHING = re.compile(r"^\s*dynamic_batching\s*\{[^{}]*\}\s*\n", re.MULTILINE)


def strip_dynamic_batching(config_text: str) -> str:
    """A ``config.pbtxt`` without its ``dynamic_batching`` block: Triton then runs requests one
    at a time (the default scheduler), the baseline dynamic batching is compared with."""
    return _DYNAMIC_BATCHING.sub("", config_text)


def write_bench_repository(
    target: Path, source: Path = REPO_ROOT / "repository", models: Iterable[str] = UNBATCHED_MODELS
) -> Path:
    """Writes a model repository of ``models`` without dynamic batching, plus ``bench_echo``.

    Configs are rewritten; ``model.py`` files and YAMLs are copied; ``weights`` folders are
    linked, never copied (checkpoints are large).

    Returns:
        ``target``, rewritten from scratch.
    """
    if target.exists():
        shutil.rmtree(target)
    for model in models:
        src, dst = source / model, target / model
        dst.mkdir(parents=True)
        for entry in src.iterdir():
            if entry.name == "config.pbtxt":
                (dst / entry.name).write_text(strip_dynamic_batching(entry.read_text()))
            elif entry.name == "weights":
                (dst / entry.name).symlink_to(entry.resolve(), target_is_directory=True)
            elif entry.is_dir():
                shutil.copytree(
                    entry, dst / entry.name, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(entry, dst / entry.name)
    echo = target / ECHO_MODEL
    (echo / "1").mkdir(parents=True)
    (echo / "config.pbtxt").write_text(_ECHO_CONFIG)
    shutil.copy2(Path(__file__).with_name("echo_model.py"), echo / "1" / "model.py")
    return target


# detector -> (the demo YAML, the production YAML, its image in preprocess's parameters)
PRODUCTION = {
    "pointer": ("mask_rcnn_R18_FPN_demo.yaml", "mask_rcnn_R50_FPN.yaml", "POINTER_IMAGE"),
    "insulator": ("centernet2_R18_FPN_demo.yaml", "centernet2_R50_FPN.yaml", "INSULATOR_IMAGE"),
}
# detectron2's default test resize, which the R50 recipes keep.
PRODUCTION_RESIZE = "shortest_edge=800 max_size=1333 channel_order=BGR"


def _remove_output(config: model_config_pb2.ModelConfig, name: str) -> None:
    kept = [declared for declared in config.output if declared.name != name]
    del config.output[:]
    config.output.extend(kept)


def drop_output(repository: Path, model: str, output: str) -> None:
    """Removes ``model``'s output ``output`` from its ``config.pbtxt`` and from every ensemble
    step that maps it (the configs it changes lose their comments)."""
    for path in sorted(repository.glob("*/config.pbtxt")):
        config = parse_config(path)
        before = config.SerializeToString()
        if path.parent.name == model:
            _remove_output(config, output)
        for step in config.ensemble_scheduling.step:
            if step.model_name == model and output in step.output_map:
                _remove_output(config, step.output_map.pop(output))
        if config.SerializeToString() != before:
            path.write_text(text_format.MessageToString(config))


def switch_to_production(repository: Path, weights: Mapping[str, Path]) -> None:
    """Edits a copy of the repository as the README tells a user to: per detector, the two
    parameters that name the R50-FPN YAML and its weights, and its resize in ``preprocess``;
    the demo weights' score thresholds go (other weights serve their YAML's until they have
    thresholds of their own), and so does the ``KEYPOINTS`` output of a YAML without a keypoint
    head.

    Raises:
        ValueError: a config does not have the shipped demo settings to replace.
    """
    preprocess = repository / "preprocess" / "config.pbtxt"
    text = preprocess.read_text()
    for name, (demo, production, image) in PRODUCTION.items():
        config = repository / name / "config.pbtxt"
        shipped = config.read_text()
        if f'string_value: "{demo}"' not in shipped or '"weights/demo.pth"' not in shipped:
            raise ValueError(f"{config}: not the shipped demo parameters")
        edited = shipped.replace(f'"{demo}"', f'"{production}"')
        edited = re.sub(r'\n *\{ key: "score_thresholds",[^\n]*\}\s*,?', "", edited)
        config.write_text(edited.replace('"weights/demo.pth"', f'"{weights[name]}"'))
        text, count = re.subn(
            rf'(key: "{image}", value: {{ string_value: )"[^"]*"', rf'\1"{PRODUCTION_RESIZE}"', text
        )
        if count != 1:
            raise ValueError(f"{preprocess}: no {image} parameter")
    preprocess.write_text(text)
    for name, (_, production, _) in PRODUCTION.items():
        if not read_yaml_config(repository / name / production).MODEL.KEYPOINT_ON:
            drop_output(repository, name, "KEYPOINTS")


def write_production_repository(
    target: Path, weights: Mapping[str, Path], source: Path = REPO_ROOT / "repository"
) -> Path:
    """Copies the repository (without its weights) to ``target``, switched to the R50-FPN
    recipes with ``weights`` (absolute paths, by detector).

    Returns:
        ``target``, rewritten from scratch.
    """
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("weights", "__pycache__"))
    switch_to_production(target, weights)
    return target


# The detectors whose precision a copy of the repository sets.
PRECISION_MODELS = ("pointer", "insulator")
# What the ensembles of the detectors need, for a server that serves only them.
DETECTOR_PATHS = ("preprocess", "pointer", "insulator", "pointer_ensemble", "insulator_ensemble")
_PRECISION = re.compile(r'(key: "precision", value: \{ string_value: )"[^"]*"')


def set_precision(config_text: str, precision: str, path: Path) -> str:
    """A detector's ``config.pbtxt`` with its ``precision`` parameter set to ``precision``.

    Raises:
        ValueError: the config has no ``precision`` parameter (naming ``path``).
    """
    text, count = _PRECISION.subn(rf'\1"{precision}"', config_text)
    if count != 1:
        raise ValueError(f"{path}: no precision parameter to set")
    return text


def write_precision_repository(
    target: Path,
    precision: str,
    source: Path = REPO_ROOT / "repository",
    models: Iterable[str] | None = None,
) -> Path:
    """Copies the repository's ``models`` (all by default) to ``target``, the detectors among
    them set to serve ``precision``; ``weights`` folders are linked, never copied.

    Returns:
        ``target``, rewritten from scratch.

    Raises:
        ValueError: a detector's config has no ``precision`` parameter.
    """
    if target.exists():
        shutil.rmtree(target)
    names = (
        list(models)
        if models is not None
        else sorted(p.name for p in source.iterdir() if (p / "config.pbtxt").is_file())
    )
    for model in names:
        src, dst = source / model, target / model
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("weights", "__pycache__"))
        if (src / "weights").is_dir():
            (dst / "weights").symlink_to((src / "weights").resolve(), target_is_directory=True)
        if model in PRECISION_MODELS:
            config = dst / "config.pbtxt"
            config.write_text(set_precision(config.read_text(), precision, src / "config.pbtxt"))
    return target


def start_server(ports: Ports, repository: Path, log_path: Path) -> TritonServer:
    """Starts ``tritonserver`` on ``repository``; the caller waits for it and stops it."""
    server = TritonServer(ports, model_repository=repository, log_path=log_path)
    server.start()
    return server
