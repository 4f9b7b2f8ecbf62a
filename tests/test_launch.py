"""`make serve`'s launcher: starts the real server, says where it listens, stops cleanly."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.launch import REPO_ROOT, ServerStartError, processes_in_group
from tests.support import free_ports, server_on


def copy_models(destination: Path, *names: str) -> Path:
    for name in names:
        shutil.copytree(REPO_ROOT / "repository" / name, destination / name)
    return destination


def test_serve_prints_ports_when_ready_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    repository = copy_models(tmp_path / "repository", "preprocess", "preprocess_ensemble")
    http, grpc, metrics = free_ports(3)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.launch",
            "--model-repository",
            str(repository),
            "--http-port",
            str(http),
            "--grpc-port",
            str(grpc),
            "--metrics-port",
            str(metrics),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 300
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        output = "".join(lines)
        assert "Triton is ready. Models: preprocess, preprocess_ensemble" in output, output
        assert f"HTTP     http://localhost:{http}" in output
        assert f"gRPC     localhost:{grpc}" in output
        assert f"metrics  http://localhost:{metrics}/metrics" in output
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(children) == 1, "the launcher runs the watchdog (and tritonserver under it)"
        server_group = int(children[0])
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        assert processes_in_group(server_group) == []
    finally:
        if process.poll() is None:
            process.kill()


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    repository = copy_models(tmp_path / "repository", "preprocess")
    server = server_on(repository, tmp_path)
    with server:
        server.wait_until_ready(timeout_s=300)
        group = server.pid
        assert group is not None
        assert len(processes_in_group(group)) >= 2, "expected the server and its python stub"
    assert processes_in_group(group) == []


def test_a_model_that_fails_to_load_is_reported_with_the_log(tmp_path: Path) -> None:
    repository = copy_models(tmp_path / "repository", "preprocess")
    config = repository / "preprocess" / "config.pbtxt"
    config.write_text(config.read_text().replace('"67108864"', '"not a number"'))
    server = server_on(repository, tmp_path)
    with server, pytest.raises(ServerStartError) as error:
        server.wait_until_ready(timeout_s=300)
    assert "tritonserver exited" in str(error.value)
    assert "not a number" in str(error.value)


def test_a_malformed_meter_calibration_fails_the_routers_load(tmp_path: Path) -> None:
    repository = copy_models(
        tmp_path / "repository", "preprocess", "pointer", "insulator", "inspect"
    )
    meters = repository / "pointer" / "meters.yaml"
    meters.write_text(meters.read_text().replace("max_value: 1.6", "max_value: lots"))
    server = server_on(repository, tmp_path)
    with server, pytest.raises(ServerStartError) as error:
        server.wait_until_ready(timeout_s=300)
    assert f"{meters}: dial.max_value" in str(error.value)
