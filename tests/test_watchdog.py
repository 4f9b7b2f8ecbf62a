"""server/watchdog.py: a killed python-backend stub turns readiness red, fails only the requests
it held, and the model comes back by itself. Tests on the real server with the preprocessing
models (a few seconds to load); tests/test_server_bls.py does the same with a detector."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from clients.jpeg_client import InferenceServerException, JpegClient
from server import watchdog
from server.launch import REPO_ROOT, Ports, TritonServer, processes_in_group
from tests.support import WATCHDOG_NOTES_STUBS_S, ReadinessRecorder

ENSEMBLE = "preprocess_ensemble"
# What a request gets while its model is broken (sent to the dead stub), then unloaded.
OUTAGE_ERRORS = re.compile(
    r"Stub process 'preprocess_0' is not healthy\."
    r"|Request for unknown model: 'preprocess_ensemble' has no available versions"
)
# The watchdog checks every second, so a dead stub turns its model red within a check or two;
# the bound leaves room for a busy machine and still fails a watchdog that checks once a minute.
RED_WITHIN_S = 15.0
# How long the request thread may take to get an answer once the model is back.
ANSWER_AFTER_RECOVERY_S = 60.0


def test_expected_stubs_counts_python_instances_only() -> None:
    python = {"backend": "python", "instance_group": [{"kind": "KIND_CPU", "count": 2}]}
    on_gpus = {
        "backend": "python",
        "instance_group": [{"kind": "KIND_GPU", "count": 2, "gpus": [0, 1]}],
    }
    assert watchdog.expected_stubs(python) == 2
    assert watchdog.expected_stubs(on_gpus) == 4
    assert watchdog.expected_stubs({"platform": "ensemble", "instance_group": []}) == 0


def test_watchdog_refuses_a_server_it_could_not_reload(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        watchdog.parse_args(["--", "tritonserver", "--model-repository=repository"])
    assert "--model-control-mode=explicit --load-model=*" in capsys.readouterr().err


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> TritonServer:
    root = tmp_path_factory.mktemp("watchdog")
    for name in ("preprocess", ENSEMBLE):
        shutil.copytree(REPO_ROOT / "repository" / name, root / "repository" / name)
    server = TritonServer(
        Ports.free(),
        model_repository=root / "repository",
        build_dir=root / "build",
        log_path=root / "triton.log",
    )
    with server:
        server.wait_until_ready(timeout_s=300)
        yield server


def test_clients_cannot_unload_models(server: TritonServer) -> None:
    """Explicit model control is for the watchdog alone (a per-run secret header)."""
    with httpclient.InferenceServerClient(server.url("http")) as client:
        with pytest.raises(InferenceServerException, match="This API is restricted"):
            client.unload_model("preprocess")
        assert client.is_model_ready("preprocess")


def test_clients_cannot_unload_models_over_grpc(server: TritonServer) -> None:
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(server.url("grpc")) as client:
        with pytest.raises(InferenceServerException, match="This protocol is restricted"):
            client.unload_model("preprocess")
        assert client.is_model_ready("preprocess")


def test_killed_stub_fails_its_requests_turns_readiness_red_and_comes_back(
    server: TritonServer, jpegs: dict[str, bytes]
) -> None:
    photo = jpegs["landscape_640x427"]
    with JpegClient(server.url("grpc"), "grpc") as client:
        expected = client.infer(ENSEMBLE, photo)["POINTER_IMAGE"]
    (victim,) = server.stubs()["preprocess"]
    region = next(
        Path("/dev/shm", arg)
        for arg in Path(f"/proc/{victim}/cmdline").read_text().split("\0")
        if arg.startswith("triton_python_backend_shm_region_")
    )
    assert region.exists()
    errors: list[str] = []
    answered = 0
    wrong_images = 0  # counted here, asserted below: an assert in the thread would only warn
    stop = threading.Event()

    def send_requests() -> None:
        nonlocal answered, wrong_images
        with JpegClient(server.url("grpc"), "grpc") as client:
            while not stop.is_set():
                try:
                    image = client.infer(ENSEMBLE, photo)["POINTER_IMAGE"]
                except InferenceServerException as error:
                    errors.append(str(error))
                    time.sleep(0.05)
                else:
                    wrong_images += not np.array_equal(image, expected)
                    answered += 1

    sender = threading.Thread(target=send_requests)
    sender.start()
    try:
        time.sleep(WATCHDOG_NOTES_STUBS_S)
        with ReadinessRecorder(server, "preprocess") as readiness:
            os.kill(victim, signal.SIGKILL)
            red_after_s, green_after_s = readiness.wait_until_recovered(timeout_s=120)
        answered_before_recovery = answered
        deadline = time.monotonic() + ANSWER_AFTER_RECOVERY_S
        while answered == answered_before_recovery and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        sender.join(timeout=60)
    assert not sender.is_alive(), "the request thread did not stop"
    assert wrong_images == 0, f"{wrong_images} of {answered} answers were not the image"
    print(
        f"preprocess stub killed: not ready after {red_after_s:.2f} s, ready after "
        f"{green_after_s:.2f} s; {len(errors)} requests failed:",
        *sorted({error.splitlines()[0][:120] for error in errors}),
        sep="\n  ",
    )
    assert red_after_s < RED_WITHIN_S, "the watchdog checks every second"
    assert errors, "no request noticed the outage"
    unexpected = [e for e in errors if not OUTAGE_ERRORS.search(e)]
    assert not unexpected, f"unclear errors: {unexpected[:3]}"
    assert answered > answered_before_recovery, (
        f"no answer within {ANSWER_AFTER_RECOVERY_S:.0f} s after the model came back"
    )
    assert server.stubs()["preprocess"] != {victim}
    log = server.log_text()
    assert "model 'preprocess' runs 0 of its 1 stub processes" in log
    assert "reloaded 'preprocess' in" in log
    assert not region.exists(), "the dead stub's shared memory stayed in /dev/shm"


def test_server_stops_cleanly_under_the_watchdog(server: TritonServer) -> None:
    """Stubs ending with the server are not taken for deaths, and nothing outlives the stop."""
    group = server.pid
    assert group is not None
    log_before_stop = len(server.log_text())
    server.stop()
    assert "died" not in server.log_text()[log_before_stop:]
    assert processes_in_group(group) == []


@pytest.mark.slow
def test_a_failed_reload_is_retried_less_and_less_often_until_it_works(tmp_path: Path) -> None:
    """A stub dies while its model cannot load (a broken config): the watchdog retries after 1,
    2, 4 ... seconds, and reloads it once the config is mended."""
    repository = tmp_path / "repository"
    shutil.copytree(REPO_ROOT / "repository" / "preprocess", repository / "preprocess")
    server = TritonServer(
        Ports.free(),
        model_repository=repository,
        build_dir=tmp_path / "build",
        log_path=tmp_path / "triton.log",
    )
    config = repository / "preprocess" / "config.pbtxt"
    good = config.read_text()
    failure = "reloading 'preprocess' failed, will retry"
    with server:
        server.wait_until_ready(timeout_s=300)
        config.write_text(good.replace('"67108864"', '"not a number"'))
        (victim,) = server.stubs()["preprocess"]
        os.kill(victim, signal.SIGKILL)
        seen: list[float] = []
        deadline = time.monotonic() + 120
        while len(seen) < 4 and time.monotonic() < deadline:
            if server.log_text().count(failure) > len(seen):
                seen.append(time.monotonic())
            time.sleep(0.05)
        assert len(seen) == 4, f"expected 4 failed reloads: {server.log_text()[-2000:]}"
        gaps = [later - earlier for earlier, later in itertools.pairwise(seen)]
        # Each wait doubles (1, 2, 4 s after the first three), plus the reload's own time.
        for gap, delay in zip(gaps, (1.0, 2.0, 4.0), strict=True):
            assert gap >= 0.8 * delay, f"retries came after {gaps} s"
        assert gaps[2] > gaps[0], f"retries did not back off: {gaps} s"
        config.write_text(good)
        deadline = time.monotonic() + 120
        while "reloaded 'preprocess'" not in server.log_text():
            assert time.monotonic() < deadline, server.log_text()[-2000:]
            time.sleep(0.2)
        with httpclient.InferenceServerClient(server.url("http")) as client:
            assert client.is_model_ready("preprocess")
