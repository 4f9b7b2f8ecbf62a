"""Bad inputs, made from a good photo, and the error each must get: the one catalogue that the
in-process, server and soak tests share."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image


def other_format(photo: Image.Image, format_: str) -> bytes:
    buffer = io.BytesIO()
    photo.save(buffer, format_)
    return buffer.getvalue()


def with_frame_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The same file with its baseline start-of-frame header claiming another size."""
    sof = jpeg.index(b"\xff\xc0")
    return jpeg[: sof + 5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + jpeg[sof + 9 :]


def bad_huffman_table(jpeg: bytes) -> bytes:
    """A header that parses, with a Huffman table that libjpeg-turbo rejects when decoding."""
    dht = jpeg.index(b"\xff\xc4")
    return jpeg[: dht + 5] + bytes([0] * 15 + [200]) + jpeg[dht + 21 :]


# name -> (bad input made from the photo and its good JPEG, the error the request gets)
BAD_INPUTS: dict[str, tuple[Callable[[Image.Image, bytes], bytes], str]] = {
    "empty": (lambda photo, good: b"", "empty input: no bytes were sent"),
    "text": (lambda photo, good: b"GET / HTTP/1.1\r\n", "not a JPEG (looks like text)"),
    "random": (
        lambda photo, good: np.random.default_rng(0).bytes(4096),
        "not a JPEG (no JPEG start-of-image marker)",
    ),
    "png": (lambda photo, good: other_format(photo, "PNG"), "not a JPEG (looks like PNG)"),
    "gif": (lambda photo, good: other_format(photo, "GIF"), "not a JPEG (looks like GIF)"),
    "webp": (lambda photo, good: other_format(photo, "WEBP"), "not a JPEG (looks like WebP)"),
    "bmp": (lambda photo, good: other_format(photo, "BMP"), "not a JPEG (looks like BMP)"),
    "tiff": (lambda photo, good: other_format(photo, "TIFF"), "not a JPEG (looks like TIFF)"),
    "cut_in_header": (
        lambda photo, good: good[:300],
        "truncated JPEG: the data ends inside the header",
    ),
    "cut_in_scan": (
        lambda photo, good: good[: len(good) // 2],
        "truncated JPEG: the image data ends before the end-of-image marker",
    ),
    "no_end_marker": (
        lambda photo, good: good[:-2],
        "truncated JPEG: the image data ends before the end-of-image marker",
    ),
    # Without the header check DALI decodes it: 1.2 GB, the missing data filled in grey.
    "bomb": (
        lambda photo, good: with_frame_size(good, 20000, 20000),
        "image is 20000x20000, above the limit of 120000000 pixels",
    ),
    "stray_bytes_in_header": (
        lambda photo, good: good[:2] + b"\x00" + good[2:],
        "corrupt JPEG: no marker at byte 2 of the header",
    ),
    "bad_huffman_table": (
        lambda photo, good: bad_huffman_table(good),
        "cannot decode JPEG: corrupt data",
    ),
}


def bad_input(name: str, good: bytes) -> tuple[bytes, str]:
    """``(the bad input BAD_INPUTS[name] makes from the JPEG good, the error it must get)``."""
    photo = Image.open(io.BytesIO(good))
    photo.load()
    make, message = BAD_INPUTS[name]
    return make(photo, good), message
