"""``python -m bench.evaluate`` (``make evaluate``): the served models on your own labelled photos.

Sends every photo of a COCO instances set (``--data ANNOTATIONS.json:IMAGE_FOLDER``, as
labelling tools export it and ``training.train`` takes it) to the running server's ``inspect``
and scores the detector whose ``CLASS_NAMES`` the set's categories are: per class COCO's AP
(IoU 0.50:0.95) and AP50, boxes and, where the detector serves masks and every object has an
outline, masks; the share of objects found; the precision and recall at the served score
thresholds; and, where the photos' ``truth`` carries gauges (the project's drawn sets), the
meter readings. Prints the tables, writes the plots and ``results.json`` (per class under the
table's column names) to ``--out``, and prints that file's path last, alone on its line.

It measures what ``make accuracy`` measures on the demo sets, with its functions
(:mod:`bench.accuracy`). A bad set (no image folder, a missing file or image, categories that
are not the served model's classes) is refused before any photo is sent.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from bench.accuracy.__main__ import (
    REPOSITORY,
    HeldOutSet,
    collect_detections,
    detector_files,
    dial_calibration,
    served_thresholds,
)
from bench.accuracy.metrics import ap50_per_class, found_annotations, found_share
from bench.accuracy.readings import reading_figures, summarize_readings
from bench.accuracy.thresholds import DETECTORS, at_threshold, match_class
from bls.repository import class_names, model_tensors
from clients.jpeg_client import InferenceServerException, JpegClient, add_connection_arguments
from pipelines.tensors import MASKS
from server.launch import REPO_ROOT
from training.train import DatasetError, check_dataset

__all__ = [
    "COLUMNS",
    "EvaluationError",
    "ap_per_class",
    "main",
    "parse_data",
    "per_class",
    "served_model",
]

# The per-class table's columns, and the keys of results.json's "classes" entries.
AP, AP50, MASK_AP, MASK_AP50 = "AP", "AP50", "mask AP", "mask AP50"
FOUND, PRECISION, RECALL, THRESHOLD = "found", "precision", "recall", "threshold"
COLUMNS = (AP, AP50, MASK_AP, MASK_AP50, FOUND, PRECISION, RECALL, THRESHOLD)
# The set's name in the tables, the plots and results.json.
SET_NAME = "your set"
# The class whose answers carry meter readings (bench.accuracy.readings).
NEEDLE_CLASS = "pointer"


class EvaluationError(ValueError):
    """The set or the server cannot be evaluated; the message names the file and the problem."""


def parse_data(text: str) -> tuple[Path, Path]:
    """``ANNOTATIONS.json:IMAGE_FOLDER`` as two paths.

    Raises:
        EvaluationError: no image folder is given.
    """
    annotations, colon, images = text.rpartition(":")
    if not colon or not annotations or not images:
        raise EvaluationError(
            f"--data {text!r}: no image folder; give ANNOTATIONS.json:IMAGE_FOLDER (the folder "
            "the file's file_name entries are relative to)"
        )
    return Path(annotations), Path(images)


def served_model(
    annotations: Path, images: Path, model: str | None, repository: Path = REPOSITORY
) -> str:
    """The detector whose ``CLASS_NAMES`` the set's categories are, its photos checked too
    (:func:`training.train.check_dataset`).

    Args:
        annotations: the COCO instances file.
        images: its image folder.
        model: the detector to hold the set to; ``None``: the one sharing most class names.
        repository: the served model repository, whose YAMLs name each detector's classes.

    Raises:
        EvaluationError: the file or a photo is missing or unreadable, or the categories are not
            the detector's classes (the message names the file and the difference).
    """
    # A repository may serve one detector only (a user's fine-tuned pointer model, say).
    served = [m for m in DETECTORS if (repository / m / "config.pbtxt").is_file()]
    if model is not None and model not in served:
        raise EvaluationError(
            f"--model {model}: {repository / model / 'config.pbtxt'} is missing; give "
            "--repository the server's model repository"
        )
    if not served:
        raise EvaluationError(
            f"{repository} has no detector ({' or '.join(DETECTORS)}): give --repository the "
            "server's model repository"
        )
    if model is None:
        try:
            names = {c["name"] for c in json.loads(annotations.read_text())["categories"]}
        except (OSError, ValueError, KeyError, TypeError):
            names = set()  # check_dataset says what is wrong with the file
        model = max(served, key=lambda m: len(names & set(class_names(repository, m))))
    try:
        check_dataset(annotations, images, class_names(repository, model))
    except DatasetError as error:
        raise EvaluationError(f"the served {model} model: {error}") from error
    return model


def ap_per_class(
    ground_truth: Mapping[str, Any],
    detections: Sequence[Mapping[str, Any]],
    iou_type: Literal["bbox", "segm"] = "bbox",
) -> dict[str, float | None]:
    """COCO's AP per class name: precision averaged over IoU 0.50:0.95 and 101 recall points,
    objects of any size, 100 detections per image; ``None`` for a class with no object.

    Args:
        ground_truth: COCO document (``segm`` needs an outline on every annotation).
        detections: COCO result entries (``segm`` needs ``segmentation`` on every one).
        iou_type: ``"bbox"`` or ``"segm"``.
    """
    names = {c["id"]: c["name"] for c in ground_truth["categories"]}
    labelled = {a["category_id"] for a in ground_truth["annotations"]}
    if not detections:  # loadRes refuses an empty list; nothing found scores 0
        return {name: 0.0 if i in labelled else None for i, name in names.items()}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        truth = COCO()
        truth.dataset = {**ground_truth}
        truth.createIndex()
        evaluator = COCOeval(truth, truth.loadRes([dict(d) for d in detections]), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
    # precision: [IoU thresholds, recall points, classes, area ranges ("all" first), max dets]
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    result: dict[str, float | None] = {}
    for k, category_id in enumerate(evaluator.params.catIds):
        defined = precision[:, :, k][precision[:, :, k] > -1]  # -1: no object of the class
        result[names[category_id]] = float(np.mean(defined)) if defined.size else None
    return result


def per_class(
    ground_truth: Mapping[str, Any],
    detections: Sequence[Mapping[str, Any]],
    masks: bool,
    thresholds: Mapping[str, float],
) -> dict[str, dict[str, Any]]:
    """Per class name, its figures under :data:`COLUMNS` (the mask ones only with ``masks``).

    ``found`` is the share of objects a detection of the class overlaps by IoU 0.5;
    ``precision`` and ``recall`` are at the served ``threshold``, one to one at IoU 0.5.
    """
    boxes = ap50_per_class(ground_truth, detections, "bbox")
    box_ap = ap_per_class(ground_truth, detections, "bbox")
    if masks:
        outlines = ap50_per_class(ground_truth, detections, "segm")
        mask_ap = ap_per_class(ground_truth, detections, "segm")
    found = found_annotations(ground_truth, detections)
    table: dict[str, dict[str, Any]] = {}
    for category in ground_truth["categories"]:
        name = category["name"]
        share = found_share(ground_truth, found, name)
        threshold = thresholds.get(name, 0.0)
        point = at_threshold(match_class(ground_truth, detections, category["id"]), threshold)
        row: dict[str, Any] = {AP: box_ap[name], AP50: boxes[name].ap50}
        if masks:
            row.update({MASK_AP: mask_ap[name], MASK_AP50: outlines[name].ap50})
        row.update(
            {
                FOUND: share.share,
                PRECISION: point.precision,
                RECALL: point.recall,
                THRESHOLD: threshold,
                "objects": point.objects,
                "detections": point.detections,
            }
        )
        table[name] = row
    return table


def format_classes(table: Mapping[str, Mapping[str, Any]]) -> str:
    """The per-class figures as an aligned table, one column per :data:`COLUMNS` present."""
    columns = [c for c in COLUMNS if any(c in row for row in table.values())]

    def cell(row: Mapping[str, Any], column: str) -> str:
        value = row.get(column)
        if value is None:
            return "n/a"
        if column == PRECISION:
            return f"{value:.1%} ({row['detections']})"
        if column == RECALL:
            return f"{value:.1%} ({row['objects']})"
        return f"{value:.1%}" if column == FOUND else f"{value:.3f}"

    cells = [["class", *columns]]
    cells += [[name, *(cell(row, c) for c in columns)] for name, row in table.items()]
    widths = [max(map(len, column)) for column in zip(*cells, strict=True)]
    ruled = [cells[0], ["-" * w for w in widths], *cells[1:]]
    return "\n".join(
        "  ".join(f"{c:<{w}}" for c, w in zip(line, widths, strict=True)).rstrip() for line in ruled
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.evaluate",
        description=__doc__.split("\n\n")[1].replace("\n", " ").replace("``", ""),
        epilog="Example: make evaluate EVAL_DATA=my/annotations.json:my/images",
    )
    parser.add_argument(
        "--data",
        required=True,
        metavar="ANN:IMAGES",
        help="ANNOTATIONS.json:IMAGE_FOLDER of a COCO instances set whose categories are a "
        "served detector's CLASS_NAMES (ids ascending in their order).",
    )
    parser.add_argument(
        "--model",
        choices=DETECTORS,
        default=None,
        help="The detector the set is labelled for. Default is the one whose CLASS_NAMES the "
        "categories share most names with.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "build" / "evaluate",
        metavar="DIR",
        help="Folder for results.json, the detections and the plots. Default is build/evaluate.",
    )
    parser.add_argument(
        "--repository",
        type=Path,
        default=REPOSITORY,
        metavar="DIR",
        help="The server's model repository, whose YAMLs name each detector's classes and "
        "whose files give the served thresholds and calibration. Default is this project's "
        "repository/.",
    )
    add_connection_arguments(parser)
    return parser.parse_args(argv)


def _check_server(client: JpegClient, model: str, repository: Path) -> dict[str, str]:
    """The served ``model``'s files, once they are ``repository``'s (its classes are read there).

    Raises:
        EvaluationError: the server serves another YAML than ``repository`` names.
    """
    files = detector_files(client, model)
    local = model_tensors(repository, model).parameters.get("detectron2_config")
    if files.get("detectron2_config") != local:
        raise EvaluationError(
            f"the server's {model} serves {files.get('detectron2_config')!r}, but "
            f"{repository / model / 'config.pbtxt'} names {local!r}: give --repository the "
            "server's model repository"
        )
    return files


def evaluate(args: argparse.Namespace, annotations: Path, images: Path, model: str) -> int:
    """Measures the checked set through the server; returns 0 unless a photo failed."""
    # Heavy imports (matplotlib) after the checks, so that a refusal is instant.
    from bench.accuracy.report import format_table, plot_pr_curves, plot_reading_errors

    ground_truth = json.loads(annotations.read_text())
    masks = MASKS in model_tensors(args.repository, model).outputs and all(
        a.get("segmentation") for a in ground_truth["annotations"]
    )
    readings = model == "pointer" and any(
        "gauges" in image.get("truth", {}) for image in ground_truth["images"]
    )
    spec = HeldOutSet("yours", "own", model, masks=masks, readings=readings)
    with JpegClient(args.url, args.protocol) as client:
        try:
            files = _check_server(client, model, args.repository)
        except InferenceServerException as error:
            raise EvaluationError(f"the server at {client.url}: {error.message()}") from error
        except OSError as error:  # nothing listens there
            raise EvaluationError(f"cannot reach the server at {client.url}: {error}") from error
        thresholds = served_thresholds(files, model, args.repository) or {}
        collected = collect_detections(client, spec, images, ground_truth, SET_NAME)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    detections = collected.detections.get(model, [])
    (out / "detections.json").write_text(
        json.dumps({"categories": collected.categories, model: detections})
    )
    table = per_class(ground_truth, detections, masks, thresholds)
    served = ", ".join(f"{n} {v:.4f}" for n, v in thresholds.items()) or "none"
    print(
        f"\nThe served {model} model ({files.get('detectron2_config')}, "
        f"{files.get('weights')}) on {len(ground_truth['images'])} photos of {annotations}: "
        f"AP over IoU 0.50:0.95, AP50 at IoU 0.5, found at IoU 0.5; precision (detections) and "
        f"recall (objects) at the served score thresholds ({served}), one to one at IoU 0.5:"
        f"\n\n{format_classes(table)}\n",
        flush=True,
    )
    plots = []
    curves = ap50_per_class(ground_truth, detections, "bbox")
    named = {f"{name} (box)": curve for name, curve in curves.items()}
    if masks:
        outlines = ap50_per_class(ground_truth, detections, "segm")
        named.update({f"{name} (mask)": curve for name, curve in outlines.items()})
    plots.append(plot_pr_curves({SET_NAME: named}, out / "pr_curves.png"))
    failed = sorted({error.split(": ", 1)[0] for error in collected.errors})
    results: dict[str, Any] = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "data": {"annotations": str(annotations), "images": str(images)},
        "model": model,
        "server": {"url": client.url, "protocol": args.protocol},
        "detector_files": files,
        "score_thresholds": thresholds,
        "images": len(ground_truth["images"]),
        "failed_images": len(failed),
        "errors": collected.errors,
        "masks": masks,
        "columns": [c for c in COLUMNS if c in next(iter(table.values()), {})],
        "classes": table,
    }
    if readings:
        summary = summarize_readings(
            ground_truth, collected.readings, dial_calibration(model, args.repository)
        )
        # The demo's goals are for the demo's meters: a set of yours is measured, not graded.
        figures = reading_figures(SET_NAME, summary, {}, {})
        print(f"Meter readings (no goals):\n\n{format_table(figures)}\n", flush=True)
        results["readings"] = [asdict(f) for f in figures]
        results["reading_statuses"] = summary.statuses
        plots.append(
            plot_reading_errors(
                summary.angle_errors,
                summary.value_errors,
                out / "reading_errors.png",
                fraction_errors=summary.fraction_errors,
                title=SET_NAME,
            )
        )
    results["plots"] = [str(p) for p in plots]
    path = out / "results.json"
    path.write_text(json.dumps(results, indent=1))
    if failed:
        print(f"evaluate: {len(failed)} photo(s) failed; they count as missed", file=sys.stderr)
    print(f"evaluate: plots {', '.join(map(str, plots))}", file=sys.stderr, flush=True)
    print(path, flush=True)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Checks the set, then measures it; the exit status (2: refused before any photo went)."""
    args = parse_args(argv)
    try:
        annotations, images = parse_data(args.data)
        model = served_model(annotations, images, args.model, args.repository)
        return evaluate(args, annotations, images, model)
    except EvaluationError as error:
        print(f"evaluate: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
