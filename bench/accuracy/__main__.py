"""``python -m bench.accuracy`` (``make accuracy``): the detectors' accuracy through the server.

Sends every image of the held-out synthetic sets to ``inspect`` (one detector per set), scores
the answers against the sets' COCO ground truth (and, on the gauges, the meter readings against
the true needle angles and values), prints a table with the goals, and writes ``results.json``,
the detections, the readings, ``pr_curves.png`` and ``reading_errors.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.accuracy.metrics import (
    GOALS,
    MAX_GOALS,
    ClassCurve,
    Figure,
    ap50_by_truth,
    evaluate_set,
    first_images,
    instances_to_detections,
)
from bench.accuracy.readings import (
    ReadingSummary,
    reading_figures,
    readings_from_answer,
    summarize_readings,
)
from bench.machine import describe_machine, machine_line
from bls.reading import Calibration, CalibrationError, load_calibrations
from clients.answer import parse_answer
from clients.jpeg_client import InferenceServerException, JpegClient, add_connection_arguments
from pipelines.tensors import DETECTIONS, MASKS, MODELS
from server.launch import REPO_ROOT, Ports, ServerStartError, TritonServer

ROUTER = "inspect"


@dataclass(frozen=True)
class HeldOutSet:
    """A held-out set of ``training.data`` and the detector measured on it.

    Attributes:
        model: the detector ``inspect`` is asked for.
        masks: whether to score masks too.
        per_gauge: whether to score whole gauges (dial and pointer found).
        readings: whether to score the answer's meter readings against ``truth["gauges"]``.
        styles: the image ``truth`` keys to break the box AP50 down by (held-out styles).
    """

    model: str
    masks: bool
    per_gauge: bool
    readings: bool = False
    styles: tuple[str, ...] = ()


SETS = {
    "gauges": HeldOutSet("pointer", masks=True, per_gauge=True, readings=True),
    "insulators": HeldOutSet(
        "insulator", masks=False, per_gauge=False, styles=("materials", "sky", "backdrop")
    ),
}

# The dial class whose calibration the server reads every gauge with.
DIAL_CLASS = "dial"


def _set_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names or set(names) - set(SETS):
        raise argparse.ArgumentTypeError(f"choose from {', '.join(SETS)}; got {text!r}")
    return names


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    goals = ", ".join(
        [f"{name} >= {minimum:g}" for name, minimum in GOALS.items()]
        + [f"{name} <= {maximum:g}" for name, maximum in MAX_GOALS.items()]
    )
    parser = argparse.ArgumentParser(
        prog="python -m bench.accuracy",
        description=(
            "Measure the detectors' accuracy through the real server on the held-out synthetic "
            "sets: gauges (pointer model: needles and dials, boxes and masks) and insulators "
            "(insulator model: insulators and defects). Reports AP50 per class (COCOeval), the "
            "share of gauges whose dial and pointer are found (a detection with IoU >= 0.5), "
            "detections on images with nothing in them, and on the gauges the meter readings "
            "(share read, needle angle and value errors, false readings), against the goals. "
            "Writes the held-out "
            "sets first if they are missing. Starts its own server on free ports unless --url is "
            "given. Every detection the server returns counts (the model's score threshold). "
            "Exits 1 if a goal is missed or an image failed."
        ),
        epilog=f"Goals: {goals}. Example: make accuracy ACCURACY_ARGS='--limit 20 --sets gauges'",
    )
    parser.add_argument(
        "--sets",
        type=_set_list,
        default=list(SETS),
        help=f"Comma-separated held-out sets to measure. Default is all: {','.join(SETS)}.",
    )
    parser.add_argument(
        "--limit",
        type=_positive,
        metavar="N",
        help="Only the first N images of each set, for a quick look. Default is every image.",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO_ROOT / "build" / "data",
        metavar="DIR",
        help="Where the sets live, as DIR/<set>/heldout. Default is build/data.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "build" / "accuracy",
        metavar="DIR",
        help="Folder for results.json, detections, readings, pr_curves.png and "
        "reading_errors.png. Default is build/accuracy.",
    )
    add_connection_arguments(
        parser,
        url_help="host:port of a running server to measure (for --protocol). Default is to "
        "start one on repository/ on free ports, logging to OUT/tritonserver.log.",
    )
    return parser.parse_args(argv)


def heldout_dir(data: Path, set_name: str) -> Path:
    """The set's folder, written first (deterministically, every image) if it is missing."""
    from training.data import main as write_dataset

    folder = data / set_name / "heldout"
    if not (folder / "annotations.json").is_file():
        print(f"accuracy: writing the held-out {set_name} set to {folder} ...", file=sys.stderr)
        write_dataset([set_name, "--split", "heldout", "--output", str(folder)])
    return folder


def detector_files(client: JpegClient, model: str) -> dict[str, str]:
    """The detectron2 config and weights the server's ``model`` loaded, as its config names them."""
    parameters = client.parameters(model)
    return {key: parameters[key] for key in ("detectron2_config", "weights")}


def dial_calibration(model: str) -> Calibration | None:
    """The scale ``repository/<model>/meters.yaml`` gives the dial class, if it gives one.

    Only used to tell how many gauges' needles lie on that scale; a missing or broken file
    leaves that figure out rather than the run.
    """
    path = REPO_ROOT / "repository" / model / "meters.yaml"
    try:
        # The gauge detector's classes: its needles are "pointer", its dials DIAL_CLASS.
        calibrations = load_calibrations(path, ["pointer", DIAL_CLASS])
    except (FileNotFoundError, CalibrationError) as error:
        print(f"accuracy: no dial calibration ({error})", file=sys.stderr)
        return None
    return calibrations.get(DIAL_CLASS)


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


@dataclass
class Collected:
    """What the server answered for one set.

    Attributes:
        detections: COCO result entries.
        readings: the answers' meter readings, tagged by
            :func:`~bench.accuracy.readings.readings_from_answer` (empty unless the set
            scores readings).
        errors: one message per failed image (which then counts as having no detection).
    """

    detections: list[dict[str, Any]]
    readings: list[dict[str, Any]]
    errors: list[str]


def collect_detections(
    client: JpegClient, spec: HeldOutSet, folder: Path, ground_truth: dict[str, Any], label: str
) -> Collected:
    """Sends each image of ``ground_truth`` to the router and turns its answers into COCO results
    and, where the set scores them, tagged readings (one request per image serves both).

    Progress (images done, seconds per image, ETA) goes to stderr.

    Args:
        client: connected to the server.
        spec: the set's detector and whether to keep masks.
        folder: the set's folder (``images/`` inside).
        ground_truth: the set's COCO document, as evaluated.
        label: the set's name for the progress line.

    Raises:
        ValueError: the server answered for an image of another size than the ground truth's,
            or a reading names a dial that is not among the answer's instances.
    """
    category_ids = {c["name"]: c["id"] for c in ground_truth["categories"]}
    detections: list[dict[str, Any]] = []
    readings: list[dict[str, Any]] = []
    errors: list[str] = []
    total = len(ground_truth["images"])
    started = time.monotonic()
    for done, image in enumerate(ground_truth["images"], start=1):
        path = folder / "images" / image["file_name"]
        error = None
        try:
            outputs = client.infer(ROUTER, path.read_bytes(), {MODELS: spec.model})
        except InferenceServerException as exc:
            error = exc.message()
        else:
            answer = parse_answer(outputs[DETECTIONS][0], outputs[MASKS])
            if (answer.height, answer.width) != (image["height"], image["width"]):
                raise ValueError(
                    f"{path}: answered for {answer.width}x{answer.height}, the ground truth is "
                    f"{image['width']}x{image['height']}"
                )
            result = answer.models[spec.model]
            if result.status != "ok":
                error = result.error
            else:
                detections += instances_to_detections(
                    result.instances,
                    image["id"],
                    category_ids,
                    image["height"],
                    image["width"],
                    spec.masks,
                )
                if spec.readings:
                    # Read from the JSON itself: parse_answer need not know about readings.
                    document = json.loads(outputs[DETECTIONS][0])
                    readings += readings_from_answer(document, spec.model, image["id"])
        if error is not None:
            errors.append(f"{path}: {error}")
            print(f"\n{label}: error: {errors[-1]}", file=sys.stderr)
        elapsed = time.monotonic() - started
        print(
            f"\r{label}: {done}/{total} images, {elapsed / done:.1f} s/image, "
            f"ETA {_duration(elapsed / done * (total - done))}",
            end="\n" if done == total else "",
            file=sys.stderr,
            flush=True,
        )
    return Collected(detections, readings, errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Measures every chosen set; returns 0 if every goal passed and no image failed."""
    args = parse_args(argv)
    # Heavy imports (matplotlib; detectron2 through the test helpers) after argument parsing,
    # so that --help is instant.
    from bench.accuracy.report import format_table, plot_pr_curves, plot_reading_errors
    from tests.support import free_ports

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    machine = describe_machine()
    print(f"accuracy: {machine_line(machine)}", file=sys.stderr)
    folders = {name: heldout_dir(args.data, name) for name in args.sets}
    figures: list[Figure] = []
    by_style: list[Figure] = []
    curves: dict[str, dict[str, ClassCurve]] = {}
    sets: dict[str, dict[str, Any]] = {}
    reading_summaries: dict[str, ReadingSummary] = {}
    failed_images = 0
    try:
        with contextlib.ExitStack() as stack:
            url = args.url
            if url is None:
                print("accuracy: starting tritonserver on repository/ ...", file=sys.stderr)
                server = stack.enter_context(
                    TritonServer(Ports(*free_ports(3)), log_path=out / "tritonserver.log")
                )
                server.wait_until_ready(timeout_s=900)
                url = server.url(args.protocol)
            client = stack.enter_context(JpegClient(url, args.protocol))
            for name in args.sets:
                spec, folder = SETS[name], folders[name]
                document = json.loads((folder / "annotations.json").read_text())
                ground_truth = first_images(document, args.limit)
                collected = collect_detections(client, spec, folder, ground_truth, name)
                detections, errors = collected.detections, collected.errors
                (out / f"detections_{name}.json").write_text(json.dumps(detections))
                result = evaluate_set(name, ground_truth, detections, spec.masks, spec.per_gauge)
                figures += result.figures
                by_style += ap50_by_truth(name, ground_truth, detections, spec.styles)
                curves[name] = result.curves
                failed_images += len(errors)
                sets[name] = {
                    "model": spec.model,
                    "data": str(folder),
                    "images": len(ground_truth["images"]),
                    "failed_images": len(errors),
                    "errors": errors,
                    "detections": len(detections),
                    "detector_files": detector_files(client, spec.model),
                }
                if spec.readings:
                    (out / f"readings_{name}.json").write_text(json.dumps(collected.readings))
                    summary = summarize_readings(
                        ground_truth, collected.readings, dial_calibration(spec.model)
                    )
                    reading_summaries[name] = summary
                    figures += reading_figures(name, summary)
                    sets[name]["readings"] = len(collected.readings)
                    sets[name]["reading_statuses"] = summary.statuses
    except (ServerStartError, InferenceServerException) as error:
        print(f"accuracy: error: {error}", file=sys.stderr)
        return 1

    table = format_table(figures)
    measured = ", ".join(f"{name} ({s['images']} images)" for name, s in sets.items())
    weights = ", ".join(f"{s['model']} {s['detector_files']['weights']}" for s in sets.values())
    header = (
        f"Accuracy at IoU 0.5 on the held-out {measured}; weights {weights}. "
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} on {machine_line(machine)}."
    )
    print(f"\n{header}\n\n{table}\n", flush=True)
    if by_style:
        print(f"By held-out style (no goals):\n\n{format_table(by_style)}\n", flush=True)
    if failed_images:
        print(f"accuracy: {failed_images} image(s) failed; they count as missed", file=sys.stderr)
    goals = [f for f in figures if f.goal is not None]
    results = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "server": {"url": args.url or "started on free ports", "protocol": args.protocol},
        "limit": args.limit,
        "sets": sets,
        "figures": [asdict(f) for f in figures],
        "goals": [{**asdict(f), "passed": f.passed} for f in goals],
        "by_style": [asdict(f) for f in by_style],
        "all_goals_passed": all(f.passed for f in goals),
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    plots = [plot_pr_curves(curves, out / "pr_curves.png")]
    if reading_summaries:
        # One set scores readings today (gauges); pool them should another ever join it.
        summaries = list(reading_summaries.values())
        prefix = "needle angle error "
        angle_goals = {
            f"goal: {name.removeprefix(prefix)} <= {bound:g}": bound
            for name, bound in MAX_GOALS.items()
            if name.startswith(prefix)
        }
        plots.append(
            plot_reading_errors(
                [e for s in summaries for e in s.angle_errors],
                [e for s in summaries for e in s.value_errors],
                out / "reading_errors.png",
                angle_goals,
            )
        )
    print(
        f"accuracy: wrote {out / 'results.json'} and {', '.join(map(str, plots))}",
        file=sys.stderr,
    )
    return 0 if results["all_goals_passed"] and not failed_images else 1


if __name__ == "__main__":
    sys.exit(main())
