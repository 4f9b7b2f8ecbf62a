"""ROIAlign on a CPU as a weighted gather: every pooled bin is a weighted sum of feature rows.

torchvision's CPU ``roi_align`` runs one thread over ROIs and channels with scalar arithmetic;
after the convolutions it is the largest cost of a CPU forward (docs/performance.md). Yet for
``aligned=True`` each output bin is a fixed weighted sum of feature-map positions: its sample
points' four bilinear neighbours, each sample weighted ``1 / samples``. Laid out channels-last,
every position is a contiguous row of channels, so a whole level pools in one
``embedding_bag(mode="sum", per_sample_weights=...)``: vectorised over channels, parallel over
bins, deterministic (each bin is summed in one thread in a fixed order).

:func:`sample_table` computes each bin's positions and weights with torchvision's own rules
(adaptive sampling ``ceil(roi size / bins)``, samples outside ``[-1, size]`` dropped, clamping at
the edges), so the pooled values equal torchvision's up to the order of float additions.
Autograd differentiates the gather with respect to the features (``embedding_bag``'s own
backward), which replaces torchvision's single-threaded backward in CPU training too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from detectron2.layers import ROIAlign
from detectron2.modeling.poolers import ROIPooler
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

__all__ = ["GatherROIAlign", "roi_align", "sample_table", "use_gather_roi_align"]


def _bilinear(point: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """torchvision's bilinear rule along one axis: ``(low, high, low weight, high weight)``.

    Points below 0 read the first row, points past the last row read the last (the caller
    drops points outside ``[-1, size]``).
    """
    point = point.clamp(min=0.0)
    low = point.floor().long()
    last = low >= size - 1
    low = torch.where(last, torch.full_like(low, size - 1), low)
    high = torch.where(last, low, low + 1)
    fraction = torch.where(last, torch.zeros_like(point), point - low)
    return low, high, 1.0 - fraction, fraction


def sample_table(
    rois: Tensor,
    shape: torch.Size,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Which feature positions each pooled bin reads, and with what weights.

    Bins are in output order (ROI, bin row, bin column), each bin's entries in torchvision's
    sampling order (sample row, sample column; then the four neighbours), each entry the
    neighbour's bilinear weight over the bin's sample count.

    Args:
        rois: (K, 5) boxes as ``(image index, x1, y1, x2, y2)`` in input pixels.
        shape: the (N, C, H, W) shape of the feature map.
        output_size: pooled (height, width).
        spatial_scale: feature size over input size.
        sampling_ratio: samples per bin along each axis; 0 picks ``ceil(roi size / bins)``.

    Returns:
        ``(positions, weights, counts)``: positions (E,) index the feature map flattened as
        (N * H * W), weights (E,) go with them, and counts (K * PH * PW,) say how many
        consecutive entries belong to each bin (0 for a box turned inside out).
    """
    _, _, height, width = shape
    bins_h, bins_w = output_size
    bins = bins_h * bins_w
    boxes = rois[:, 1:].float() * spatial_scale - 0.5
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    roi_h, roi_w = y2 - y1, x2 - x1
    if sampling_ratio > 0:
        grid_h = torch.full_like(roi_h, sampling_ratio, dtype=torch.long)
        grid_w = grid_h
    else:
        # Not positive for a box turned inside out: torchvision's loops then do not run.
        grid_h = torch.ceil(roi_h / bins_h).long().clamp(min=0)
        grid_w = torch.ceil(roi_w / bins_w).long().clamp(min=0)
    per_bin = grid_h * grid_w
    per_roi = bins * per_bin
    # One element per sample point, ROI by ROI, bin by bin. Each ROI's values reach its samples
    # in two index operations, which cost more than the arithmetic on what they gather.
    roi = torch.repeat_interleave(torch.arange(len(rois), device=rois.device), per_roi)
    image = rois[:, 0].long() * (height * width)
    first = per_roi.cumsum(0) - per_roi
    first, samples, grid_rows, grid_columns, image = torch.stack(
        [first, per_bin, grid_h, grid_w, image], dim=1
    )[roi].unbind(dim=1)
    y1, x1, bin_h, bin_w = torch.stack([y1, x1, roi_h / bins_h, roi_w / bins_w], dim=1)[roi].unbind(
        dim=1
    )
    within_roi = torch.arange(len(roi), device=rois.device) - first
    bin_index, sample = within_roi // samples, within_roi % samples
    bin_y, bin_x = bin_index // bins_w, bin_index % bins_w
    sample_y, sample_x = sample // grid_columns, sample % grid_columns
    # Spelled as torchvision's kernel does, so that floor() sees the same floats.
    y = y1 + bin_y * bin_h + (sample_y + 0.5) * bin_h / grid_rows
    x = x1 + bin_x * bin_w + (sample_x + 0.5) * bin_w / grid_columns
    inside = (y >= -1.0) & (y <= height) & (x >= -1.0) & (x <= width)
    y_low, y_high, y_low_weight, y_high_weight = _bilinear(y, height)
    x_low, x_high, x_low_weight, x_high_weight = _bilinear(x, width)
    positions = torch.stack(
        [
            image + y_low * width + x_low,
            image + y_low * width + x_high,
            image + y_high * width + x_low,
            image + y_high * width + x_high,
        ],
        dim=1,
    )
    weights = (
        torch.stack(
            [
                y_low_weight * x_low_weight,
                y_low_weight * x_high_weight,
                y_high_weight * x_low_weight,
                y_high_weight * x_high_weight,
            ],
            dim=1,
        )
        * (inside / samples)[:, None]
    )
    return positions.reshape(-1), weights.reshape(-1), 4 * per_bin.repeat_interleave(bins)


def _pool(
    features: Tensor,
    table: tuple[Tensor, Tensor, Tensor],
    output_size: tuple[int, int],
) -> Tensor:
    """Pools (N, C, H, W) ``features`` by a :func:`sample_table`: (K, C, PH, PW), float32.

    The result is laid out channels-last (what the gather produces); its values do not depend
    on the layout.
    """
    channels = features.shape[1]
    rows = features.float().permute(0, 2, 3, 1).reshape(-1, channels)
    if not rows.is_contiguous():  # NCHW in: one copy to channels-last rows
        rows = rows.contiguous()
    positions, weights, counts = table
    offsets = torch.cumsum(counts, 0) - counts
    pooled = F.embedding_bag(positions, rows, offsets, mode="sum", per_sample_weights=weights)
    return pooled.view(-1, *output_size, channels).permute(0, 3, 1, 2)


def roi_align(
    features: Tensor,
    rois: Tensor,
    output_size: int | tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
) -> Tensor:
    """torchvision's ``roi_align(..., aligned=True)`` as a weighted gather, differentiable with
    respect to ``features``.

    Args:
        features: (N, C, H, W) feature map, NCHW or channels-last.
        rois: (K, 5) boxes as ``(image index, x1, y1, x2, y2)`` in input pixels.
        output_size: pooled (height, width).
        spatial_scale: feature size over input size.
        sampling_ratio: samples per bin along each axis; 0 picks ``ceil(roi size / bins)``.

    Returns:
        (K, C, PH, PW) in the features' dtype.
    """
    size = _pair(output_size)
    table = sample_table(rois, features.shape, size, spatial_scale, sampling_ratio)
    return _pool(features, table, size).to(features.dtype)


class GatherROIAlign(ROIAlign):
    """detectron2's ``ROIAlign`` (``aligned=True``) computed by :func:`roi_align`: the served
    CPU detectors and CPU training use it."""

    def forward(self, input: Tensor, rois: Tensor) -> Tensor:
        assert rois.dim() == 2 and rois.size(1) == 5
        # As detectron2's module does (in bfloat16 training the boxes are rounded to it).
        rois = rois.to(input.dtype)
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio)


def use_gather_roi_align(model: nn.Module) -> None:
    """Swaps every aligned ``ROIAlign`` in the model's ``ROIPooler``s for :class:`GatherROIAlign`.

    ROIAlign has no parameters: the weights and the model's state dict are unchanged.
    """
    for pooler in model.modules():
        if not isinstance(pooler, ROIPooler):
            continue
        for level, align in enumerate(pooler.level_poolers):
            if type(align) is ROIAlign and align.aligned:
                pooler.level_poolers[level] = GatherROIAlign(
                    align.output_size, align.spatial_scale, align.sampling_ratio, aligned=True
                )
