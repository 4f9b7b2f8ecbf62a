"""Triton python-backend glue shared by the models in ``repository/``.

Importable only inside Triton's python-backend stub (it needs ``triton_python_backend_utils``).
The detectors' ``model.py`` files subclass :class:`DetectorModel`; all detectron2 work lives in
``pipelines.detector``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import triton_python_backend_utils as pb_utils

from pipelines.detector import (
    Detector,
    PrecisionError,
    ScoreThresholdsError,
    load_config,
    load_score_thresholds,
    parse_precision,
)
from pipelines.errors import is_out_of_memory
from pipelines.tensors import (
    IMAGE,
    INVALID_INPUT,
    ORIGINAL_SIZE,
    Contract,
    config_mismatches,
    detector_contract,
    keypoint_mismatch,
)
from pipelines.threads import threads_per_instance, usable_cores

__all__ = [
    "DetectorModel",
    "check_config",
    "failure",
    "instance_gpu",
    "invalid_argument",
    "model_parameters",
    "one_sample",
    "output_tensor",
    "passed_on",
    "respond",
    "yes_or_no",
]


def model_parameters(model_config: dict[str, Any]) -> dict[str, str]:
    """The ``parameters`` of a parsed ``config.pbtxt`` as plain strings."""
    return {k: v["string_value"] for k, v in model_config.get("parameters", {}).items()}


def yes_or_no(parameters: dict[str, str], key: str) -> bool:
    """A ``"yes"``/``"no"`` parameter of ``config.pbtxt``.

    Raises:
        ValueError: the value is something else.
    """
    value = parameters[key].strip().lower()
    if value not in ("yes", "no"):
        raise ValueError(f'parameter {key} must be "yes" or "no", got {parameters[key]!r}')
    return value == "yes"


def instance_gpu(args: dict[str, Any]) -> int | None:
    """The GPU a model instance was placed on, made the stub's current CUDA device; ``None``
    for a CPU instance.

    Triton starts one stub per instance, and each stub sees every GPU of the node: anything
    that uses the current device (a stream, a cache, a context) would otherwise land on GPU 0,
    with a CUDA context of its own there (hundreds of MB) for every stub of the other GPUs.
    """
    if args["model_instance_kind"] != "GPU":
        return None
    device_id = int(args["model_instance_device_id"])
    torch.cuda.set_device(device_id)
    return device_id


def check_config(model_name: str, model_config: dict[str, Any], contract: Contract) -> None:
    """Fails the model's load when its ``config.pbtxt`` departs from ``contract``.

    Raises:
        ValueError: naming every missing, extra or mistyped tensor.
    """
    problems = config_mismatches(model_config, contract)
    if problems:
        raise ValueError(
            f"{model_name}: config.pbtxt does not match the tensor contract in "
            f"pipelines/tensors.py: {'; '.join(problems)}"
        )


def invalid_argument(message: str) -> Any:
    """A response that fails one request with ``message``, leaving its batch alone."""
    return pb_utils.InferenceResponse(
        error=pb_utils.TritonError(
            INVALID_INPUT + message.removeprefix(INVALID_INPUT), pb_utils.TritonError.INVALID_ARG
        )
    )


def failure(message: str) -> Any:
    """A response that fails one request with an internal error (not the client's fault)."""
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message))


def passed_on(error: Any) -> Any:
    """A BLS callee's error as this model's response: a refusal stays a refusal (400), any
    other failure (a dead stub, out of memory) stays the server's fault (500)."""
    message = error.message()
    if error.code() == pb_utils.TritonError.INVALID_ARG or message.startswith(INVALID_INPUT):
        return invalid_argument(message)
    return failure(message)


def respond(request: Any, response: Any) -> None:
    """Sends ``request`` its one and final response now, rather than at the end of ``execute``.

    A model that answers every request of a batch this way returns ``None`` from ``execute``.
    """
    request.get_response_sender().send(
        response, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
    )


def output_tensor(name: str, value: Any) -> Any:
    """Wraps one sample as a ``[1, ...]`` output; torch CUDA tensors stay on the GPU (DLPack)."""
    if isinstance(value, np.ndarray):
        return pb_utils.Tensor(name, value[np.newaxis])
    # The tensor itself, not a DLPack capsule: through __dlpack__ the backend learns torch's
    # stream and synchronises with it before reading.
    return pb_utils.Tensor.from_dlpack(name, value.unsqueeze(0))


def one_sample(request: Any, name: str) -> Any:
    """The request's input ``name`` without its batch dimension of 1.

    With ``FORCE_CPU_ONLY_INPUT_TENSORS`` off an input may arrive on the CPU or the GPU: CPU
    inputs come back as numpy arrays, GPU inputs as torch tensors on their device.

    Raises:
        ValueError: the request carries more than one sample.
    """
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor.is_cpu():
        value = tensor.as_numpy()
    else:
        from torch.utils.dlpack import from_dlpack

        value = from_dlpack(tensor.to_dlpack())
    if value.shape[0] != 1:
        raise ValueError(f"expected one image per request, got {name} of shape {list(value.shape)}")
    return value[0]


class DetectorModel:
    """``initialize``/``execute``/``finalize`` of a detectron2 detector behind Triton.

    Its tensors are :data:`pipelines.tensors.DETECTOR`'s, or ``MASK_DETECTOR``'s when the YAML
    turns masks on, plus ``KEYPOINTS`` when it has a keypoint head (the load fails, naming
    ``config.pbtxt`` and the YAML, when one declares keypoints the other lacks).
    ``config.pbtxt``'s parameters: ``detectron2_config`` and ``weights`` (paths relative to the
    model's folder, or absolute), ``cpu_forward_batch_size``/``gpu_forward_batch_size``
    (images per detectron2 forward), and optionally ``score_thresholds`` (a path like the
    others): a YAML file of one score threshold per class, served instead of the YAML's
    ``SCORE_THRESH_TEST`` (:func:`pipelines.detector.load_score_thresholds`), and optionally
    ``precision``: ``float32`` (the default), ``bfloat16`` (a CPU) or ``float16`` (a GPU), the
    dtype of the dense layers (:func:`pipelines.detector.lower_precision`). Hardware without the
    lower precision serves float32 and logs why once at load; a precision the device cannot
    take (float16 on a CPU) or an unknown name fails the load, naming ``config.pbtxt``.
    """

    def initialize(self, args: dict[str, Any]) -> None:
        model_config = json.loads(args["model_config"])
        params = model_parameters(model_config)
        model_dir = Path(args["model_repository"])
        self.model_name = args["model_name"]
        gpu = instance_gpu(args)
        on_gpu = gpu is not None
        device = f"cuda:{gpu}" if on_gpu else "cpu"
        batch_key = "gpu_forward_batch_size" if on_gpu else "cpu_forward_batch_size"
        # Checked before the weights load: a mismatch is a config error, found in milliseconds.
        yaml_path = model_dir / params["detectron2_config"]
        cfg = load_config(yaml_path)
        num_keypoints = cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS if cfg.MODEL.KEYPOINT_ON else 0
        problem = keypoint_mismatch(
            model_config, num_keypoints, model_dir / "config.pbtxt", yaml_path
        )
        if problem:
            raise ValueError(f"{self.model_name}: {problem}")
        thresholds = None
        if "score_thresholds" in params:
            try:
                thresholds = load_score_thresholds(
                    model_dir / params["score_thresholds"], list(cfg.CLASS_NAMES)
                )
            except ScoreThresholdsError as error:
                raise ValueError(f"{self.model_name}: {error}") from error
        requested = params.get("precision", "float32")
        source = f"{self.model_name}: {model_dir / 'config.pbtxt'}, parameter precision"
        try:
            self.detector = Detector(
                config_path=yaml_path,
                weights_path=model_dir / params["weights"],
                device=device,
                score_thresholds=thresholds,
                precision=parse_precision(requested, source),
            )
        except PrecisionError as error:
            message = str(error)
            if not message.startswith(source):
                message = f"{source} {requested!r}: {error}"
            raise ValueError(message) from error
        self.forward_batch_size = max(1, int(params[batch_key]))
        threads = ""
        if not on_gpu:
            torch.set_num_threads(threads_per_instance(model_config, usable_cores()))
            threads = f", {torch.get_num_threads()} torch thread(s)"
        check_config(
            self.model_name,
            model_config,
            detector_contract(self.detector.has_masks, len(self.detector.keypoint_names)),
        )
        scores = (
            f"score thresholds {thresholds} ({params['score_thresholds']})"
            if thresholds is not None
            else f"score threshold {cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST} (the YAML's)"
        )
        pb_utils.Logger.log_info(
            f"{self.model_name}: {params['detectron2_config']} on {device}, weights "
            f"{model_dir / params['weights']}, classes {self.detector.class_names}, {scores}, "
            f"{self.forward_batch_size} image(s) per forward{threads}, "
            f"{self._precision_line()}"
        )
        if self.detector.precision_fallback:
            pb_utils.Logger.log_warn(
                f"{self.model_name}: precision {requested} asked for in "
                f"{model_dir / 'config.pbtxt'}, but {self.detector.precision_fallback}"
            )
        if self.detector.untrained:
            pb_utils.Logger.log_warn(
                f"*** {self.model_name}: UNTRAINED WEIGHTS ({model_dir / params['weights']}). "
                "Its detections are meaningless. Set the 'weights' parameter in "
                f"{model_dir / 'config.pbtxt'} to a trained model_final.pth. ***"
            )

    def _precision_line(self) -> str:
        """The precision served, for the load's log line."""
        detector = self.detector
        name = str(detector.precision).removeprefix("torch.")
        if not detector.lowered:
            return f"precision {name}"
        return f"precision {name} in {', '.join(detector.lowered)} (the rest float32)"

    def execute(self, requests: list[Any]) -> None:
        inputs = []
        for request in requests:
            try:
                image = one_sample(request, IMAGE)
                size = one_sample(request, ORIGINAL_SIZE)
            except ValueError as error:
                respond(request, invalid_argument(f"{self.model_name}: {error}"))
                continue
            if image.ndim != 3 or image.shape[2] != 3:
                message = f"expected an HWC image with 3 channels, got {list(image.shape)}"
                respond(request, invalid_argument(f"{self.model_name}: {message}"))
            else:
                inputs.append((request, (image, [int(v) for v in size])))

        # Each forward's requests are answered as soon as it ends: on a CPU, where a forward
        # takes one image, the first request of a dynamic batch does not wait for the last.
        step = self.forward_batch_size
        for chunk in (inputs[i : i + step] for i in range(0, len(inputs), step)):
            try:
                detections = self.detector([image for _, image in chunk])
            except Exception as error:  # e.g. out of memory: fail these requests, not the model
                if is_out_of_memory(error) and self.detector.device.type == "cuda":
                    torch.cuda.empty_cache()  # so that the next request finds room
                for request, _ in chunk:
                    respond(request, failure(f"{self.model_name}: detection failed: {error}"))
                continue
            for (request, _), result in zip(chunk, detections, strict=True):
                outputs = [output_tensor(name, array) for name, array in result.outputs().items()]
                respond(request, pb_utils.InferenceResponse(output_tensors=outputs))

    def finalize(self) -> None:
        self.detector = None
