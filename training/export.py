"""Turns a training checkpoint into the small weights file the server loads.

    python -m training.export build/train/pointer/model_final.pth \\
        repository/pointer/weights/demo.pth --note "trained on synthetic gauges"

Keeps the model's weights only (no optimizer or scheduler state) and stores floating-point
tensors in fp16, which halves the file; the server loads them back as fp32
(``pipelines.detector.load_weights``). With ``--config`` the written file is loaded into that
YAML's model as the server loads it, strictly, so that weights which do not fit the YAML to be
served (another architecture, another number of classes) are found here rather than when the
server starts. Every version of a committed weights file stays in the git history: export and
commit rarely.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from detectron2.modeling import build_model

from pipelines.detector import CheckpointError, load_config, load_weights

__all__ = ["check_servable", "export_weights", "main"]


def export_weights(checkpoint: Path, output: Path, note: str) -> int:
    """Writes ``checkpoint``'s model weights to ``output`` in fp16.

    Returns:
        The size of the written file in bytes.

    Raises:
        ValueError: ``checkpoint`` holds no ``model`` state dict.
    """
    try:
        data = torch.load(checkpoint, map_location="cpu", weights_only=False)
    except Exception as error:  # whatever unpickling raises: name the file
        raise ValueError(f"cannot read checkpoint {checkpoint}: {error}") from error
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


def check_servable(weights: Path, config: Path) -> list[str]:
    """Loads ``weights`` into the model of ``config`` as the server does, strictly.

    Returns:
        ``config``'s ``CLASS_NAMES``.

    Raises:
        CheckpointError: the weights do not fit the model; the message names the file and the
            first mismatches.
        FileNotFoundError: ``config`` does not exist.
    """
    cfg = load_config(config)
    load_weights(build_model(cfg), weights)
    return list(cfg.CLASS_NAMES)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="A training checkpoint (model_final.pth).")
    parser.add_argument("output", type=Path, help="The weights file to write.")
    parser.add_argument("--note", default="", help="What the weights are, stored in the file.")
    parser.add_argument(
        "--config",
        type=Path,
        help="The YAML the weights will be served with (the detector's detectron2_config, or "
        "the config.yaml of the training run): the written file is loaded into its model as "
        "the server loads it. Default is no check.",
    )
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        print(f"error: checkpoint not found: {args.checkpoint}", file=sys.stderr)
        return 2
    try:
        size = export_weights(args.checkpoint, args.output, args.note)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.output}: {size / 2**20:.1f} MiB")
    if args.config is not None:
        try:
            classes = check_servable(args.output, args.config)
        except (CheckpointError, FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"{args.output}: serves with {args.config} (classes {classes})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
