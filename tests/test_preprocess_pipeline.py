"""The DALI preprocessing pipeline, in process, against detectron2's own preprocessing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from detectron2.config import get_cfg
from detectron2.data import transforms as T

from pipelines.preprocess import DecodeError, PreprocessConfig, Preprocessor, resized_shape
from tests.support import as_array, assert_close_to_reference, reference_preprocess

CONFIG = PreprocessConfig()


@pytest.fixture(scope="module")
def preprocessor() -> Preprocessor:
    return Preprocessor("JPEG", CONFIG, max_batch_size=8)


def test_defaults_match_detectron2_test_time_input() -> None:
    cfg = get_cfg()
    assert CONFIG.shortest_edge == cfg.INPUT.MIN_SIZE_TEST
    assert CONFIG.max_size == cfg.INPUT.MAX_SIZE_TEST
    assert CONFIG.channel_order == cfg.INPUT.FORMAT


@pytest.mark.parametrize(("shortest_edge", "max_size"), [(800, 1333), (640, 1000), (1024, 1024)])
def test_resized_shape_matches_resize_shortest_edge(shortest_edge: int, max_size: int) -> None:
    sides = [1, 2, 3, 47, 48, 300, 427, 512, 599, 600, 640, 801, 1333, 1599, 4000, 9000]
    for height, width in itertools.product(sides, sides):
        expected = T.ResizeShortestEdge.get_output_shape(height, width, shortest_edge, max_size)
        assert resized_shape(height, width, shortest_edge, max_size) == expected, (height, width)


def test_batch_matches_reference(preprocessor: Preprocessor, jpegs: dict[str, bytes]) -> None:
    names = list(jpegs)
    results = preprocessor([as_array(jpegs[name]) for name in names])
    for name, result in zip(names, results, strict=True):
        assert not isinstance(result, DecodeError), f"{name}: {result}"
        image, original_size = result
        reference_image, reference_size = reference_preprocess(jpegs[name], CONFIG)
        assert original_size.dtype == np.int32
        np.testing.assert_array_equal(original_size, reference_size, err_msg=name)
        assert image.shape[:2] == resized_shape(
            *reference_size, CONFIG.shortest_edge, CONFIG.max_size
        )
        assert_close_to_reference(image, reference_image)


def test_channel_order_follows_config(jpegs: dict[str, bytes]) -> None:
    jpeg = jpegs["landscape_640x427"]
    rgb = Preprocessor("JPEG", PreprocessConfig(channel_order="RGB"), max_batch_size=1)
    [(image, _)] = rgb([as_array(jpeg)])
    reference, _ = reference_preprocess(jpeg, PreprocessConfig(channel_order="RGB"))
    assert_close_to_reference(image, reference)
    bgr_reference, _ = reference_preprocess(jpeg, CONFIG)
    assert np.abs(image.astype(int) - bgr_reference.astype(int)).mean() > 5, "channels not swapped"


def test_other_resize_settings(jpegs: dict[str, bytes]) -> None:
    config = PreprocessConfig(shortest_edge=512, max_size=700)
    small = Preprocessor("JPEG", config, max_batch_size=2)
    for name in ("landscape_640x427", "panorama_1600x400"):
        [(image, _)] = small([as_array(jpegs[name])])
        reference, _ = reference_preprocess(jpegs[name], config)
        assert_close_to_reference(image, reference)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty input"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "not a JPEG (looks like PNG)"),
        (b"GIF89a" + bytes(100), "not a JPEG (looks like GIF)"),
        (b"hello, this is text", "not a JPEG"),
    ],
)
def test_non_jpeg_gets_its_own_error(
    preprocessor: Preprocessor, jpegs: dict[str, bytes], data: bytes, message: str
) -> None:
    good = as_array(jpegs["landscape_640x427"])
    first, bad, last = preprocessor([good, np.frombuffer(data, np.uint8), good])
    assert isinstance(bad, DecodeError)
    assert message in str(bad)
    for result in (first, last):
        assert not isinstance(result, DecodeError)
        assert result[0].shape == (800, 1199, 3)


def test_corrupt_jpeg_fails_alone_and_pipeline_recovers(
    preprocessor: Preprocessor, jpegs: dict[str, bytes]
) -> None:
    good = as_array(jpegs["landscape_640x427"])
    truncated = good[: len(good) // 3]
    # A header that parses, with a Huffman table libjpeg-turbo rejects: it fails inside DALI.
    dht = int(np.flatnonzero((good[:-1] == 0xFF) & (good[1:] == 0xC4))[0])
    bad_table = good.copy()
    bad_table[dht + 5 : dht + 21] = [0] * 15 + [200]
    results = preprocessor([good, truncated, bad_table, as_array(jpegs["tiny_64x48"])])
    assert [isinstance(r, DecodeError) for r in results] == [False, True, True, False]
    assert "truncated JPEG" in str(results[1])
    assert "cannot decode JPEG" in str(results[2])
    # The next batch, on the rebuilt pipeline, is served normally.
    [(image, size)] = preprocessor([good])
    assert image.shape == (800, 1199, 3)
    assert size.tolist() == [427, 640]


def test_batch_larger_than_max_is_refused(preprocessor: Preprocessor) -> None:
    with pytest.raises(ValueError, match="exceeds max_batch_size"):
        preprocessor([np.zeros(4, np.uint8)] * 9)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shortest_edge": 0},
        {"max_size": -1},
        {"channel_order": "YUV"},
        {"max_bytes": 0},
        {"max_pixels": -1},
    ],
)
def test_config_rejects_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PreprocessConfig(**kwargs)
