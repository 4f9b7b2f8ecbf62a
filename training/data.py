"""Writes the synthetic datasets the demo detectors train and are measured on.

    python -m training.data gauges --split train --output build/data/gauges/train
    python -m training.data gauges --sheet docs/images/gauges.jpg   # a contact sheet

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
from training.coco import contact_sheet, write_coco

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
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--output", type=Path, help="Dataset folder to write.")
    target.add_argument(
        "--sheet", type=Path, help="Write a contact sheet of the first --count images instead."
    )
    args = parser.parse_args(argv)
    seed, heldout, default_count = SPLITS[args.split]
    module = DATASETS[args.dataset]
    count = args.count if args.count is not None else default_count
    if count < 1:
        parser.error("--count must be at least 1")
    if args.sheet is not None:
        scenes = [module.render_scene(seed, i, heldout=heldout) for i in range(min(count, 12))]
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        contact_sheet(scenes, module.CATEGORIES).save(args.sheet, quality=85)
        return 0
    write_coco(
        args.output,
        module.CATEGORIES,
        count,
        partial(module.render_scene, seed, heldout=heldout),
        description=f"synthetic {args.dataset}, split {args.split}, seed {seed}",
        keypoint_names=getattr(module, "KEYPOINT_NAMES", ()),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
