"""Bad input through the real tritonserver: each request gets its own clear error, over HTTP and
gRPC, and the server keeps serving. What each kind of JPEG gets is tested in process, in
``test_jpeg_inputs.py``; here only what needs the server: messages crossing the ensemble and the
wire, Triton's own checks of type and shape, and the stub's memory after a decompression bomb.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from clients.jpeg_client import InferenceServerException, JpegClient
from pipelines.tensors import INVALID_INPUT
from server.launch import TritonServer
from tests.bad_inputs import bad_input, with_frame_size
from tests.support import (
    assert_close_to_reference,
    reference_preprocess,
    served_preprocess_config,
)

ENSEMBLE = "preprocess_ensemble"
PROTOCOLS = ["http", "grpc"]
CLIENTS = {"http": httpclient, "grpc": grpcclient}


@pytest.fixture(params=PROTOCOLS)
def client(request: pytest.FixtureRequest, triton_server: TritonServer) -> JpegClient:
    with JpegClient(triton_server.url(request.param), request.param) as client:
        yield client


@pytest.mark.parametrize(
    "name", ["cut_in_scan", "cut_in_header", "bomb", "gif", "bad_huffman_table"]
)
def test_bad_jpeg_error_reaches_the_client(
    client: JpegClient, jpegs: dict[str, bytes], name: str
) -> None:
    good = jpegs["landscape_640x427"]
    bad, message = bad_input(name, good)
    with pytest.raises(InferenceServerException, match=re.escape(INVALID_INPUT + message)):
        client.infer(ENSEMBLE, bad)
    outputs = client.infer(ENSEMBLE, good)
    for output, resize in served_preprocess_config().images:
        reference, _ = reference_preprocess(good, resize)
        assert_close_to_reference(outputs[output], reference)


def test_input_above_max_bytes_is_refused(
    triton_server: TritonServer, jpegs: dict[str, bytes]
) -> None:
    limit = served_preprocess_config().max_bytes
    oversized = jpegs["landscape_640x427"] + bytes(limit)  # a valid JPEG, then padding
    with JpegClient(f"localhost:{triton_server.ports.grpc}", "grpc") as client:
        with pytest.raises(InferenceServerException, match=re.escape("above the limit of")):
            client.infer(ENSEMBLE, oversized)
        assert client.infer(ENSEMBLE, jpegs["tiny_64x48"])["POINTER_IMAGE"].shape == (320, 427, 3)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("data", "datatype", "message"),
    [
        # Checked by Triton against config.pbtxt before the model runs.
        (
            np.zeros((1, 16), np.float32),
            "FP32",
            "inference input 'JPEG' data-type is 'FP32', but model 'preprocess_ensemble' "
            "expects 'UINT8'",
        ),
        # The bytes without the batch dimension: Triton reads [N] as a batch of N.
        (np.zeros(64, np.uint8), "UINT8", "inference request batch-size must be <= 8"),
        (np.zeros((1, 4, 4), np.uint8), "UINT8", "unexpected shape for input 'JPEG'"),
        # Checked by the preprocess model.
        (np.zeros((2, 16), np.uint8), "UINT8", "expected one JPEG per request"),
        (np.zeros((1, 0), np.uint8), "UINT8", "empty input: no bytes were sent"),
    ],
)
def test_hand_written_request_of_wrong_type_or_shape(
    triton_server: TritonServer, protocol: str, data: np.ndarray, datatype: str, message: str
) -> None:
    module = CLIENTS[protocol]
    client = module.InferenceServerClient(triton_server.url(protocol))
    infer_input = module.InferInput("JPEG", list(data.shape), datatype)
    infer_input.set_data_from_numpy(data)
    with pytest.raises(InferenceServerException, match=re.escape(message)):
        client.infer(ENSEMBLE, [infer_input])
    client.close()


def stub_rss_mib(server: TritonServer, model: str) -> float:
    """Resident memory of the python-backend stub process that runs ``model``."""
    (pid,) = server.stubs()[model]
    status = Path(f"/proc/{pid}/status").read_text()
    return (
        int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
        / 1024
    )


def test_decompression_bomb_allocates_nothing(
    triton_server: TritonServer, jpegs: dict[str, bytes]
) -> None:
    # Without the header check this 2 KB file is decoded (libjpeg-turbo fills in the missing
    # data) and the stub grows by 2.3 GB; bigger claims would risk the test machine.
    bomb = with_frame_size(jpegs["landscape_640x427"], 20000, 20000)
    with JpegClient(f"localhost:{triton_server.ports.grpc}", "grpc") as client:
        client.infer(ENSEMBLE, jpegs["landscape_640x427"])  # buffers for a normal image exist
        before = stub_rss_mib(triton_server, "preprocess")
        for _ in range(5):
            with pytest.raises(InferenceServerException, match="above the limit"):
                client.infer(ENSEMBLE, bomb)
        after = stub_rss_mib(triton_server, "preprocess")
    assert after - before < 50, f"preprocess stub grew from {before:.0f} to {after:.0f} MiB"
