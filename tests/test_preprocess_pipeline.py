"""The DALI preprocessing pipeline, in process, against detectron2's own preprocessing."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from detectron2.config import get_cfg
from detectron2.data import transforms as T
from PIL import Image

from pipelines.errors import is_out_of_memory
from pipelines.preprocess import (
    DecodeError,
    PreprocessConfig,
    Preprocessed,
    PreprocessFault,
    Preprocessor,
    Resize,
    resize_like_pil,
)
from tests.bad_inputs import bad_input
from tests.support import as_array, assert_close_to_reference, reference_preprocess

CONFIG = PreprocessConfig()
RESIZE = CONFIG.resize("IMAGE")
# Two detectors with their own input sizes and channel orders, fed from one decode.
TWO_DETECTORS = PreprocessConfig(
    images=(
        ("SMALL_IMAGE", Resize(320, 576, "BGR")),
        ("LARGE_RGB_IMAGE", Resize(512, 700, "RGB")),
    )
)


@pytest.fixture(scope="module")
def preprocessor() -> Preprocessor:
    return Preprocessor("JPEG", CONFIG, max_batch_size=8)


def image_of(result: Preprocessed | DecodeError, output: str = "IMAGE") -> np.ndarray:
    assert not isinstance(result, DecodeError), str(result)
    return result.images[output]


def test_defaults_match_detectron2_test_time_input() -> None:
    cfg = get_cfg()
    assert RESIZE.shortest_edge == cfg.INPUT.MIN_SIZE_TEST
    assert RESIZE.max_size == cfg.INPUT.MAX_SIZE_TEST
    assert RESIZE.channel_order == cfg.INPUT.FORMAT


@pytest.mark.parametrize(
    ("height", "width", "resize"),
    [
        (427, 640, Resize()),
        (427, 640, Resize(320, 576)),
        (1500, 900, Resize(384, 640)),
        (3, 7, Resize(16, 40)),
        (300, 4000, Resize()),
    ],
)
def test_cpu_resize_is_pils_to_one_level(height: int, width: int, resize: Resize) -> None:
    rng = np.random.default_rng(height + width)
    # Smooth content with edges, as photos have (pure noise would be averaged away).
    base = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(base).resize((width, height), Image.NEAREST))
    image = np.clip(image.astype(np.int16) + rng.integers(-20, 21, image.shape), 0, 255)
    image = image.astype(np.uint8)
    new_height, new_width = T.ResizeShortestEdge.get_output_shape(
        height, width, resize.shortest_edge, resize.max_size
    )
    reference = np.asarray(Image.fromarray(image).resize((new_width, new_height), Image.BILINEAR))
    resized = resize_like_pil(image, resize)
    assert resized.shape == reference.shape and resized.dtype == np.uint8
    diff = np.abs(resized.astype(np.int16) - reference)
    assert diff.max() <= 1
    assert (diff > 0).mean() <= 0.01


def test_cpu_path_is_pils_to_one_level(preprocessor: Preprocessor, jpegs: dict[str, bytes]) -> None:
    """Tighter than the tolerance both paths share: DALI's CPU decode is libjpeg-turbo's, as
    PIL's is, and the resize is PIL's to one level."""
    for name, data in jpegs.items():
        [result] = preprocessor([as_array(data)])
        reference, _ = reference_preprocess(data, RESIZE)
        diff = np.abs(image_of(result).astype(np.int16) - reference.astype(np.int16))
        assert diff.max() <= 1, name
        assert (diff > 0).mean() <= 0.01, name


def test_batch_matches_reference(preprocessor: Preprocessor, jpegs: dict[str, bytes]) -> None:
    names = list(jpegs)
    results = preprocessor([as_array(jpegs[name]) for name in names])
    for name, result in zip(names, results, strict=True):
        image = image_of(result)
        reference_image, reference_size = reference_preprocess(jpegs[name], RESIZE)
        assert result.original_size.dtype == np.int32
        np.testing.assert_array_equal(result.original_size, reference_size, err_msg=name)
        assert image.shape[:2] == T.ResizeShortestEdge.get_output_shape(
            *reference_size, RESIZE.shortest_edge, RESIZE.max_size
        )
        assert_close_to_reference(image, reference_image)


def test_each_output_gets_its_own_resize(jpegs: dict[str, bytes]) -> None:
    two = Preprocessor("JPEG", TWO_DETECTORS, max_batch_size=4)
    names = ["landscape_640x427", "panorama_1600x400", "tiny_64x48", "portrait_300x1000"]
    results = two([as_array(jpegs[name]) for name in names])
    for name, result in zip(names, results, strict=True):
        for output, resize in TWO_DETECTORS.images:
            reference, size = reference_preprocess(jpegs[name], resize)
            assert_close_to_reference(image_of(result, output), reference)
            np.testing.assert_array_equal(result.original_size, size)


def test_only_the_outputs_asked_for_are_made(jpegs: dict[str, bytes]) -> None:
    two = Preprocessor("JPEG", TWO_DETECTORS, max_batch_size=2)
    jpeg = jpegs["landscape_640x427"]
    [small] = two([as_array(jpeg)], ["SMALL_IMAGE"])
    [large] = two([as_array(jpeg)], ["LARGE_RGB_IMAGE"])
    [both] = two([as_array(jpeg)], ["LARGE_RGB_IMAGE", "SMALL_IMAGE"])
    assert list(small.images) == ["SMALL_IMAGE"]
    assert list(large.images) == ["LARGE_RGB_IMAGE"]
    assert list(both.images) == ["SMALL_IMAGE", "LARGE_RGB_IMAGE"]
    np.testing.assert_array_equal(small.images["SMALL_IMAGE"], both.images["SMALL_IMAGE"])
    np.testing.assert_array_equal(large.images["LARGE_RGB_IMAGE"], both.images["LARGE_RGB_IMAGE"])
    assert small.images["SMALL_IMAGE"].shape == (320, 480, 3)
    with pytest.raises(ValueError, match="not in"):
        two([as_array(jpeg)], ["IMAGE"])


def test_channel_order_follows_config(jpegs: dict[str, bytes]) -> None:
    jpeg = jpegs["landscape_640x427"]
    rgb_resize = Resize(channel_order="RGB")
    rgb = Preprocessor("JPEG", PreprocessConfig(images=(("IMAGE", rgb_resize),)), 1)
    [result] = rgb([as_array(jpeg)])
    reference, _ = reference_preprocess(jpeg, rgb_resize)
    assert_close_to_reference(image_of(result), reference)
    bgr_reference, _ = reference_preprocess(jpeg, RESIZE)
    difference = np.abs(image_of(result).astype(int) - bgr_reference.astype(int)).mean()
    assert difference > 5, "channels not swapped"


def test_parameters_of_a_config_pbtxt() -> None:
    parameters = {
        "POINTER_IMAGE": "shortest_edge=320 max_size=576 channel_order=BGR",
        "INSULATOR_IMAGE": "shortest_edge=384  max_size=640 channel_order=RGB",
        "max_bytes": "1000",
        "max_pixels": "2000",
    }
    config = PreprocessConfig.from_parameters(parameters, ["POINTER_IMAGE", "INSULATOR_IMAGE"])
    assert config == PreprocessConfig(
        images=(
            ("POINTER_IMAGE", Resize(320, 576, "BGR")),
            ("INSULATOR_IMAGE", Resize(384, 640, "RGB")),
        ),
        max_bytes=1000,
        max_pixels=2000,
    )
    with pytest.raises(KeyError):
        PreprocessConfig.from_parameters(parameters, ["IMAGE"])
    for bad in (
        "shortest_edge=320 max_size=576",
        "320 576 BGR",
        "shortest_edge=x max_size=1 channel_order=BGR",
        "shortest_edge=1 max_size=1 channel_order=BGR colour=yes",
    ):
        with pytest.raises(ValueError):
            Resize.parse(bad)


@pytest.mark.parametrize("name", ["empty", "png", "gif", "text", "random"])
def test_non_jpeg_gets_its_own_error(
    preprocessor: Preprocessor, jpegs: dict[str, bytes], name: str
) -> None:
    data, message = bad_input(name, jpegs["landscape_640x427"])
    good = as_array(jpegs["landscape_640x427"])
    first, bad, last = preprocessor([good, np.frombuffer(data, np.uint8), good])
    assert isinstance(bad, DecodeError)
    assert str(bad) == message
    for result in (first, last):
        assert image_of(result).shape == (800, 1199, 3)


def test_corrupt_jpeg_fails_alone_and_pipeline_recovers(
    preprocessor: Preprocessor, jpegs: dict[str, bytes]
) -> None:
    good = as_array(jpegs["landscape_640x427"])
    truncated, _ = bad_input("cut_in_scan", jpegs["landscape_640x427"])
    # A header that parses, with a Huffman table libjpeg-turbo rejects: it fails inside DALI.
    bad_table, _ = bad_input("bad_huffman_table", jpegs["landscape_640x427"])
    batch = [good, as_array(truncated), as_array(bad_table), as_array(jpegs["tiny_64x48"])]
    results = preprocessor(batch)
    assert [isinstance(r, DecodeError) for r in results] == [False, True, True, False]
    assert "truncated JPEG" in str(results[1])
    assert "cannot decode JPEG" in str(results[2])
    # The next batch, on the rebuilt pipeline, is served normally.
    [result] = preprocessor([good])
    assert image_of(result).shape == (800, 1199, 3)
    assert result.original_size.tolist() == [427, 640]


def test_batch_larger_than_max_is_refused(preprocessor: Preprocessor) -> None:
    with pytest.raises(ValueError, match="exceeds max_batch_size"):
        preprocessor([np.zeros(4, np.uint8)] * 9)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Resize(shortest_edge=0),
        lambda: Resize(max_size=-1),
        lambda: Resize(channel_order="YUV"),
        lambda: PreprocessConfig(max_bytes=0),
        lambda: PreprocessConfig(max_pixels=-1),
        lambda: PreprocessConfig(images=()),
    ],
)
def test_config_rejects_nonsense(make) -> None:
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize(
    ("message", "out_of_memory"),
    [
        ("CUDA out of memory. Tried to allocate 2.00 GiB", True),
        ("Critical error in pipeline: CUDA allocation failed", True),
        ("std::bad_alloc", True),
        ("CUDA error: cudaErrorMemoryAllocation", True),
        ("nvjpegDecode failed: bitstream corrupted", False),
        ("Unsupported marker", False),
    ],
)
def test_out_of_memory_is_told_from_a_bad_input(message: str, out_of_memory: bool) -> None:
    assert is_out_of_memory(RuntimeError(message)) is out_of_memory


def test_out_of_memory_is_the_servers_fault_and_the_next_batch_is_served(
    jpegs: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    preprocessor = Preprocessor("JPEG", CONFIG, max_batch_size=2)
    good = as_array(jpegs["landscape_640x427"])
    run = Preprocessor._run

    def out_of_memory(*args: object) -> list[Preprocessed]:
        raise RuntimeError("Critical error in pipeline: CUDA allocation failed")

    monkeypatch.setattr(Preprocessor, "_run", out_of_memory)
    results = preprocessor([good, good])
    assert all(isinstance(r, PreprocessFault) for r in results), results
    assert not any(isinstance(r, DecodeError) for r in results), "not the client's fault"
    assert "out of memory" in str(results[0])
    monkeypatch.setattr(Preprocessor, "_run", run)
    [result] = preprocessor([good])
    assert image_of(result).shape == (800, 1199, 3)


class _Sentinel:
    """Something weakly referenceable to leave in a caller's frame."""


def test_refusals_do_not_keep_the_callers_frame_alive(
    preprocessor: Preprocessor, jpegs: dict[str, bytes]
) -> None:
    """A refusal kept with its traceback holds every frame up to the catch, and through it the
    caller's (the model's execute, with its batch's output tensors): a reference cycle that only
    the cyclic garbage collector breaks, much later. In the python backend that pinned output
    tensors in the stub's shared-memory pool under mixed traffic, which grew it for good."""
    good = as_array(jpegs["landscape_640x427"])
    bad = as_array(bad_input("gif", jpegs["landscape_640x427"])[0])

    def caller() -> tuple[weakref.ref, list]:
        local = _Sentinel()
        return weakref.ref(local), preprocessor([good, bad, good])

    gc.disable()
    try:
        frame_local, results = caller()
        assert isinstance(results[1], DecodeError)
        assert results[1].__traceback__ is None
        assert frame_local() is None, "the caller's frame outlived the call"
    finally:
        gc.enable()
