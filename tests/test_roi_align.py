"""pipelines/roi_align.py: the CPU ROIAlign pools as torchvision's does, gradient included."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from detectron2.layers import ROIAlign
from detectron2.modeling.poolers import ROIPooler
from torchvision.ops import roi_align as torchvision_roi_align

from bls.repository import model_tensors
from pipelines.detector import Detector
from pipelines.roi_align import GatherROIAlign, roi_align
from server.launch import REPO_ROOT
from training.train import Trainer, build_config

REPOSITORY = REPO_ROOT / "repository"
YAMLS = [
    REPOSITORY / "pointer" / "mask_rcnn_R18_FPN_demo.yaml",
    REPOSITORY / "insulator" / "centernet2_R18_FPN_demo.yaml",
]

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


def features(channels: int = 16, seed: int = 0) -> torch.Tensor:
    """Two images' feature maps, 40x60."""
    return torch.randn(2, channels, 40, 60, generator=torch.Generator().manual_seed(seed))


def pooled_both_ways(
    features: torch.Tensor, output_size: tuple[int, int], scale: float, sampling_ratio: int
) -> tuple[torch.Tensor, ...]:
    """Output and feature gradient from torchvision's op and from ours, for one output grad."""
    grad_output = torch.randn(
        len(ROIS), features.shape[1], *output_size, generator=torch.Generator().manual_seed(1)
    )
    results = []
    for op in (
        lambda f: torchvision_roi_align(f, ROIS, output_size, scale, sampling_ratio, True),
        lambda f: roi_align(f, ROIS, output_size, scale, sampling_ratio),
    ):
        leaf = features.detach().clone().requires_grad_()
        output = op(leaf)
        (output.float() * grad_output).sum().backward()
        results += [output.detach(), leaf.grad]
    return tuple(results)


@pytest.mark.parametrize("output_size", [(7, 7), (14, 14), (5, 3)])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
@pytest.mark.parametrize("scale", [1 / 4, 1 / 8, 1 / 32])
def test_output_and_gradient_equal_torchvisions(
    output_size: tuple[int, int], sampling_ratio: int, scale: float
) -> None:
    reference, reference_grad, output, grad = pooled_both_ways(
        features(), output_size, scale, sampling_ratio
    )
    assert output.shape == reference.shape
    # Only the order of the float additions differs.
    torch.testing.assert_close(output, reference, rtol=1e-5, atol=1e-5)
    assert grad.abs().sum() > 0
    torch.testing.assert_close(grad, reference_grad, rtol=1e-5, atol=1e-5)
    # The degenerate boxes pool to zero, as torchvision's do.
    assert torch.equal(output[2:4] == 0, reference[2:4] == 0)


def test_channels_last_features_pool_the_same() -> None:
    nchw = features()
    output = roi_align(nchw, ROIS, 7, 1 / 4, 0)
    channels_last = roi_align(nchw.contiguous(memory_format=torch.channels_last), ROIS, 7, 1 / 4, 0)
    assert torch.equal(output, channels_last)


def test_a_boxs_pool_depends_on_neither_the_other_boxes_nor_the_threads() -> None:
    """A request's answer must not depend on what shares its batch, nor on the thread count
    (the soak test holds the server to that, bit for bit)."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = roi_align(features(), ROIS[5:], 7, 1 / 4, 0)
        torch.set_num_threads(2)
        together = roi_align(features(), ROIS, 7, 1 / 4, 0)[5:]
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(alone, together)


def test_under_autocast_as_detectron2s_module() -> None:
    """Training's bfloat16 autocast: the swapped module answers as detectron2's, in its type."""
    bfloat16 = features(channels=8, seed=2).bfloat16()
    grad_output = torch.randn(len(ROIS), 8, 7, 7, generator=torch.Generator().manual_seed(3))
    results = []
    for module in (ROIAlign, GatherROIAlign):
        leaf = bfloat16.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = module((7, 7), 1 / 4, 0, aligned=True)(leaf, ROIS)
        (output.float() * grad_output).sum().backward()
        results.append((output, leaf.grad))
    (reference, reference_grad), (output, grad) = results
    assert output.dtype == reference.dtype == torch.bfloat16
    assert grad.dtype == torch.bfloat16
    # Both pool in float32; sums that differ in their last float32 bit may round to
    # neighbouring bfloat16 values: one bfloat16 step (2**-7 relative) apart at most.
    one_step = {"rtol": 2**-7, "atol": 1e-6}
    torch.testing.assert_close(output.float(), reference.float(), **one_step)
    torch.testing.assert_close(grad.float(), reference_grad.float(), **one_step)


def test_no_boxes_give_an_empty_output_and_a_zero_gradient() -> None:
    leaf = features(channels=4).requires_grad_()
    output = roi_align(leaf, torch.zeros(0, 5), 7, 1 / 4, 0)
    assert output.shape == (0, 4, 7, 7)
    output.sum().backward()
    assert torch.equal(leaf.grad, torch.zeros_like(leaf))


def pooler_aligns(model: torch.nn.Module) -> list[torch.nn.Module]:
    """Every level's ROIAlign of the model's poolers (box, mask, cascade stages)."""
    return [
        align
        for pooler in model.modules()
        if isinstance(pooler, ROIPooler)
        for align in pooler.level_poolers
    ]


def assert_swapped(model: torch.nn.Module) -> None:
    aligns = pooler_aligns(model)
    assert aligns and all(type(align) is GatherROIAlign for align in aligns)
    # Still detectron2's module: same settings, no parameters, so checkpoints are unchanged.
    assert all(isinstance(align, ROIAlign) and align.aligned for align in aligns)


@pytest.mark.parametrize("yaml", YAMLS, ids=["pointer", "insulator"])
def test_cpu_training_pools_by_gather(yaml: Path, tmp_path: Path) -> None:
    assert_swapped(Trainer.build_model(build_config(yaml, tmp_path, "cpu")))


@pytest.mark.parametrize("model", ["pointer", "insulator"])
def test_served_cpu_detectors_pool_by_gather(model: str) -> None:
    parameters = model_tensors(REPOSITORY, model).parameters
    detector = Detector(
        REPOSITORY / model / parameters["detectron2_config"],
        REPOSITORY / model / parameters["weights"],
    )
    assert_swapped(detector.model)
