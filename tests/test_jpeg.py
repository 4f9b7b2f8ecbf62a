"""The JPEG header check on crafted bytes: what passes to the decoder and what is refused, why."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pipelines.jpeg import (
    CorruptJpegError,
    ImageTooLargeError,
    JpegInfo,
    NotJpegError,
    TruncatedJpegError,
    check_jpeg,
    inspect_jpeg,
)
from tests.bad_inputs import with_frame_size
from tests.support import PHOTO, encode_jpeg

MAX_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 120_000_000


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    image = Image.open(PHOTO)
    image.load()
    return image.resize((64, 48))


def segment(marker: int, payload: bytes) -> bytes:
    """One marker segment: 0xFF, the marker, the big-endian length (itself included), payload."""
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def scan_start(jpeg: bytes) -> int:
    """Offset of the first byte after the first start-of-scan header."""
    sos = jpeg.index(b"\xff\xda")
    return sos + 2 + int.from_bytes(jpeg[sos + 2 : sos + 4], "big")


def other_format(image: Image.Image, format_: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format_)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("mode", "options", "components", "progressive"),
    [
        ("RGB", {}, 3, False),
        ("RGB", {"progressive": True}, 3, True),
        ("L", {}, 1, False),
        ("CMYK", {}, 4, False),
    ],
)
def test_header_describes_the_image(
    photo: Image.Image, mode: str, options: dict[str, object], components: int, progressive: bool
) -> None:
    info = inspect_jpeg(encode_jpeg(photo.convert(mode), **options))
    assert info == JpegInfo(
        width=64, height=48, components=components, progressive=progressive, complete=True
    )


def test_bytes_after_the_end_marker_are_accepted(photo: Image.Image) -> None:
    # Phones append previews and depth maps after the image; PIL and libjpeg ignore them.
    jpeg = encode_jpeg(photo)
    assert check_jpeg(jpeg + b"\x00junk" * 50, MAX_BYTES, MAX_PIXELS) == inspect_jpeg(jpeg)


def test_fill_bytes_before_a_marker_are_allowed(photo: Image.Image) -> None:
    jpeg = encode_jpeg(photo)
    padded = jpeg[:2] + b"\xff\xff\xff" + jpeg[2:]
    Image.open(io.BytesIO(padded)).load()  # detectron2's reader opens it
    assert inspect_jpeg(padded) == inspect_jpeg(jpeg)


def test_stray_bytes_between_segments_are_refused(photo: Image.Image) -> None:
    jpeg = encode_jpeg(photo)
    sof = jpeg.index(b"\xff\xc0")
    stray = jpeg[:sof] + b"\x00\x00" + jpeg[sof:]
    # PIL skips them, DALI's JPEG parser does not ("Invalid marker"): say where they are.
    with pytest.raises(CorruptJpegError, match=f"no marker at byte {sof} of the header"):
        inspect_jpeg(stray)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty input: no bytes were sent"),
        (b"hello, this is text\n", "not a JPEG (looks like text)"),
        ("caf\u00e9 \u2013 na\u00efve".encode(), "not a JPEG (looks like text)"),
        (np.random.default_rng(0).bytes(500), "not a JPEG (no JPEG start-of-image marker)"),
        (b"\x00\x00\x00\x18ftypheic" + bytes(40), "not a JPEG (looks like HEIC)"),
        (b"\x00\x00\x00\x1cftypavif" + bytes(40), "not a JPEG (looks like AVIF)"),
        (b"\xff", "not a JPEG (no JPEG start-of-image marker)"),
    ],
)
def test_not_a_jpeg(data: bytes, message: str) -> None:
    with pytest.raises(NotJpegError) as error:
        inspect_jpeg(data)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("format_", "name"),
    [("PNG", "PNG"), ("GIF", "GIF"), ("WEBP", "WebP"), ("BMP", "BMP"), ("TIFF", "TIFF")],
)
def test_other_image_formats_are_named(photo: Image.Image, format_: str, name: str) -> None:
    with pytest.raises(NotJpegError, match=rf"^not a JPEG \(looks like {name}\)$"):
        inspect_jpeg(other_format(photo, format_))


def test_cut_anywhere_in_the_header_is_truncated(photo: Image.Image) -> None:
    jpeg = encode_jpeg(photo)
    for length in range(2, scan_start(jpeg)):
        with pytest.raises(TruncatedJpegError, match="data ends inside the header"):
            inspect_jpeg(jpeg[:length])


def test_cut_in_the_image_data_is_truncated(photo: Image.Image) -> None:
    jpeg = encode_jpeg(photo, progressive=True)
    start = scan_start(jpeg)
    for length in (start, start + 1, (start + len(jpeg)) // 2, len(jpeg) - 1):
        assert not inspect_jpeg(jpeg[:length]).complete
        with pytest.raises(TruncatedJpegError, match="before the end-of-image marker"):
            check_jpeg(jpeg[:length], MAX_BYTES, MAX_PIXELS)


def test_end_marker_inside_a_header_segment_does_not_count(photo: Image.Image) -> None:
    # An EXIF thumbnail is a whole JPEG, end marker included, inside APP1 before the scan.
    jpeg = encode_jpeg(photo)
    thumbnail = encode_jpeg(photo.resize((8, 6)))
    with_thumbnail = jpeg[:2] + segment(0xE1, b"Exif\x00\x00" + thumbnail) + jpeg[2:]
    assert inspect_jpeg(with_thumbnail).complete
    with pytest.raises(TruncatedJpegError):
        check_jpeg(with_thumbnail[:-100], MAX_BYTES, MAX_PIXELS)


def test_decompression_bomb_is_refused_from_its_header(photo: Image.Image) -> None:
    bomb = with_frame_size(encode_jpeg(photo), 65000, 65000)
    assert len(bomb) < 4096
    with pytest.raises(ImageTooLargeError) as error:
        check_jpeg(bomb, MAX_BYTES, MAX_PIXELS)
    assert str(error.value) == "image is 65000x65000, above the limit of 120000000 pixels"


def test_bomb_cut_short_is_still_reported_as_too_large(photo: Image.Image) -> None:
    bomb = with_frame_size(encode_jpeg(photo), 65000, 65000)
    with pytest.raises(ImageTooLargeError):
        check_jpeg(bomb[: scan_start(bomb) + 10], MAX_BYTES, MAX_PIXELS)


def test_pixel_limit_is_inclusive(photo: Image.Image) -> None:
    jpeg = with_frame_size(encode_jpeg(photo), 12000, 10000)
    assert check_jpeg(jpeg, MAX_BYTES, MAX_PIXELS).width == 12000
    with pytest.raises(ImageTooLargeError, match="image is 12000x10000, above the limit"):
        check_jpeg(jpeg, MAX_BYTES, MAX_PIXELS - 1)


def test_byte_limit(photo: Image.Image) -> None:
    jpeg = encode_jpeg(photo)
    assert check_jpeg(jpeg, len(jpeg), MAX_PIXELS).height == 48
    with pytest.raises(ImageTooLargeError) as error:
        check_jpeg(jpeg, len(jpeg) - 1, MAX_PIXELS)
    assert (
        str(error.value) == f"input is {len(jpeg)} bytes, above the limit of {len(jpeg) - 1} bytes"
    )


def test_malformed_headers(photo: Image.Image) -> None:
    jpeg = encode_jpeg(photo)
    sof = jpeg.index(b"\xff\xc0")
    sos = jpeg.index(b"\xff\xda")
    cases = {
        "marker segment of length 1": jpeg[:2] + b"\xff\xe0\x00\x01" + jpeg[2:],
        "image data before any frame header": jpeg[:sof] + jpeg[sos:],
        "end-of-image marker before any image data": jpeg[:sof] + b"\xff\xd9",
        "size of 0x48": with_frame_size(jpeg, 0, 48),
        "size of 64x0": with_frame_size(jpeg, 64, 0),
        "2 color components": jpeg[: sof + 9] + b"\x02" + jpeg[sof + 10 :],
        "frame header too short": jpeg[:sof] + segment(0xC0, b"\x08\x00\x30") + jpeg[sos:],
    }
    for message, data in cases.items():
        with pytest.raises(CorruptJpegError, match=message):
            inspect_jpeg(data)
