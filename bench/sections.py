"""The five measurements of ``make bench``, each against a baseline taken in the same run.

Each section returns table rows and its raw samples (for the JSON result and the plots).
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aiogrpc
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from PIL import Image

from bench.servers import ECHO_MODEL
from bench.stats import Row, Summary, paired_ratios
from bench.timing import interleaved, rotated, timed
from bls.merge import merge_answer
from bls.repository import class_names, model_tensors
from clients.answer import parse_answer
from clients.jpeg_client import JpegClient
from pipelines.tensors import DETECTIONS, IMAGE, JPEG, MASKS, MODELS, Detections

__all__ = ["Bench", "SectionResult"]

DETECTORS = ("pointer", "insulator")
# The throughput section's in-process baseline: DefaultPredictor called back to back.
LOOP = "DefaultPredictor loop"


def _loop(call: Callable[[], object], images: int) -> tuple[float, list[float]]:
    """``call`` ``images`` times back to back: the wall time and each call's time."""
    latencies = []
    start = time.perf_counter()
    for _ in range(images):
        latencies.append(timed(call))
    return time.perf_counter() - start, latencies


def _per_image(
    measured: dict[str, tuple[float, list[float]]], name: str, baseline: str
) -> float | None:
    """Time per image (wall / images) of ``name`` over ``baseline``'s: < 1 is more images/s."""
    if not baseline:
        return None
    (wall, latencies), (base_wall, base_latencies) = measured[name], measured[baseline]
    return (wall / len(latencies)) / (base_wall / len(base_latencies))


@dataclass
class SectionResult:
    """What one section measured: its table rows and raw figures."""

    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)


def _median_ratio(variant: list[float], baseline: list[float]) -> float:
    return Summary.of(paired_ratios(variant, baseline)).median


def _row(
    section: str,
    name: str,
    samples: dict[str, list[float]],
    baseline: str = "",
    goal: str = "",
    note: str = "",
) -> Row:
    ratio = _median_ratio(samples[name], samples[baseline]) if baseline else None
    return Row(section, name, Summary.of(samples[name]), baseline, ratio, goal, note)


@dataclass
class Bench:
    """Connections and settings shared by the sections.

    Attributes:
        repository: the served model repository (configs, YAMLs, weights).
        main_http: ``host:port`` of the shipped server's HTTP endpoint.
        main_grpc: ... its gRPC endpoint.
        bench_http: ``host:port`` of the one-at-a-time server (with ``bench_echo``).
        bench_grpc: ... its gRPC endpoint.
        jpeg: the photo every section sends.
        large_jpeg: a 12-megapixel photo, for transport.
        rounds: timed rounds per section (fast sections multiply it).
        warmup: untimed rounds first.
        on_gpu: whether the server has a GPU (picks the goals that apply).
        lower_precision: the detectors' lower precision (``"bfloat16"``, ``"float16"``) that
            section 1 measures beside float32; ``""`` for none.
        lower_grpc: ``host:port`` of the gRPC endpoint of the server whose detectors serve it.
        lower_note: why that server computes in float32 after all (hardware without the
            lower precision); ``""`` when it serves it.
    """

    repository: Path
    main_http: str
    main_grpc: str
    bench_http: str
    bench_grpc: str
    jpeg: bytes
    large_jpeg: bytes
    rounds: int = 5
    warmup: int = 1
    on_gpu: bool = False
    lower_precision: str = ""
    lower_grpc: str = ""
    lower_note: str = ""

    def __post_init__(self) -> None:
        self.http = JpegClient(self.main_http, "http")
        self.grpc = JpegClient(self.main_grpc, "grpc")
        self.lower = JpegClient(self.lower_grpc, "grpc") if self.lower_grpc else None

    def close(self) -> None:
        """Closes the connections."""
        self.http.close()
        self.grpc.close()
        if self.lower is not None:
            self.lower.close()

    # 1 -------------------------------------------------------------------------------------
    def overhead(self, models: list[str]) -> SectionResult:
        """One image end to end through the ensemble (HTTP, gRPC) and the BLS, against
        ``DefaultPredictor`` in this process on the same image, config and weights.

        The in-process baseline decodes the JPEG too (PIL, as ``read_image`` does): the served
        paths decode it in ``preprocess``. With :attr:`lower_precision`, each detector's
        ensemble on the lower-precision server is timed in the same rounds, against
        ``DefaultPredictor`` (float32) and against the float32 ensemble.
        """
        goal = "<= 1.10x (GPU)" if self.on_gpu else "<= 0.67x (CPU)"
        lower_goal = "" if self.on_gpu else f"<= 0.60x (CPU, {self.lower_precision})"
        result = SectionResult()
        for model in models:
            predictor = self._predictor(model)
            in_process = self._in_process(predictor)

            ensemble = f"{model}_ensemble"
            bls = f"inspect[{model}] grpc"
            variants: dict[str, Callable[[], object]] = {
                "DefaultPredictor": in_process,
                f"{ensemble} http": lambda m=ensemble: self.http.infer(m, self.jpeg),
                f"{ensemble} grpc": lambda m=ensemble: self.grpc.infer(m, self.jpeg),
                bls: lambda m=model: self.grpc.infer("inspect", self.jpeg, {MODELS: m}),
            }
            lower = f"{ensemble} grpc {self.lower_precision}"
            if self.lower is not None:
                variants[lower] = lambda m=ensemble: self.lower.infer(m, self.jpeg)
            samples = interleaved(variants, self.rounds, self.warmup, f"1 overhead {model}")
            base = "DefaultPredictor"
            result.rows.append(_row("1 overhead", base, samples, note=f"{model}, in-process"))
            for name in list(variants)[1:]:
                if name == lower:
                    continue
                result.rows.append(_row("1 overhead", name, samples, base, goal))
            if self.lower is not None:
                note = self.lower_note or f"detector in {self.lower_precision}"
                result.rows.append(_row("1 overhead", lower, samples, base, lower_goal, note))
                result.rows.append(
                    _row("1 overhead", lower, samples, f"{ensemble} grpc", note="vs float32")
                )
            result.rows.append(
                _row("5 transport", bls, samples, f"{ensemble} grpc", note="BLS vs ensemble")
            )
            result.raw[model] = samples
            del predictor
        return result

    def _in_process(self, predictor: Any) -> Callable[[], object]:
        """One call of ``predictor`` on the bench photo, decoded by PIL as ``read_image`` does."""
        from detectron2.data.detection_utils import convert_PIL_to_numpy

        def call() -> object:
            image = convert_PIL_to_numpy(Image.open(io.BytesIO(self.jpeg)), "BGR")
            return predictor(image)

        return call

    def _predictor(self, model: str) -> Any:
        from detectron2.engine import DefaultPredictor

        from pipelines.detector import load_config, load_weights

        params = model_tensors(self.repository, model).parameters
        predictor = DefaultPredictor(
            load_config(self.repository / model / params["detectron2_config"])
        )
        # As the server loads them (strictly; fp16 files as fp32).
        load_weights(predictor.model, self.repository / model / params["weights"])
        return predictor

    # 2 -------------------------------------------------------------------------------------
    def both(self) -> SectionResult:
        """``inspect`` with both detectors against each alone and against their sum."""
        variants: dict[str, Callable[[], object]] = {
            f"inspect[{m}] grpc": lambda m=m: self.grpc.infer("inspect", self.jpeg, {MODELS: m})
            for m in (*DETECTORS, "both")
        }
        samples = interleaved(variants, self.rounds, self.warmup, "2 both")
        p, i = (samples[f"inspect[{m}] grpc"] for m in DETECTORS)
        samples["slower of the two"] = [max(x, y) for x, y in zip(p, i, strict=True)]
        samples["sum of the two"] = [x + y for x, y in zip(p, i, strict=True)]
        both = "inspect[both] grpc"
        goal = "<= 1.15x (GPU)" if self.on_gpu else ""
        rows = [_row("2 both", f"inspect[{m}] grpc", samples) for m in DETECTORS]
        for base in (*(f"inspect[{m}] grpc" for m in DETECTORS), "slower of the two"):
            rows.append(_row("2 both", both, samples, base, goal if "slower" in base else ""))
        rows.append(_row("2 both", both, samples, "sum of the two", note="< 1: overlap"))
        return SectionResult(rows, samples)

    # 3 -------------------------------------------------------------------------------------
    def preprocess(self, batch_sizes: tuple[int, ...] = (1, 8)) -> SectionResult:
        """DALI's ``Preprocessor`` against PIL (detectron2's own path) and OpenCV, same images.

        Every path decodes, converts to BGR and resizes to the shorter side 800 (longer at most
        1333). DALI runs with 2 worker threads as the served model does, PIL with a pool of 2
        threads (its decode and resize release the GIL), OpenCV with its own threading.
        """
        import cv2
        from detectron2.data import transforms as T
        from detectron2.data.detection_utils import convert_PIL_to_numpy

        from pipelines.preprocess import PreprocessConfig, Preprocessor, Resize

        config = Resize()
        dali = Preprocessor(
            JPEG, PreprocessConfig(images=((IMAGE, config),)), max_batch_size=max(batch_sizes)
        )
        resize = T.ResizeShortestEdge(config.shortest_edge, config.max_size)
        pool = ThreadPoolExecutor(2)

        def pil_one(data: bytes) -> np.ndarray:
            image = convert_PIL_to_numpy(Image.open(io.BytesIO(data)), "BGR")
            return resize.get_transform(image).apply_image(image)

        def cv_one(data: bytes) -> np.ndarray:
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            h, w = resize.get_output_shape(*image.shape[:2], config.shortest_edge, config.max_size)
            return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)

        result = SectionResult()
        for batch in batch_sizes:
            arrays = [np.frombuffer(self.jpeg, np.uint8)] * batch
            files = [self.jpeg] * batch
            variants: dict[str, Callable[[], object]] = {
                f"PIL batch {batch}": lambda f=files: list(pool.map(pil_one, f)),
                f"OpenCV batch {batch}": lambda f=files: [cv_one(x) for x in f],
                f"DALI batch {batch}": lambda a=arrays: dali(a),
            }
            samples = interleaved(
                variants, self.rounds * 4, self.warmup + 1, f"3 preprocess {batch}"
            )
            base, dali_name = f"PIL batch {batch}", f"DALI batch {batch}"
            goal = ""
            if batch >= 8:
                goal = "<= 0.10x (GPU)" if self.on_gpu else "<= 0.77x (CPU, 1.3x faster)"
            result.rows.append(_row("3 preprocess", base, samples, note=f"{batch} x 640x427"))
            result.rows.append(_row("3 preprocess", f"OpenCV batch {batch}", samples, base))
            result.rows.append(
                _row(
                    "3 preprocess",
                    f"DALI batch {batch}",
                    samples,
                    base,
                    goal,
                    note=f"{_median_ratio(samples[base], samples[dali_name]):.2f}x faster",
                )
            )
            result.raw[str(batch)] = samples
        pool.shutdown()
        return result

    # 4 -------------------------------------------------------------------------------------
    def throughput(
        self, levels: tuple[int, ...], requests_per_client: int, model: str = "insulator_ensemble"
    ) -> SectionResult:
        """Images/s and latency at each number of concurrent clients (async gRPC), on the
        shipped server (dynamic batching) and on the one-at-a-time copy, and a loop of
        ``DefaultPredictor`` calls in this process on as many images, alternating.

        Each of ``c`` clients sends ``requests_per_client`` requests back to back.
        """
        servers = {"dynamic batching": self.main_grpc, "one at a time": self.bench_grpc}
        asyncio.run(self._load(servers["one at a time"], model, 1, 1))  # loads its stubs' caches
        in_process = self._in_process(self._predictor(model.removesuffix("_ensemble")))
        in_process()  # the first call allocates
        # At the most clients: GPU, 1.5x the one-at-a-time images/s; CPU, 1.5x a loop's.
        goals = (
            {"one at a time": "<= 0.67x (GPU, 1.5x images/s)"}
            if self.on_gpu
            else {"one at a time": "<= 1.0x (CPU)", LOOP: "<= 0.67x (CPU, 1.5x images/s)"}
        )
        result = SectionResult()
        for c in levels:
            measured: dict[str, tuple[float, list[float]]] = {}
            for name in rotated([*servers, LOOP], c):
                print(
                    f"  [4 throughput] {c} client(s) x {requests_per_client}, {name} ...",
                    flush=True,
                )
                if name == LOOP:
                    measured[name] = _loop(in_process, c * requests_per_client)
                    continue
                measured[name] = asyncio.run(
                    self._load(servers[name], model, c, requests_per_client)
                )
                wall, latencies = measured[name]
                print(
                    f"  [4 throughput] {c} client(s), {name}: "
                    f"{len(latencies) / wall:.3f} images/s, p50 {np.median(latencies):.2f} s",
                    flush=True,
                )
            for name, (wall, latencies) in measured.items():
                images = len(latencies)
                summary = Summary.of(latencies)
                note = (
                    f"{images / wall:.3f} images/s, p50 {summary.median:.2f} s, "
                    f"p95 {summary.p95:.2f} s, p99 {summary.p99:.2f} s"
                )
                label = f"{c} clients, {name}" if name in servers else f"{images} images, {name}"
                baselines = ["one at a time", LOOP] if name == "dynamic batching" else [""]
                for baseline in baselines:
                    goal = goals.get(baseline, "") if c == max(levels) else ""
                    ratio = _per_image(measured, name, baseline)
                    result.rows.append(
                        Row("4 throughput", label, summary, baseline, ratio, goal, note)
                    )
                result.raw.setdefault(name, {})[str(c)] = {"wall_s": wall, "latencies_s": latencies}
        return result

    async def _load(
        self, url: str, model: str, clients: int, requests_per_client: int
    ) -> tuple[float, list[float]]:
        """Runs ``clients`` concurrent senders; returns the wall time and every latency."""
        data = np.frombuffer(self.jpeg, np.uint8)[np.newaxis]
        latencies: list[float] = []
        async with aiogrpc.InferenceServerClient(url) as client:

            async def sender() -> None:
                for _ in range(requests_per_client):
                    tensor = aiogrpc.InferInput(JPEG, list(data.shape), "UINT8")
                    tensor.set_data_from_numpy(data)
                    start = time.perf_counter()
                    await client.infer(model, [tensor])
                    latencies.append(time.perf_counter() - start)

            start = time.perf_counter()
            await asyncio.gather(*(sender() for _ in range(clients)))
            wall = time.perf_counter() - start
        return wall, latencies

    # 5 -------------------------------------------------------------------------------------
    def transport(self, answer_model: str = "both") -> SectionResult:
        """Raw JPEG bytes over HTTP, gRPC and gRPC with system shared memory (to ``bench_echo``,
        which does nothing else), the preprocessed image coming back over HTTP and gRPC, and the
        ``inspect`` answer: its size and the time to build and to parse it."""
        result = SectionResult()
        http = httpclient.InferenceServerClient(self.bench_http)
        grpc = grpcclient.InferenceServerClient(self.bench_grpc)
        regions = []
        try:
            for label, jpeg in (("640x427", self.jpeg), ("4000x3000", self.large_jpeg)):
                data = np.frombuffer(jpeg, np.uint8)
                key = f"/bench_jpeg_{os.getpid()}_{label}"
                handle = shm.create_shared_memory_region(key[1:], key, data.nbytes)
                regions.append((key[1:], handle))
                shm.set_shared_memory_region(handle, [data])
                grpc.register_system_shared_memory(key[1:], key, data.nbytes)

                def send(
                    module: Any, client: Any, data: np.ndarray = data, region: str = ""
                ) -> None:
                    tensor = module.InferInput(JPEG, list(data.shape), "UINT8")
                    if region:
                        tensor.set_shared_memory(region, data.nbytes)
                    else:
                        tensor.set_data_from_numpy(data)
                    client.infer(ECHO_MODEL, [tensor])

                names = [
                    f"{p} {label} ({len(jpeg) // 1024} KiB)" for p in ("http", "grpc", "grpc+shm")
                ]
                variants: dict[str, Callable[[], object]] = {
                    names[0]: lambda s=send: s(httpclient, http),
                    names[1]: lambda s=send: s(grpcclient, grpc),
                    names[2]: lambda s=send, r=key[1:]: s(grpcclient, grpc, region=r),
                }
                samples = interleaved(
                    variants, self.rounds * 10, self.warmup + 2, f"5 transport {label}"
                )
                result.rows.append(
                    _row("5 transport", names[0], samples, note="JPEG to bench_echo")
                )
                for name in names[1:]:
                    result.rows.append(_row("5 transport", name, samples, names[0]))
                result.raw[label] = samples
            variants = {
                f"preprocess_ensemble {p}": lambda c=c: c.infer("preprocess_ensemble", self.jpeg)
                for p, c in (("http", self.http), ("grpc", self.grpc))
            }
            samples = interleaved(
                variants, self.rounds * 4, self.warmup + 1, "5 transport preprocess"
            )
            answer = self.grpc.infer("preprocess_ensemble", self.jpeg)
            images = {k: v for k, v in answer.items() if k.endswith("_IMAGE")}
            shapes = ", ".join(f"{k} {'x'.join(map(str, v.shape))}" for k, v in images.items())
            megabytes = sum(v.nbytes for v in images.values()) / 2**20
            note = f"answer {megabytes:.1f} MiB ({shapes})"
            result.rows.append(_row("5 transport", "preprocess_ensemble http", samples, note=note))
            result.rows.append(
                _row("5 transport", "preprocess_ensemble grpc", samples, "preprocess_ensemble http")
            )
            result.raw["preprocess_ensemble"] = samples
        finally:
            for region, handle in regions:
                grpc.unregister_system_shared_memory(region)
                shm.destroy_shared_memory_region(handle)
            http.close()
            grpc.close()
        answer = self._answer_cost()
        result.rows.extend(answer.rows)
        result.raw["answer"] = answer.raw
        return result

    def _answer_cost(self) -> SectionResult:
        """The answer of ``inspect`` for both detectors: its bytes, and the time to build it
        (``bls.merge.merge_answer``, in the BLS) and to parse it (``clients.answer``)."""
        outputs = {m: self.grpc.infer(f"{m}_ensemble", self.jpeg) for m in DETECTORS}
        ensemble_bytes = {m: sum(a.nbytes for a in out.values()) for m, out in outputs.items()}
        results = {m: Detections.from_outputs(outputs[m]) for m in DETECTORS}
        names = {m: class_names(self.repository, m) for m in DETECTORS}
        height, width = Image.open(io.BytesIO(self.jpeg)).size[::-1]
        document, masks = merge_answer(height, width, results, names)
        served = self.grpc.infer("inspect", self.jpeg, {MODELS: "both"})
        served_bytes = len(served[DETECTIONS][0]) + served[MASKS].nbytes
        instances = sum(len(r.scores) for r in results.values())
        variants: dict[str, Callable[[], object]] = {
            "build answer (merge_answer)": lambda: merge_answer(height, width, results, names),
            "parse answer (parse_answer)": lambda: parse_answer(document, masks),
        }
        samples = interleaved(variants, self.rounds * 10, self.warmup, "5 transport answer")
        note = (
            f"{instances} instances: answer {served_bytes / 1024:.0f} KiB "
            f"(JSON {len(served['DETECTIONS'][0]) / 1024:.0f} KiB + masks "
            f"{served['MASKS'].nbytes / 1024:.0f} KiB); ensembles "
            + ", ".join(f"{m} {b / 1024:.0f} KiB" for m, b in ensemble_bytes.items())
        )
        rows = [
            _row("5 transport", name, samples, note=note if i == 0 else "")
            for i, name in enumerate(variants)
        ]
        raw = {
            "samples": samples,
            "answer_bytes": served_bytes,
            "json_bytes": len(served[DETECTIONS][0]),
            "mask_bytes": int(served[MASKS].nbytes),
            "ensemble_bytes": ensemble_bytes,
            "instances": instances,
        }
        return SectionResult(rows, raw)
