"""ROIAlign for CPU training: torchvision's forward, a backward computed as one sparse product.

torchvision's CPU ``roi_align`` backward is a single-threaded loop that recomputes every sample
point's bilinear weights once per channel; in the demo insulator's training step (three cascade
stages, five feature levels each) it was the largest cost after the convolutions
(docs/performance.md). The gradient of ROIAlign is linear in the output gradient:
``grad_features = M @ grad_output``, where ``M`` maps each pooled bin to the feature positions
its samples read, with their bilinear weights. Here ``M`` is built once per call, vectorised, as
a sparse matrix, and multiplied in one go.

The forward is torchvision's own, so a model trained this way is served by detectron2's
``ROIAlign`` unchanged; only the gradient's summation order differs.
"""

from __future__ import annotations

import torch
from detectron2.layers import ROIAlign
from detectron2.modeling.poolers import ROIPooler
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

__all__ = ["SparseBackwardROIAlign", "roi_align", "use_sparse_backward"]


def _axis_samples(
    start: Tensor, length: Tensor, bins: int, samples: int, size: int
) -> tuple[Tensor, Tensor]:
    """Sample points of each ROI along one axis, with torchvision's rules (``aligned=True``).

    Returns:
        The feature indices (K, bins * samples, 2) of each sample's two neighbours and their
        bilinear weights, zero for samples outside ``[-1, size]``.
    """
    step = torch.arange(bins * samples, dtype=start.dtype, device=start.device)
    bin_size = (length / bins)[:, None]
    # Spelled as torchvision's kernel does, so that floor() sees the same float.
    point = (
        start[:, None] + (step // samples) * bin_size + (step % samples + 0.5) * bin_size / samples
    )
    inside = (point >= -1.0) & (point <= size)
    point = point.clamp(min=0.0)
    low = point.floor().long()
    last = low >= size - 1
    low = torch.where(last, torch.full_like(low, size - 1), low)
    high = torch.where(last, low, low + 1)
    fraction = torch.where(last, torch.zeros_like(point), point - low)
    weights = torch.stack([1.0 - fraction, fraction], dim=-1) * inside[..., None]
    return torch.stack([low, high], dim=-1), weights


def _pooling_matrix(
    rois: Tensor,
    shape: torch.Size,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
) -> Tensor:
    """The sparse (N*H*W, K*PH*PW) matrix whose transpose is ROIAlign's forward."""
    n, _, height, width = shape
    bins_h, bins_w = output_size
    boxes = rois[:, 1:].float() * spatial_scale - 0.5
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    roi_h, roi_w = y2 - y1, x2 - x1
    if sampling_ratio > 0:
        samples_h = torch.full_like(roi_h, sampling_ratio, dtype=torch.long)
        samples_w = samples_h
    else:
        samples_h = torch.ceil(roi_h / bins_h).long()
        samples_w = torch.ceil(roi_w / bins_w).long()
    no_index = torch.zeros(0, dtype=torch.long)
    rows, cols, values = [no_index], [no_index], [torch.zeros(0)]
    # ROIs with the same sample grid are one vectorised block.
    grids = torch.stack([samples_h, samples_w], dim=1)
    for s_h, s_w in torch.unique(grids, dim=0).tolist():
        if s_h <= 0 or s_w <= 0:
            continue
        index = torch.nonzero((samples_h == s_h) & (samples_w == s_w)).squeeze(1)
        y_at, y_weight = _axis_samples(y1[index], roi_h[index], bins_h, s_h, height)
        x_at, x_weight = _axis_samples(x1[index], roi_w[index], bins_w, s_w, width)
        # Dimensions: roi, y sample, x sample, y neighbour, x neighbour.
        image = rois[index, 0].long() * (height * width)
        row = (
            image[:, None, None, None, None]
            + y_at[:, :, None, :, None] * width
            + x_at[:, None, :, None, :]
        )
        value = y_weight[:, :, None, :, None] * x_weight[:, None, :, None, :] / (s_h * s_w)
        bin_y = torch.arange(bins_h * s_h, device=rois.device) // s_h
        bin_x = torch.arange(bins_w * s_w, device=rois.device) // s_w
        col = index[:, None, None] * (bins_h * bins_w) + bin_y[:, None] * bins_w + bin_x
        rows.append(row.reshape(-1))
        cols.append(col[..., None, None].expand_as(row).reshape(-1))
        values.append(value.reshape(-1))
    size = (n * height * width, rois.shape[0] * bins_h * bins_w)
    indices = torch.stack([torch.cat(rows), torch.cat(cols)])
    return torch.sparse_coo_tensor(indices, torch.cat(values), size, check_invariants=False)


class _ROIAlign(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        features: Tensor,
        rois: Tensor,
        output_size: tuple[int, int],
        spatial_scale: float,
        sampling_ratio: int,
    ) -> Tensor:
        ctx.save_for_backward(rois)
        ctx.shape = features.shape
        ctx.dtype = features.dtype
        ctx.pooling = (output_size, spatial_scale, sampling_ratio)
        pooled = torch.ops.torchvision.roi_align(
            features.float(), rois.float(), spatial_scale, *output_size, sampling_ratio, True
        )
        return pooled.to(features.dtype)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_output: Tensor) -> tuple:
        (rois,) = ctx.saved_tensors
        n, channels, height, width = ctx.shape
        matrix = _pooling_matrix(rois, ctx.shape, *ctx.pooling)
        by_bin = grad_output.float().permute(0, 2, 3, 1).reshape(-1, channels)
        grad = torch.sparse.mm(matrix, by_bin).reshape(n, height, width, channels)
        return grad.permute(0, 3, 1, 2).contiguous().to(ctx.dtype), None, None, None, None


def roi_align(
    features: Tensor,
    rois: Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
) -> Tensor:
    """torchvision's ``roi_align(..., aligned=True)`` with the sparse backward.

    Args:
        features: (N, C, H, W) feature map.
        rois: (K, 5) boxes as ``(image index, x1, y1, x2, y2)`` in input pixels.
        output_size: pooled (height, width).
        spatial_scale: feature size over input size.
        sampling_ratio: samples per bin along each axis; 0 picks ``ceil(roi size / bins)``.
    """
    return _ROIAlign.apply(features, rois, _pair(output_size), spatial_scale, sampling_ratio)


class SparseBackwardROIAlign(ROIAlign):
    """detectron2's ``ROIAlign`` (``aligned=True``) with :func:`roi_align`'s backward."""

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:
        assert rois.dim() == 2 and rois.size(1) == 5
        return roi_align(
            input, rois.to(input.dtype), self.output_size, self.spatial_scale, self.sampling_ratio
        )


def use_sparse_backward(model: nn.Module) -> None:
    """Swaps every aligned ``ROIAlign`` in the model's ``ROIPooler``s for the sparse-backward one.

    ROIAlign has no parameters, so the optimizer, the checkpoints and the served model are
    unaffected.
    """
    for pooler in model.modules():
        if not isinstance(pooler, ROIPooler):
            continue
        for level, align in enumerate(pooler.level_poolers):
            if type(align) is ROIAlign and align.aligned:
                pooler.level_poolers[level] = SparseBackwardROIAlign(
                    align.output_size, align.spatial_scale, align.sampling_ratio, aligned=True
                )
