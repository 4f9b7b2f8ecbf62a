"""The inspect router (BLS) and clients/bls_client.py through the real server."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from google.protobuf import text_format
from PIL import Image
from tritonclient.grpc import model_config_pb2

from bls.on_dials import parse_dial_cover
from bls.repository import model_tensors, read_config
from clients.answer import Answer, parse_answer
from clients.jpeg_client import InferenceServerException, JpegClient
from clients.masks import paste_masks
from pipelines.tensors import INVALID_INPUT
from server.launch import REPO_ROOT, Ports, ServerStartError, TritonServer
from tests.bad_inputs import bad_input
from tests.support import (
    SCENE_SEED,
    ReadinessRecorder,
    connect,
    encode_jpeg,
    gauge_scene,
    server_on,
    shared_share,
    traced_children,
)
from training import gauges

# Every test here talks to a server, its own or the shared one.
pytestmark = pytest.mark.server

ROUTER = "inspect"
REPOSITORY = REPO_ROOT / "repository"
# How each protocol reports a refusal of the request itself (the client's fault).
CLIENT_ERROR = {"http": "400", "grpc": "StatusCode.INVALID_ARGUMENT"}


def inspect(client: JpegClient, jpeg: bytes, models: str | None) -> Answer:
    outputs = client.infer(ROUTER, jpeg, {"MODELS": models} if models else None)
    return parse_answer(outputs["DETECTIONS"][0], outputs["MASKS"])


def as_comparable(answer: Answer, model: str) -> list[tuple]:
    result = answer.models[model]
    assert result.status == "ok", result.error
    return [
        (
            i.class_name,
            i.score,
            i.box,
            None if i.mask is None else (i.mask_origin, i.mask.tobytes()),
        )
        for i in result.instances
    ]


@pytest.fixture(scope="module")
def photo(scenes: dict[str, bytes]) -> bytes:
    """A gauge and insulator strings side by side: both detectors find something."""
    return scenes["both"]


def size_of(jpeg: bytes) -> tuple[int, int]:
    """``(height, width)`` of a JPEG."""
    width, height = Image.open(io.BytesIO(jpeg)).size
    return height, width


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_each_choice_and_both_is_the_union(
    triton_server: TritonServer, photo: bytes, protocol: str
) -> None:
    with connect(triton_server, protocol) as client:
        pointer = inspect(client, photo, "pointer")
        insulator = inspect(client, photo, "insulator")
        both = inspect(client, photo, "both")
        default = inspect(client, photo, None)
    assert list(pointer.models) == ["pointer"]
    assert list(insulator.models) == ["insulator"]
    assert list(both.models) == ["pointer", "insulator"]
    for answer in (pointer, insulator, both):
        assert (answer.height, answer.width) == size_of(photo)
    assert {i.class_name for i in pointer.models["pointer"].instances} == {"pointer", "dial"}
    assert "insulator" in {i.class_name for i in insulator.models["insulator"].instances}
    assert all(i.mask is not None and i.mask.any() for i in pointer.models["pointer"].instances)
    assert as_comparable(both, "pointer") == as_comparable(pointer, "pointer")
    # With the meters in the same request, the insulator boxes on a dial are dropped, and counted.
    alone, kept = as_comparable(insulator, "insulator"), as_comparable(both, "insulator")
    assert kept == [i for i in alone if i in kept]
    assert len(alone) - len(kept) == both.models["insulator"].dropped_on_dials
    assert insulator.models["insulator"].dropped_on_dials is None
    assert as_comparable(default, "pointer") == as_comparable(both, "pointer")


def test_inspect_runs_the_detectors_of_both_in_turn_on_a_cpu_and_together_on_a_gpu(
    triton_server: TritonServer, photo: bytes
) -> None:
    """config.pbtxt's cpu_/gpu_concurrent_detectors, read from Triton's trace: the decode and
    both detectors are child requests of each inspect request."""
    on_gpu = torch.cuda.is_available()
    for spans in traced_children(triton_server, ROUTER, photo, {"MODELS": "both"}, count=3):
        # The OCR reads the faces of the dials read ok (their print checks the calibration),
        # after both detectors.
        assert set(spans) - {"ocr"} == {"preprocess", "pointer", "insulator"}
        assert spans["preprocess"][1] <= min(spans["pointer"][0], spans["insulator"][0])
        if "ocr" in spans:
            assert spans["ocr"][0] >= max(spans["pointer"][1], spans["insulator"][1]), spans
        shared = shared_share(spans["pointer"], spans["insulator"])
        assert (shared > 0.5) if on_gpu else (shared < 0.2), spans


def test_router_answers_what_the_ensembles_answer(
    triton_server: TritonServer, photo: bytes
) -> None:
    with connect(triton_server, "grpc") as client:
        answers = {m: inspect(client, photo, m) for m in ("pointer", "insulator")}
        ensembles = {m: client.infer(f"{m}_ensemble", photo) for m in ("pointer", "insulator")}
    for model, outputs in ensembles.items():
        instances = answers[model].models[model].instances
        assert len(instances) == len(outputs["SCORES"]) > 0
        boxes = np.array([i.box for i in instances], np.float32)
        np.testing.assert_array_equal(boxes, outputs["BOXES"])
        np.testing.assert_array_equal([i.score for i in instances], outputs["SCORES"])
        np.testing.assert_array_equal([i.class_id for i in instances], outputs["CLASSES"])
    masks = paste_masks(
        ensembles["pointer"]["MASK_RECTS"], ensembles["pointer"]["MASKS"], *size_of(photo)
    )
    for instance, mask in zip(answers["pointer"].models["pointer"].instances, masks, strict=True):
        x, y = instance.mask_origin
        height, width = instance.mask.shape
        np.testing.assert_array_equal(mask[y : y + height, x : x + width], instance.mask)


def test_insulator_boxes_on_a_meters_face_are_dropped_when_both_run(
    triton_server: TritonServer,
) -> None:
    """On photos of meters alone, the insulator boxes that ``both`` drops are the ones lying on
    a dial the pointer model is sure of (inspect's dial_cover), and only those."""
    cover = parse_dial_cover(model_tensors(REPOSITORY, ROUTER).parameters["dial_cover"])
    dropped_in_all = 0
    with connect(triton_server, "http") as client:
        for index in range(6):
            scene = gauges.render_scene(SCENE_SEED, index, heldout=True)
            jpeg = encode_jpeg(Image.fromarray(scene.image))
            alone = inspect(client, jpeg, "insulator").models["insulator"].instances
            both = inspect(client, jpeg, "both")
            kept = {i.box for i in both.models["insulator"].instances}
            dropped = [i for i in alone if i.box not in kept]
            assert len(dropped) == both.models["insulator"].dropped_on_dials
            dials = np.zeros((both.height, both.width), bool)
            for dial in both.models["pointer"].instances:
                if dial.class_name == "dial" and dial.score >= cover.min_dial_score:
                    x, y = dial.mask_origin
                    height, width = dial.mask.shape
                    dials[y : y + height, x : x + width] |= dial.mask
            for instance in alone:
                x1, y1, x2, y2 = (round(v) for v in instance.box)
                share = dials[y1:y2, x1:x2].mean()
                on_dial = share >= cover.min_share + 0.05
                off_dial = share <= cover.min_share - 0.05
                assert not (on_dial and instance.box in kept), (index, instance, share)
                assert not (off_dial and instance.box not in kept), (index, instance, share)
            dropped_in_all += len(dropped)
    assert dropped_in_all > 0, "no insulator box lay on a dial of 6 gauge photos: nothing checked"


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize(
    ("jpeg", "models", "message"),
    [
        (None, "needle", "unknown model 'needle'; choose one of pointer, insulator, both"),
        ("png", "both", "not a JPEG (looks like PNG)"),
        ("empty", "pointer", "empty input: no bytes were sent"),
    ],
)
def test_bad_requests_get_clear_errors(
    triton_server: TritonServer,
    photo: bytes,
    protocol: str,
    jpeg: str | None,
    models: str,
    message: str,
) -> None:
    with connect(triton_server, protocol) as client:
        with pytest.raises(InferenceServerException) as error:
            inspect(client, photo if jpeg is None else bad_input(jpeg, photo)[0], models)
        assert error.value.message() == INVALID_INPUT + message
        assert error.value.status() == CLIENT_ERROR[protocol]
        assert inspect(client, photo, "insulator").models["insulator"].status == "ok"


def test_missing_jpeg_input_is_refused_by_name(triton_server: TritonServer) -> None:
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(f"localhost:{triton_server.ports.grpc}") as client:
        choice = grpcclient.InferInput("MODELS", [1, 1], "BYTES")
        choice.set_data_from_numpy(np.array([[b"both"]], dtype=np.object_))
        with pytest.raises(InferenceServerException, match="JPEG"):
            client.infer(ROUTER, [choice])


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_client_reads_the_parameters_the_server_loaded(
    triton_server: TritonServer, protocol: str
) -> None:
    """``JpegClient.parameters``: what ``make accuracy --url`` records as the served weights."""
    with connect(triton_server, protocol) as client:
        for model in ("pointer", "insulator"):
            expected = model_tensors(REPO_ROOT / "repository", model).parameters
            assert set(expected) >= {"detectron2_config", "weights"}
            assert client.parameters(model) == expected


def test_mixed_concurrent_requests_answer_the_good_ones(
    triton_server: TritonServer, photo: bytes
) -> None:
    """Good and bad requests at once each get their own answer. They run side by side, not as
    one batch: inspect's execute is a coroutine, so Triton hands it each request as it comes
    while earlier ones are still awaited (measured: every execution took one request). The
    batched case is preprocess's, in tests/test_server_preprocess.py."""
    requests = [
        (photo, "insulator"),
        (photo, "needle"),
        (bad_input("cut_in_scan", photo)[0], "insulator"),
        (photo, "insulator"),
        (bad_input("gif", photo)[0], "insulator"),
        (photo, "insulator"),
    ]
    with connect(triton_server, "grpc") as client:
        expected = as_comparable(inspect(client, photo, "insulator"), "insulator")

    def send(request: tuple[bytes, str]) -> Answer | str:
        with connect(triton_server, "grpc") as client:
            try:
                return inspect(client, *request)
            except InferenceServerException as error:
                return error.message()

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        results = list(pool.map(send, requests))
    for (jpeg, models), result in zip(requests, results, strict=True):
        if jpeg is photo and models == "insulator":
            assert isinstance(result, Answer), result
            assert as_comparable(result, "insulator") == expected
        else:
            assert isinstance(result, str), "a bad request must fail"
            assert any(
                text in result for text in ("unknown model", "truncated JPEG", "not a JPEG")
            ), result


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_cli_prints_and_draws(
    triton_server: TritonServer, photo: bytes, tmp_path: Path, protocol: str
) -> None:
    image = tmp_path / "meter.jpg"
    image.write_bytes(photo)
    drawn = tmp_path / "drawn.jpg"
    command = [
        sys.executable,
        str(REPO_ROOT / "clients" / "bls_client.py"),
        "--protocol",
        protocol,
        "--url",
        triton_server.url(protocol),
    ]
    run = subprocess.run(
        [*command, "--models", "both", "--draw", str(drawn), str(image)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    height, width = size_of(photo)
    assert f"image {width}x{height}" in run.stdout
    assert "pointer: " in run.stdout and "insulator: " in run.stdout
    assert f"drawn to {drawn}" in run.stdout
    picture = Image.open(drawn)
    assert picture.size == (width, height)
    original = np.asarray(Image.open(image).convert("RGB"), dtype=np.int16)
    assert np.abs(np.asarray(picture, dtype=np.int16) - original).mean() > 1, "nothing drawn"

    as_json = subprocess.run(
        [*command, "--models", "pointer", "--json", str(image)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["file"] == str(image)
    assert document["image"] == {"height": height, "width": width}
    assert list(document["models"]) == ["pointer"]
    instances = document["models"]["pointer"]["instances"]
    assert instances and all(i["mask"]["rect"][2] * i["mask"]["rect"][3] > 0 for i in instances)
    assert isinstance(document["readings"], list)

    failed = subprocess.run(
        [*command, "--models", "needle", str(image)], capture_output=True, text=True, timeout=120
    )
    assert failed.returncode == 1
    assert "unknown model 'needle'" in failed.stderr


def test_cli_on_a_folder_draws_into_a_folder_and_filters_by_score(
    triton_server: TritonServer, scenes: dict[str, bytes], tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("gauge", "insulator", "nothing"):
        (photos / f"{name}.jpg").write_bytes(scenes[name])
    (photos / "notes.txt").write_text("not a photo: left alone")
    drawn = tmp_path / "drawn"
    command = [
        sys.executable,
        str(REPO_ROOT / "clients" / "bls_client.py"),
        "--url",
        triton_server.url("http"),
        "--draw",
        str(drawn),
    ]
    run = subprocess.run([*command, str(photos)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in drawn.iterdir()) == [
        "gauge.detections.jpg",
        "insulator.detections.jpg",
        "nothing.detections.jpg",
    ]
    counts = [int(n) for n in re.findall(r"(\d+) instance\(s\)", run.stdout)]
    assert sum(counts) > 0

    # Above every score: nothing shown, nothing drawn, the same exit code.
    picky = subprocess.run(
        [*command, "--min-score", "1.01", str(photos / "gauge.jpg")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert picky.returncode == 0, picky.stderr
    assert set(re.findall(r"(\d+) instance\(s\)", picky.stdout)) == {"0"}
    photo = np.asarray(Image.open(photos / "gauge.jpg").convert("RGB"), dtype=np.int16)
    # Only the JPEG re-encoding differs.
    redrawn = np.asarray(Image.open(drawn / "gauge.detections.jpg"), dtype=np.int16)
    assert np.abs(redrawn - photo).mean() < 1


def test_a_failing_detector_does_not_lose_the_other(tmp_path: Path, photo: bytes) -> None:
    """Kill pointer's stub and ask for `both` at once, from Python and from the CLI: insulator
    still answers, the CLI exits 1, and the watchdog brings pointer back."""
    server = TritonServer(Ports.free(), log_path=tmp_path / "triton.log")
    with server:
        server.wait_until_ready(timeout_s=600)
        (victim,) = server.stubs()["pointer"]
        result: dict[str, Answer] = {}

        def request() -> None:
            with connect(server, "grpc") as client:
                result["answer"] = inspect(client, photo, "both")

        with ReadinessRecorder(server, "pointer") as readiness:
            # Killed before the request, so pointer's part fails whatever its speed; insulator's
            # part is answered.
            os.kill(victim, signal.SIGKILL)
            sender = threading.Thread(target=request)
            sender.start()
            # The CLI too, while pointer is down (it stays down until the watchdog's reload,
            # seconds away): insulator's part printed, pointer's error on stderr, exit code 1.
            image = tmp_path / "both.jpg"
            image.write_bytes(photo)
            cli = subprocess.run(
                [
                    sys.executable,
                    str(REPO_ROOT / "clients" / "bls_client.py"),
                    "--url",
                    server.url("http"),
                    str(image),
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            sender.join(timeout=120)
            red_after_s, green_after_s = readiness.wait_until_recovered()
        assert cli.returncode == 1, cli.stdout + cli.stderr
        assert re.search(r"error: pointer: ", cli.stderr), cli.stderr
        assert re.search(r"insulator: [1-9]\d* instance", cli.stdout), cli.stdout
        assert "answer" in result, "the request got no answer"
        answer = result["answer"]
        assert answer.models["pointer"].status == "error"
        assert "pointer" in (answer.models["pointer"].error or "")
        assert answer.models["insulator"].status == "ok"
        assert len(answer.models["insulator"].instances) > 0
        print(f"pointer stub killed: red after {red_after_s:.1f} s, green at {green_after_s:.1f} s")

        with connect(server, "grpc") as client:
            again = inspect(client, photo, "both")
            assert client.infer("pointer_ensemble", photo)["BOXES"].shape[0] > 0
    assert as_comparable(again, "insulator") == as_comparable(answer, "insulator")
    assert len(again.models["pointer"].instances) > 0
    assert "reloaded 'pointer'" in server.log_text()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_dead_preprocess_is_a_server_error_not_the_clients(
    tmp_path: Path, photo: bytes, protocol: str
) -> None:
    """The router passes its callee's error code on: a killed preprocess stub is answered as a
    server fault, never as a bad request."""
    server = TritonServer(Ports.free(), log_path=tmp_path / "triton.log")
    with server:
        server.wait_until_ready(timeout_s=600)
        (victim,) = server.stubs()["preprocess"]
        os.kill(victim, signal.SIGKILL)
        with connect(server, protocol) as client, pytest.raises(InferenceServerException) as error:
            inspect(client, photo, "both")
        print(f"{protocol}: {error.value.status()} {error.value.message()}")
        assert error.value.status() not in (CLIENT_ERROR[protocol], None)


def test_a_large_photo_goes_through_the_router(triton_server: TritonServer) -> None:
    """A 12000x9000 JPEG (tens of MB) crosses the BLS with `make serve`'s shared-memory sizes."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(900, 1200, 3), dtype=np.uint8)
    photo = Image.fromarray(noise).resize((12000, 9000), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=95)
    jpeg = buffer.getvalue()
    # Far beyond the python backend's default 1 MiB shared-memory pool
    # (triton-inference-server/server #5701, #6156).
    assert len(jpeg) > 16 * 1024 * 1024
    with connect(triton_server, "grpc") as client:
        answer = inspect(client, jpeg, "insulator")
    assert (answer.height, answer.width) == (9000, 12000)
    assert answer.models["insulator"].status == "ok"
    for instance in answer.models["insulator"].instances:
        x1, y1, x2, y2 = instance.box
        assert 0 <= x1 <= x2 <= 12000 and 0 <= y1 <= y2 <= 9000, "in the photo's pixels"


# The outputs of an empty answer: nothing found, every output still of its declared type.
EMPTY_OUTPUTS = {
    "pointer_ensemble": {
        "BOXES": (np.float32, (0, 4)),
        "SCORES": (np.float32, (0,)),
        "CLASSES": (np.int32, (0,)),
        "MASK_RECTS": (np.int32, (0, 4)),
        "MASKS": (np.uint8, (0,)),
        "KEYPOINTS": (np.float32, (0, 4, 3)),
    },
    "insulator_ensemble": {
        "BOXES": (np.float32, (0, 4)),
        "SCORES": (np.float32, (0,)),
        "CLASSES": (np.int32, (0,)),
    },
}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_photo_of_nothing_gets_empty_answers(
    triton_server: TritonServer, scenes: dict[str, bytes], protocol: str
) -> None:
    nothing = scenes["nothing"]
    with connect(triton_server, protocol) as client:
        for ensemble, expected in EMPTY_OUTPUTS.items():
            outputs = client.infer(ensemble, nothing)
            assert {n: (v.dtype, v.shape) for n, v in outputs.items()} == {
                n: (np.dtype(t), shape) for n, (t, shape) in expected.items()
            }, ensemble
        outputs = client.infer(ROUTER, nothing, {"MODELS": "both"})
        assert outputs["MASKS"].dtype == np.uint8 and outputs["MASKS"].shape == (0,)
        answer = parse_answer(outputs["DETECTIONS"][0], outputs["MASKS"])
    assert (answer.height, answer.width) == (420, 560)
    for model in ("pointer", "insulator"):
        assert answer.models[model].status == "ok"
        assert answer.models[model].instances == []


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_clis_on_a_photo_of_nothing(
    triton_server: TritonServer, scenes: dict[str, bytes], tmp_path: Path, protocol: str
) -> None:
    image = tmp_path / "wall.jpg"
    image.write_bytes(scenes["nothing"])
    connection = ["--protocol", protocol, "--url", triton_server.url(protocol)]
    bls = [sys.executable, str(REPO_ROOT / "clients" / "bls_client.py"), *connection]
    drawn = tmp_path / "drawn.jpg"
    text = subprocess.run(
        [*bls, "--draw", str(drawn), str(image)], capture_output=True, text=True, timeout=120
    )
    assert text.returncode == 0, text.stderr
    assert "pointer: 0 instance(s)" in text.stdout
    assert "insulator: 0 instance(s)" in text.stdout
    # Nothing drawn: the picture is the photo, re-encoded.
    original = np.asarray(Image.open(image).convert("RGB"), dtype=np.int16)
    assert np.abs(np.asarray(Image.open(drawn), dtype=np.int16) - original).mean() < 1
    as_json = subprocess.run(
        [*bls, "--json", str(image)], capture_output=True, text=True, timeout=120
    )
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert {m: part["instances"] for m, part in document["models"].items()} == {
        "pointer": [],
        "insulator": [],
    }

    ensemble = [sys.executable, str(REPO_ROOT / "clients" / "ensemble_client.py"), *connection]
    for model, expected in EMPTY_OUTPUTS.items():
        run = subprocess.run(
            [*ensemble, "--model", model, "--json", str(image)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        outputs = json.loads(run.stdout)["outputs"]
        assert {n: (o["datatype"], o["shape"]) for n, o in outputs.items()} == {
            n: (str(np.dtype(t)), list(shape)) for n, (t, shape) in expected.items()
        }, model


# One meter read through the server: its needle angle within this many degrees of the truth
# (make accuracy measures the distribution over the held-out set).
MAX_READING_ANGLE_ERROR_DEG = 3.0


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_meter_is_read(
    triton_server: TritonServer, scenes: dict[str, bytes], protocol: str
) -> None:
    [truth] = gauge_scene().truth["gauges"]
    with connect(triton_server, protocol) as client:
        answer = inspect(client, scenes["gauge"], "pointer")
        assert inspect(client, scenes["gauge"], "insulator").readings is None
        nothing = inspect(client, scenes["nothing"], "both")
    assert nothing.readings == []
    [reading] = answer.readings
    assert reading["status"] == "ok", reading
    dial = answer.models["pointer"].instances[reading["dial"]]
    needle = answer.models["pointer"].instances[reading["needle"]]
    assert (dial.class_name, needle.class_name) == ("dial", "pointer")
    error = abs((reading["needle_angle_deg"] - truth["needle_angle_deg"] + 180) % 360 - 180)
    assert error <= MAX_READING_ANGLE_ERROR_DEG, (reading, truth)
    # The scale is the one seen on the face, the calibration's angles only a check.
    assert reading["scale"]["source"] == "seen", reading
    assert abs(reading["fraction"] - truth["fraction"]) <= 0.02, (reading, truth)
    # A meter of the calibrated type: its value is read too.
    assert reading["unit"] == truth["scale"]["unit"] == "MPa"
    full_scale = truth["scale"]["max_value"] - truth["scale"]["min_value"]
    assert abs(reading["value"] - truth["value"]) <= 0.02 * full_scale, (reading, truth)


# What each dial's KEYPOINTS row is (the served YAML's KEYPOINT_NAMES).
KEYPOINT_NAMES = ["scale_start", "scale_mid", "scale_end", "center"]
# A keypoint of the test gauge found within this share of its scale's radius of the truth
# (make accuracy measures the readings they give over the held-out set).
MAX_KEYPOINT_ERROR_SHARE = 0.15


def test_keypoints_arrive_over_http_and_grpc(
    triton_server: TritonServer, scenes: dict[str, bytes]
) -> None:
    found = {}
    for protocol in ("http", "grpc"):
        with connect(triton_server, protocol) as client:
            found[protocol] = client.infer("pointer_ensemble", scenes["gauge"])
    for outputs in found.values():
        keypoints, boxes = outputs["KEYPOINTS"], outputs["BOXES"]
        count = len(outputs["SCORES"])
        assert count > 0
        assert keypoints.dtype == np.float32 and keypoints.shape == (count, 4, 3)
        # detectron2 finds each keypoint in its box's heatmap: in the photo's pixels.
        x, y = keypoints[..., 0], keypoints[..., 1]
        assert ((boxes[:, None, 0] - 1 <= x) & (x <= boxes[:, None, 2] + 1)).all()
        assert ((boxes[:, None, 1] - 1 <= y) & (y <= boxes[:, None, 3] + 1)).all()
    np.testing.assert_array_equal(found["http"]["KEYPOINTS"], found["grpc"]["KEYPOINTS"])
    with connect(triton_server, "grpc") as client:
        nothing = client.infer("pointer_ensemble", scenes["nothing"])
    assert nothing["KEYPOINTS"].shape == (len(nothing["SCORES"]), 4, 3)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_inspect_names_each_dials_keypoints(
    triton_server: TritonServer, scenes: dict[str, bytes], protocol: str
) -> None:
    with connect(triton_server, protocol) as client:
        answer = inspect(client, scenes["gauge"], None)
        served = client.infer("pointer_ensemble", scenes["gauge"])
    instances = answer.models["pointer"].instances
    assert len(instances) == len(served["SCORES"])
    [dial] = [i for i, inst in enumerate(instances) if inst.class_name == "dial"]
    [truth] = gauge_scene().truth["gauges"]
    expected = np.array(truth["keypoints"], np.float32)
    found = np.array([(x, y) for x, y, _ in instances[dial].keypoints.values()], np.float32)
    start, center = (expected[KEYPOINT_NAMES.index(name)] for name in ("scale_start", "center"))
    radius = np.linalg.norm(start - center)
    errors = np.linalg.norm(found - expected, axis=1)
    assert (errors <= MAX_KEYPOINT_ERROR_SHARE * radius).all(), (errors, radius)
    for index, instance in enumerate(instances):
        if instance.class_name == "pointer":
            assert instance.keypoints is None, "needles carry no keypoints"
            continue
        assert list(instance.keypoints) == KEYPOINT_NAMES
        named = np.array(list(instance.keypoints.values()), np.float32)
        np.testing.assert_array_equal(named, served["KEYPOINTS"][index])
    assert [r["dial"] for r in answer.readings] == [dial], "one reading per dial"


def write_config(path: Path, config: model_config_pb2.ModelConfig) -> None:
    path.write_text(text_format.MessageToString(config))


def test_keypoints_declared_for_a_recipe_without_a_head_fail_the_load(tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    shutil.copytree(
        REPOSITORY / "pointer",
        repository / "pointer",
        ignore=shutil.ignore_patterns("weights", "__pycache__"),
    )
    pointer = read_config(repository, "pointer")
    assert "KEYPOINTS" in [output.name for output in pointer.output]
    pointer.parameters["detectron2_config"].string_value = "mask_rcnn_R50_FPN.yaml"
    write_config(repository / "pointer" / "config.pbtxt", pointer)
    server = server_on(repository, tmp_path)
    with server, pytest.raises(ServerStartError):
        server.wait_until_ready(timeout_s=300)
    folder = repository / "pointer"
    assert (
        f"pointer: {folder / 'config.pbtxt'} declares output KEYPOINTS but "
        f"{folder / 'mask_rcnn_R50_FPN.yaml'} has no keypoint head"
    ) in server.log_text()
