"""Load and soak harness: a seeded mix of requests, concurrent clients, a watchdog, memory.

``tests/test_soak.py`` says what is sent and checks the results; this module does the sending
and the measuring, with no assertion of its own:

- :class:`Case` is one kind of request (a model, an input, what must come back);
  :func:`make_plan` turns cases into a deterministic, shuffled list of :class:`Request` spread
  over HTTP and gRPC clients.
- :func:`run_plan` sends a plan from one thread per client and records an :class:`Outcome` for
  every request; a request that gets no answer within its timeout is reported as hung instead of
  hanging the test.
- :func:`measure_memory` reads the resident memory of the server and its python-backend stubs,
  and the size of the shared-memory regions they map (triton-inference-server/server #7481).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import cycle
from pathlib import Path

import numpy as np

from clients.jpeg_client import PROTOCOLS, InferenceServerException, JpegClient
from server.launch import TritonServer, processes_in_group

__all__ = [
    "Case",
    "MemorySnapshot",
    "Outcome",
    "ProcessMemory",
    "Request",
    "RunResult",
    "comparable",
    "difference",
    "fingerprint",
    "judge",
    "make_plan",
    "measure_memory",
    "run_plan",
    "send",
    "summarize",
    "tally",
]

# What a refused request's status reads as over each protocol when the model answered
# INVALID_ARG: a bad image is the client's mistake, never an internal error.
INVALID_ARGUMENT = {"http": "400", "grpc": "StatusCode.INVALID_ARGUMENT"}

_SHM_REGION = re.compile(r"/dev/shm/(triton_python_backend_shm_region_\S+)")


@dataclass(frozen=True)
class Case:
    """One kind of request: a model, an input, and what must come back.

    Attributes:
        target: the model the request is sent to, e.g. ``"preprocess_ensemble"``.
        image: name of the input, e.g. ``"tiny_64x48"`` or ``"png"``.
        payload: the bytes sent as ``JPEG``.
        models: the ``MODELS`` option of ``inspect`` (``None``: not sent).
        error: for a bad request, text the server's message must contain; ``None`` for a good
            one, whose answer must equal the answer to the same case sent alone.
    """

    target: str
    image: str
    payload: bytes = field(repr=False)
    models: str | None = None
    error: str | None = None

    @property
    def good(self) -> bool:
        """Whether the request must be answered (rather than refused)."""
        return self.error is None

    @property
    def kind(self) -> str:
        """``"bad"``, or what a good request costs: ``"preprocess"`` (ms) or ``"detector"`` (s)."""
        if not self.good:
            return "bad"
        return "preprocess" if self.target.startswith("preprocess") else "detector"

    @property
    def label(self) -> str:
        """``target[models]`` as the summary groups requests, e.g. ``inspect[both]``."""
        return self.target if self.models is None else f"{self.target}[{self.models}]"

    @property
    def options(self) -> dict[str, str] | None:
        """The ``BYTES`` inputs sent with the JPEG."""
        return None if self.models is None else {"MODELS": self.models}

    def __str__(self) -> str:
        return f"{self.label} {'good' if self.good else 'bad'} {self.image}"


@dataclass(frozen=True)
class Request:
    """One planned request: which case, and which client sends it (and so over which protocol)."""

    index: int
    case: Case
    client: int
    protocol: str


@dataclass(frozen=True)
class Outcome:
    """What came back for one request.

    Exactly one of ``answer`` (the fingerprint of the outputs), ``error`` (the server's message,
    with ``status``) and ``unexpected`` (anything else: a timeout, a broken connection) is set.
    """

    seconds: float
    answer: str | None = None
    error: str | None = None
    status: str | None = None
    unexpected: str | None = None
    # Kept for detector answers only (kilobytes; preprocessed images are megabytes): a mismatch
    # can then say how far apart the answers are.
    outputs: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)


@dataclass
class RunResult:
    """Every outcome of a plan by request index, the requests that hung, and the wall time.

    ``samples`` are ``(seconds since start, requests answered, memory)`` taken while the plan
    ran, to tell memory that levels off from memory that keeps growing.
    """

    outcomes: dict[int, Outcome]
    hung: list[int]
    wall_s: float
    samples: list[tuple[float, int, MemorySnapshot]] = field(default_factory=list)


def fingerprint(outputs: dict[str, np.ndarray]) -> str:
    """A digest of every output's name, type, shape and bytes: equal digests, equal answers.

    An empty output's type is left out: tritonclient 2.51's HTTP ``as_numpy`` returns any empty
    binary output as ``float64`` (``np.empty(0)``) whatever its declared type, gRPC's keeps it;
    measured on ``inspect``'s ``MASKS`` when only the insulator detector (no masks) runs.
    """
    digest = hashlib.sha256()
    for name in sorted(outputs):
        value = outputs[name]
        dtype = value.dtype if value.size else "empty"
        digest.update(f"{name}:{dtype}:{value.shape};".encode())
        if value.dtype == np.object_:  # BYTES outputs: the JSON document of inspect
            for item in value.reshape(-1):
                digest.update(len(item).to_bytes(8, "big") + item)
        else:
            digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def send(client: JpegClient, case: Case) -> Outcome:
    """Sends one request and records its outcome; never raises for what the server says."""
    start = time.monotonic()
    try:
        outputs = client.infer(case.target, case.payload, case.options)
    except InferenceServerException as error:
        return Outcome(
            time.monotonic() - start, error=error.message() or "", status=str(error.status())
        )
    except Exception as error:  # a timeout or a dropped connection is a failure, not a crash
        return Outcome(time.monotonic() - start, unexpected=f"{type(error).__name__}: {error}")
    kept = outputs if case.kind == "detector" else None
    return Outcome(time.monotonic() - start, answer=fingerprint(outputs), outputs=kept)


def comparable(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A detector answer as flat arrays: an ensemble's outputs as they are, the router's JSON
    document as boxes, scores and classes per model (its ``MASKS`` as they are)."""
    if "DETECTIONS" not in outputs:
        return outputs
    flat = {"MASKS": outputs["MASKS"]}
    for model, part in json.loads(outputs["DETECTIONS"][0])["models"].items():
        instances = part["instances"]
        flat[f"{model}.BOXES"] = np.array([i["box"] for i in instances], np.float64)
        flat[f"{model}.SCORES"] = np.array([i["score"] for i in instances], np.float64)
        flat[f"{model}.CLASSES"] = np.array([i["class_id"] for i in instances])
    return flat


def difference(reference: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> str:
    """How two detector answers differ, output by output, e.g. ``SCORES: max |diff| 2e-07``."""
    reference, outputs = comparable(reference), comparable(outputs)
    parts = []
    for name in sorted(reference.keys() | outputs.keys()):
        if name not in reference or name not in outputs:
            parts.append(f"{name}: only in one")
        elif reference[name].shape != outputs[name].shape:
            parts.append(f"{name}: shape {reference[name].shape} vs {outputs[name].shape}")
        elif reference[name].size and reference[name].dtype != outputs[name].dtype:
            parts.append(f"{name}: {reference[name].dtype} vs {outputs[name].dtype}")
        elif not np.array_equal(reference[name], outputs[name]):
            delta = np.abs(reference[name].astype(np.float64) - outputs[name].astype(np.float64))
            parts.append(
                f"{name}: max |diff| {delta.max():.3g}, {np.count_nonzero(delta)} of "
                f"{delta.size} values differ"
            )
    return "; ".join(parts) or "equal arrays"


def judge(request: Request, outcome: Outcome | None, reference: Outcome | None) -> str | None:
    """What is wrong with one request's outcome, or ``None`` when it is what its case expects.

    Args:
        request: the request as planned.
        outcome: what came back; ``None`` if nothing did.
        reference: for a good case, the outcome of the same case sent alone.
    """
    case = request.case
    where = f"#{request.index} {case} over {request.protocol}"
    if outcome is None:
        return f"{where}: no answer"
    if outcome.unexpected is not None:
        return f"{where}: {outcome.unexpected} after {outcome.seconds:.1f} s"
    if case.good:
        if outcome.error is not None:
            return f"{where}: refused ({outcome.status}): {outcome.error}"
        if reference is None or reference.answer is None:
            return f"{where}: no answer alone to compare with"
        if outcome.answer != reference.answer:
            how = ""
            if reference.outputs is not None and outcome.outputs is not None:
                how = f" ({difference(reference.outputs, outcome.outputs)})"
            return f"{where}: the answer differs from the answer when sent alone{how}"
        return None
    if outcome.error is None:
        return f"{where}: answered, but must be refused with {case.error!r}"
    if case.error not in outcome.error:
        return f"{where}: refused with {outcome.error!r}, expected {case.error!r}"
    if outcome.status != INVALID_ARGUMENT[request.protocol]:
        return f"{where}: refused with status {outcome.status}, expected invalid argument"
    return None


def make_plan(
    good: Sequence[Case],
    detector: Sequence[Case],
    bad: Sequence[Case],
    count: int,
    detector_count: int,
    clients: int,
    seed: int,
    start_index: int = 0,
) -> list[Request]:
    """A deterministic mix of ``count`` requests, shuffled and dealt to ``clients`` clients.

    ``detector_count`` requests run a detector, taking ``detector`` in the order given (so a
    small plan uses the first ones; pass the cheapest first). The rest are half ``good``, half
    ``bad``, each list taken in a seeded random order, round and round, so that every case is
    sent before any is sent twice. Client ``i`` speaks ``PROTOCOLS[i % 2]``.
    """
    if not 0 <= detector_count <= count:
        raise ValueError(f"detector_count {detector_count} not within 0..{count}")
    rng = random.Random(seed)
    cheap = count - detector_count
    cases = [
        *_take(detector, detector_count),
        *_take(_shuffled(good, rng), cheap // 2),
        *_take(_shuffled(bad, rng), cheap - cheap // 2),
    ]
    rng.shuffle(cases)
    return [
        Request(start_index + i, case, i % clients, PROTOCOLS[(i % clients) % len(PROTOCOLS)])
        for i, case in enumerate(cases)
    ]


def _shuffled(cases: Sequence[Case], rng: random.Random) -> list[Case]:
    order = list(cases)
    rng.shuffle(order)
    return order


def _take(cases: Sequence[Case], count: int) -> Iterator[Case]:
    if count and not cases:
        raise ValueError("no cases to take requests from")
    return (case for case, _ in zip(cycle(cases), range(count)))


def run_plan(
    server: TritonServer,
    plan: Sequence[Request],
    timeout_s: float,
    sample_every_s: float = 5.0,
) -> RunResult:
    """Sends ``plan``: each client in its own thread, its requests one after another.

    A watchdog in the calling thread declares a request hung once it has waited ``timeout_s``
    without an answer, stops every client after its current request, and returns: the client
    libraries' own timeouts are not relied on (gRPC has none by default). Client threads are
    daemons, so one stuck in a hung request cannot keep pytest from exiting. Every
    ``sample_every_s`` the watchdog also reads the server's resident memory.
    """
    by_client: dict[int, list[Request]] = {}
    for request in plan:
        by_client.setdefault(request.client, []).append(request)
    outcomes: dict[int, Outcome] = {}
    in_flight: dict[int, tuple[int, float]] = {}  # client -> (request index, start time)
    stop = threading.Event()
    lock = threading.Lock()

    def client_loop(requests: list[Request]) -> None:
        with JpegClient(server.url(requests[0].protocol), requests[0].protocol) as client:
            for request in requests:
                if stop.is_set():
                    return
                with lock:
                    in_flight[request.client] = (request.index, time.monotonic())
                outcome = send(client, request.case)
                with lock:
                    del in_flight[request.client]
                    outcomes[request.index] = outcome

    threads = [
        threading.Thread(target=client_loop, args=(requests,), daemon=True, name=f"soak-{i}")
        for i, requests in sorted(by_client.items())
    ]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    hung: list[int] = []
    samples: list[tuple[float, int, MemorySnapshot]] = []
    next_sample = start
    while any(thread.is_alive() for thread in threads):
        time.sleep(0.2)
        with lock:
            now = time.monotonic()
            hung = sorted(i for i, since in in_flight.values() if now - since > timeout_s)
            answered = len(outcomes)
        if hung:
            stop.set()
            break
        if now >= next_sample and server.pid is not None:
            samples.append((now - start, answered, measure_memory(server.pid)))
            next_sample = now + sample_every_s
    with lock:  # a hung client thread may still write later; the result is a snapshot
        return RunResult(dict(outcomes), hung, time.monotonic() - start, samples)


@dataclass(frozen=True)
class ProcessMemory:
    """Resident memory of one process of the server, KiB (``/proc/<pid>/status``)."""

    pid: int
    name: str  # "tritonserver", "watchdog", or the model a python-backend stub serves
    rss_kib: int  # VmRSS: RssAnon + RssFile + RssShmem
    shmem_kib: int  # RssShmem: pages of the shared-memory regions this process has touched

    @property
    def private_kib(self) -> int:
        """Resident memory of this process alone: VmRSS less its shared-memory pages."""
        return self.rss_kib - self.shmem_kib


@dataclass(frozen=True)
class MemorySnapshot:
    """The server's memory at one moment.

    Attributes:
        processes: the watchdog, the server and each of its stubs.
        shm_regions: bytes of ``/dev/shm`` taken by each stub's python-backend shared-memory
            region, by the stub's name. A region is allocated in full when it is made and grows
            (by ``shm-growth-byte-size``) when its pool runs out; it never shrinks
            (triton-inference-server/server #7481).
        shm_used_bytes: what ``/dev/shm`` holds in all, every other user's files included.
    """

    processes: tuple[ProcessMemory, ...]
    shm_regions: dict[str, int]
    shm_used_bytes: int

    @property
    def rss_mib(self) -> float:
        """The sum of VmRSS of the server and its stubs, MiB. A shared-memory page counts in
        each process that has touched it, so this moves as pages of the pools are first used."""
        return sum(p.rss_kib for p in self.processes) / 1024

    @property
    def private_mib(self) -> float:
        """Resident memory of the server and its stubs without their shared memory, MiB."""
        return sum(p.private_kib for p in self.processes) / 1024

    @property
    def shm_mib(self) -> float:
        """``/dev/shm`` taken by the server's shared-memory regions together, MiB."""
        return sum(self.shm_regions.values()) / 2**20

    @property
    def footprint_mib(self) -> float:
        """The server's memory, each page once: private resident memory plus its regions."""
        return self.private_mib + self.shm_mib

    def private_by_name(self) -> dict[str, int]:
        """Private resident MiB per process name."""
        return {p.name: round(p.private_kib / 1024) for p in self.processes}


def measure_memory(group: int) -> MemorySnapshot:
    """Reads ``/proc`` for every process of the server's process group: the watchdog, the
    server and its stubs (``TritonServer.start`` gives them a session of their own, and
    ``TritonServer.pid`` is its id). Each stub maps its own region, the server maps them all.
    """
    processes = []
    regions: dict[str, str] = {}  # file name -> the stub it belongs to
    for pid in processes_in_group(group):
        proc = Path("/proc") / str(pid)
        try:
            status = (proc / "status").read_text()
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            maps = (proc / "maps").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended while we looked; the pid check of the test will say so
        name, stub = _process_name(argv)
        kib = {
            key: int(value.split()[0])
            for key, value in (line.split(":", 1) for line in status.splitlines())
            if key in ("VmRSS", "RssShmem")
        }
        processes.append(ProcessMemory(pid, name, kib["VmRSS"], kib.get("RssShmem", 0)))
        if stub:
            regions.update(dict.fromkeys(_SHM_REGION.findall(maps), name))
    sizes = {}
    for region, owner in sorted(regions.items(), key=lambda item: item[1]):
        try:
            sizes[owner] = (Path("/dev/shm") / region).stat().st_blocks * 512
        except FileNotFoundError:
            sizes[owner] = 0  # unlinked while mapped: it can no longer grow
    usage = os.statvfs("/dev/shm")
    used = (usage.f_blocks - usage.f_bfree) * usage.f_frsize
    return MemorySnapshot(tuple(sorted(processes, key=lambda p: p.name)), sizes, used)


def _process_name(argv: list[bytes]) -> tuple[str, bool]:
    """``(name, is a stub)``: a stub is named after its model, the others after their program."""
    # A stub's first argument is its model.py: repository/<model>/<version>/model.py.
    if len(argv) > 1 and argv[1].endswith(b"model.py"):
        return Path(argv[1].decode()).parts[-3], True
    if b"server.watchdog" in argv:
        return "watchdog", False
    return Path(argv[0].decode()).name, False


def tally(plan: Iterable[Request]) -> Counter[tuple[str, str, str]]:
    """Requests per (label, protocol, good/bad), for the summary."""
    return Counter((r.case.label, r.protocol, "good" if r.case.good else "bad") for r in plan)


def summarize(
    plan: Sequence[Request], result: RunResult, after_warmup: MemorySnapshot, at_end: MemorySnapshot
) -> str:
    """A few lines to quote: requests per model, protocol and kind; latencies; memory."""
    clients = len({r.client for r in plan})
    lines = [
        f"soak: {len(plan)} requests from {clients} clients in {result.wall_s:.1f} s "
        f"({len(plan) / result.wall_s:.1f} requests/s), {len(result.hung)} hung, "
        f"{len(plan) - len(result.outcomes)} without an answer",
        *_count_lines(plan),
        *_latency_lines(plan, result),
        *_memory_lines(result, after_warmup, at_end),
    ]
    return "\n".join(lines)


def _count_lines(plan: Sequence[Request]) -> Iterator[str]:
    columns = [(protocol, kind) for protocol in PROTOCOLS for kind in ("good", "bad")]
    yield f"  {'requests to':<30}" + "".join(f"{p + ' ' + k:>11}" for p, k in columns)
    counts = tally(plan)
    for label in sorted({r.case.label for r in plan}):
        yield f"  {label:<30}" + "".join(f"{counts[label, p, k]:>11}" for p, k in columns)


def _latency_lines(plan: Sequence[Request], result: RunResult) -> Iterator[str]:
    seconds: dict[tuple[str, str], list[float]] = {}
    for request in plan:
        outcome = result.outcomes.get(request.index)
        if outcome is not None:
            seconds.setdefault((request.case.label, request.case.kind), []).append(outcome.seconds)
    yield f"  {'latency (s) of':<30}{'kind':<11}{'n':>5}{'median':>9}{'max':>9}"
    for (label, kind), values in sorted(seconds.items()):
        yield f"  {label:<30}{kind:<11}{len(values):>5}{np.median(values):>9.3f}{max(values):>9.3f}"


def _memory_lines(
    result: RunResult, after_warmup: MemorySnapshot, at_end: MemorySnapshot
) -> Iterator[str]:
    def mib(kib: float) -> str:
        return f"{kib / 1024:5.0f}"

    yield (
        f"  memory, MiB (private resident + shared-memory regions): after warm-up "
        f"{after_warmup.private_mib:.0f} + {after_warmup.shm_mib:.0f} = "
        f"{after_warmup.footprint_mib:.0f}; at the end {at_end.private_mib:.0f} + "
        f"{at_end.shm_mib:.0f} = {at_end.footprint_mib:.0f} "
        f"({at_end.footprint_mib - after_warmup.footprint_mib:+.0f})"
    )
    yield (
        f"  sum of VmRSS, MiB: {after_warmup.rss_mib:.0f} -> {at_end.rss_mib:.0f} "
        f"({at_end.rss_mib - after_warmup.rss_mib:+.0f})"
    )
    before = {p.name: p for p in after_warmup.processes}
    for process in at_end.processes:
        earlier = before.get(process.name, ProcessMemory(0, process.name, 0, 0))
        yield (
            f"    {process.name:<14} private {mib(earlier.private_kib)} -> "
            f"{mib(process.private_kib)}, region "
            f"{mib(after_warmup.shm_regions.get(process.name, 0) / 1024)} -> "
            f"{mib(at_end.shm_regions.get(process.name, 0) / 1024)}, VmRSS "
            f"{mib(earlier.rss_kib)} -> {mib(process.rss_kib)}"
        )
    if result.samples:
        yield "  while it ran (s, answered: private + regions, MiB): " + ", ".join(
            f"{t:.0f}, {n}: {m.private_mib:.0f} + {m.shm_mib:.0f}" for t, n, m in result.samples
        )
    yield (
        f"  /dev/shm holds {after_warmup.shm_used_bytes / 2**20:.0f} -> "
        f"{at_end.shm_used_bytes / 2**20:.0f} MiB in all (other servers' files included)"
    )
