"""The servers the benchmark starts: the shipped repository, and a one-at-a-time copy of it."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from server.launch import REPO_ROOT, Ports, TritonServer

__all__ = [
    "ECHO_MODEL",
    "UNBATCHED_MODELS",
    "start_server",
    "strip_dynamic_batching",
    "write_bench_repository",
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


def start_server(ports: Ports, repository: Path, log_path: Path) -> TritonServer:
    """Starts ``tritonserver`` on ``repository``; the caller waits for it and stops it."""
    server = TritonServer(ports, model_repository=repository, log_path=log_path)
    server.start()
    return server
