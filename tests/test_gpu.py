"""The GPU tier: the production path (nvJPEG decode, detectors on CUDA, tensors handed over on the
GPU) through the real server. Marked ``gpu``; on a machine without a GPU each test says that it
did not run, and the session's summary lists them in one line (tests/conftest.py)."""

from __future__ import annotations

import io
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.data.detection_utils import read_image
from PIL import Image

from clients.answer import parse_answer
from clients.jpeg_client import InferenceServerException
from pipelines.preprocess import Preprocessor
from server.launch import TritonServer, processes_in_group
from tests.bad_inputs import bad_input
from tests.support import (
    as_array,
    assert_a_batch_formed,
    assert_close_to_reference,
    batch_sizes,
    connect,
    reference_preprocess,
    served_preprocess_config,
    server_on,
    shared_share,
    traced_children,
)
from tests.test_detector_parity import PHOTOS, REPOSITORY, Result, build_predictors, unmatched
from tests.test_jpeg_inputs import ODD_BUT_VALID

pytestmark = [pytest.mark.gpu, pytest.mark.server, pytest.mark.slow]

HAS_GPU = torch.cuda.is_available()
# What the python backend logs when an ensemble intermediate did not fit Triton's CUDA pool and
# was copied through pinned host memory with the wrong direction (server #7148): the response
# goes out anyway, its tensor corrupt. Never acceptable in a log.
SILENT_CORRUPTION = re.compile(r"falling back to pinned|failed to copy data", re.IGNORECASE)
# The smallest card the shipped repository must fit is 16 GiB; a quarter of it stays spare for
# the driver, fragmentation and bursts larger than the test's.
GPU_BUDGET_BYTES = 12 << 30


def needs_gpu() -> None:
    if not HAS_GPU:
        pytest.skip("needs a GPU (torch.cuda.is_available() is False): GPU path not tested")


@pytest.fixture(scope="module")
def gpu_server(tmp_path_factory: pytest.TempPathFactory) -> TritonServer:
    """The shipped repository on GPU 0, its log in a file the tests read."""
    needs_gpu()
    folder = tmp_path_factory.mktemp("gpu")
    server = server_on(REPOSITORY, folder)
    with server:
        server.wait_until_ready(timeout_s=600)
        yield server


def test_every_model_runs_on_the_gpu_and_decodes_with_nvjpeg(
    gpu_server: TritonServer, scenes: dict[str, bytes]
) -> None:
    with connect(gpu_server, "grpc") as client:
        client.infer("inspect", scenes["both"], {"MODELS": "both"})
    log = gpu_server.log_text()
    assert "preprocess: DALI decode on GPU 0" in log
    for detector in ("pointer", "insulator"):
        assert re.search(rf"{detector}: \S+ on cuda:0", log), f"{detector} not on the GPU"
    assert not SILENT_CORRUPTION.search(log)


def test_gpu_preprocessing_equals_detectron2_over_the_odd_jpegs(
    gpu_server: TritonServer, jpegs: dict[str, bytes]
) -> None:
    photo = Image.open(io.BytesIO(jpegs["landscape_640x427"]))
    photo.load()
    corpus = {**jpegs, **{name: make(photo) for name, make in ODD_BUT_VALID.items()}}
    with connect(gpu_server, "grpc") as client:
        for name, jpeg in corpus.items():
            outputs = client.infer("preprocess_ensemble", jpeg)
            for output, resize in served_preprocess_config().images:
                reference, size = reference_preprocess(jpeg, resize)
                np.testing.assert_array_equal(outputs["ORIGINAL_SIZE"], size, err_msg=name)
                assert_close_to_reference(outputs[output], reference)
    assert not SILENT_CORRUPTION.search(gpu_server.log_text())


def test_a_batch_with_an_undecodable_jpeg_equals_single_runs_200_times(
    jpegs: dict[str, bytes],
) -> None:
    """nvJPEG, DALI's stream and torch's copies: each good image of a batch that also holds a
    JPEG failing inside the decoder is, byte for byte, what it is alone, run after run."""
    needs_gpu()
    config = served_preprocess_config()
    preprocessor = Preprocessor("JPEG", config, max_batch_size=8, device_id=0)
    goods = [jpegs[name] for name in ("landscape_640x427", "portrait_300x1000", "tiny_64x48")]
    broken, _ = bad_input("bad_huffman_table", jpegs["landscape_640x427"])
    alone = [preprocessor([as_array(jpeg)])[0] for jpeg in goods]
    batch = [as_array(goods[0]), as_array(broken), as_array(goods[1]), as_array(goods[2])]
    for run in range(200):
        good_0, refused, good_1, good_2 = preprocessor(batch)
        assert "cannot decode JPEG" in str(refused), f"run {run}"
        for single, batched in zip(alone, (good_0, good_1, good_2), strict=True):
            for name in single.images:
                assert torch.equal(single.images[name], batched.images[name]), f"run {run}"


def test_detectors_batch_of_4_equals_detectron2(
    gpu_server: TritonServer, scenes: dict[str, bytes], tmp_path: Path
) -> None:
    """Four requests at once: one forward of several images (gpu_forward_batch_size 4), the
    smaller ones padded, as Triton's statistics show; each answer equals detectron2's for its
    photo alone, on the same GPU."""
    predictors = build_predictors()
    photos = ["gauge", "gauges", "both", "insulator"]
    for model in PHOTOS:
        threshold = predictors[model].cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST

        def send(name: str, model: str = model) -> dict[str, np.ndarray]:
            with connect(gpu_server, "grpc") as client:
                return client.infer(f"{model}_ensemble", scenes[name])

        before = batch_sizes(gpu_server, model)
        with ThreadPoolExecutor(max_workers=len(photos)) as pool:
            answers = dict(zip(photos, pool.map(send, photos), strict=True))
        assert_a_batch_formed(before, batch_sizes(gpu_server, model))
        for name, outputs in answers.items():
            path = tmp_path / f"{name}.jpg"
            path.write_bytes(scenes[name])
            image = read_image(str(path), format="BGR")
            expected = Result.from_instances(predictors[model](image)["instances"].to("cpu"))
            actual = Result.from_outputs(outputs, *image.shape[:2])
            failures = unmatched(expected, actual, threshold)
            assert not failures, f"{model}, {name}: {failures[:5]}"


@pytest.mark.parametrize("pool_bytes", [1 << 20, None], ids=["tiny pool", "shipped pool"])
def test_32_concurrent_mixed_requests_never_corrupt_silently(
    jpegs: dict[str, bytes], tmp_path: Path, pool_bytes: int | None
) -> None:
    """With a CUDA pool too small for a batch of images, answers may fail but must say so; with
    the shipped pool none fails. Every answer that came back equals detectron2's preprocessing of
    its photo on a CPU (PIL): a reference from the same server would share its corruption."""
    needs_gpu()
    server = server_on(REPOSITORY, tmp_path)
    if pool_bytes is not None:
        server.cuda_memory_pool_bytes = pool_bytes
    good = [jpegs[name] for name in ("landscape_640x427", "portrait_300x1000", "original_512x600")]
    bad = [bad_input(name, jpegs["landscape_640x427"])[0] for name in ("gif", "cut_in_scan")]
    requests = [(good + bad)[i % 5] for i in range(32)]
    references = {
        jpeg: {
            output: reference_preprocess(jpeg, resize)
            for output, resize in served_preprocess_config().images
        }
        for jpeg in good
    }
    with server:
        server.wait_until_ready(timeout_s=600)

        def send(jpeg: bytes) -> dict[str, np.ndarray] | str:
            with connect(server, "grpc") as client:
                try:
                    return client.infer("preprocess_ensemble", jpeg)
                except InferenceServerException as error:
                    return error.message()

        with ThreadPoolExecutor(max_workers=32) as pool:
            answers = list(pool.map(send, requests))
        log = server.log_text()
    answered = failed = 0
    for jpeg, answer in zip(requests, answers, strict=True):
        if jpeg not in references:
            continue
        if isinstance(answer, str):
            failed += 1
            continue
        answered += 1
        for output, (reference, size) in references[jpeg].items():
            np.testing.assert_array_equal(answer["ORIGINAL_SIZE"], size)
            assert_close_to_reference(answer[output], reference)
    print(f"pool {pool_bytes or 'shipped'}: {answered} good requests answered, {failed} failed")
    errors = sorted({answer for answer in answers if isinstance(answer, str)})
    assert answered > 0, f"every good request failed, nothing was checked: {errors[:3]}"
    if pool_bytes is None:
        assert failed == 0, f"{failed} good requests failed with the shipped pool"
    # A tensor copied through pinned memory is logged; the request it belonged to must have
    # failed loudly, so with every good request answered there must be no such copy at all.
    corruption = SILENT_CORRUPTION.search(log)
    assert not (corruption and failed == 0), f"answered after {corruption.group(0)!r}"


def gpu_memory_by_process() -> dict[int, dict[str, int]]:
    """nvidia-smi's compute processes: pid -> {GPU uuid: bytes used there}."""
    query = "--query-compute-apps=pid,gpu_uuid,used_memory"
    lines = subprocess.run(
        ["nvidia-smi", query, "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    usage: dict[int, dict[str, int]] = {}
    for line in filter(None, map(str.strip, lines)):
        pid, uuid, mib = (field.strip() for field in line.split(","))
        usage.setdefault(int(pid), {})[uuid] = int(mib) << 20
    return usage


def test_each_stub_stays_on_its_gpu_and_the_server_fits_a_16_gb_card(
    gpu_server: TritonServer, scenes: dict[str, bytes]
) -> None:
    """After a burst of 8 concurrent 12-megapixel photos through ``inspect`` ``both`` (DALI's
    and torch's pools only grow), every process of the server holds memory on one GPU only
    (``torch.cuda.set_device`` in each stub) and all of them together fit the budget."""
    photo = Image.open(io.BytesIO(scenes["both"])).resize((4000, 3000))
    big = io.BytesIO()
    photo.save(big, format="JPEG", quality=90)

    def send(_: int) -> None:
        with connect(gpu_server, "grpc") as client:
            client.infer("inspect", big.getvalue(), {"MODELS": "both"})

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(send, range(8)))
    usage = gpu_memory_by_process()
    server = {pid: usage[pid] for pid in processes_in_group(gpu_server.pid) if pid in usage}
    assert server, f"nvidia-smi shows none of the server's processes (PID namespace?): {usage}"
    names = {pid: model for model, pids in gpu_server.stubs().items() for pid in pids}
    figures = {f"{names.get(pid, 'tritonserver')} ({pid})": gpus for pid, gpus in server.items()}
    print("GPU memory by process, MiB:", {k: sum(v.values()) >> 20 for k, v in figures.items()})
    on_many = {name: gpus for name, gpus in figures.items() if len(gpus) > 1}
    assert not on_many, f"processes holding memory on more than one GPU: {on_many}"
    total = sum(sum(gpus.values()) for gpus in server.values())
    assert total <= GPU_BUDGET_BYTES, f"{total >> 20} MiB used, budget {GPU_BUDGET_BYTES >> 20} MiB"


def test_out_of_gpu_memory_is_a_server_error_and_the_next_request_is_answered(
    gpu_server: TritonServer, scenes: dict[str, bytes]
) -> None:
    """The test fills the GPU, then sends a 48-megapixel photo, which needs memory no stub has
    cached: the answer is a server error naming the cause, never a bad request; once the memory
    is free again the same request is answered."""
    needs_gpu()
    photo = Image.open(io.BytesIO(scenes["both"])).resize((8000, 6000))
    big = io.BytesIO()
    photo.save(big, format="JPEG", quality=90)
    free, _ = torch.cuda.mem_get_info(0)
    hog = torch.empty(free - (32 << 20), dtype=torch.uint8, device="cuda:0")
    try:
        with (
            connect(gpu_server, "http") as client,
            pytest.raises(InferenceServerException) as error,
        ):
            client.infer("inspect", big.getvalue(), {"MODELS": "both"})
    finally:
        del hog
        torch.cuda.empty_cache()
    print(f"out of memory: {error.value.status()} {error.value.message()}")
    assert error.value.status() not in ("400", None)
    assert "out of memory" in error.value.message().lower()
    with connect(gpu_server, "http") as client:
        outputs = client.infer("inspect", big.getvalue(), {"MODELS": "both"})
    answer = parse_answer(outputs["DETECTIONS"][0], outputs["MASKS"])
    assert (answer.height, answer.width) == (6000, 8000)
    for model in ("pointer", "insulator"):
        assert answer.models[model].status == "ok", answer.models[model].error
        assert answer.models[model].instances, f"{model} found nothing in the photo of both"


def test_inspect_both_runs_the_detectors_at_the_same_time(
    gpu_server: TritonServer, scenes: dict[str, bytes]
) -> None:
    """gpu_concurrent_detectors: on a GPU the two detectors of ``both`` overlap in time, as
    Triton's trace of each inspect request shows."""
    both = scenes["both"]
    for spans in traced_children(gpu_server, "inspect", both, {"MODELS": "both"}, count=5):
        assert shared_share(spans["pointer"], spans["insulator"]) > 0.5, spans
