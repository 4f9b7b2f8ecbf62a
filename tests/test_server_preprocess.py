"""The preprocessing ensemble through the real tritonserver, over HTTP and gRPC."""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from clients.jpeg_client import InferenceServerException, JpegClient
from server.launch import REPO_ROOT, TritonServer
from tests.bad_inputs import bad_input
from tests.support import (
    assert_a_batch_formed,
    assert_close_to_reference,
    batch_sizes,
    connect,
    reference_preprocess,
    served_preprocess_config,
)

ENSEMBLE = "preprocess_ensemble"
PROTOCOLS = ["http", "grpc"]
# (image output, its resize) for each detector, as the repository serves them.
IMAGES = served_preprocess_config().images
POINTER_RESIZE = served_preprocess_config().resize("POINTER_IMAGE")


@pytest.fixture(params=PROTOCOLS)
def client(request: pytest.FixtureRequest, triton_server: TritonServer) -> JpegClient:
    with connect(triton_server, request.param) as client:
        yield client


def test_server_and_models_ready(triton_server: TritonServer) -> None:
    with grpcclient.InferenceServerClient(f"localhost:{triton_server.ports.grpc}") as client:
        assert client.is_server_live()
        assert client.is_server_ready()
        for model in ("preprocess", ENSEMBLE):
            assert client.is_model_ready(model), model


def test_ensemble_matches_reference(client: JpegClient, jpegs: dict[str, bytes]) -> None:
    assert len({resize for _, resize in IMAGES}) == len(IMAGES) > 1, "detectors of one size"
    for name, jpeg in jpegs.items():
        outputs = client.infer(ENSEMBLE, jpeg)
        assert outputs["ORIGINAL_SIZE"].dtype == np.int32
        for output, resize in IMAGES:
            reference_image, reference_size = reference_preprocess(jpeg, resize)
            np.testing.assert_array_equal(outputs["ORIGINAL_SIZE"], reference_size, err_msg=name)
            assert_close_to_reference(outputs[output], reference_image)


def test_preprocess_makes_only_the_images_asked_for(
    triton_server: TritonServer, jpegs: dict[str, bytes]
) -> None:
    data = np.frombuffer(jpegs["landscape_640x427"], dtype=np.uint8)[np.newaxis]
    with grpcclient.InferenceServerClient(triton_server.url("grpc")) as client:
        for output, _ in IMAGES:
            infer_input = grpcclient.InferInput("JPEG", list(data.shape), "UINT8")
            infer_input.set_data_from_numpy(data)
            wanted = [grpcclient.InferRequestedOutput(n) for n in (output, "ORIGINAL_SIZE")]
            result = client.infer("preprocess", [infer_input], outputs=wanted)
            returned = {o.name for o in result.get_response().outputs}
            assert returned == {output, "ORIGINAL_SIZE"}


def test_http_and_grpc_return_identical_tensors(
    triton_server: TritonServer, jpegs: dict[str, bytes]
) -> None:
    jpeg = jpegs["portrait_300x1000"]
    with connect(triton_server, "http") as http, connect(triton_server, "grpc") as grpc:
        by_http = http.infer(ENSEMBLE, jpeg)
        by_grpc = grpc.infer(ENSEMBLE, jpeg)
    assert by_http.keys() == by_grpc.keys()
    for name in by_http:
        np.testing.assert_array_equal(by_http[name], by_grpc[name], err_msg=name)


@pytest.mark.parametrize("name", ["empty", "png", "text"])
def test_bad_input_gets_a_clear_error(
    client: JpegClient, jpegs: dict[str, bytes], name: str
) -> None:
    data, message = bad_input(name, jpegs["landscape_640x427"])
    with pytest.raises(InferenceServerException, match=re.escape(message)):
        client.infer(ENSEMBLE, data)
    # The server is still serving.
    assert client.infer(ENSEMBLE, jpegs["tiny_64x48"])["POINTER_IMAGE"].shape == (320, 427, 3)


def test_several_images_in_one_request_are_refused(triton_server: TritonServer) -> None:
    with grpcclient.InferenceServerClient(f"localhost:{triton_server.ports.grpc}") as client:
        data = np.zeros((2, 16), dtype=np.uint8)
        infer_input = grpcclient.InferInput("JPEG", list(data.shape), "UINT8")
        infer_input.set_data_from_numpy(data)
        with pytest.raises(InferenceServerException, match="expected one JPEG per request"):
            client.infer("preprocess", [infer_input])


def test_mixed_concurrent_batch_fails_only_bad_requests(
    triton_server: TritonServer, jpegs: dict[str, bytes]
) -> None:
    good = jpegs["landscape_640x427"]
    # bad_huffman_table: a header that parses, data that fails inside DALI's decode.
    errors = dict(bad_input(name, good) for name in ("cut_in_scan", "gif", "bad_huffman_table"))
    truncated, gif, bad_table = errors
    payloads = [good, truncated, good, gif, good, bad_table, good, good] * 2

    def send(jpeg: bytes) -> np.ndarray | str:
        with connect(triton_server, "grpc") as client:
            try:
                return client.infer("preprocess", jpeg)["POINTER_IMAGE"]
            except InferenceServerException as error:
                return error.message()

    stats_before = batch_sizes(triton_server, "preprocess")
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(send, payloads))
    stats_after = batch_sizes(triton_server, "preprocess")

    reference, _ = reference_preprocess(good, POINTER_RESIZE)
    for payload, result in zip(payloads, results, strict=True):
        if payload is good:
            assert isinstance(result, np.ndarray), result
            assert_close_to_reference(result, reference)
        else:
            assert isinstance(result, str)
            assert errors[payload] in result
    assert_a_batch_formed(stats_before, stats_after)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_cli_prints_tensors_and_fails_on_bad_image(
    triton_server: TritonServer, jpegs: dict[str, bytes], tmp_path: Path, protocol: str
) -> None:
    good = tmp_path / "meter.jpg"
    good.write_bytes(jpegs["landscape_640x427"])
    command = [
        sys.executable,
        str(REPO_ROOT / "clients" / "ensemble_client.py"),
        "--model",
        ENSEMBLE,
        "--protocol",
        protocol,
        "--url",
        triton_server.url(protocol),
    ]
    ok = subprocess.run([*command, str(good)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "POINTER_IMAGE uint8[320, 480, 3]" in ok.stdout
    assert "INSULATOR_IMAGE uint8[384, 576, 3]" in ok.stdout
    assert "ORIGINAL_SIZE int32[2] = [427, 640]" in ok.stdout

    bad = tmp_path / "photo.jpg"
    bad.write_bytes(bad_input("png", jpegs["landscape_640x427"])[0])
    failed = subprocess.run([*command, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    assert "not a JPEG (looks like PNG)" in failed.stderr
    assert "POINTER_IMAGE uint8[320, 480, 3]" in failed.stdout, (
        "the good image in the folder is still sent"
    )
