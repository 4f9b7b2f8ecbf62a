"""``python -m bench`` (``make bench``): the side-by-side benchmark.

Starts the shipped server and a one-at-a-time copy on free ports (and with ``--precision`` a
copy whose detectors serve that precision), runs the sections, prints a table of ratios, and
writes ``results.json``, ``table.txt`` and PNG plots to ``--out``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.machine import describe_machine, machine_line
from bench.stats import Row, format_table

SECTIONS = ("overhead", "both", "preprocess", "throughput", "transport")
# The sections that talk to the one-at-a-time server (and its bench_echo model).
_NEEDS_BENCH_SERVER = {"throughput", "transport"}
_NEEDS_MAIN_SERVER = {"overhead", "both", "throughput", "transport"}


# --precision: the lower precisions section 1 can add.
LOWER_PRECISIONS = ("bfloat16", "float16")

# --recipes: what each choice serves, as the table's header names it.
RECIPES = {
    "demo": "the demo detectors",
    "r50": "the R50-FPN recipes with untrained stand-in weights",
}


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _name_list(choices: Sequence[str]) -> Any:
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = sorted(set(names) - set(choices))
        if unknown or not names:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)}; got {text!r}")
        return names

    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options; ``--quick`` changes the defaults of the others."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Measure the serving stack side by side in one run: (1) server overhead against "
            "detectron2's DefaultPredictor in-process, (2) inspect with both detectors against "
            "each alone and their sum, (3) DALI preprocessing against PIL and OpenCV, "
            "(4) throughput and latency at 1-8 concurrent clients with and without dynamic "
            "batching, (5) transport: HTTP, gRPC, shared memory, answer size and parse time. "
            "Baselines are interleaved with what they are compared to, round by round; the "
            "table gives min/median/max and the median of the per-round ratios. Starts its own "
            "servers on free ports; with the demo detectors it takes about a minute on 2 CPU cores."
        ),
        epilog="Example: make bench BENCH_ARGS='--quick --sections preprocess,transport'",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="A short run: 2 rounds, pointer only in section 1, 1 and 4 clients, 1 request each.",
    )
    parser.add_argument(
        "--sections",
        type=_name_list(SECTIONS),
        default=list(SECTIONS),
        help=f"Comma-separated sections to run. Default is all: {','.join(SECTIONS)}.",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="Timed rounds of the detector sections (the fast sections run 4-10x more). "
        "Default is 5 (2 with --quick).",
    )
    parser.add_argument("--warmup", type=int, default=1, help="Untimed rounds first. Default is 1.")
    parser.add_argument(
        "--models",
        type=_name_list(("pointer", "insulator")),
        default=None,
        help="Detectors of section 1. Default is pointer,insulator (pointer with --quick).",
    )
    parser.add_argument(
        "--concurrency",
        type=_int_list,
        default=None,
        help="Concurrent clients of section 4. Default is 1,2,4,8 (1,4 with --quick).",
    )
    parser.add_argument(
        "--requests-per-client",
        type=int,
        default=None,
        help="Requests each client of section 4 sends. Default is 2 (1 with --quick).",
    )
    parser.add_argument(
        "--recipes",
        choices=tuple(RECIPES),
        default="demo",
        help="Which detectors to serve and compare: the shipped demo models (default), or the "
        "production R50-FPN recipes with untrained stand-in weights (made once into "
        "build/untrained/, a minute), which find the full 100 instances in every photo: the "
        "heaviest case, their detections meaningless.",
    )
    parser.add_argument(
        "--precision",
        choices=LOWER_PRECISIONS,
        default=None,
        help="Also serve the detectors in this lower precision (config.pbtxt's precision: "
        "bfloat16 on a CPU with AVX512-BF16 or AMX, float16 on a GPU), from a copy of the "
        "repository on a server of its own, and time them in section 1 beside float32, "
        "against DefaultPredictor. Works with --recipes. Default is float32 only.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("build/bench"),
        help="Folder for results.json, table.txt, the PNGs and the servers' logs. "
        "Default is build/bench.",
    )
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.models = args.models or (["pointer"] if args.quick else ["pointer", "insulator"])
    args.concurrency = args.concurrency or ((1, 4) if args.quick else (1, 2, 4, 8))
    args.requests_per_client = args.requests_per_client or (1 if args.quick else 2)
    return args


def test_images() -> tuple[bytes, bytes]:
    """A 640x427 photo (the size the README quotes) and a 4000x3000 one, as JPEG bytes.

    Both are re-encodings of the photograph that ships with matplotlib, as in the tests.
    """
    import matplotlib
    from PIL import Image

    photo = Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    photo.load()
    encoded = []
    for size in ((640, 427), (4000, 3000)):
        buffer = io.BytesIO()
        photo.resize(size).save(buffer, "JPEG", quality=90)
        encoded.append(buffer.getvalue())
    return encoded[0], encoded[1]


def untrained_production_weights(folder: Path) -> dict[str, Path]:
    """The R50-FPN recipes' untrained stand-in checkpoints, by detector, made where missing."""
    from bench.servers import PRODUCTION
    from pipelines.untrained import make_untrained_checkpoint
    from server.launch import REPO_ROOT

    weights = {}
    for name, (_, production, _) in PRODUCTION.items():
        yaml = REPO_ROOT / "repository" / name / production
        weights[name] = folder / f"{yaml.stem}.pth"
        if not weights[name].is_file():
            print(f"bench: making untrained stand-in weights {weights[name]} ...", flush=True)
            make_untrained_checkpoint(yaml, weights[name])
    return weights


def lower_precision_note(precision: str, on_gpu: bool) -> str:
    """Why the server would serve ``precision`` as float32 on this machine (``""`` if it
    serves it), as the detectors decide it (:func:`pipelines.detector.served_precision`).

    Raises:
        PrecisionError: the precision is not for this machine's device (float16 on a CPU).
    """
    from pipelines.detector import parse_precision, served_precision

    dtype = parse_precision(precision, "--precision")
    _, why = served_precision(dtype, "cuda:0" if on_gpu else "cpu")
    return f"the {precision} rows measure float32: {why}" if why else ""


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark; returns the exit code."""
    args = parse_args(argv)
    # Heavy imports after argument parsing, so that --help is instant.
    from bench.plots import write_plots
    from bench.sections import Bench
    from bench.servers import (
        DETECTOR_PATHS,
        start_server,
        write_bench_repository,
        write_precision_repository,
        write_production_repository,
    )
    from server.launch import REPO_ROOT, Ports, ServerStartError

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    machine = describe_machine()
    load_before = os.getloadavg()
    print(f"bench: {machine_line(machine)}; load average {load_before[0]:.1f}", flush=True)
    sections = set(args.sections)
    repository = REPO_ROOT / "repository"
    if args.recipes == "r50":
        weights = untrained_production_weights(REPO_ROOT / "build" / "untrained")
        repository = write_production_repository(out / "repository-r50", weights)
    servers = []
    ports = [Ports.free(), Ports.free(), Ports.free()]
    lower_note = ""
    # Only section 1 compares precisions.
    lower = args.precision if "overhead" in sections else None
    if lower:
        try:
            lower_note = lower_precision_note(lower, bool(machine["gpus"]))
        except ValueError as error:  # float16 on a CPU
            print(f"bench: error: --precision {lower}: {error}", file=sys.stderr)
            return 2
        if lower_note:
            print(f"bench: warning: {lower_note}", flush=True)
    started = time.monotonic()
    try:
        if sections & _NEEDS_MAIN_SERVER:
            print(f"bench: starting tritonserver on {repository} ...", flush=True)
            servers.append(start_server(ports[0], repository, out / "tritonserver.log"))
        if sections & _NEEDS_BENCH_SERVER:
            copy = write_bench_repository(out / "repository-one-at-a-time", repository)
            print(f"bench: starting a one-at-a-time server on {copy} ...", flush=True)
            servers.append(start_server(ports[1], copy, out / "tritonserver-one-at-a-time.log"))
        if lower:
            copy = write_precision_repository(
                out / f"repository-{lower}", lower, repository, DETECTOR_PATHS
            )
            print(f"bench: starting a {lower} server on {copy} ...", flush=True)
            servers.append(start_server(ports[2], copy, out / f"tritonserver-{lower}.log"))
        for server in servers:
            server.wait_until_ready(timeout_s=900)
        print(f"bench: servers ready after {time.monotonic() - started:.0f} s", flush=True)
        jpeg, large_jpeg = test_images()
        bench = Bench(
            repository=repository,
            main_http=f"localhost:{ports[0].http}",
            main_grpc=f"localhost:{ports[0].grpc}",
            bench_http=f"localhost:{ports[1].http}",
            bench_grpc=f"localhost:{ports[1].grpc}",
            jpeg=jpeg,
            large_jpeg=large_jpeg,
            rounds=args.rounds,
            warmup=args.warmup,
            on_gpu=bool(machine["gpus"]),
            lower_precision=lower or "",
            lower_grpc=f"localhost:{ports[2].grpc}" if lower else "",
            lower_note=lower_note,
        )
        rows: list[Row] = []
        raw: dict[str, Any] = {}
        for name in SECTIONS:
            if name not in sections:
                continue
            print(f"bench: section {name} ...", flush=True)
            if name == "overhead":
                result = bench.overhead(args.models)
            elif name == "throughput":
                result = bench.throughput(args.concurrency, args.requests_per_client)
            else:
                result = getattr(bench, name)()
            rows.extend(result.rows)
            raw[name] = result.raw
        bench.close()
    except ServerStartError as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 1
    finally:
        for server in servers:
            server.stop()

    load_after = os.getloadavg()
    rows.sort(key=lambda row: row.section)  # stable: keeps each section's own order
    header = (
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} on {machine_line(machine)}, "
        f"{RECIPES[args.recipes]}"
        f"{f', detectors also in {lower}' if lower else ''}; "
        f"load average {load_before[0]:.1f} at start, {load_after[0]:.1f} at end "
        f"(above {machine['cores']}: other work shared the machine). "
        "ratio = median of per-round ratios to 'vs'; < 1 is faster."
    )
    table = format_table(rows)
    print(f"\n{header}\n\n{table}\n", flush=True)
    (out / "table.txt").write_text(f"{header}\n\n{table}\n")
    plots = write_plots(raw, out)
    results = {
        "machine": machine,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_average": {"start": load_before, "end": load_after},
        "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "rows": [row.as_dict() for row in rows],
        "raw": raw,
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"bench: wrote {out / 'results.json'}, {out / 'table.txt'} and", flush=True)
    for path in plots:
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
