"""DALI preprocessing: raw JPEG bytes in, the image detectron2 expects out.

The pipeline is defined once, here. The python-backend model ``repository/preprocess`` runs it
on each batch of requests; the same definition can be serialized for Triton's DALI backend.

It reproduces detectron2's test-time input path (``DefaultPredictor``): decode to
``cfg.INPUT.FORMAT`` channel order, then ``ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST)``
as PIL's bilinear resize does it, output ``uint8`` HWC. No normalization: detectron2 models
normalize inside ``forward`` with their own ``PIXEL_MEAN``/``PIXEL_STD``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from nvidia.dali import fn, pipeline_def, types
from nvidia.dali import math as dmath
from nvidia.dali.pipeline import Pipeline

from pipelines.jpeg import DecodeError, check_jpeg

__all__ = [
    "DecodeError",
    "PreprocessConfig",
    "Preprocessor",
    "decode_and_resize",
    "resized_shape",
]

_CHANNEL_ORDERS = {"BGR": types.BGR, "RGB": types.RGB}


@dataclass(frozen=True)
class PreprocessConfig:
    """How images are prepared for detectron2.

    Attributes:
        shortest_edge: ``cfg.INPUT.MIN_SIZE_TEST``: the shorter side after resizing.
        max_size: ``cfg.INPUT.MAX_SIZE_TEST``: cap on the longer side after resizing.
        channel_order: ``cfg.INPUT.FORMAT``, ``"BGR"`` (detectron2's default) or ``"RGB"``.
        max_bytes: largest JPEG file accepted, in bytes.
        max_pixels: largest image accepted, width times height. Decoding holds the whole
            image, 3 bytes a pixel, for every image of a batch at once.
    """

    shortest_edge: int = 800
    max_size: int = 1333
    channel_order: str = "BGR"
    max_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 120_000_000

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, str]) -> PreprocessConfig:
        """Builds the config from a model's ``config.pbtxt`` parameters (string values).

        Raises:
            KeyError: a parameter is missing.
            ValueError: a value is not valid.
        """
        return cls(
            shortest_edge=int(parameters["shortest_edge"]),
            max_size=int(parameters["max_size"]),
            channel_order=parameters["channel_order"],
            max_bytes=int(parameters["max_bytes"]),
            max_pixels=int(parameters["max_pixels"]),
        )

    def __post_init__(self) -> None:
        if self.shortest_edge <= 0 or self.max_size <= 0:
            raise ValueError(
                f"shortest_edge and max_size must be positive, got {self.shortest_edge}, "
                f"{self.max_size}"
            )
        if self.channel_order not in _CHANNEL_ORDERS:
            raise ValueError(
                f"channel_order must be one of {sorted(_CHANNEL_ORDERS)}, "
                f"got {self.channel_order!r}"
            )
        if self.max_bytes <= 0 or self.max_pixels <= 0:
            raise ValueError(
                f"max_bytes and max_pixels must be positive, got {self.max_bytes}, "
                f"{self.max_pixels}"
            )


def resized_shape(height: int, width: int, shortest_edge: int, max_size: int) -> tuple[int, int]:
    """Output (height, width) of detectron2's ``ResizeShortestEdge`` at test time.

    Args:
        height: original image height in pixels.
        width: original image width in pixels.
        shortest_edge: target length of the shorter side.
        max_size: upper bound of the longer side.

    Returns:
        ``(new_height, new_width)``, rounded half up as detectron2 does.
    """
    scale = shortest_edge / min(height, width)
    if height < width:
        new_h, new_w = float(shortest_edge), scale * width
    else:
        new_h, new_w = scale * height, float(shortest_edge)
    longer = max(new_h, new_w)
    if longer > max_size:
        new_h, new_w = new_h * max_size / longer, new_w * max_size / longer
    return math.floor(new_h + 0.5), math.floor(new_w + 0.5)


@pipeline_def
def decode_and_resize(
    input_name: str, config: PreprocessConfig, decoder_device: str
) -> tuple[Any, Any]:
    """DALI graph: encoded JPEG -> (resized image HWC uint8, original (height, width) int32).

    The output size is computed in the graph from the JPEG header with detectron2's
    ``ResizeShortestEdge`` arithmetic in float64, so it is the same size, to the pixel, as
    :func:`resized_shape` (DALI's own ``resize_shorter`` rounds differently).

    Args:
        input_name: name of the ``external_source`` (the model's input tensor name).
        config: resize and channel-order settings.
        decoder_device: ``"cpu"``, or ``"mixed"`` to decode with nvJPEG on the GPU.
    """
    jpegs = fn.external_source(name=input_name, dtype=types.UINT8, ndim=1)
    # detectron2's read_image applies the EXIF orientation, and so must both of these (their
    # default, stated here because ORIGINAL_SIZE and the detections depend on it).
    shape = fn.peek_image_shape(jpegs, dtype=types.INT32, adjust_orientation=True)
    original_size = shape[0:2]
    height = fn.cast(shape[0], dtype=types.FLOAT64)
    width = fn.cast(shape[1], dtype=types.FLOAT64)
    short = float(config.shortest_edge)
    scale = short / dmath.min(height, width)
    portrait = height >= width
    new_h = portrait * (scale * height) + (1 - portrait) * short
    new_w = portrait * short + (1 - portrait) * (scale * width)
    shrink = dmath.min(float(config.max_size) / dmath.max(new_h, new_w), 1.0)
    new_h = dmath.floor(new_h * shrink + 0.5)
    new_w = dmath.floor(new_w * shrink + 0.5)
    images = fn.decoders.image(
        jpegs,
        device=decoder_device,
        output_type=_CHANNEL_ORDERS[config.channel_order],
        adjust_orientation=True,
        # nvJPEG (device="mixed") upsamples 4:2:0 and 4:2:2 chroma more crudely than
        # libjpeg-turbo and PIL do; this makes it use their "fancy" upsampling. The CPU
        # decoder does so anyway.
        jpeg_fancy_upsampling=True,
    )
    # detectron2 resizes with PIL's BILINEAR: a triangle filter (linear when enlarging, as wide
    # as the scale factor when shrinking) applied horizontally, rounded to uint8, then
    # vertically. Doing the same two rounded passes keeps DALI's output within one level of
    # PIL's on all but a few percent of pixels; one float pass differs on about 17%.
    for resize_y in (height, new_h):
        images = fn.resize(
            images,
            resize_x=fn.cast(new_w, dtype=types.FLOAT),
            resize_y=fn.cast(resize_y, dtype=types.FLOAT),
            interp_type=types.INTERP_TRIANGULAR,
            dtype=types.UINT8,
        )
    return images, original_size


class Preprocessor:
    """Runs :func:`decode_and_resize` on batches of JPEGs fed by hand.

    One bad JPEG must not fail its batch. Each one is first checked from its header
    (:func:`pipelines.jpeg.check_jpeg`: format, truncation, ``max_bytes``, ``max_pixels``), so
    most bad inputs never reach DALI, and none that claims more pixels than allowed. A batch
    whose decode still fails is retried one image at a time, so every image gets either its
    tensors or its own error. A DALI pipeline is unusable
    after any error, so each failure rebuilds it (a few milliseconds).

    Examples:
        >>> pre = Preprocessor("JPEG", PreprocessConfig(), max_batch_size=8)
        >>> [(image, size)] = pre([np.fromfile("meter.jpg", dtype=np.uint8)])
    """

    def __init__(
        self,
        input_name: str,
        config: PreprocessConfig,
        max_batch_size: int,
        device_id: int | None = None,
        num_threads: int = 2,
    ) -> None:
        """Builds the pipeline.

        Args:
            input_name: name of the JPEG input (from ``config.pbtxt``).
            config: resize and channel-order settings.
            max_batch_size: largest batch :meth:`__call__` will be given.
            device_id: CUDA device to decode on with nvJPEG; ``None`` decodes on the CPU.
            num_threads: DALI CPU worker threads.
        """
        self.input_name = input_name
        self.config = config
        self.device_id = device_id
        self.max_batch_size = max_batch_size
        self.num_threads = num_threads
        self._pipe = self._build_pipeline()

    def _build_pipeline(self) -> Pipeline:
        # Fed by hand, one run per batch: no prefetching, so no run can "peek" at a batch that
        # was never fed.
        pipe = decode_and_resize(
            input_name=self.input_name,
            config=self.config,
            decoder_device="cpu" if self.device_id is None else "mixed",
            batch_size=self.max_batch_size,
            num_threads=self.num_threads,
            device_id=self.device_id,
            prefetch_queue_depth=1,
            exec_async=False,
            exec_pipelined=False,
        )
        pipe.build()
        return pipe

    def __call__(self, jpegs: Sequence[np.ndarray]) -> list[tuple[Any, np.ndarray] | DecodeError]:
        """Decodes and resizes a batch.

        Args:
            jpegs: 1-D ``uint8`` arrays of encoded JPEG bytes, at most ``max_batch_size``.

        Returns:
            One entry per input, in order: ``(image, original_size)`` where ``image`` is the
            resized HWC ``uint8`` image (a numpy array on CPU, a torch CUDA tensor on GPU) and
            ``original_size`` is ``int32 [height, width]``; or the :class:`DecodeError` of that
            input.
        """
        if len(jpegs) > self.max_batch_size:
            raise ValueError(f"batch of {len(jpegs)} exceeds max_batch_size {self.max_batch_size}")
        results: list[tuple[Any, np.ndarray] | DecodeError | None] = [None] * len(jpegs)
        pending = []
        for i, data in enumerate(jpegs):
            try:
                check_jpeg(data.tobytes(), self.config.max_bytes, self.config.max_pixels)
                pending.append(i)
            except DecodeError as error:
                results[i] = error
        if pending:
            try:
                outputs = self._run([jpegs[i] for i in pending])
                for i, output in zip(pending, outputs, strict=True):
                    results[i] = output
            except RuntimeError:
                self._pipe = self._build_pipeline()
                for i in pending:
                    results[i] = self._run_alone(jpegs[i])
        return results  # type: ignore[return-value]

    def _run_alone(self, jpeg: np.ndarray) -> tuple[Any, np.ndarray] | DecodeError:
        try:
            return self._run([jpeg])[0]
        except RuntimeError:
            self._pipe = self._build_pipeline()
            return DecodeError("cannot decode JPEG: corrupt data")

    def _run(self, jpegs: list[np.ndarray]) -> list[tuple[Any, np.ndarray]]:
        self._pipe.feed_input(self.input_name, jpegs)
        images, sizes = self._pipe.run()
        return [(self._take(images[i]), np.array(sizes[i])) for i in range(len(jpegs))]

    def _take(self, image: Any) -> Any:
        """Copies one output sample out of DALI's buffers, which the next run reuses."""
        if self.device_id is None:
            return np.array(image)
        import torch  # GPU path only: keeps torch out of CPU-only preprocessing processes

        return torch.as_tensor(image, device=f"cuda:{self.device_id}").clone()
