"""training/roi_align.py: the CPU training ROIAlign equals torchvision's, gradient included."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from detectron2.layers import ROIAlign
from detectron2.modeling.poolers import ROIPooler
from torchvision.ops import roi_align as torchvision_roi_align

from server.launch import REPO_ROOT
from training.roi_align import SparseBackwardROIAlign, roi_align
from training.train import Trainer, build_config

# Boxes in input pixels: inside, over every edge, a line (no samples across), turned inside
# out, in a corner, and one much larger than its bins (many samples per bin).
ROIS = torch.tensor(
    [
        [0, 8.0, 12.0, 150.0, 90.0],
        [1, -30.0, -20.0, 260.0, 190.0],
        [0, 40.0, 40.0, 40.0, 120.0],
        [1, 100.0, 100.0, 90.0, 95.0],
        [0, 236.0, 152.0, 240.0, 160.0],
        [1, 3.3, 7.7, 219.9, 151.1],
    ]
)


def both_ways(
    features: torch.Tensor, rois: torch.Tensor, scale: float, sampling_ratio: int
) -> tuple[torch.Tensor, ...]:
    """Output and feature gradient from torchvision's op and from ours, for one output grad."""
    grad_output = torch.randn(
        len(rois), features.shape[1], 7, 7, generator=torch.Generator().manual_seed(1)
    )
    results = []
    for op in (
        lambda f: torchvision_roi_align(f, rois, (7, 7), scale, sampling_ratio, aligned=True),
        lambda f: roi_align(f, rois, 7, scale, sampling_ratio),
    ):
        leaf = features.detach().clone().requires_grad_()
        output = op(leaf)
        (output.float() * grad_output).sum().backward()
        results += [output.detach(), leaf.grad]
    return tuple(results)


@pytest.mark.parametrize("sampling_ratio", [0, 2])
@pytest.mark.parametrize("scale", [1 / 4, 1 / 8, 1 / 32])
def test_output_and_gradient_equal_torchvisions(sampling_ratio: int, scale: float) -> None:
    features = torch.randn(2, 16, 40, 60, generator=torch.Generator().manual_seed(0))
    reference, reference_grad, output, grad = both_ways(features, ROIS, scale, sampling_ratio)
    assert torch.equal(output, reference)
    assert grad.abs().sum() > 0
    torch.testing.assert_close(grad, reference_grad, rtol=1e-5, atol=1e-5)


def test_under_autocast_as_detectron2s_module() -> None:
    """Training's bfloat16 autocast: the swapped module answers as detectron2's, in its type."""
    features = torch.randn(2, 8, 40, 60, generator=torch.Generator().manual_seed(2)).bfloat16()
    grad_output = torch.randn(len(ROIS), 8, 7, 7, generator=torch.Generator().manual_seed(3))
    results = []
    for module in (ROIAlign, SparseBackwardROIAlign):
        leaf = features.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = module((7, 7), 1 / 4, 0, aligned=True)(leaf, ROIS)
        (output.float() * grad_output).sum().backward()
        results.append((output, leaf.grad))
    (reference, reference_grad), (output, grad) = results
    assert output.dtype == reference.dtype
    assert grad.dtype == torch.bfloat16
    assert torch.equal(output, reference)
    torch.testing.assert_close(grad, reference_grad)


def test_no_boxes_give_a_zero_gradient() -> None:
    features = torch.randn(1, 4, 10, 10, requires_grad=True)
    output = roi_align(features, torch.zeros(0, 5), 7, 1 / 4, 0)
    assert output.shape == (0, 4, 7, 7)
    output.sum().backward()
    assert torch.equal(features.grad, torch.zeros_like(features))


@pytest.mark.parametrize(
    "yaml",
    [
        REPO_ROOT / "repository" / "pointer" / "mask_rcnn_R18_FPN_demo.yaml",
        REPO_ROOT / "repository" / "insulator" / "centernet2_R18_FPN_demo.yaml",
    ],
    ids=["pointer", "insulator"],
)
def test_cpu_training_pools_with_the_sparse_backward(yaml: Path, tmp_path: Path) -> None:
    model = Trainer.build_model(build_config(yaml, tmp_path, "cpu"))
    aligns = [
        align
        for pooler in model.modules()
        if isinstance(pooler, ROIPooler)
        for align in pooler.level_poolers
    ]
    assert aligns and all(type(align) is SparseBackwardROIAlign for align in aligns)
    # Still detectron2's module: same settings, no parameters, so checkpoints are unchanged.
    assert all(isinstance(align, ROIAlign) and align.aligned for align in aligns)
