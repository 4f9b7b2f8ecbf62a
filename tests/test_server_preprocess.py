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
from tests.support import (
    assert_close_to_reference,
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


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty input"),
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "not a JPEG (looks like PNG)"),
        (b"plain text, not an image", "not a JPEG"),
    ],
)
def test_bad_input_gets_a_clear_error(
    client: JpegClient, jpegs: dict[str, bytes], data: bytes, message: str
) -> None:
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
    truncated = good[: len(good) // 2]
    gif = b"GIF89a" + bytes(32)
    # A header that parses, with a Huffman table libjpeg-turbo rejects: it fails inside DALI.
    dht = good.index(b"\xff\xc4")
    bad_table = good[: dht + 5] + bytes([0] * 15 + [200]) + good[dht + 21 :]
    errors = {
        truncated: "truncated JPEG",
        gif: "not a JPEG (looks like GIF)",
        bad_table: "cannot decode JPEG: corrupt data",
    }
    payloads = [good, truncated, good, gif, good, bad_table, good, good] * 2

    def send(jpeg: bytes) -> np.ndarray | str:
        with connect(triton_server, "grpc") as client:
            try:
                return client.infer("preprocess", jpeg)["POINTER_IMAGE"]
            except InferenceServerException as error:
                return error.message()

    stats_before = _batch_sizes(triton_server)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(send, payloads))
    stats_after = _batch_sizes(triton_server)

    reference, _ = reference_preprocess(good, POINTER_RESIZE)
    for payload, result in zip(payloads, results, strict=True):
        if payload is good:
            assert isinstance(result, np.ndarray), result
            assert_close_to_reference(result, reference)
        else:
            assert isinstance(result, str)
            assert errors[payload] in result
    batched = {size for size, count in stats_after.items() if count > stats_before.get(size, 0)}
    assert max(batched) > 1, f"requests never shared a batch: batch sizes {sorted(batched)}"


def _batch_sizes(server: TritonServer) -> dict[int, int]:
    """Executions of the preprocess model so far, by batch size."""
    with grpcclient.InferenceServerClient(f"localhost:{server.ports.grpc}") as client:
        stats = client.get_inference_statistics("preprocess", as_json=True)
    batch_stats = stats["model_stats"][0].get("batch_stats", [])
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in batch_stats}


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
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    failed = subprocess.run([*command, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    assert "not a JPEG (looks like PNG)" in failed.stderr
    assert "POINTER_IMAGE uint8[320, 480, 3]" in failed.stdout, (
        "the good image in the folder is still sent"
    )
