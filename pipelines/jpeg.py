"""Checks one request's bytes from the JPEG header alone, before anything is decoded.

A batched DALI decode gives one error for the whole batch and says little about the cause.
Worse, it decodes whatever size the header claims, filling in missing data: a 2 KB file whose
header says 20000x20000 grew the decoding process by 2.3 GB here, and 65000x65000 asks for
12.7 GB. So each request's bytes are looked at here first, in plain Python and without
decoding: what the file is, how big the image is, whether the data reaches the end-of-image
marker. Only bytes that pass go to the decoder, on the CPU and the GPU path alike.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CorruptJpegError",
    "DecodeError",
    "ImageTooLargeError",
    "JpegInfo",
    "NotJpegError",
    "TruncatedJpegError",
    "check_jpeg",
    "inspect_jpeg",
    "sniff_image_format",
]

_SOI = b"\xff\xd8"
_EOI = b"\xff\xd9"
_SOS = 0xDA
# Start-of-frame markers SOF0-SOF15 carry the image size; 0xC4 (DHT), 0xC8 (JPG) and 0xCC
# (DAC) share the range but are not frames.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
# Markers that stand alone, without a length: TEM and RST0-RST7.
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})

# Magic numbers of formats a client may send by mistake, to name them in the error.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%PDF", "PDF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
)
# ISO base media files (HEIC from iPhones, AVIF) name their brand at offset 8.
_FTYP_BRANDS = {b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIF", b"avif": "AVIF"}


class DecodeError(ValueError):
    """The bytes of one request are not a decodable JPEG; the message says why."""


class NotJpegError(DecodeError):
    """Empty, or not a JPEG at all (another image format, text, random bytes)."""


class TruncatedJpegError(DecodeError):
    """A JPEG cut short: in its header, or in its image data before the end-of-image marker."""


class CorruptJpegError(DecodeError):
    """Starts like a JPEG, but its header is malformed or describes an unsupported image."""


class ImageTooLargeError(DecodeError):
    """More bytes or more pixels than the configured limits allow."""


@dataclass(frozen=True)
class JpegInfo:
    """What the header of a JPEG says, as stored (before any EXIF orientation).

    Attributes:
        width: samples per line, from the start-of-frame header.
        height: lines, from the start-of-frame header.
        components: 1 (grayscale), 3 (YCbCr or RGB) or 4 (CMYK or YCCK).
        progressive: whether the frame is progressive (SOF2, SOF6, SOF10, SOF14).
        complete: whether an end-of-image marker follows the image data; bytes after it
            (phones append previews and depth maps there) are allowed.
    """

    width: int
    height: int
    components: int
    progressive: bool
    complete: bool


def sniff_image_format(data: bytes) -> str | None:
    """Names the format of ``data`` if it is a known non-JPEG image, else ``None``."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(data[8:12])
    return None


def _looks_like_text(data: bytes) -> bool:
    # The sample may end inside a multi-byte character: allow up to 3 bytes cut off.
    for cut in range(4):
        try:
            text = data[: len(data) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return bool(text) and all(char.isprintable() or char in "\t\r\n" for char in text)
    return False


def _not_jpeg(data: bytes) -> NotJpegError:
    head = data[:64]
    kind = sniff_image_format(head) or ("text" if _looks_like_text(head) else None)
    if kind:
        return NotJpegError(f"not a JPEG (looks like {kind})")
    return NotJpegError("not a JPEG (no JPEG start-of-image marker)")


def inspect_jpeg(data: bytes) -> JpegInfo:
    """Reads the image size and layout from a JPEG's header, without decoding it.

    Walks the marker segments from the start-of-image marker to the first start-of-scan, reads
    the start-of-frame segment on the way, then looks for the end-of-image marker after the scan
    (inside entropy-coded data a 0xFF byte is always followed by 0x00 or a restart marker, so
    the first 0xFFD9 found there is the real one).

    Args:
        data: the encoded file.

    Returns:
        The header's description of the image.

    Raises:
        NotJpegError: ``data`` is empty or does not start with a JPEG start-of-image marker.
        TruncatedJpegError: ``data`` ends before the first scan's header is complete.
        CorruptJpegError: the header is malformed or describes no decodable image.
    """
    if not data:
        raise NotJpegError("empty input: no bytes were sent")
    if not data.startswith(_SOI):
        raise _not_jpeg(data)
    frame: tuple[int, int, int, bool] | None = None
    pos = len(_SOI)
    while True:
        # A marker may be preceded by any number of 0xFF fill bytes. Other bytes between
        # segments PIL would skip, but DALI's parser fails on them: refuse them here, clearly.
        while pos + 1 < len(data) and data[pos] == data[pos + 1] == 0xFF:
            pos += 1
        if pos + 1 >= len(data):
            raise TruncatedJpegError("truncated JPEG: the data ends inside the header")
        if data[pos] != 0xFF:
            raise CorruptJpegError(f"corrupt JPEG: no marker at byte {pos} of the header")
        marker = data[pos + 1]
        pos += 2
        if marker in _STANDALONE_MARKERS:
            continue
        if marker == 0xD9:
            raise CorruptJpegError("corrupt JPEG: end-of-image marker before any image data")
        if pos + 2 > len(data):
            raise TruncatedJpegError("truncated JPEG: the data ends inside the header")
        length = int.from_bytes(data[pos : pos + 2], "big")
        end = pos + length
        if length < 2:
            raise CorruptJpegError(f"corrupt JPEG: marker segment of length {length}")
        if end > len(data):
            raise TruncatedJpegError("truncated JPEG: the data ends inside the header")
        if marker in _SOF_MARKERS and frame is None:
            frame = _read_frame(data[pos + 2 : end], progressive=marker in _PROGRESSIVE_SOF)
        elif marker == _SOS:
            if frame is None:
                raise CorruptJpegError("corrupt JPEG: image data before any frame header")
            width, height, components, progressive = frame
            return JpegInfo(
                width=width,
                height=height,
                components=components,
                progressive=progressive,
                complete=data.find(_EOI, end) >= 0,
            )
        pos = end


def _read_frame(segment: bytes, progressive: bool) -> tuple[int, int, int, bool]:
    """(width, height, components, progressive) from a start-of-frame segment's payload."""
    if len(segment) < 6:
        raise CorruptJpegError("corrupt JPEG: frame header too short")
    height = int.from_bytes(segment[1:3], "big")
    width = int.from_bytes(segment[3:5], "big")
    components = segment[5]
    if len(segment) < 6 + 3 * components:
        raise CorruptJpegError("corrupt JPEG: frame header too short for its components")
    if width == 0 or height == 0:
        # Height 0 means "given later by a DNL marker", which libjpeg-turbo does not support.
        raise CorruptJpegError(f"corrupt JPEG: frame header gives a size of {width}x{height}")
    if components not in (1, 3, 4):
        raise CorruptJpegError(
            f"unsupported JPEG: {components} color components (1, 3 or 4 are supported)"
        )
    return width, height, components, progressive


def check_jpeg(data: bytes, max_bytes: int, max_pixels: int) -> JpegInfo:
    """Accepts one request's bytes for decoding, or says what is wrong with them.

    The checks run in this order, so that each file gets the most useful message: size in
    bytes, the header (:func:`inspect_jpeg`), pixels (a decompression bomb is usually also cut
    short, and "too large" is the better answer), then whether the image data is complete.

    Args:
        data: the encoded file.
        max_bytes: largest accepted file, in bytes.
        max_pixels: largest accepted image, width times height.

    Returns:
        The header's description of the image.

    Raises:
        DecodeError: one of its subclasses, with a message for the client.
    """
    if len(data) > max_bytes:
        raise ImageTooLargeError(
            f"input is {len(data)} bytes, above the limit of {max_bytes} bytes"
        )
    info = inspect_jpeg(data)
    if info.width * info.height > max_pixels:
        raise ImageTooLargeError(
            f"image is {info.width}x{info.height}, above the limit of {max_pixels} pixels"
        )
    if not info.complete:
        raise TruncatedJpegError(
            "truncated JPEG: the image data ends before the end-of-image marker"
        )
    return info
