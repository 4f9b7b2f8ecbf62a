"""Odd but valid JPEGs are answered as detectron2 would; bad ones get their own clear error.

Every image here is made with PIL from the sample photo. The reference is detectron2's own input
path: ``read_image`` (which applies the EXIF orientation) and ``ResizeShortestEdge``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from detectron2.data import transforms as T
from detectron2.data.detection_utils import read_image
from PIL import Image

from pipelines.jpeg import DecodeError
from pipelines.preprocess import PreprocessConfig, Preprocessor
from tests.bad_inputs import BAD_INPUTS
from tests.support import (
    PHOTO,
    as_array,
    assert_close_to_reference,
    encode_jpeg,
    reference_preprocess,
)

CONFIG = PreprocessConfig()
RESIZE = CONFIG.resize("IMAGE")

# libjpeg-turbo (DALI) and PIL turn CMYK into RGB with slightly different arithmetic: after the
# resize, still at most 2 levels apart, but on more pixels (measured mean 0.33 for CMYK, 0.37 for
# YCCK, against 0.00-0.07 for the other JPEGs).
CMYK_MAX_MEAN_DIFF = 0.5

# EXIF orientation -> the transpose that stores an upright image so that a viewer, applying the
# orientation, shows it upright again.
STORED_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@pytest.fixture(scope="module")
def preprocessor() -> Preprocessor:
    return Preprocessor("JPEG", CONFIG, max_batch_size=8)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    image = Image.open(PHOTO)
    image.load()
    return image.resize((640, 427))


@pytest.fixture(scope="module")
def good(photo: Image.Image) -> bytes:
    return encode_jpeg(photo)


def cmyk(photo: Image.Image) -> Image.Image:
    """The photo in CMYK with a real black channel (PIL's own conversion leaves K at 0)."""
    rgb = np.asarray(photo, dtype=np.float64)
    black = 255 - rgb.max(axis=2)
    cmy = (255 - rgb - black[..., None]) / np.maximum(255 - black, 1)[..., None] * 255
    return Image.fromarray(np.dstack([cmy, black]).round().astype(np.uint8), mode="CMYK")


def ycck_jpeg(photo: Image.Image) -> bytes:
    """An Adobe YCCK JPEG, which PIL cannot write: CMY stored as YCbCr, K as is, transform 2.

    A YCCK decoder turns the first three channels from YCbCr to RGB and inverts them into CMY.
    PIL writes CMYK inverted (Adobe style), so the planes handed to it are the inverted YCCK.
    """
    planes = np.asarray(cmyk(photo))
    ycc = np.asarray(Image.fromarray(planes[..., :3], mode="RGB").convert("YCbCr"))
    stored = np.dstack([255 - ycc, planes[..., 3]])
    data = bytearray(encode_jpeg(Image.fromarray(stored, mode="CMYK")))
    transform = data.index(b"Adobe") + 11  # "Adobe", version, flags0, flags1, then transform
    assert data[transform] == 0, "PIL wrote an Adobe CMYK marker"
    data[transform] = 2
    return bytes(data)


ODD_BUT_VALID: dict[str, Callable[[Image.Image], bytes]] = {
    "grayscale": lambda photo: encode_jpeg(photo.convert("L")),
    "progressive": lambda photo: encode_jpeg(photo, progressive=True),
    "restart_every_4_blocks": lambda photo: encode_jpeg(photo, restart_marker_blocks=4),
    "restart_every_row": lambda photo: encode_jpeg(photo, restart_marker_rows=1),
    "subsampling_444": lambda photo: encode_jpeg(photo, subsampling=0),
    "subsampling_422": lambda photo: encode_jpeg(photo, subsampling=1),
    "subsampling_420": lambda photo: encode_jpeg(photo, subsampling=2),
    "progressive_444": lambda photo: encode_jpeg(photo, progressive=True, subsampling=0),
}


def test_restart_marker_images_carry_restart_markers(photo: Image.Image) -> None:
    for name in ("restart_every_4_blocks", "restart_every_row"):
        jpeg = ODD_BUT_VALID[name](photo)
        assert b"\xff\xdd" in jpeg, f"{name}: no DRI segment"
        assert b"\xff\xd0" in jpeg, f"{name}: no RST0 marker in the scan"


@pytest.mark.parametrize("name", sorted(ODD_BUT_VALID))
def test_odd_but_valid_jpeg_matches_detectron2(
    preprocessor: Preprocessor, photo: Image.Image, name: str
) -> None:
    jpeg = ODD_BUT_VALID[name](photo)
    [result] = preprocessor([as_array(jpeg)])
    assert not isinstance(result, DecodeError), result
    image, original_size = result.images["IMAGE"], result.original_size
    reference, reference_size = reference_preprocess(jpeg, RESIZE)
    assert original_size.tolist() == reference_size.tolist() == [427, 640]
    assert_close_to_reference(image, reference)


@pytest.mark.parametrize("make", [lambda photo: encode_jpeg(cmyk(photo)), ycck_jpeg])
def test_cmyk_and_ycck_match_detectron2(
    preprocessor: Preprocessor, photo: Image.Image, make: Callable[[Image.Image], bytes]
) -> None:
    jpeg = make(photo)
    assert b"Adobe" in jpeg
    [result] = preprocessor([as_array(jpeg)])
    assert not isinstance(result, DecodeError), result
    image, original_size = result.images["IMAGE"], result.original_size
    reference, reference_size = reference_preprocess(jpeg, RESIZE)
    assert original_size.tolist() == reference_size.tolist()
    assert_close_to_reference(image, reference, max_mean_diff=CMYK_MAX_MEAN_DIFF)


@pytest.mark.parametrize("orientation", sorted(STORED_FOR_ORIENTATION))
def test_exif_orientation_is_applied_as_read_image_does(
    preprocessor: Preprocessor, photo: Image.Image, orientation: int, tmp_path: Path
) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    jpeg = encode_jpeg(photo.transpose(STORED_FOR_ORIENTATION[orientation]), exif=exif)
    path = tmp_path / "phone.jpg"
    path.write_bytes(jpeg)
    upright = read_image(str(path), format=RESIZE.channel_order)
    assert upright.shape[:2] == (427, 640), "read_image shows the photo upright"
    resize = T.ResizeShortestEdge(RESIZE.shortest_edge, RESIZE.max_size)
    reference = resize.get_transform(upright).apply_image(upright)
    [result] = preprocessor([as_array(jpeg)])
    assert not isinstance(result, DecodeError), result
    image, original_size = result.images["IMAGE"], result.original_size
    assert original_size.tolist() == [427, 640], "ORIGINAL_SIZE is the size a viewer shows"
    assert_close_to_reference(image, reference)


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (1, 1),
        (3, 2),
        (2, 3),
        (4000, 300),
        (300, 4000),
        pytest.param(12000, 9000, marks=pytest.mark.slow),
    ],
)
def test_extreme_sizes_resize_as_detectron2(
    preprocessor: Preprocessor, photo: Image.Image, width: int, height: int
) -> None:
    jpeg = encode_jpeg(photo.resize((width, height)))
    [result] = preprocessor([as_array(jpeg)])
    assert not isinstance(result, DecodeError), result
    image, original_size = result.images["IMAGE"], result.original_size
    reference, reference_size = reference_preprocess(jpeg, RESIZE)
    assert original_size.tolist() == reference_size.tolist() == [height, width]
    assert_close_to_reference(image, reference)


def test_bytes_after_the_end_marker_are_ignored(preprocessor: Preprocessor, good: bytes) -> None:
    plain, with_junk = preprocessor([as_array(good), as_array(good + b"trailing junk" * 100)])
    assert not isinstance(with_junk, DecodeError), with_junk
    np.testing.assert_array_equal(with_junk.images["IMAGE"], plain.images["IMAGE"])
    np.testing.assert_array_equal(with_junk.original_size, plain.original_size)


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_fails_alone_with_a_clear_error(
    preprocessor: Preprocessor, photo: Image.Image, good: bytes, name: str
) -> None:
    make, message = BAD_INPUTS[name]
    tiny = encode_jpeg(photo.resize((3, 2)))
    first, bad, last = preprocessor([as_array(good), as_array(make(photo, good)), as_array(tiny)])
    assert isinstance(bad, DecodeError)
    assert str(bad) == message
    for jpeg, result in ((good, first), (tiny, last)):
        assert not isinstance(result, DecodeError), result
        reference, _ = reference_preprocess(jpeg, RESIZE)
        assert_close_to_reference(result.images["IMAGE"], reference)


def test_every_kind_of_bad_input_in_one_batch(
    preprocessor: Preprocessor, photo: Image.Image, good: bytes
) -> None:
    names = sorted(BAD_INPUTS)
    reference, _ = reference_preprocess(good, RESIZE)
    for start in range(0, len(names), 6):
        chunk = names[start : start + 6]
        batch = [good, *(BAD_INPUTS[name][0](photo, good) for name in chunk), good]
        results = preprocessor([as_array(data) for data in batch])
        for result in (results[0], results[-1]):
            assert not isinstance(result, DecodeError), result
            assert_close_to_reference(result.images["IMAGE"], reference)
        assert [str(r) for r in results[1:-1]] == [BAD_INPUTS[name][1] for name in chunk]


def test_limits_come_from_the_config(photo: Image.Image, good: bytes) -> None:
    exact = Preprocessor(
        "JPEG", PreprocessConfig(max_bytes=len(good), max_pixels=640 * 427), max_batch_size=1
    )
    [result] = exact([as_array(good)])
    assert not isinstance(result, DecodeError), result

    fewer_pixels = Preprocessor("JPEG", PreprocessConfig(max_pixels=640 * 427 - 1), 1)
    [result] = fewer_pixels([as_array(good)])
    assert str(result) == "image is 640x427, above the limit of 273279 pixels"

    fewer_bytes = Preprocessor("JPEG", PreprocessConfig(max_bytes=len(good) - 1), 1)
    [result] = fewer_bytes([as_array(good)])
    assert str(result) == f"input is {len(good)} bytes, above the limit of {len(good) - 1} bytes"
