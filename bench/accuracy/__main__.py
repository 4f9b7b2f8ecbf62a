"""``python -m bench.accuracy`` (``make accuracy``): the detectors' accuracy through the server.

Sends every photo of the held-out sets to ``inspect`` with both detectors (``MODELS=both``):
the project's own held-out gauges and insulators (``training.data``), and the second renderer's
gauges, insulators and photos of neither (``bench.accuracy.foreign``). It scores each detector
against the labels of its own set, the meter readings against the drawn truth, and what each
detector answers outside its world (photos of the other's objects, photos of neither); prints a
table with the goals and the precision and recall at the served score thresholds, and writes
``results.json``, the detections, the readings and the plots to ``--out``.

``--choose-thresholds`` (``make thresholds``) instead chooses the per-class score thresholds on
other held-out photos (:mod:`bench.accuracy.thresholds`) and writes them where each detector's
``config.pbtxt`` names them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import textwrap
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.accuracy.metrics import (
    GOALS,
    MAX_GOALS,
    MODEL_OBJECTS,
    WORLD_GOALS,
    WORLD_MAX_GOALS,
    ClassCurve,
    Figure,
    WorldCounts,
    ap50_by_truth,
    count_worlds,
    evaluate_set,
    first_images,
    image_range,
    instances_to_detections,
    world_figures,
)
from bench.accuracy.precision import (
    DTYPES,
    MAX_ANGLE_MEDIAN_DIFF,
    MAX_AP50_DIFF,
    MAX_STATUS_CHANGED,
    measure_in_precision,
)
from bench.accuracy.readings import (
    READING_GOALS,
    READING_MAX_GOALS,
    ReadingSummary,
    reading_figures,
    readings_from_answer,
    summarize_readings,
)
from bench.accuracy.thresholds import (
    DEFAULT_FLOOR,
    DEFAULT_PRECISION,
    DETECTORS,
    Choice,
    ScoredClass,
    at_threshold,
    choose_threshold,
    combine,
    format_choices,
    format_curve,
    match_class,
    negatives,
    pr_curve,
    read_thresholds,
    thresholds_path,
    thresholds_yaml,
    weights_digest,
    write_floor_repository,
)
from bench.machine import describe_machine, machine_line
from bls.meters import Calibration, CalibrationError, load_calibrations
from bls.repository import class_names
from clients.answer import parse_answer
from clients.jpeg_client import InferenceServerException, JpegClient, add_connection_arguments
from pipelines.tensors import DETECTIONS, MASKS, MODELS
from server.launch import REPO_ROOT, Ports, ServerStartError, TritonServer

ROUTER = "inspect"
BOTH = "both"
REPOSITORY = REPO_ROOT / "repository"
# training.data's held-out split is 300 photos; make accuracy measures those, make thresholds
# chooses on the next 300 of the same split (seed, styles), drawn into a folder of their own.
MEASURED_PHOTOS = 300
CALIBRATION_FOLDER = "calibration"
# Every set measured together, for the goals on each detector's silence outside its world.
ALL_SETS = "all sets"
OUR_SETS = "held-out (ours)"


@dataclass(frozen=True)
class HeldOutSet:
    """A held-out set and what is measured on it.

    Attributes:
        maker: ``"ours"`` (``training.data``'s held-out split) or ``"foreign"`` (the second
            renderer, ``bench.accuracy.foreign``).
        kind: what the maker draws: ``gauges``, ``insulators`` or (foreign only) ``neither``.
        labelled: the detector the set's COCO labels are for (scored by AP and found shares);
            ``None`` for photos of neither, where every detection is a false alarm.
        masks: whether to score masks too.
        per_gauge: whether to score whole gauges (dial and pointer found).
        readings: whether to score the answer's meter readings against ``truth["gauges"]``.
        styles: the image ``truth`` keys to break the box AP50 down by.
        goals: figure name -> least passing value on this set.
        max_goals: figure name -> greatest passing value on this set.
    """

    maker: str
    kind: str
    labelled: str | None
    masks: bool = False
    per_gauge: bool = False
    readings: bool = False
    styles: tuple[str, ...] = ()
    goals: Mapping[str, float] = field(default_factory=dict)
    max_goals: Mapping[str, float] = field(default_factory=dict)


def _goals(names: Sequence[str]) -> dict[str, float]:
    """The :data:`GOALS` of these figures."""
    return {name: GOALS[name] for name in names}


# Issue 37: the second renderer's strings are found whoever drew them.
FOREIGN_INSULATOR_GOALS: dict[str, float] = {"insulator found": 0.9, "defect found": 0.7}

SETS = {
    "gauges": HeldOutSet(
        "ours",
        "gauges",
        "pointer",
        masks=True,
        per_gauge=True,
        readings=True,
        goals={**_goals(("dial found", "pointer found", "gauge read")), **READING_GOALS},
        max_goals={**MAX_GOALS, **READING_MAX_GOALS},
    ),
    "insulators": HeldOutSet(
        "ours",
        "insulators",
        "insulator",
        styles=("materials", "sky", "backdrop"),
        goals=_goals(("insulator AP50 (box)", "defect AP50 (box)")),
    ),
    # Issue 36's and 37's goals are on our held-out meters; these show a change of look.
    "foreign-gauges": HeldOutSet(
        "foreign", "gauges", "pointer", masks=True, per_gauge=True, readings=True, styles=("style",)
    ),
    "foreign-insulators": HeldOutSet(
        "foreign", "insulators", "insulator", styles=("style",), goals=FOREIGN_INSULATOR_GOALS
    ),
    "foreign-neither": HeldOutSet("foreign", "neither", None),
}

# The dial class whose calibration the server reads every gauge with.
DIAL_CLASS = "dial"


def _set_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names or set(names) - set(SETS):
        raise argparse.ArgumentTypeError(f"choose from {', '.join(SETS)}; got {text!r}")
    return names


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1, refused with the text given otherwise."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""

    def listed(at_least: Mapping[str, float], at_most: Mapping[str, float]) -> str:
        return ", ".join(
            [f"{name} >= {minimum:g}" for name, minimum in at_least.items()]
            + [f"{name} <= {maximum:g}" for name, maximum in at_most.items()]
        )

    goals = "; ".join(
        [
            f"{name}: {listed(spec.goals, spec.max_goals)}"
            for name, spec in SETS.items()
            if spec.goals or spec.max_goals
        ]
        + [f"{ALL_SETS} together: {listed(WORLD_GOALS, WORLD_MAX_GOALS)}"]
    )
    parser = argparse.ArgumentParser(
        prog="python -m bench.accuracy",
        description=(
            "Measure the detectors' accuracy through the real server, both detectors asked for "
            "every photo (inspect MODELS=both), on the held-out sets: our gauges and insulators "
            "(training.data, held-out split) and the second renderer's gauges, insulators and "
            "photos of neither (bench.accuracy.foreign). Reports per set AP50 per class "
            "(COCOeval), the share of objects found (a detection with IoU >= 0.5), the meter "
            "readings on the gauges, and what each detector answers outside its world (photos "
            "of the other's objects or of neither, as their truth says), against the goals; "
            "and precision and recall per class at the served score thresholds. Writes missing "
            "sets first. Starts its own server on free ports unless --url is given. Exits 1 if "
            "a goal is missed or an image failed. With --choose-thresholds, chooses the "
            "per-class score thresholds instead (make thresholds)."
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
        type=positive_int,
        metavar="N",
        help="Only the first N images of each set, for a quick look (with --choose-thresholds "
        "a trial that writes no thresholds). Default is every image.",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO_ROOT / "build" / "data",
        metavar="DIR",
        help="Where the sets live: DIR/<gauges|insulators>/heldout, "
        f"DIR/<gauges|insulators>/{CALIBRATION_FOLDER} (--choose-thresholds) and "
        "DIR/foreign/<gauges|insulators|neither>. Default is build/data.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "build" / "accuracy",
        metavar="DIR",
        help="Folder for results.json, detections, readings and plots (thresholds.json and "
        "threshold_curves.png with --choose-thresholds). Default is build/accuracy.",
    )
    choosing = parser.add_argument_group(
        "choosing the score thresholds",
        "Per detector class, the lowest score at which its detections keep --target-precision (IoU "
        f"0.5; a detection on a photo without the class's objects is wrong), on photos "
        f"{MEASURED_PHOTOS}-{2 * MEASURED_PHOTOS - 1} of training.data's held-out split of "
        "gauges and insulators (make accuracy measures the photos before them), from a copy of "
        "the repository that answers every detection scored --floor or more. Prints the curve "
        "each was chosen from, plots it, and writes repository/<model>/score_thresholds.yaml "
        "(the file config.pbtxt's score_thresholds names) for each detector whose every class "
        "reaches --target-precision.",
    )
    choosing.add_argument(
        "--choose-thresholds",
        action="store_true",
        help="Choose the thresholds instead of measuring (make thresholds).",
    )
    choosing.add_argument(
        "--target-precision",
        type=_share,
        default=DEFAULT_PRECISION,
        help=f"The precision each class keeps. Default is {DEFAULT_PRECISION:g}.",
    )
    choosing.add_argument(
        "--floor",
        type=_share,
        default=DEFAULT_FLOOR,
        help="The least score collected: no threshold is chosen below it. "
        f"Default is {DEFAULT_FLOOR:g}.",
    )
    lower = parser.add_argument_group(
        "a lower precision",
        "Measure the detectors served in a lower precision (config.pbtxt's precision) from a "
        "copy of the repository, and compare with float32's results.json on the same photos: "
        f"AP50 per class within {MAX_AP50_DIFF:g}, needle-angle error median within "
        f"{MAX_ANGLE_MEDIAN_DIFF:g} degree, reading status changed on at most "
        f"{MAX_STATUS_CHANGED:.0%} of the meters.",
    )
    lower.add_argument(
        "--precision",
        choices=DTYPES,
        default="float32",
        help="The detectors' precision: bfloat16 (a CPU with AVX512-BF16 or AMX) or float16 "
        "(a GPU) serve a copy of the repository, writing to build/accuracy-DTYPE unless --out "
        "is given. Default is float32, the repository as it is.",
    )
    lower.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="RESULTS",
        help="The float32 results.json to compare a --precision run with (its readings_*.json "
        "beside it). Default is build/accuracy/results.json, where there is one.",
    )
    add_connection_arguments(
        parser,
        url_help="host:port of a running server to measure (for --protocol). Default is to "
        "start one on repository/ on free ports, logging to OUT/tritonserver.log. Not with "
        "--choose-thresholds, which serves a copy of the repository.",
    )
    args = parser.parse_args(argv)
    if args.choose_thresholds and args.url is not None:
        parser.error(
            "--choose-thresholds starts its own server on a copy of the repository: no --url"
        )
    if args.choose_thresholds and args.target_precision == 0.0:
        parser.error("--target-precision must be above 0")
    if args.precision != "float32" and (args.url is not None or args.choose_thresholds):
        parser.error(
            "--precision serves a copy of the repository: not with --url or --choose-thresholds"
        )
    return args


def _write_missing(folder: Path, what: str, write: Any, argv: list[str]) -> Path:
    if not (folder / "annotations.json").is_file():
        print(f"accuracy: writing {what} to {folder} ...", file=sys.stderr)
        write(argv)
    return folder


def set_folder(data: Path, spec: HeldOutSet) -> Path:
    """The set's folder, written first (deterministically, every image) if it is missing."""
    if spec.maker == "foreign":
        from bench.accuracy.foreign import main as write_foreign

        folder = data / "foreign" / spec.kind
        return _write_missing(
            folder,
            f"the second renderer's {spec.kind}",
            write_foreign,
            [spec.kind, "--output", str(folder)],
        )
    from training.data import main as write_dataset

    folder = data / spec.kind / "heldout"
    return _write_missing(
        folder,
        f"the held-out {spec.kind} set",
        write_dataset,
        [spec.kind, "--split", "heldout", "--output", str(folder)],
    )


def calibration_folder(data: Path, kind: str) -> Path:
    """The held-out split drawn to twice its measured size, written first if it is missing:
    thresholds are chosen on the photos after :data:`MEASURED_PHOTOS`."""
    from training.data import main as write_dataset

    folder = data / kind / CALIBRATION_FOLDER
    return _write_missing(
        folder,
        f"{2 * MEASURED_PHOTOS} photos of the held-out {kind} split",
        write_dataset,
        [
            kind,
            "--split",
            "heldout",
            "--count",
            str(2 * MEASURED_PHOTOS),
            "--output",
            str(folder),
        ],
    )


def detector_files(client: JpegClient, model: str) -> dict[str, str]:
    """The detectron2 config, weights, score thresholds file and precision the server's
    ``model`` loaded, as its config names them (no thresholds file: the YAML's own threshold;
    no precision: float32)."""
    parameters = client.parameters(model)
    keys = ("detectron2_config", "weights", "score_thresholds", "precision")
    return {key: parameters[key] for key in keys if key in parameters}


def served_thresholds(
    files: Mapping[str, str], model: str, repository: Path = REPOSITORY
) -> dict[str, float] | None:
    """The per-class thresholds the served ``model`` names, read from ``repository`` (``None``
    without a thresholds file, or where the repository has none)."""
    if "score_thresholds" not in files:
        return None
    path = repository / model / files["score_thresholds"]
    try:
        return read_thresholds(path)
    except (OSError, ValueError) as error:
        print(f"accuracy: cannot read {path}: {error}", file=sys.stderr)
        return None


def dial_calibration(model: str, repository: Path = REPOSITORY) -> Calibration | None:
    """The scale ``<repository>/<model>/meters.yaml`` gives the dial class, if it gives one.

    Only used to tell which gauges' values are scored; a missing or broken file leaves that
    figure out rather than the run.
    """
    path = repository / model / "meters.yaml"
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
        detections: per detector, COCO result entries; their ``category_id`` is the ground
            truth's for its classes and one of ``categories`` for the others.
        categories: class name -> ``category_id`` of every class in ``detections``.
        classes: per detector, the classes its answers named.
        readings: the answers' meter readings, tagged by
            :func:`~bench.accuracy.readings.readings_from_answer` (empty unless the set
            scores readings).
        errors: one message per failed image and detector (which then counts as having found
            nothing).
    """

    detections: dict[str, list[dict[str, Any]]]
    categories: dict[str, int]
    classes: dict[str, set[str]]
    readings: list[dict[str, Any]]
    errors: list[str]

    @property
    def names(self) -> dict[int, str]:
        """Class name per ``category_id``."""
        return {category_id: name for name, category_id in self.categories.items()}


def collect_detections(
    client: JpegClient, spec: HeldOutSet, images: Path, ground_truth: dict[str, Any], label: str
) -> Collected:
    """Sends each image of ``ground_truth`` to the router with both detectors and turns its
    answers into COCO results per detector and, where the set scores them, tagged readings.

    Progress (images done, seconds per image, ETA) goes to stderr.

    Args:
        client: connected to the server.
        spec: the set's labelled detector and whether to keep its masks.
        images: the folder of the set's photos (the documents' ``file_name`` inside).
        ground_truth: the set's COCO document, as evaluated.
        label: the set's name for the progress line.

    Raises:
        ValueError: the server answered for an image of another size than the ground truth's,
            or a reading names a dial that is not among the answer's instances.
    """
    categories = {c["name"]: c["id"] for c in ground_truth["categories"]}
    collected = Collected({}, categories, {}, [], [])
    total = len(ground_truth["images"])
    started = time.monotonic()
    for done, image in enumerate(ground_truth["images"], start=1):
        path = images / image["file_name"]
        try:
            outputs = client.infer(ROUTER, path.read_bytes(), {MODELS: BOTH})
        except InferenceServerException as exc:
            collected.errors.append(f"{path}: {exc.message()}")
            print(f"\n{label}: error: {collected.errors[-1]}", file=sys.stderr)
        else:
            _add_answer(collected, spec, outputs, image, path)
        elapsed = time.monotonic() - started
        print(
            f"\r{label}: {done}/{total} images, {elapsed / done:.1f} s/image, "
            f"ETA {_duration(elapsed / done * (total - done))}",
            end="\n" if done == total else "",
            file=sys.stderr,
            flush=True,
        )
    return collected


def _add_answer(
    collected: Collected,
    spec: HeldOutSet,
    outputs: Mapping[str, Any],
    image: Mapping[str, Any],
    path: Path,
) -> None:
    answer = parse_answer(outputs[DETECTIONS][0], outputs[MASKS])
    if (answer.height, answer.width) != (image["height"], image["width"]):
        raise ValueError(
            f"{path}: answered for {answer.width}x{answer.height}, the ground truth is "
            f"{image['width']}x{image['height']}"
        )
    for model, result in answer.models.items():
        if result.status != "ok":
            collected.errors.append(f"{path}: {model}: {result.error}")
            print(f"\nerror: {collected.errors[-1]}", file=sys.stderr)
            continue
        classes = collected.classes.setdefault(model, set())
        for instance in result.instances:
            classes.add(instance.class_name)
            # Another detector's classes get ids after the ground truth's.
            collected.categories.setdefault(
                instance.class_name, max(collected.categories.values(), default=0) + 1
            )
        collected.detections.setdefault(model, []).extend(
            instances_to_detections(
                result.instances,
                image["id"],
                collected.categories,
                image["height"],
                image["width"],
                spec.masks and model == spec.labelled,
            )
        )
    if spec.readings:
        # Read from the JSON itself: parse_answer need not know about readings.
        document = json.loads(outputs[DETECTIONS][0])
        collected.readings += readings_from_answer(document, "pointer", image["id"])


def scored_classes(
    spec: HeldOutSet,
    ground_truth: Mapping[str, Any],
    collected: Collected,
    classes: Mapping[str, Sequence[str]],
) -> dict[str, ScoredClass]:
    """Per class of each detector, its detections on the set judged right or wrong: against
    the labels where the set is labelled for the detector, else on the photos without the
    detector's objects (all wrong; photos with them, unlabelled, are left out).

    Args:
        spec: the set.
        ground_truth: its COCO document, as evaluated.
        collected: the answers.
        classes: per detector, its class names.
    """
    scored = {}
    for model, names in classes.items():
        detections = collected.detections.get(model, [])
        if model == spec.labelled:
            for name in names:
                category_id = collected.categories.get(name, -1)
                scored[name] = match_class(ground_truth, detections, category_id)
        else:
            count = MODEL_OBJECTS[model]
            empty = [image for image in ground_truth["images"] if not count(image)]
            for name in names:
                category_id = collected.categories.get(name, -1)
                scored[name] = negatives(empty, detections, category_id)
    return scored


def threshold_figures(
    set_name: str, scored: Mapping[str, ScoredClass], thresholds: Mapping[str, float]
) -> list[Figure]:
    """Per class, the precision and recall of its answers at the served threshold (no goals);
    a class with nothing to find and nothing found on the set is left out."""
    figures = []
    for name, judged in scored.items():
        if not judged.scores and not judged.objects:
            continue  # nothing to find and nothing found: no figure
        threshold = thresholds.get(name, 0.0)
        point = at_threshold(judged, threshold)
        at = f"at {threshold:.4f}" if name in thresholds else "as served"
        figures.append(
            Figure(
                set_name,
                f"{name} precision {at}",
                point.precision,
                "share",
                f"{point.correct}/{point.detections}",
            )
        )
        figures.append(
            Figure(
                set_name,
                f"{name} recall {at}",
                point.recall,
                "share",
                f"{point.correct}/{point.objects}",
            )
        )
    return figures


def _classes(collected: Collected, spec: HeldOutSet, ground_truth: Mapping[str, Any]) -> dict:
    """Per detector asked, its classes: those its answers named, and the labelled ones."""
    classes = {model: set(names) for model, names in collected.classes.items()}
    if spec.labelled is not None:
        labelled = classes.setdefault(spec.labelled, set())
        labelled.update(c["name"] for c in ground_truth["categories"])
    return {model: sorted(names) for model, names in sorted(classes.items())}


@contextlib.contextmanager
def _server(
    url: str | None, protocol: str, repository: Path, log_path: Path
) -> Iterator[JpegClient]:
    """A client of the server at ``url``, or of one started on ``repository`` on free ports."""
    with contextlib.ExitStack() as stack:
        if url is None:
            print(f"accuracy: starting tritonserver on {repository} ...", file=sys.stderr)
            server = stack.enter_context(
                TritonServer(Ports.free(), model_repository=repository, log_path=log_path)
            )
            server.wait_until_ready(timeout_s=900)
            url = server.url(protocol)
        yield stack.enter_context(JpegClient(url, protocol))


def measure(args: argparse.Namespace) -> int:
    """Measures every chosen set; returns 0 if every goal passed and no image failed."""
    # Heavy imports (matplotlib) after argument parsing, so that --help is instant.
    from bench.accuracy.report import format_table, plot_pr_curves, plot_reading_errors

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    machine = describe_machine()
    print(f"accuracy: {machine_line(machine)}", file=sys.stderr)
    folders = {name: set_folder(args.data, SETS[name]) for name in args.sets}
    figures: list[Figure] = []
    by_style: list[Figure] = []
    at_thresholds: list[Figure] = []
    curves: dict[str, dict[str, ClassCurve]] = {}
    sets: dict[str, dict[str, Any]] = {}
    reading_summaries: dict[str, ReadingSummary] = {}
    worlds = WorldCounts()
    ours: dict[str, list[ScoredClass]] = {}
    thresholds: dict[str, float] = {}
    files: dict[str, dict[str, str]] = {}
    failed_images = 0
    try:
        with _server(args.url, args.protocol, REPOSITORY, out / "tritonserver.log") as client:
            for model in DETECTORS:
                files[model] = detector_files(client, model)
                thresholds.update(served_thresholds(files[model], model) or {})
            for name in args.sets:
                spec, folder = SETS[name], folders[name]
                document = json.loads((folder / "annotations.json").read_text())
                ground_truth = first_images(document, args.limit)
                collected = collect_detections(client, spec, folder / "images", ground_truth, name)
                failed_images += len({e.split(": ", 1)[0] for e in collected.errors})
                (out / f"detections_{name}.json").write_text(
                    json.dumps({"categories": collected.categories, **collected.detections})
                )
                sets[name] = {
                    "maker": spec.maker,
                    "kind": spec.kind,
                    "labelled_for": spec.labelled,
                    "data": str(folder),
                    "images": len(ground_truth["images"]),
                    "failed_images": len({e.split(": ", 1)[0] for e in collected.errors}),
                    "errors": collected.errors,
                    "detections": {m: len(d) for m, d in collected.detections.items()},
                }
                if spec.labelled is not None:
                    labelled = collected.detections.get(spec.labelled, [])
                    result = evaluate_set(
                        name, ground_truth, labelled, spec.masks, spec.per_gauge, spec.goals
                    )
                    figures += result.figures
                    by_style += ap50_by_truth(name, ground_truth, labelled, spec.styles)
                    curves[name] = result.curves
                if spec.readings:
                    (out / f"readings_{name}.json").write_text(json.dumps(collected.readings))
                    summary = summarize_readings(
                        ground_truth, collected.readings, dial_calibration("pointer")
                    )
                    reading_summaries[name] = summary
                    figures += reading_figures(name, summary, spec.goals, spec.max_goals)
                    sets[name]["readings"] = len(collected.readings)
                    sets[name]["reading_statuses"] = summary.statuses
                counts = count_worlds(ground_truth["images"], collected.detections, collected.names)
                worlds = worlds + counts
                figures += world_figures(name, counts)
                scored = scored_classes(
                    spec, ground_truth, collected, _classes(collected, spec, ground_truth)
                )
                at_thresholds += threshold_figures(name, scored, thresholds)
                if spec.maker == "ours":
                    for class_name, judged in scored.items():
                        ours.setdefault(class_name, []).append(judged)
    except (ServerStartError, InferenceServerException) as error:
        print(f"accuracy: error: {error}", file=sys.stderr)
        return 1

    figures += world_figures(ALL_SETS, worlds, WORLD_GOALS, WORLD_MAX_GOALS, every_kind=True)
    if len({SETS[n].kind for n in args.sets if SETS[n].maker == "ours"}) > 1:
        pooled = {name: combine(parts) for name, parts in sorted(ours.items())}
        at_thresholds = threshold_figures(OUR_SETS, pooled, thresholds) + at_thresholds
    table = format_table(figures)
    measured = ", ".join(f"{name} ({s['images']} images)" for name, s in sets.items())
    weights = ", ".join(f"{model} {f.get('weights')}" for model, f in files.items())
    header = (
        f"Accuracy at IoU 0.5 on the held-out {measured}, both detectors asked for every photo; "
        f"weights {weights}. Measured {time.strftime('%Y-%m-%d %H:%M')} on "
        f"{machine_line(machine)}."
    )
    print(f"\n{header}\n\n{table}\n", flush=True)
    if by_style:
        print(f"By held-out style (no goals):\n\n{format_table(by_style)}\n", flush=True)
    served = ", ".join(f"{name} {value:.4f}" for name, value in thresholds.items()) or "none"
    print(
        f"At the served score thresholds ({served}); IoU 0.5, one to one; a detection on a "
        f"photo without its class's objects is wrong (no goals):\n\n"
        f"{format_table(at_thresholds)}\n",
        flush=True,
    )
    if failed_images:
        print(f"accuracy: {failed_images} image(s) failed; they count as missed", file=sys.stderr)
    goals = [f for f in figures if f.goal is not None]
    results = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine,
        "server": {"url": args.url or "started on free ports", "protocol": args.protocol},
        "limit": args.limit,
        "detector_files": files,
        "score_thresholds": thresholds,
        "sets": sets,
        "figures": [asdict(f) for f in figures],
        "goals": [{**asdict(f), "passed": f.passed} for f in goals],
        "by_style": [asdict(f) for f in by_style],
        "at_score_thresholds": [asdict(f) for f in at_thresholds],
        "all_goals_passed": all(f.passed for f in goals),
    }
    plots = []
    if curves:
        plots.append(plot_pr_curves(curves, out / "pr_curves.png"))
    prefix = "needle angle error "
    angle_goals = {
        f"goal: {name.removeprefix(prefix)} <= {bound:g}": bound
        for name, bound in MAX_GOALS.items()
        if name.startswith(prefix)
    }
    prefix = "fraction error "
    fraction_goals = {
        f"goal: {name.removeprefix(prefix)} <= {bound:g}%": bound
        for name, bound in READING_MAX_GOALS.items()
        if name.startswith(prefix)
    }
    for name, summary in reading_summaries.items():
        graded = bool(SETS[name].max_goals)
        plots.append(
            plot_reading_errors(
                summary.angle_errors,
                summary.value_errors,
                out / ("reading_errors.png" if name == "gauges" else f"reading_errors_{name}.png"),
                angle_goals if graded else {},
                summary.fraction_errors,
                fraction_goals if graded else {},
                title=name,
            )
        )
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(
        f"accuracy: plots {', '.join(map(str, plots)) or 'none'}\n"
        f"accuracy: wrote {out / 'results.json'}",
        file=sys.stderr,
    )
    return 0 if results["all_goals_passed"] and not failed_images else 1


def _calibration_truth(folder: Path, limit: int | None) -> dict[str, Any]:
    """The photos of a calibration folder after the measured ones.

    Raises:
        ValueError: the folder holds no photo after them.
    """
    document = json.loads((folder / "annotations.json").read_text())
    if len(document["images"]) <= MEASURED_PHOTOS:
        raise ValueError(
            f"{folder}: {len(document['images'])} photos, but thresholds are chosen on those "
            f"after the first {MEASURED_PHOTOS}; delete it to have it drawn again"
        )
    return image_range(document, MEASURED_PHOTOS, limit)


def choose(args: argparse.Namespace) -> int:
    """Chooses and writes the per-class score thresholds; returns 0 if every class got one (and,
    without ``--limit``, every file was written)."""
    from bench.accuracy.report import plot_threshold_curves

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    kinds = ("gauges", "insulators")
    folders = {kind: calibration_folder(args.data, kind) for kind in kinds}
    truths = {kind: _calibration_truth(folders[kind], args.limit) for kind in kinds}
    classes = {model: class_names(REPOSITORY, model) for model in DETECTORS}
    repository = write_floor_repository(REPOSITORY, out / "repository-floor", args.floor)
    parts: dict[str, list[ScoredClass]] = {}
    files: dict[str, dict[str, str]] = {}
    try:
        with _server(None, args.protocol, repository, out / "tritonserver-floor.log") as client:
            for model in DETECTORS:
                files[model] = detector_files(client, model)
            for kind in kinds:
                spec = SETS[kind]
                label = f"{kind} {CALIBRATION_FOLDER}"
                images = folders[kind] / "images"
                collected = collect_detections(client, spec, images, truths[kind], label)
                if collected.errors:
                    print(f"accuracy: {len(collected.errors)} failed answer(s)", file=sys.stderr)
                    return 1
                for name, judged in scored_classes(spec, truths[kind], collected, classes).items():
                    parts.setdefault(name, []).append(judged)
    except (ServerStartError, InferenceServerException) as error:
        print(f"accuracy: error: {error}", file=sys.stderr)
        return 1

    first = MEASURED_PHOTOS
    last = first + len(truths["gauges"]["images"]) - 1
    chosen: dict[str, list[Choice]] = {}
    scored: dict[str, ScoredClass] = {}
    for model in DETECTORS:
        chosen[model] = []
        for name in classes[model]:
            scored[name] = combine(parts.get(name, []))
            chosen[model].append(
                choose_threshold(name, scored[name], args.target_precision, args.floor)
            )
    print(
        f"\nScore thresholds for precision >= {args.target_precision:g} (IoU 0.5, one to one; a "
        f"detection on a photo without its class's objects is wrong), on photos {first}-{last} "
        f"of the held-out gauges and insulators, both detectors asked, every detection scored "
        f"{args.floor:g} or more:\n"
    )
    for model in DETECTORS:
        for choice in chosen[model]:
            print(format_curve(choice.class_name, scored[choice.class_name], choice) + "\n")
    everything = [c for model in DETECTORS for c in chosen[model]]
    print(format_choices(everything, args.target_precision) + "\n", flush=True)
    plot = plot_threshold_curves(
        {name: pr_curve(judged) for name, judged in scored.items()},
        {c.class_name: c for c in everything},
        args.target_precision,
        out / "threshold_curves.png",
    )
    (out / "thresholds.json").write_text(
        json.dumps(
            {
                "chosen_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "precision": args.target_precision,
                "floor": args.floor,
                "photos": [first, last],
                "limit": args.limit,
                "detector_files": files,
                "choices": [
                    {**asdict(c), "precision": c.point and c.point.precision} for c in everything
                ],
            },
            indent=1,
        )
    )
    print(f"accuracy: wrote {out / 'thresholds.json'} and {plot}", file=sys.stderr)
    complete = all(c.threshold is not None for c in everything)
    if args.limit is not None:
        print(f"accuracy: --limit {args.limit} is a trial: no thresholds written", file=sys.stderr)
        return 0 if complete else 1
    command = (
        f"python -m bench.accuracy --choose-thresholds --target-precision {args.target_precision:g}"
    )
    command += f" --floor {args.floor:g}"
    for model in DETECTORS:
        if any(c.threshold is None for c in chosen[model]):
            print(
                f"accuracy: {model}: NOT WRITTEN, a class never reaches precision "
                f"{args.target_precision:g}; its thresholds stay as they are",
                file=sys.stderr,
            )
            continue
        weights = files[model].get("weights", "")
        how = textwrap.wrap(
            "per class, the lowest score at which its detections keep precision >= "
            f"{args.target_precision:g} (just above the highest score left out), matched one to "
            "one at IoU 0.5, a detection on a photo without the class's objects counted wrong; on "
            f"photos {first}-{last} of training.data's held-out split of gauges and of "
            f"insulators (make accuracy measures photos 0-{first - 1}), both detectors asked "
            f"for every photo (inspect MODELS=both), every detection scored {args.floor:g} or "
            f"more collected. For {files[model].get('detectron2_config')} with {weights} "
            f"(sha256 {weights_digest(REPOSITORY / model / weights)}).",
            width=96,
        )
        header = [
            f"Chosen {time.strftime('%Y-%m-%d %H:%M')} (make thresholds) by",
            f"  {command}",
            *how,
        ]
        path = thresholds_path(REPOSITORY, model)
        path.write_text(thresholds_yaml(model, chosen[model], header))
        print(f"accuracy: wrote {path}", file=sys.stderr)
    return 0 if complete else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Measures (or, with ``--choose-thresholds``, chooses thresholds); the exit status."""
    args = parse_args(argv)
    if args.precision != "float32":
        return measure_in_precision(args, measure)
    return choose(args) if args.choose_thresholds else measure(args)


if __name__ == "__main__":
    sys.exit(main())
