"""Send JPEGs to an ensemble (or any model taking JPEG bytes) and print the tensors it returns.

Example: ``python clients/ensemble_client.py --model insulator_ensemble -i grpc photo.jpg photos/``
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clients.jpeg_client import (
    JpegClient,
    add_connection_arguments,
    infer_files,
    jpegs_or_exit,
    run_cli,
)

# Outputs this small (sizes, scales) are printed with their values, larger ones by shape only.
_SHOWN_VALUES = 8


def _describe(value: np.ndarray) -> dict[str, object]:
    described: dict[str, object] = {"datatype": str(value.dtype), "shape": list(value.shape)}
    if value.size <= _SHOWN_VALUES:
        described["value"] = value.tolist()
    return described


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Send raw JPEG bytes to a Triton model that takes them (pointer_ensemble, "
        "insulator_ensemble, preprocess_ensemble) and print the tensors it returns: small ones "
        "with their values, large ones by shape. Exits non-zero if any image fails.",
    )
    parser.add_argument("images", nargs="+", type=Path, help="JPEG files or folders of them.")
    add_connection_arguments(parser)
    parser.add_argument(
        "-m",
        "--model",
        default="pointer_ensemble",
        help="Model to send the JPEGs to. Default is pointer_ensemble.",
    )
    parser.add_argument(
        "--json", action="store_true", help="Print one JSON object per image instead of text."
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Sends each image; returns 0 if all succeeded, 1 otherwise."""
    args = parse_args(argv)
    paths = jpegs_or_exit(args.images)
    failures = 0
    with JpegClient(args.url, args.protocol) as client:
        for path, outputs, elapsed_ms in infer_files(client, args.model, paths):
            if outputs is None:
                failures += 1
                continue
            if args.json:
                record = {
                    "file": str(path),
                    "latency_ms": round(elapsed_ms, 2),
                    "outputs": {name: _describe(value) for name, value in outputs.items()},
                }
                print(json.dumps(record))
            else:
                shapes = ", ".join(
                    f"{name} {value.dtype}{list(value.shape)}"
                    + (f" = {value.tolist()}" if value.size <= _SHOWN_VALUES else "")
                    for name, value in outputs.items()
                )
                print(f"{path}: {shapes} ({elapsed_ms:.1f} ms, {args.protocol})")
    return 1 if failures else 0


if __name__ == "__main__":
    run_cli(main)
