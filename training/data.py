"""Writes the synthetic datasets the demo detectors train and are measured on.

    python -m training.data gauges --split train --output build/data/gauges/train

Each split has its own seed, so the same command always writes the same images; the
``heldout`` split also draws styles the training split never shows.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from training import gauges, insulators
from training.coco import write_coco

__all__ = ["DATASETS", "SPLITS", "main"]

DATASETS = {"gauges": gauges, "insulators": insulators}
# split -> (seed, held-out styles, default image count)
SPLITS = {"train": (1, False, 1500), "heldout": (2, True, 300)}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=sorted(DATASETS), help="What to draw.")
    parser.add_argument(
        "--split", choices=sorted(SPLITS), default="train", help="Default is train."
    )
    parser.add_argument(
        "--count", type=int, help="Number of images. Default is 1500 (train), 300 (heldout)."
    )
    parser.add_argument("--output", type=Path, required=True, help="Dataset folder to write.")
    args = parser.parse_args(argv)
    seed, heldout, default_count = SPLITS[args.split]
    module = DATASETS[args.dataset]
    count = args.count if args.count is not None else default_count
    if count < 1:
        parser.error("--count must be at least 1")
    write_coco(
        args.output,
        module.CATEGORIES,
        count,
        partial(module.render_scene, seed, heldout=heldout),
        description=f"synthetic {args.dataset}, split {args.split}, seed {seed}",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
