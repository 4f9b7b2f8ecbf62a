"""Inspect photos: one request per JPEG to the ``inspect`` router, one merged answer each.

python clients/bls_client.py --models both image.jpg
python clients/bls_client.py --models pointer --draw out/ photos/
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageOps

from clients.answer import draw_answer, format_answer, parse_answer
from clients.jpeg_client import (
    JpegClient,
    add_connection_arguments,
    infer_files,
    jpegs_or_exit,
    run_cli,
)
from pipelines.tensors import DETECTIONS, MASKS, MODELS

ROUTER = "inspect"


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
        help="Show and draw only instances scoring at least this. Default is 0 (all).",
    )
    return parser.parse_args(argv)


def _draw_path(out: Path, image: Path, several: bool) -> Path:
    if several or out.is_dir():
        out.mkdir(parents=True, exist_ok=True)
        return out / f"{image.stem}.detections.jpg"
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Inspects each image; returns 0 if every image and detector succeeded, 1 otherwise."""
    args = parse_args(argv)
    paths = jpegs_or_exit(args.images)
    failed = False
    with JpegClient(args.url, args.protocol) as client:
        choice = {MODELS: args.models}
        for path, outputs, elapsed_ms in infer_files(client, ROUTER, paths, choice):
            if outputs is None:
                failed = True
                continue
            answer = parse_answer(outputs[DETECTIONS][0], outputs[MASKS])
            errors = [f"{n}: {r.error}" for n, r in answer.models.items() if r.status != "ok"]
            failed = failed or bool(errors)
            if args.json:
                # The server's document as it came (bls/merge.py), with the file and the time.
                document = json.loads(outputs[DETECTIONS][0])
                timing = {"file": str(path), "latency_ms": round(elapsed_ms, 1)}
                print(json.dumps({**timing, **document}))
            else:
                print(f"{path}: ({elapsed_ms:.0f} ms, {args.protocol})")
                print(format_answer(answer, args.min_score))
            for message in errors:
                print(f"{path}: error: {message}", file=sys.stderr)
            if args.draw:
                out = _draw_path(args.draw, path, len(paths) > 1)
                # Drawn as a photo viewer shows it, which is how the router answers.
                photo = ImageOps.exif_transpose(Image.open(path))
                draw_answer(photo, answer, args.min_score).save(out, quality=90)
                print(f"{path}: drawn to {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    run_cli(main)
