"""Makes a deterministic, clearly labelled UNTRAINED checkpoint for a detector config.

No trained weights for the pointer and insulator models ship with this repository, and nothing
is downloaded. So that the server, the demo and the tests run, ``make`` writes one of these per
detector. The server logs a loud warning when it loads one; its detections are meaningless.

A detectron2 ResNet's batch norms are frozen (identity at initialisation), so a freshly built
network's activations grow layer after layer until every score saturates at 0 or 1. To give
an untrained model ordinary, varied outputs, each frozen batch norm is calibrated once on a
fixed synthetic image so that its output has zero mean and unit variance per channel (the idea
of data-dependent initialisation). Same config and seed, same file.

    python -m pipelines.untrained --config repository/pointer/mask_rcnn_R50_FPN.yaml \\
        --output repository/pointer/weights/untrained.pth
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from detectron2.layers import FrozenBatchNorm2d
from detectron2.modeling import build_model

from pipelines.detector import UNTRAINED_KEY, load_config

__all__ = ["RESIDUAL_GAIN", "main", "make_untrained_checkpoint"]

# Scale of each ResNet bottleneck's last batch norm, i.e. of its residual branch.
RESIDUAL_GAIN = 0.1
_RESIDUAL_BRANCH_END = "conv3.norm"


def _calibration_image(seed: int, height: int = 800, width: int = 1067) -> torch.Tensor:
    """A fixed CHW float image: smooth gradients plus noise, in the 0-255 range."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xs / width, ys / height, (xs + ys) / (width + height)]) * 255
    noise = rng.normal(0, 40, size=(3, height, width)).astype(np.float32)
    return torch.from_numpy(np.clip(base + noise, 0, 255))


def _normalize_frozen_batch_norms(model: torch.nn.Module, image: torch.Tensor) -> int:
    """Sets each FrozenBatchNorm2d's statistics from its input on ``image``; returns how many."""
    norms = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]

    def calibrate(module: FrozenBatchNorm2d, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0]
        module.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        module.running_var.copy_(x.var(dim=(0, 2, 3)) + module.eps)

    # Damped residual branches (a trained ResNet's are small too; "zero-init residual" is the
    # extreme): without this, the untrained network is so chaotic that the +-1 level rounding
    # differences between two resize implementations change its detections.
    for name, module in model.named_modules():
        if isinstance(module, FrozenBatchNorm2d) and name.endswith(_RESIDUAL_BRANCH_END):
            module.weight.fill_(RESIDUAL_GAIN)

    # Hooks run in forward order, so each layer is calibrated on already calibrated inputs.
    handles = [norm.register_forward_pre_hook(calibrate) for norm in norms]
    try:
        with torch.inference_mode():
            model([{"image": image, "height": image.shape[1], "width": image.shape[2]}])
    finally:
        for handle in handles:
            handle.remove()
    return len(norms)


def make_untrained_checkpoint(config_path: Path, output_path: Path, seed: int = 0) -> Path:
    """Builds the detector with seeded random weights and saves a labelled checkpoint.

    Args:
        config_path: the detector's detectron2 YAML.
        output_path: where to write the ``.pth`` (parent folders are created).
        seed: seed of the weights and of the calibration image.

    Returns:
        ``output_path``.
    """
    cfg = load_config(config_path, device="cpu")
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    _normalize_frozen_batch_norms(model, _calibration_image(seed))
    what = f"random weights (seed {seed}) for {config_path.name}; detections are meaningless"
    output_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": model.state_dict(),
            UNTRAINED_KEY: True,
            "note": f"UNTRAINED: {what}. Point the model's `weights` parameter at a trained "
            "model_final.pth to serve a real model.",
        },
        output_path,
    )
    return output_path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="Detector YAML.")
    parser.add_argument("--output", type=Path, required=True, help="Checkpoint to write.")
    parser.add_argument("--seed", type=int, default=0, help="Random seed. Default is 0.")
    args = parser.parse_args(argv)
    print(f"Making UNTRAINED weights for {args.config} -> {args.output} (seed {args.seed})")
    make_untrained_checkpoint(args.config, args.output, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
