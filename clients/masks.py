"""Reads the compact masks of the ``pointer`` model back into full-image masks.

The server sends each instance's mask cropped to its box: ``MASK_RECTS`` (``int32 [N, 4]``,
``x, y, width, height`` in original image pixels) and ``MASKS`` (the crops' bytes concatenated,
row-major, 1 inside). Any client can do the same in a few lines: walk the rectangles, take
``width * height`` bytes for each.
"""

from __future__ import annotations

import numpy as np

__all__ = ["paste_masks"]


def paste_masks(mask_rects: np.ndarray, masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Full-image boolean masks from the cropped form.

    Args:
        mask_rects: ``int32 [N, 4]``, ``x, y, width, height`` of each crop.
        masks: ``uint8 [sum(width * height)]``, the crops concatenated.
        height: original image height.
        width: original image width.

    Returns:
        ``bool [N, height, width]``.

    Raises:
        ValueError: the byte count does not match the rectangles.
    """
    areas = mask_rects[:, 2].astype(np.int64) * mask_rects[:, 3]
    if int(areas.sum()) != masks.size:
        raise ValueError(f"MASKS has {masks.size} bytes, MASK_RECTS describe {int(areas.sum())}")
    full = np.zeros((len(mask_rects), height, width), dtype=bool)
    offsets = np.concatenate([[0], np.cumsum(areas)])
    for i, (x, y, w, h) in enumerate(mask_rects):
        crop = masks[offsets[i] : offsets[i + 1]].reshape(h, w)
        full[i, y : y + h, x : x + w] = crop.astype(bool)
    return full
