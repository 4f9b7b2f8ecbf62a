"""DALI preprocessing: raw JPEG bytes in, the image detectron2 expects out.

The pipeline is defined once, here. The python-backend model ``repository/preprocess`` runs it
on each batch of requests; the same definition can be serialized for Triton's DALI backend.

It reproduces detectron2's test-time input path (``DefaultPredictor``): decode to
``cfg.INPUT.FORMAT`` channel order, then ``ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST)``
as PIL's bilinear resize does it, output ``uint8`` HWC. No normalization: detectron2 models
normalize inside ``forward`` with their own ``PIXEL_MEAN``/``PIXEL_STD``.

On a GPU the whole path runs in DALI (nvJPEG, then DALI's resize). On a CPU DALI decodes and
torch resizes (:func:`resize_like_pil`): torch's ``uint8`` antialiased bilinear kernel computes
PIL's two rounded passes, so the pixels are PIL's to one level, and it is faster than both PIL's
resize and DALI's CPU resize (``docs/performance.md``).

Detectors differ in input size and channel order, so one decode can feed several resizes:
each named image output has its own :class:`Resize`, and a run computes only the outputs it
is asked for. Each detector's YAML is the one source of its input size: an output's parameter
``detector=pointer`` takes ``INPUT.MIN_SIZE_TEST``, ``INPUT.MAX_SIZE_TEST`` and ``INPUT.FORMAT``
from the YAML that the ``pointer`` model's ``detectron2_config`` names, and values written out
beside it must equal the YAML's (:meth:`PreprocessConfig.from_parameters`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from nvidia.dali import backend as dali_backend
from nvidia.dali import fn, pipeline_def, types
from nvidia.dali import math as dmath
from nvidia.dali.pipeline import Pipeline

from bls.repository import model_tensors
from pipelines.errors import is_out_of_memory
from pipelines.jpeg import DecodeError, check_jpeg

__all__ = [
    "DecodeError",
    "PreprocessConfig",
    "PreprocessFault",
    "Preprocessed",
    "Preprocessor",
    "Resize",
    "decode_and_resize",
    "detector_resize",
    "parse_image_parameter",
    "resize_like_pil",
]

_CHANNEL_ORDERS = {"BGR": types.BGR, "RGB": types.RGB}


class PreprocessFault(RuntimeError):
    """Preprocessing failed for the server's reason, not the input's (e.g. out of memory)."""


@dataclass(frozen=True)
class Resize:
    """How one detector wants its image: detectron2's test-time resize and channel order.

    Attributes:
        shortest_edge: ``cfg.INPUT.MIN_SIZE_TEST``: the shorter side after resizing.
        max_size: ``cfg.INPUT.MAX_SIZE_TEST``: cap on the longer side after resizing.
        channel_order: ``cfg.INPUT.FORMAT``, ``"BGR"`` (detectron2's default) or ``"RGB"``.
    """

    shortest_edge: int = 800
    max_size: int = 1333
    channel_order: str = "BGR"

    @classmethod
    def parse(cls, text: str) -> Resize:
        """Reads ``"shortest_edge=320 max_size=576 channel_order=BGR"`` (a config parameter).

        Raises:
            ValueError: a key is unknown or missing, or a value is not valid.
        """
        fields = {}
        for item in text.split():
            key, _, value = item.partition("=")
            fields[key] = value
        expected = {"shortest_edge", "max_size", "channel_order"}
        if set(fields) != expected:
            raise ValueError(
                f"expected 'shortest_edge=N max_size=N channel_order=BGR|RGB', got {text!r}"
            )
        return cls(int(fields["shortest_edge"]), int(fields["max_size"]), fields["channel_order"])

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

    def parameter(self) -> str:
        """The resize as a config parameter writes it, which :meth:`parse` reads back."""
        return (
            f"shortest_edge={self.shortest_edge} max_size={self.max_size} "
            f"channel_order={self.channel_order}"
        )


# The key of an image output's parameter that names the detector it is resized for.
_DETECTOR_KEY = "detector"


def parse_image_parameter(text: str) -> tuple[str | None, Resize | None]:
    """Reads an image output's parameter: ``detector=NAME`` (the resize is that detector's
    YAML's), the resize written out (``shortest_edge=320 max_size=576 channel_order=BGR``), or
    both (the written resize must be the YAML's).

    Returns:
        ``(detector, written resize)``, either of them ``None`` where not given.

    Raises:
        ValueError: neither is given, a key is unknown or missing, or a value is not valid.
    """
    fields = dict(item.partition("=")[::2] for item in text.split())
    detector = fields.pop(_DETECTOR_KEY, None)
    if detector is not None and not detector:
        raise ValueError(f"{_DETECTOR_KEY}= names no detector in {text!r}")
    if detector is not None and not fields:
        return detector, None
    try:
        return detector, Resize.parse(" ".join(f"{k}={v}" for k, v in fields.items()))
    except ValueError as error:
        raise ValueError(
            f"expected 'detector=NAME' (that detector's YAML gives the resize), "
            f"'shortest_edge=N max_size=N channel_order=BGR|RGB', or both; got {text!r} "
            f"({error})"
        ) from error


def detector_resize(repository: Path, detector: str) -> tuple[Path, Resize]:
    """The resize a detector's YAML asks for: ``INPUT.MIN_SIZE_TEST``, ``INPUT.MAX_SIZE_TEST``
    and ``INPUT.FORMAT`` of the YAML its ``config.pbtxt`` names as ``detectron2_config``.

    Returns:
        ``(the YAML's path, its resize)``.

    Raises:
        ValueError: the detector has no config in ``repository`` or names no YAML, the YAML is
            missing, or its input size is not one this preprocessing makes; the message names
            the file.
    """
    try:
        parameters = model_tensors(repository, detector).parameters
    except FileNotFoundError as error:
        raise ValueError(f"{_DETECTOR_KEY}={detector}: {error}") from error
    if "detectron2_config" not in parameters:
        raise ValueError(
            f"{_DETECTOR_KEY}={detector}: {repository / detector / 'config.pbtxt'} has no "
            "detectron2_config parameter: it is not a detector"
        )
    yaml_path = repository / detector / parameters["detectron2_config"]
    # detectron2 is imported only where a detector is named: it is heavy, and the YAML must be
    # read as the detector reads it (its _BASE_, detectron2's defaults).
    from pipelines.detector import read_yaml_config

    try:
        cfg = read_yaml_config(yaml_path)
        return yaml_path, Resize(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, cfg.INPUT.FORMAT)
    except FileNotFoundError as error:
        raise ValueError(
            f"{repository / detector / 'config.pbtxt'}: detectron2_config: {error}"
        ) from error
    except ValueError as error:
        raise ValueError(
            f"{yaml_path}: INPUT.MIN_SIZE_TEST, MAX_SIZE_TEST or FORMAT: {error}"
        ) from error


@dataclass(frozen=True)
class PreprocessConfig:
    """What the preprocessing model makes of each JPEG, and what it refuses.

    Attributes:
        images: ``(output name, resize)`` pairs: one resized image per output, in output order.
        max_bytes: largest JPEG file accepted, in bytes.
        max_pixels: largest image accepted, width times height. Decoding holds the whole
            image, 3 bytes a pixel, for every image of a batch at once.
    """

    images: tuple[tuple[str, Resize], ...] = (("IMAGE", Resize()),)
    max_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 120_000_000

    @classmethod
    def from_parameters(
        cls,
        parameters: Mapping[str, str],
        image_outputs: Sequence[str],
        model_dir: Path | None = None,
    ) -> PreprocessConfig:
        """Builds the config from a model's ``config.pbtxt`` parameters (string values).

        Each image output's parameter (:func:`parse_image_parameter`) is ``detector=NAME``, the
        resize written out, or both. With ``model_dir`` a named detector's YAML gives the resize
        (:func:`detector_resize`), and a resize written beside it must be the same. A written
        resize is taken as it is without ``model_dir`` (a caller with no repository at hand),
        or when the named detector is not in the repository (preprocessing served alone).

        Args:
            parameters: the model's parameters; each image output's resize is the parameter
                named after it.
            image_outputs: the names of the image outputs, in output order.
            model_dir: the preprocessing model's folder in its repository, whose neighbours are
                the detectors.

        Raises:
            KeyError: a parameter is missing.
            ValueError: a value is not valid, a named detector's YAML cannot be read, or a
                written resize is not its YAML's (naming both files and both resizes).
        """
        images = tuple(
            (name, _image_resize(name, parameters[name], model_dir)) for name in image_outputs
        )
        return cls(
            images=images,
            max_bytes=int(parameters["max_bytes"]),
            max_pixels=int(parameters["max_pixels"]),
        )

    def resize(self, output: str) -> Resize:
        """The resize of the image output ``output``.

        Raises:
            KeyError: there is no such image output.
        """
        return dict(self.images)[output]

    def __post_init__(self) -> None:
        if not self.images:
            raise ValueError("at least one image output is needed")
        if self.max_bytes <= 0 or self.max_pixels <= 0:
            raise ValueError(
                f"max_bytes and max_pixels must be positive, got {self.max_bytes}, "
                f"{self.max_pixels}"
            )


def _image_resize(output: str, text: str, model_dir: Path | None) -> Resize:
    """The resize of one image output from its parameter (see
    :meth:`PreprocessConfig.from_parameters`)."""
    where = f"{output}: " if model_dir is None else f"{model_dir / 'config.pbtxt'}: {output}: "
    try:
        detector, written = parse_image_parameter(text)
    except ValueError as error:
        raise ValueError(f"{where}{error}") from error
    if detector is None:
        return written
    if model_dir is None:
        if written is None:
            raise ValueError(
                f"{where}'{_DETECTOR_KEY}={detector}' takes the resize from the detector's "
                "YAML, and no model repository was given to find it in"
            )
        return written
    if written is not None and not (model_dir.parent / detector / "config.pbtxt").is_file():
        # Served without that detector (preprocessing alone): no detector to feed wrongly.
        return written
    try:
        yaml_path, wanted = detector_resize(model_dir.parent, detector)
    except ValueError as error:
        raise ValueError(f"{where}{error}") from error
    if written is not None and written != wanted:
        raise ValueError(
            f"{where}resized to '{written.parameter()}', but {yaml_path} ({detector}'s "
            f"detectron2_config) has INPUT.MIN_SIZE_TEST {wanted.shortest_edge}, "
            f"INPUT.MAX_SIZE_TEST {wanted.max_size}, INPUT.FORMAT {wanted.channel_order}: "
            f"write '{_DETECTOR_KEY}={detector}' alone to take the YAML's, or "
            f"'{_DETECTOR_KEY}={detector} {wanted.parameter()}'"
        )
    return wanted


def resize_like_pil(image: np.ndarray, resize: Resize) -> np.ndarray:
    """An HWC ``uint8`` image resized as detectron2 resizes it (PIL's ``BILINEAR``), on a CPU.

    torch's ``uint8`` antialiased bilinear kernel applies PIL's triangle filter in PIL's two
    rounded passes (horizontal, then vertical): the result is PIL's to one level, on about 0.1% of
    the pixels of the test photos. The image is read in place: HWC memory is what the kernel
    takes as channels-last NCHW.
    """
    import torch
    from detectron2.data.transforms import ResizeShortestEdge
    from torch.nn import functional

    height, width = ResizeShortestEdge.get_output_shape(
        image.shape[0], image.shape[1], resize.shortest_edge, resize.max_size
    )
    nchw = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0)
    resized = functional.interpolate(
        nchw, size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )
    return resized[0].permute(1, 2, 0).contiguous().numpy()


def _resize_like_detectron2(images: Any, height: Any, width: Any, resize: Resize) -> Any:
    """detectron2's ``ResizeShortestEdge`` as PIL's bilinear resize does it, inside a graph.

    The output size is computed from the original size with detectron2's arithmetic in
    float64, so it is the same size, to the pixel, as ``ResizeShortestEdge.get_output_shape``
    (DALI's own ``resize_shorter`` rounds differently).
    """
    short = float(resize.shortest_edge)
    scale = short / dmath.min(height, width)
    portrait = height >= width
    new_h = portrait * (scale * height) + (1 - portrait) * short
    new_w = portrait * short + (1 - portrait) * (scale * width)
    shrink = dmath.min(float(resize.max_size) / dmath.max(new_h, new_w), 1.0)
    new_h = dmath.floor(new_h * shrink + 0.5)
    new_w = dmath.floor(new_w * shrink + 0.5)
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
    return images


def _channel_orders(resizes: Sequence[Resize]) -> list[str]:
    """The channel orders ``resizes`` need, each once, in order of first use: the order of the
    decoded images a graph without ``resize_in_graph`` returns."""
    return list(dict.fromkeys(r.channel_order for r in resizes))


@pipeline_def
def decode_and_resize(
    input_name: str, resizes: Sequence[Resize], decoder_device: str, resize_in_graph: bool = True
) -> tuple[Any, ...]:
    """DALI graph: encoded JPEG -> one resized image per ``resizes`` entry, original size.

    The JPEG is decoded once per channel order, then resized once per entry.

    Args:
        input_name: name of the ``external_source`` (the model's input tensor name).
        resizes: the images to make (HWC ``uint8``), in output order.
        decoder_device: ``"cpu"``, or ``"mixed"`` to decode with nvJPEG on the GPU.
        resize_in_graph: ``False`` leaves the resizes to the caller (:func:`resize_like_pil`,
            on a CPU) and returns the decoded images instead.

    Returns:
        The resized images, in order (or, without ``resize_in_graph``, the decoded image of each
        channel order, in order of first use), then the original ``(height, width)`` as
        ``int32``.
    """
    jpegs = fn.external_source(name=input_name, dtype=types.UINT8, ndim=1)
    # detectron2's read_image applies the EXIF orientation, and so must both of these (their
    # default, stated here because ORIGINAL_SIZE and the detections depend on it).
    shape = fn.peek_image_shape(jpegs, dtype=types.INT32, adjust_orientation=True)
    original_size = shape[0:2]
    height = fn.cast(shape[0], dtype=types.FLOAT64)
    width = fn.cast(shape[1], dtype=types.FLOAT64)
    decoded = {
        order: fn.decoders.image(
            jpegs,
            device=decoder_device,
            output_type=_CHANNEL_ORDERS[order],
            adjust_orientation=True,
            # nvJPEG (device="mixed") upsamples 4:2:0 and 4:2:2 chroma more crudely than
            # libjpeg-turbo and PIL do; this makes it use their "fancy" upsampling. The CPU
            # decoder does so anyway.
            jpeg_fancy_upsampling=True,
        )
        for order in _channel_orders(resizes)
    }
    if not resize_in_graph:
        return (*decoded.values(), original_size)
    images = [_resize_like_detectron2(decoded[r.channel_order], height, width, r) for r in resizes]
    return (*images, original_size)


@dataclass
class Preprocessed:
    """One JPEG, ready for its detectors.

    Attributes:
        images: image output name -> the resized HWC ``uint8`` image (a numpy array on the
            CPU, a torch CUDA tensor on the GPU), for the outputs asked for.
        original_size: ``int32 [height, width]`` before resizing (EXIF orientation applied).
    """

    images: dict[str, Any]
    original_size: np.ndarray


class Preprocessor:
    """Runs :func:`decode_and_resize` on batches of JPEGs fed by hand.

    One bad JPEG must not fail its batch. Each one is first checked from its header
    (:func:`pipelines.jpeg.check_jpeg`: format, truncation, ``max_bytes``, ``max_pixels``), so
    most bad inputs never reach DALI, and none that claims more pixels than allowed. A batch
    whose decode still fails is retried one image at a time, so every image gets either its
    tensors or its own error. A DALI pipeline is unusable after any error, so each failure
    rebuilds it (a few milliseconds).

    A pipeline is built for each set of image outputs asked for (at most one per detector
    combination), so a request for one detector's image does not pay for another's resize.

    Examples:
        >>> pre = Preprocessor("JPEG", PreprocessConfig(), max_batch_size=8)
        >>> [result] = pre([np.fromfile("meter.jpg", dtype=np.uint8)])
        >>> result.images["IMAGE"].shape
        (800, 1199, 3)
    """

    def __init__(
        self,
        input_name: str,
        config: PreprocessConfig,
        max_batch_size: int,
        device_id: int | None = None,
        num_threads: int = 2,
    ) -> None:
        """Builds the pipeline that makes every image output.

        Args:
            input_name: name of the JPEG input (from ``config.pbtxt``).
            config: the image outputs with their resizes, and the input limits.
            max_batch_size: largest batch :meth:`__call__` will be given.
            device_id: CUDA device to decode on with nvJPEG; ``None`` decodes on the CPU.
            num_threads: DALI CPU worker threads.
        """
        self.input_name = input_name
        self.config = config
        self.device_id = device_id
        self.max_batch_size = max_batch_size
        self.num_threads = num_threads
        self.output_names = tuple(name for name, _ in config.images)
        self._pipes: dict[tuple[str, ...], Pipeline] = {}
        self._pipeline(self.output_names)

    def _pipeline(self, outputs: tuple[str, ...]) -> Pipeline:
        """The pipeline making ``outputs``, built on first use."""
        pipe = self._pipes.get(outputs)
        if pipe is None:
            # Fed by hand, one run per batch: no prefetching, so no run can "peek" at a batch
            # that was never fed.
            pipe = decode_and_resize(
                input_name=self.input_name,
                resizes=[self.config.resize(name) for name in outputs],
                decoder_device="cpu" if self.device_id is None else "mixed",
                resize_in_graph=self.device_id is not None,
                batch_size=self.max_batch_size,
                num_threads=self.num_threads,
                device_id=self.device_id,
                prefetch_queue_depth=1,
                exec_async=False,
                exec_pipelined=False,
            )
            pipe.build()
            self._pipes[outputs] = pipe
        return pipe

    def __call__(
        self, jpegs: Sequence[np.ndarray], outputs: Sequence[str] | None = None
    ) -> list[Preprocessed | DecodeError | PreprocessFault]:
        """Decodes and resizes a batch.

        Args:
            jpegs: 1-D ``uint8`` arrays of encoded JPEG bytes, at most ``max_batch_size``.
            outputs: the image outputs to make; ``None`` makes all of them.

        Returns:
            One entry per input, in order: its :class:`Preprocessed`; its :class:`DecodeError`
            (the input's fault); or a :class:`PreprocessFault` (the server's, e.g. out of
            memory, after which cached memory is released and the next call starts afresh).

        Raises:
            ValueError: the batch is too large, or an output is not an image output.
        """
        if len(jpegs) > self.max_batch_size:
            raise ValueError(f"batch of {len(jpegs)} exceeds max_batch_size {self.max_batch_size}")
        wanted = self.output_names if outputs is None else tuple(outputs)
        unknown = sorted(set(wanted) - set(self.output_names))
        if unknown or not wanted:
            raise ValueError(f"image outputs {unknown or wanted} not in {self.output_names}")
        # Config order, so that each set of outputs has one pipeline.
        wanted = tuple(name for name in self.output_names if name in wanted)
        results: list[Preprocessed | DecodeError | PreprocessFault | None] = [None] * len(jpegs)
        pending = []
        for i, data in enumerate(jpegs):
            try:
                check_jpeg(data.tobytes(), self.config.max_bytes, self.config.max_pixels)
                pending.append(i)
            except DecodeError as error:
                # Kept without its traceback, which would hold this frame and the caller's
                # (the model's execute, with its output tensors) in a reference cycle.
                results[i] = error.with_traceback(None)
        if pending:
            try:
                batch = self._run([jpegs[i] for i in pending], wanted)
                for i, output in zip(pending, batch, strict=True):
                    results[i] = output
            except RuntimeError as error:
                if is_out_of_memory(error):
                    fault = self._release_memory(error)
                    for i in pending:
                        results[i] = fault
                else:
                    self._pipes.pop(wanted, None)
                    for i in pending:
                        results[i] = self._run_alone(jpegs[i], wanted)
        return results  # type: ignore[return-value]

    def _run_alone(
        self, jpeg: np.ndarray, outputs: tuple[str, ...]
    ) -> Preprocessed | DecodeError | PreprocessFault:
        try:
            return self._run([jpeg], outputs)[0]
        except RuntimeError as error:
            if is_out_of_memory(error):
                return self._release_memory(error)
            self._pipes.pop(outputs, None)
            return DecodeError("cannot decode JPEG: corrupt data")

    def _release_memory(self, error: RuntimeError) -> PreprocessFault:
        """Drops every pipeline and the memory DALI and torch keep cached, so that the next
        request finds room; the requests that ran out are answered as a server fault."""
        self._pipes.clear()
        dali_backend.ReleaseUnusedMemory()
        if self.device_id is not None:
            import torch

            torch.cuda.empty_cache()
        return PreprocessFault(f"out of memory while preprocessing ({error}); try again")

    def _run(self, jpegs: list[np.ndarray], outputs: tuple[str, ...]) -> list[Preprocessed]:
        pipe = self._pipeline(outputs)
        pipe.feed_input(self.input_name, jpegs)
        *images, sizes = pipe.run()
        if self.device_id is None:
            return self._resize_on_cpu(outputs, images, sizes)
        results = [
            Preprocessed(
                images={
                    name: self._take(batch[i]) for name, batch in zip(outputs, images, strict=True)
                },
                original_size=np.array(sizes[i]),
            )
            for i in range(len(jpegs))
        ]
        import torch

        # The copies are queued on torch's stream; DALI may reuse its buffers from the next
        # run on, so they must be done before this batch is handed on.
        torch.cuda.current_stream(self.device_id).synchronize()
        return results

    def _resize_on_cpu(
        self, outputs: tuple[str, ...], decoded: list[Any], sizes: Any
    ) -> list[Preprocessed]:
        """Resizes the decoded images of a CPU run (one per channel order) with torch."""
        resizes = [self.config.resize(name) for name in outputs]
        by_order = dict(zip(_channel_orders(resizes), decoded, strict=True))
        results = []
        for i in range(len(sizes)):
            # Views of DALI's buffers: each resize writes a new array before the next run.
            images = {
                name: resize_like_pil(np.asarray(by_order[r.channel_order][i]), r)
                for name, r in zip(outputs, resizes, strict=True)
            }
            results.append(Preprocessed(images=images, original_size=np.array(sizes[i])))
        return results

    def _take(self, image: Any) -> Any:
        """Copies one GPU output sample out of DALI's buffers, which the next run reuses."""
        import torch
        from nvidia.dali.plugin.pytorch import feed_ndarray

        copy = torch.empty(image.shape(), dtype=torch.uint8, device=f"cuda:{self.device_id}")
        # DALI's own stream-aware copy, ordered after DALI's work on the buffer (a plain
        # torch.as_tensor(...).clone() is not).
        return feed_ndarray(image, copy, cuda_stream=torch.cuda.current_stream(copy.device))
