"""Inspect photos: one request per JPEG to the ``inspect`` router, one merged answer each.

python clients/bls_client.py --models both image.jpg
python clients/bls_client.py --models pointer --draw out/ photos/
python clients/bls_client.py --models pointer --coco draft.json photos/

``--coco`` pre-annotates: the served model's answers for every photo of a folder, as a COCO
instances file to import into a labelling tool and correct (:class:`clients.answer.CocoInstances`),
which ``training.train`` then takes as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageOps

from bls.repository import class_names, keypoint_names, model_tensors
from bls.routing import RoutingError, choose_detectors, parse_detectors
from clients.answer import Answer, CocoInstances, draw_answer, format_answer, parse_answer
from clients.jpeg_client import (
    InferenceServerException,
    JpegClient,
    add_connection_arguments,
    infer_files,
    jpegs_or_exit,
    run_cli,
)
from pipelines.tensors import DETECTIONS, KEYPOINTS, MASKS, MODELS

ROUTER = "inspect"
# The model repository of `make serve`, whose YAMLs name the served classes.
REPOSITORY = Path(__file__).resolve().parents[1] / "repository"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Send JPEGs to the inspect router, which runs the pointer (meter needle) "
        "and/or insulator detector on each and answers with both results merged. Prints a "
        "readable summary (or JSON) and can draw the detections. Exits 1 if any image or "
        "detector fails, with the server's message.",
    )
    parser.add_argument("images", nargs="+", type=Path, help="JPEG files or folders of them.")
    parser.add_argument(
        "--models",
        default="both",
        help="Detectors to run: pointer, insulator or both. Default is both.",
    )
    add_connection_arguments(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="Print the server's JSON answer (DETECTIONS, see bls/merge.py) per image, one line "
        "each, with the file and the latency, instead of text.",
    )
    parser.add_argument(
        "--draw",
        type=Path,
        metavar="OUT",
        help="Write the photo with masks, boxes, class names and scores drawn on it, and each "
        "meter's needle, value and (where the pointer model finds keypoints) its scale's start, "
        "end and arc: to OUT for one image, or into folder OUT (as <name>.detections.jpg) for "
        "several.",
    )
    parser.add_argument(
        "--min-score",
        type=float,
        default=0.0,
        help="Show, draw and write (--coco) only instances scoring at least this. Default is 0 "
        "(all the server answers).",
    )
    parser.add_argument(
        "--coco",
        type=Path,
        metavar="OUT.json",
        help="Pre-annotate: write the answers for every JPEG of the one folder given as a COCO "
        "instances file (boxes, outlines from the masks, dials' keypoints where served, class "
        "names as the YAML's CLASS_NAMES, scores in a 'score' field), file names relative to "
        "that folder, to import into CVAT or labelme and correct; training.train takes it as "
        "it is. With several models, one file each: OUT.<model>.json. Shows progress instead "
        "of the answers.",
    )
    parser.add_argument(
        "--repository",
        type=Path,
        default=REPOSITORY,
        help="The server's model repository, whose YAMLs name each model's classes and "
        "keypoints (--coco). Default is this project's repository/.",
    )
    return parser.parse_args(argv)


def coco_targets(
    client: JpegClient, repository: Path, models: str, out: Path
) -> dict[str, tuple[Path, CocoInstances]]:
    """The COCO file of each detector that ``models`` runs, with its classes and keypoints.

    Raises:
        ValueError: ``models`` names no served detector, or the server serves a detector with
            another YAML than ``repository`` names (its classes would be another's).
        FileNotFoundError: ``repository`` has no config of a detector.
    """
    router = client.parameters(ROUTER)
    try:
        chosen = choose_detectors(
            models, list(parse_detectors(router["detectors"])), router["default_models"]
        )
    except RoutingError as error:
        raise ValueError(f"--models: {error}") from error
    targets = {}
    for model in chosen:
        local = model_tensors(repository, model)
        served = client.parameters(model).get("detectron2_config")
        if served != local.parameters.get("detectron2_config"):
            raise ValueError(
                f"the server's {model} serves {served!r}, but {repository / model / 'config.pbtxt'}"
                f" names {local.parameters.get('detectron2_config')!r}: give --repository the "
                "server's model repository"
            )
        keypoints = keypoint_names(repository, model) if KEYPOINTS in local.outputs else []
        path = out if len(chosen) == 1 else out.with_name(f"{out.stem}.{model}{out.suffix}")
        targets[model] = (
            path,
            CocoInstances(
                model,
                class_names(repository, model),
                keypoints,
                description=f"pre-annotated by {model} ({served}) at {client.url}",
            ),
        )
    return targets


def write_json(path: Path, document: dict) -> None:
    """Writes ``document`` whole or not at all (a temporary file, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.tmp")
    temporary.write_text(json.dumps(document))
    temporary.replace(path)


def folder_or_exit(paths: list[Path]) -> Path:
    """The one folder ``--coco`` takes; anything else ends the program with exit code 2."""
    if len(paths) != 1 or not paths[0].is_dir():
        given = ", ".join(map(str, paths))
        print(
            f"error: --coco takes one folder of photos (the dataset's image folder), got {given}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return paths[0]


def _draw_path(out: Path, image: Path, several: bool) -> Path:
    if several or out.is_dir():
        out.mkdir(parents=True, exist_ok=True)
        return out / f"{image.stem}.detections.jpg"
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _report(
    path: Path,
    outputs: dict,
    answer: Answer,
    elapsed_ms: float,
    args: argparse.Namespace,
    several: bool,
) -> bool:
    """Prints one photo's answer (not for ``--coco``, which shows progress) and its errors, and
    draws it for ``--draw`` (into a folder when there are ``several`` photos).

    Returns:
        Whether a detector failed on the photo.
    """
    errors = [f"{n}: {r.error}" for n, r in answer.models.items() if r.status != "ok"]
    if args.json and not args.coco:
        # The server's document as it came (bls/merge.py), with the file and the time.
        document = json.loads(outputs[DETECTIONS][0])
        timing = {"file": str(path), "latency_ms": round(elapsed_ms, 1)}
        print(json.dumps({**timing, **document}))
    elif not args.coco:
        print(f"{path}: ({elapsed_ms:.0f} ms, {args.protocol})")
        print(format_answer(answer, args.min_score))
    for message in errors:
        print(f"{path}: error: {message}", file=sys.stderr)
    if args.draw:
        out = _draw_path(args.draw, path, several)
        # Drawn as a photo viewer shows it, which is how the router answers.
        photo = ImageOps.exif_transpose(Image.open(path))
        draw_answer(photo, answer, args.min_score).save(out, quality=90)
        print(f"{path}: drawn to {out}")
    return bool(errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Inspects each image; returns 0 if every image and detector succeeded, 1 otherwise."""
    args = parse_args(argv)
    paths = jpegs_or_exit(args.images)
    folder = folder_or_exit(args.images) if args.coco else None
    failed = False
    with JpegClient(args.url, args.protocol) as client:
        targets = {}
        if args.coco:
            try:
                targets = coco_targets(client, args.repository, args.models, args.coco)
            except (ValueError, FileNotFoundError) as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
            except InferenceServerException as error:
                print(f"error: {client.url}: {error.message()}", file=sys.stderr)
                return 2
            except OSError as error:  # no server there
                print(f"error: cannot reach the server at {client.url}: {error}", file=sys.stderr)
                return 2
        choice = {MODELS: args.models}
        several = len(paths) > 1
        for done, (path, outputs, elapsed_ms) in enumerate(
            infer_files(client, ROUTER, paths, choice), start=1
        ):
            if outputs is not None:
                answer = parse_answer(outputs[DETECTIONS][0], outputs[MASKS])
                failed = _report(path, outputs, answer, elapsed_ms, args, several) or failed
                for model, (_, dataset) in targets.items():
                    # A photo its detector failed on is left out: as a photo with nothing in
                    # it, it would teach the model to find nothing there.
                    if answer.models.get(model) and answer.models[model].status == "ok":
                        try:
                            dataset.add(path.relative_to(folder).as_posix(), answer, args.min_score)
                        except ValueError as error:  # the server serves other classes
                            print(f"\nerror: {error}", file=sys.stderr)
                            return 2
            else:
                failed = True
            if targets:
                # Left at the line's start: a message printed next writes over it.
                print(f"{done}/{len(paths)} photos", end="\r", file=sys.stderr, flush=True)
    if targets:
        print(file=sys.stderr)
    for path, dataset in targets.values():
        write_json(path, dataset.document())
        print(
            f"{path}: {len(dataset.images)} photos, {len(dataset.annotations)} instances of "
            f"{dataset.model} ({', '.join(dataset.class_names)}); correct it in a labelling tool "
            f"(COCO import), then train: python -m training.train --dataset {path}:{folder} ..."
        )
    return 1 if failed else 0


if __name__ == "__main__":
    run_cli(main)
