"""Test helpers: test images, free ports, and detectron2's preprocessing as the reference."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import matplotlib
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from detectron2.data import transforms as T
from detectron2.data.detection_utils import convert_PIL_to_numpy
from PIL import Image
from tritonclient.grpc import model_config_pb2

from bls.repository import read_config
from clients.jpeg_client import InferenceServerException, JpegClient
from pipelines.preprocess import PreprocessConfig, Resize
from server.launch import REPO_ROOT, Ports, TritonServer
from training import gauges, insulators
from training.coco import Scene, write_coco

REPOSITORY = REPO_ROOT / "repository"

# A real photograph that ships with matplotlib (512x600, baseline 4:2:0 JPEG): the test images
# are re-encodings of it at the sizes and aspect ratios a field camera may send.
PHOTO = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"

# name -> (width, height); None keeps the original file byte for byte.
JPEG_SIZES: dict[str, tuple[int, int] | None] = {
    "original_512x600": None,
    "landscape_640x427": (640, 427),
    "portrait_300x1000": (300, 1000),
    "panorama_1600x400": (1600, 400),  # hits MAX_SIZE_TEST: the long side is capped at 1333
    "tiny_64x48": (64, 48),  # upscaled 16x
    "large_4000x3000": (4000, 3000),  # downscaled 3.75x: antialiasing matters
}

# Photos of what the demo detectors were trained for, drawn by the project's generators with a
# seed training never used (training draws seed 1), in the styles it was trained on.
SCENE_SEED = 3


def _first_scene(render: Callable[..., Scene], accept: Callable[[Scene], bool]) -> Scene:
    return next(scene for i in range(200) if accept(scene := render(SCENE_SEED, i)))


def _gauges_as_trained(seed: int, index: int) -> Scene:
    """A gauge photo on a panel, as the training photos were all drawn until the pointer's
    third stage (now some stand outdoors among look-alikes): the server tests keep the photos
    their bounds were measured on."""
    return gauges.render_scene(seed, index, vary_ground=False)


# The looks the committed demo models were trained on. The generators draw more today (tinted
# faces, new needles, insulator strings beside meters, look-alikes, flat and outlined strings,
# cracked and burnt discs) for the models' next training; until they are retrained on it the
# server tests photograph what the served models know.
_TRAINED_FACES = ("white", "cream", "black", "grey")


def _trained_gauges(scene: Scene) -> bool:
    return (
        not scene.truth["strings"]
        and scene.truth["lookalikes"] <= 3
        and all(
            g["face"] in _TRAINED_FACES and g["needle"] in gauges.NEEDLE_STYLES
            for g in scene.truth["gauges"]
        )
    )


def _trained_insulators(scene: Scene) -> bool:
    truth = scene.truth
    return (
        not truth["meters"]
        and not truth["lookalikes"]
        and (truth["shading"], truth["contour"], truth["background"]) == ("shaded", "none", "photo")
        and set(truth["defect_kinds"]) <= {"missing", "broken"}
    )


def gauge_scene() -> Scene:
    """The ``gauge`` photo of :func:`make_scenes`, with its truth (center, needle, value): one
    meter of the calibrated type (``repository/pointer/meters.yaml``)."""
    return _first_scene(
        _gauges_as_trained,
        lambda s: (
            [g["meter_type"] for g in s.truth["gauges"]] == ["standard"] and _trained_gauges(s)
        ),
    )


def make_scenes() -> dict[str, bytes]:
    """Synthetic test photos as JPEG files, by name.

    ``gauge``: one meter (:func:`gauge_scene`); ``gauges``: several; ``insulator``: strings
    with a defect; ``both``: a gauge photo and an insulator photo side by side; ``nothing``: a
    plain wall with nothing to detect.
    """
    gauge = gauge_scene()
    several = _first_scene(
        _gauges_as_trained, lambda s: len(s.truth["gauges"]) >= 2 and _trained_gauges(s)
    )
    insulator = _first_scene(
        insulators.render_scene,
        lambda s: s.truth["strings"] >= 1 and s.truth["defects"] >= 1 and _trained_insulators(s),
    )
    height = min(gauge.image.shape[0], insulator.image.shape[0])
    both = np.concatenate([gauge.image[:height], insulator.image[:height]], axis=1)
    rng = np.random.default_rng(SCENE_SEED)
    ys, xs = np.mgrid[0:420, 0:560]
    wall = (150 + 40 * xs / 560 - 20 * ys / 420)[..., None] + rng.normal(0, 3, (420, 560, 1))
    wall = np.clip(wall * np.array([1.0, 0.95, 0.85]), 0, 255).astype(np.uint8)
    photos = {
        "gauge": gauge.image,
        "gauges": several.image,
        "insulator": insulator.image,
        "both": both,
        "nothing": wall,
    }
    return {name: encode_jpeg(Image.fromarray(image)) for name, image in photos.items()}


# Photos of nothing, of several kinds, that tests/data/nothing/draw.py drew: plain scenes (wall,
# bricks, sky, ground) and scenes with look-alikes of meters and insulators (power lines, pipework
# with flanges and a handwheel, a control panel's knobs, lamps and labels).
NOTHING_FOLDER = REPO_ROOT / "tests" / "data" / "nothing"
NOTHING_KINDS = ("bricks", "ground", "panel", "pipes", "sky", "wall", "wires")
# What the demo detectors find on them today, by kind and model: the empty-answer tests expect
# these failures (strictly, so that the list shrinks when a retrained model stops finding them).
# Issue 37 trains both models on such look-alikes.
FOUND_IN_NOTHING: dict[str, dict[str, str]] = {
    "ground": {"insulator": "an insulator across the gravel, defects on pebbles"},
    "panel": {
        "pointer": "a knob's pointer mark as a needle, the display over two knobs as a dial",
        "insulator": "the columns of knob, lamp, buttons and switch as insulator strings",
    },
    "pipes": {
        "pointer": "the valve's handwheel as a dial, its spokes as needles; a flange as a dial",
        "insulator": "the handwheel as a defect",
    },
}


def nothing_photos() -> dict[str, bytes]:
    """The photos of nothing in ``NOTHING_FOLDER`` as JPEG files, by kind."""
    return {kind: (NOTHING_FOLDER / f"{kind}.jpg").read_bytes() for kind in NOTHING_KINDS}


def server_on(repository: Path, folder: Path, **options: Any) -> TritonServer:
    """A server (not started) on free ports for another model repository, its build and log in
    ``folder``; ``options`` go to :class:`TritonServer`."""
    return TritonServer(
        Ports.free(),
        model_repository=repository,
        build_dir=folder / "build",
        log_path=folder / "triton.log",
        trace_file=folder / "trace.json",
        **options,
    )


def encode_jpeg(image: Image.Image, **options: object) -> bytes:
    """Encodes a PIL image as JPEG (quality 90 unless given)."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **{"quality": 90, **options})
    return buffer.getvalue()


# Pixel tolerance between DALI (libjpeg-turbo decode, two-pass triangular resize) and detectron2
# (PIL decode, PIL bilinear resize), in 8-bit levels. Measured on the test images resized to
# shorter sides 320, 384 and 800: mean absolute difference 0.000-0.167 (the largest at 512x600
# to 384, a scale of 3/4); inside the image at most 2; on the outermost row and column, where the
# two resize filters treat the border differently, up to 10 when shrinking.
MAX_INTERIOR_DIFF = 2
MAX_BORDER_DIFF = 12
MAX_MEAN_DIFF = 0.2


def reference_preprocess(jpeg: bytes, resize: Resize) -> tuple[np.ndarray, np.ndarray]:
    """Decodes and resizes as ``DefaultPredictor`` does.

    Returns:
        ``(image, original_size)``: HWC ``uint8`` in ``resize.channel_order``, and
        ``int32 [height, width]`` before resizing.
    """
    image = convert_PIL_to_numpy(Image.open(io.BytesIO(jpeg)), resize.channel_order)
    transform = T.ResizeShortestEdge(resize.shortest_edge, resize.max_size)
    resized = transform.get_transform(image).apply_image(image)
    return resized, np.array(image.shape[:2], dtype=np.int32)


def served_preprocess_config() -> PreprocessConfig:
    """The ``preprocess`` model's config as the repository serves it."""
    config = read_config(REPOSITORY, "preprocess")
    return PreprocessConfig.from_parameters(
        {k: v.string_value for k, v in config.parameters.items()},
        [o.name for o in config.output if o.data_type == model_config_pb2.TYPE_UINT8],
    )


def assert_close_to_reference(
    image: np.ndarray, reference: np.ndarray, max_mean_diff: float = MAX_MEAN_DIFF
) -> None:
    """Same shape and dtype, pixels within the stated tolerance."""
    assert image.dtype == np.uint8
    assert image.shape == reference.shape
    diff = np.abs(image.astype(np.int16) - reference.astype(np.int16))
    assert diff.max() <= MAX_BORDER_DIFF, f"largest pixel difference {diff.max()}"
    interior = diff[1:-1, 1:-1]
    assert interior.max() <= MAX_INTERIOR_DIFF, f"largest interior difference {interior.max()}"
    assert diff.mean() <= max_mean_diff, f"mean pixel difference {diff.mean():.3f}"


def connect(server: TritonServer, protocol: str) -> JpegClient:
    """A client of ``server`` over ``protocol`` (``"http"`` or ``"grpc"``)."""
    return JpegClient(server.url(protocol), protocol)


def traced_children(
    server: TritonServer, model: str, jpeg: bytes, options: dict[str, str], count: int
) -> list[dict[str, tuple[int, int]]]:
    """Sends ``count`` requests to ``model``, one after another, with Triton's tracing on, and
    returns for each the compute span (start, end in ns) of every request it made (BLS children,
    ensemble steps), by model name. ``server`` must have a ``trace_file``.

    A span ends at ``COMPUTE_OUTPUT_START``, which the python backend stamps when ``execute``
    returns and before it sends the responses ``execute`` returned; ``COMPUTE_END`` comes after
    that sending, so a request started on such an answer (a detector on the decode's) may begin
    before its producer's ``COMPUTE_END``, by a few milliseconds on a busy machine."""
    assert server.trace_file is not None, "the server was started without a trace file"
    admin = httpclient.InferenceServerClient(server.url("http"))
    written = set(server.trace_file.parent.glob(f"{server.trace_file.name}.*"))
    on = {"trace_level": ["TIMESTAMPS"], "trace_rate": "1", "log_frequency": str(count)}
    admin.update_trace_settings(settings=on)
    try:
        with connect(server, "http") as client:
            for _ in range(count):
                client.infer(model, jpeg, options)
    finally:
        admin.update_trace_settings(settings={"trace_level": ["OFF"]})
        # An HTTP connection left open holds the server's drain when it stops (EXIT_TIMEOUT_S).
        admin.close()
    deadline = time.monotonic() + 30
    while not (new := set(server.trace_file.parent.glob(f"{server.trace_file.name}.*")) - written):
        assert time.monotonic() < deadline, f"Triton wrote no trace to {server.trace_file}.*"
        time.sleep(0.1)
    traces: dict[int, dict] = {}
    for entry in json.loads(max(new, key=lambda p: int(p.suffix[1:])).read_text()):
        trace = traces.setdefault(entry["id"], {})
        trace.update({k: entry[k] for k in ("model_name", "parent_id") if k in entry})
        trace.update({stamp["name"]: stamp["ns"] for stamp in entry.get("timestamps", [])})
    roots = sorted(i for i, trace in traces.items() if "parent_id" not in trace)
    assert [traces[i]["model_name"] for i in roots] == [model] * count
    return [
        {
            child["model_name"]: (child["COMPUTE_START"], child["COMPUTE_OUTPUT_START"])
            for child in traces.values()
            if child.get("parent_id") == root
        }
        for root in roots
    ]


def shared_share(a: tuple[int, int], b: tuple[int, int]) -> float:
    """The share of the shorter of two (start, end) spans that the other also covers: about 1
    for two requests run together, 0 for two run one after the other.

    A python-backend model that answers through its response sender does so before ``execute``
    returns, where its span ends, so a request started on that answer overlaps it by the
    bookkeeping in between (a few milliseconds) without running beside it.
    """
    shared = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    return shared / max(1, min(a[1] - a[0], b[1] - b[0]))


def as_array(jpeg: bytes) -> np.ndarray:
    """JPEG bytes as the 1-D uint8 array a model input carries."""
    return np.frombuffer(jpeg, dtype=np.uint8)


def probe_ready(server: TritonServer, model: str) -> bool:
    """What a Kubernetes readiness probe sees: server and ``model`` ready, answered within 1 s."""
    try:
        with httpclient.InferenceServerClient(
            server.url("http"), connection_timeout=1.0, network_timeout=1.0
        ) as client:
            return client.is_server_ready() and client.is_model_ready(model)
    except (OSError, InferenceServerException):
        # No answer in time, or a refused connection, counts as not ready, as for the kubelet;
        # any other exception is a bug of the test and propagates.
        return False


# The watchdog notes each running stub's shared-memory region at its checks, once a second, and
# logs nothing when it does; it removes a dead stub's region only if it noted it. A test that
# kills a stub or the server waits this long after the server turned ready first: a few checks,
# generous for a shared machine.
WATCHDOG_NOTES_STUBS_S = 5.0


class ReadinessRecorder:
    """Probes a model's readiness every 50 ms in the background from the moment it is entered.

    Examples:
        >>> with ReadinessRecorder(server, "pointer") as readiness:
        ...     os.kill(stub, signal.SIGKILL)
        ...     red_after_s, green_after_s = readiness.wait_until_recovered()
    """

    def __init__(self, server: TritonServer, model: str) -> None:
        self._server = server
        self._model = model
        self._samples: list[tuple[float, bool]] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._probe, daemon=True)
        self._started = 0.0

    def _probe(self) -> None:
        while not self._stopped.is_set():
            self._samples.append((time.monotonic(), probe_ready(self._server, self._model)))
            time.sleep(0.05)

    def __enter__(self) -> ReadinessRecorder:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stopped.set()
        self._thread.join()

    def wait_until_recovered(self, timeout_s: float = 300.0) -> tuple[float, float]:
        """Waits for readiness to turn red and then green again.

        Returns:
            seconds from entering until the first red probe, and until green again after it.
        """
        deadline = self._started + timeout_s
        while time.monotonic() < deadline:
            red = next((t for t, ready in list(self._samples) if not ready), None)
            if red is not None:
                green = next((t for t, ready in list(self._samples) if t > red and ready), None)
                if green is not None:
                    return red - self._started, green - self._started
            time.sleep(0.05)
        seen = "never turned red" if red is None else "did not turn green again"
        raise AssertionError(f"readiness of {self._model} {seen} within {timeout_s:.0f} s")


def batch_sizes(server: TritonServer, model: str) -> dict[int, int]:
    """Executions of ``model`` so far, by batch size (Triton's inference statistics)."""
    with grpcclient.InferenceServerClient(f"localhost:{server.ports.grpc}") as client:
        stats = client.get_inference_statistics(model, as_json=True)
    batch_stats = stats["model_stats"][0].get("batch_stats", [])
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in batch_stats}


def assert_a_batch_formed(before: dict[int, int], after: dict[int, int]) -> None:
    """Between two :func:`batch_sizes`, some execution took more than one request."""
    batched = {size for size, count in after.items() if count > before.get(size, 0)}
    assert batched and max(batched) > 1, f"requests never shared a batch: sizes {sorted(batched)}"


def write_gauge_set(folder: Path, count: int, seed: int) -> Path:
    """``count`` drawn photos of meters in ``folder`` as a COCO set labelled as the pointer
    model's classes, each dial with its keypoints (``training.gauges``)."""
    write_coco(
        folder,
        gauges.CATEGORIES,
        count,
        partial(_gauges_as_trained, seed),
        "test",
        keypoint_names=gauges.KEYPOINT_NAMES,
    )
    return folder
