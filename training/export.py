"""Turns a training checkpoint into the small weights file the server loads.

    python -m training.export build/train/pointer/model_final.pth \\
        repository/pointer/weights/demo.pth --note "trained on synthetic gauges"

Keeps the model's weights only (no optimizer or scheduler state) and stores floating-point
tensors in fp16, which halves the file; the server loads them back as fp32
(``pipelines.detector.load_weights``). Every version of a committed weights file stays in the
git history: export and commit rarely.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = ["export_weights", "main"]


def export_weights(checkpoint: Path, output: Path, note: str) -> int:
    """Writes ``checkpoint``'s model weights to ``output`` in fp16.

    Returns:
        The size of the written file in bytes.

    Raises:
        ValueError: ``checkpoint`` holds no ``model`` state dict.
    """
    data = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state = data.get("model") if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{checkpoint} holds no 'model' state dict")
    half = {
        name: tensor.half() if tensor.is_floating_point() else tensor
        for name, tensor in state.items()
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": half, "iteration": data.get("iteration"), "note": note}, output)
    return output.stat().st_size


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="A training checkpoint (model_final.pth).")
    parser.add_argument("output", type=Path, help="The weights file to write.")
    parser.add_argument("--note", default="", help="What the weights are, stored in the file.")
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        print(f"error: checkpoint not found: {args.checkpoint}", file=sys.stderr)
        return 2
    size = export_weights(args.checkpoint, args.output, args.note)
    print(f"{args.output}: {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
