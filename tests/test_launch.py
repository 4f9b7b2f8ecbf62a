"""`make serve`'s launcher: starts the real server, says where it listens, stops cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tritonclient.http as httpclient

from pipelines.threads import usable_cores
from server.launch import (
    REPO_ROOT,
    Ports,
    ServerStartError,
    child_processes,
    processes_in_group,
    visible_gpus,
)
from tests.support import WATCHDOG_NOTES_STUBS_S, probe_ready, server_on

pytestmark = pytest.mark.server


def copy_models(destination: Path, *names: str) -> Path:
    for name in names:
        shutil.copytree(REPO_ROOT / "repository" / name, destination / name)
    return destination


# How a server is told to stop: Ctrl-C once or twice, SIGTERM to the launcher, or to its whole
# process group twice (what `kill -TERM -- -<group>` of `make serve` does: make passes its own
# signal on, so the launcher gets two).
STOPS = {
    "ctrl-c": [(signal.SIGINT, False)],
    "ctrl-c twice": [(signal.SIGINT, False), (signal.SIGINT, False)],
    "sigterm": [(signal.SIGTERM, False)],
    "sigterm to the group twice": [(signal.SIGTERM, True), (signal.SIGTERM, True)],
}


@pytest.mark.parametrize(
    ("visible", "gpus"),
    [("0,1", [0, 1]), ("3", [0]), ("", [0]), ("GPU-a, GPU-b, GPU-c", [0, 1, 2])],
)
def test_every_visible_gpu_gets_a_cuda_pool(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, visible: str, gpus: list[int]
) -> None:
    """Triton numbers the visible GPUs from 0; each gets the launcher's pool, GPU 0 always."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert visible_gpus() == gpus
    pools = [f for f in server_on(REPO_ROOT / "repository", tmp_path).command() if "pool" in f]
    assert [f.split("=")[1].split(":")[0] for f in pools] == [str(gpu) for gpu in gpus]


@pytest.mark.parametrize("stop", sorted(STOPS))
@pytest.mark.parametrize("attempt", range(2))
def test_serve_prints_ports_when_ready_and_stops_on_a_signal(
    tmp_path: Path, stop: str, attempt: int
) -> None:
    repository = copy_models(tmp_path / "repository", "preprocess", "preprocess_ensemble")
    ports = Ports.free()
    http, grpc, metrics = ports.http, ports.grpc, ports.metrics
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
        start_new_session=True,
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
        children = child_processes(process.pid)
        assert len(children) == 1, "the launcher runs the watchdog (and tritonserver under it)"
        server_group = children[0]
        for sig, to_group in STOPS[stop]:
            if to_group:
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)
            time.sleep(0.05)
        assert process.wait(timeout=60) == 0
        assert processes_in_group(server_group) == []
        assert processes_in_group(process.pid) == []
        for port in (http, grpc, metrics):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port))  # free again
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
    with server, pytest.raises(ServerStartError, match="failed to load all models"):
        server.wait_until_ready(timeout_s=300)
    # The log's model table wraps long lines; its load error line does not.
    assert f"{meters}: dial.max_value: expected a finite number" in server.log_text()


def shm_regions() -> set[str]:
    """The python backend's shared-memory regions in /dev/shm, of any server on this machine."""
    return {p.name for p in Path("/dev/shm").glob("triton_python_backend_shm_region_*")}


def can_make_a_pid_namespace() -> bool:
    probe = subprocess.run(
        ["unshare", "--fork", "--pid", "--mount-proc", "true"], capture_output=True, timeout=30
    )
    return probe.returncode == 0


@pytest.mark.parametrize("signals", [1, 2])
def test_watchdog_as_a_containers_pid_1_stops_on_sigterm(tmp_path: Path, signals: int) -> None:
    """As in the image (its CMD runs the watchdog): PID 1 of its own PID namespace gets SIGTERM
    from `docker stop` or the kubelet (a script may send it twice). The server shuts down
    cleanly, its stubs' shared-memory regions go and its ports are free again."""
    if not can_make_a_pid_namespace():
        pytest.skip("needs `unshare --pid` (root): the container's PID 1 was not tested")
    repository = copy_models(tmp_path / "repository", "preprocess", "preprocess_ensemble")
    server = server_on(repository, tmp_path)
    regions_before = shm_regions()
    log = (tmp_path / "pid1.log").open("wb")
    process = subprocess.Popen(
        ["unshare", "--fork", "--pid", "--mount-proc", *server.command()],
        env=server.environment(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not probe_ready(server, "preprocess_ensemble"):
            assert process.poll() is None, (tmp_path / "pid1.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the server did not turn ready"
            time.sleep(0.5)
        regions = shm_regions() - regions_before
        assert regions, "expected the stubs' shared-memory regions"
        # unshare's one child is the namespace's PID 1: the watchdog.
        (pid1,) = child_processes(process.pid)
        for _ in range(signals):
            os.kill(pid1, signal.SIGTERM)
            time.sleep(0.05)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    output = (tmp_path / "pid1.log").read_text()
    assert "successfully unloaded 'preprocess'" in output
    assert not regions & shm_regions(), "a stub's shared-memory region stayed in /dev/shm"
    for port in (server.ports.http, server.ports.grpc, server.ports.metrics):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free again


def test_a_drain_held_by_an_idle_http_connection_leaves_nothing_in_dev_shm(
    tmp_path: Path,
) -> None:
    """A client that keeps its HTTP connection open (tritonclient's pool does) holds Triton's
    drain until the exit timeout is spent; the server then exits without unloading its models,
    which leaves the stubs' shared-memory regions behind for the watchdog to remove. The stop
    must wait for that rather than kill the watchdog."""
    repository = copy_models(tmp_path / "repository", "preprocess", "preprocess_ensemble")
    server = server_on(repository, tmp_path, exit_timeout_s=2)
    regions_before = shm_regions()
    with server:
        server.wait_until_ready(timeout_s=300)
        regions = shm_regions() - regions_before
        assert regions, "expected the stubs' shared-memory regions"
        client = httpclient.InferenceServerClient(server.url("http"))
        try:
            assert client.is_model_ready("preprocess")
            server.stop()
        finally:
            client.close()
    log = server.log_text()
    assert "Exit timeout expired" in log, "the open connection did not hold the drain"
    assert "successfully unloaded 'preprocess'" not in log
    assert not regions & shm_regions(), "a stub's shared-memory region stayed in /dev/shm"
    for region in regions:
        assert f"watchdog: removed /dev/shm/{region}" in log


def test_a_crashed_server_leaves_nothing_in_dev_shm_and_its_death_is_passed_on(
    tmp_path: Path,
) -> None:
    """tritonserver dies without unloading its models (here SIGKILL; a stub killed while it holds
    one of the python backend's locks aborts it, README "Known limitations"): the watchdog removes
    its stubs' shared-memory regions and exits as the server did, for a supervisor to see."""
    repository = copy_models(tmp_path / "repository", "preprocess", "preprocess_ensemble")
    server = server_on(repository, tmp_path)
    regions_before = shm_regions()
    with server:
        server.wait_until_ready(timeout_s=300)
        regions = shm_regions() - regions_before
        assert regions, "expected the stubs' shared-memory regions"
        time.sleep(WATCHDOG_NOTES_STUBS_S)
        (tritonserver,) = child_processes(server.pid)
        os.kill(tritonserver, signal.SIGKILL)
        assert server.wait() == 128 + signal.SIGKILL
    assert not regions & shm_regions(), "a stub's shared-memory region stayed in /dev/shm"


def test_cpu_instances_of_a_detector_share_the_cores_and_load_no_dali(tmp_path: Path) -> None:
    repository = copy_models(tmp_path / "repository", "pointer")
    config = repository / "pointer" / "config.pbtxt"
    config.write_text(config.read_text() + "\ninstance_group [ { kind: KIND_CPU, count: 2 } ]\n")
    server = server_on(repository, tmp_path)
    with server:
        server.wait_until_ready(timeout_s=300)
        stubs = server.stubs().get("pointer", set())
        assert len(stubs) == 2
        # A detector needs no DALI (about 65 MiB per process): only "preprocess" loads it.
        for pid in stubs:
            assert "nvidia/dali" not in Path(f"/proc/{pid}/maps").read_text()
    threads = max(1, usable_cores() // 2)
    log = server.log_text()
    assert log.count(f"image(s) per forward, {threads} torch thread(s)") == 2, log[-3000:]
