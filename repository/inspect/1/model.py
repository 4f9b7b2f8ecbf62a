"""Triton python-backend BLS model "inspect": route one JPEG to pointer, insulator or both.

Decodes once (``preprocess``, which resizes the photo for each chosen detector), runs the
detectors with ``async_exec`` (concurrently on a GPU, one after the other on a CPU: see
config.pbtxt), and merges their results into one answer (``bls.merge``). A detector that fails
is reported in the answer next to the other's results; a bad request (unknown model,
undecodable image) fails alone. Each child request carries its request's trace, so a server
started with tracing records them under it (parent_id).

At load it reads its neighbours' config.pbtxt, YAML and meters.yaml through the repository
folder, which must therefore be a local or mounted one (README, "Known limitations"). A detector
whose config.pbtxt declares KEYPOINTS is asked for them: the meter detector's go to the reading,
and the answer names each dial's keypoints as its YAML's KEYPOINT_NAMES do.

The numerals printed on a dial give its value where its class has no calibrated range, and
check the range where it has one: the ``ocr`` model reads the rectified faces (one call per
photo, only where a dial was read) and ``bls.meters.printed`` fits the range (parameter
``printed_ranges``). Where that model is absent or fails, the log says so once and readings fall
back to calibration only.

When the meter detector ran beside another, that detector's boxes lying on a dial the meter
detector is sure of are dropped and counted (``bls.on_dials``; parameters ``drop_on_dials`` and
``dial_cover``): no insulator shows through a meter's face.
"""

import asyncio
import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from bls.merge import KeypointLayout, merge_answer
from bls.meters import KEYPOINT_NAMES, instances_from_arrays, load_calibrations, read_meters
from bls.meters.printed import faces_to_read, printed_answers
from bls.on_dials import on_dials, parse_dial_cover, select
from bls.repository import class_names, keypoint_names, model_tensors
from bls.routing import RoutingError, choose_detectors, parse_detectors
from pipelines.ocr import FACES, TEXT, lines_from_json
from pipelines.tensors import (
    DETECTIONS,
    IMAGE,
    JPEG,
    KEYPOINTS,
    MASKS,
    MODELS,
    ORIGINAL_SIZE,
    ROUTER,
    Detections,
    detector_contract,
)
from server.python_models import (
    check_config,
    failure,
    invalid_argument,
    model_parameters,
    passed_on,
    respond,
    yes_or_no,
)

# The meter detector's needle class where config.pbtxt names none, as bls.meters.read_meters
# takes it: its instances carry no keypoints (the head is trained with none on them), every other
# class is a dial and does.
DEFAULT_NEEDLE_CLASS = "pointer"


class TritonPythonModel:
    def initialize(self, args):
        model_config = json.loads(args["model_config"])
        params = model_parameters(model_config)
        check_config("inspect", model_config, ROUTER)
        repository = Path(args["model_repository"]).parent
        self.preprocess_model = params["preprocess_model"]
        # detector -> the preprocess output that is its image
        self.detector_images = parse_detectors(params["detectors"])
        self.detectors = list(self.detector_images)
        self.class_names = {name: class_names(repository, name) for name in self.detectors}
        self.meter_detector = params["meter_detector"]
        self.needle_class = params.get("needle_class", DEFAULT_NEEDLE_CLASS)
        meter_classes = self.class_names[self.meter_detector]
        if self.needle_class not in meter_classes:
            meter_yaml = model_tensors(repository, self.meter_detector).parameters[
                "detectron2_config"
            ]
            raise ValueError(
                f"inspect: needle_class {self.needle_class!r} in "
                f"{repository / 'inspect' / 'config.pbtxt'} is not a class of "
                f"{repository / self.meter_detector / meter_yaml}: its CLASS_NAMES are "
                f"{meter_classes}"
            )
        # What each detector gives: with masks or without, with keypoints or without, as its
        # config.pbtxt declares.
        self.detector_outputs = {}
        self.keypoints = {}
        for name in self.detectors:
            declared = model_tensors(repository, name).outputs
            layout = self._keypoint_layout(repository, name) if KEYPOINTS in declared else None
            count = 0 if layout is None else len(layout.names)
            self.detector_outputs[name] = detector_contract(MASKS in declared, count).output_names
            if layout is not None:
                self.keypoints[name] = layout
        self.default_models = params["default_models"]
        # A malformed calibration fails the load, naming the file and the key.
        self.calibrations = load_calibrations(
            repository / self.meter_detector / params["meter_calibrations"],
            meter_classes,
            needle_class=self.needle_class,
        )
        # Printed ranges: the OCR model reads the numerals of dials without a calibrated range.
        self.ocr_model = params.get("ocr_model", "ocr")
        self.printed_ranges = (
            yes_or_no(params, "printed_ranges") if "printed_ranges" in params else False
        )
        if self.printed_ranges and not (repository / self.ocr_model / "config.pbtxt").is_file():
            self._printed_ranges_off(f"the repository has no model {self.ocr_model!r}")
        on_gpu = args["model_instance_kind"] == "GPU"
        # Detectors whose boxes on the meter detector's dials are dropped: those of a repository
        # without one (a user serving the meter detector alone) never run, so they are left out.
        named = [n.strip() for n in params.get("drop_on_dials", "").split(",") if n.strip()]
        if self.meter_detector in named:
            raise ValueError(
                f"inspect: drop_on_dials names the meter detector {self.meter_detector!r}, whose "
                "dials are what the other detectors' boxes are dropped on"
            )
        self.drop_on_dials = [n for n in named if n in self.detectors]
        self.dial_cover = parse_dial_cover(params.get("dial_cover", ""))
        self.dial_classes = {i for i, name in enumerate(meter_classes) if name != self.needle_class}
        self.concurrent_detectors = yes_or_no(
            params, "gpu_concurrent_detectors" if on_gpu else "cpu_concurrent_detectors"
        )

    def _keypoint_layout(self, repository, detector):
        """The names of a detector's keypoints (its YAML's) and the classes that carry them."""
        names = keypoint_names(repository, detector)
        if not names:
            raise ValueError(
                f"inspect: {repository / detector / 'config.pbtxt'} declares {KEYPOINTS} but "
                f"the YAML its detectron2_config names has no KEYPOINT_NAMES"
            )
        classes = frozenset(self.class_names[detector])
        if detector == self.meter_detector:
            classes -= {self.needle_class}
            missing = [name for name in KEYPOINT_NAMES if name not in names]
            if missing:
                raise ValueError(
                    f"inspect: the KEYPOINT_NAMES of {detector}'s YAML {names} lack "
                    f"{', '.join(missing)}, which the meter reading needs"
                )
        return KeypointLayout(tuple(names), classes)

    async def execute(self, requests):
        # Each request of a batch is answered as soon as its own answer is ready.
        await asyncio.gather(*(self._respond(request) for request in requests))

    async def _respond(self, request):
        try:
            response = await self._answer(request)
        except Exception as error:  # unexpected: fail this request, never the whole batch
            response = failure(f"inspect: {error}")
        respond(request, response)

    async def _answer(self, request):
        choice = pb_utils.get_input_tensor_by_name(request, MODELS)
        requested = None
        if choice is not None:
            requested = choice.as_numpy().reshape(-1)[0].decode("utf-8", errors="replace")
        try:
            detectors = choose_detectors(requested, self.detectors, self.default_models)
        except RoutingError as error:
            return invalid_argument(str(error))

        jpeg = pb_utils.get_input_tensor_by_name(request, JPEG)
        if jpeg is None:
            return invalid_argument(f"missing input {JPEG}: the JPEG file's bytes")
        preprocessed = await pb_utils.InferenceRequest(
            model_name=self.preprocess_model,
            requested_output_names=[
                *(self.detector_images[name] for name in detectors),
                ORIGINAL_SIZE,
            ],
            inputs=[jpeg],
            trace=request.trace(),
        ).async_exec()
        if preprocessed.has_error():
            return passed_on(preprocessed.error())
        size = pb_utils.get_output_tensor_by_name(preprocessed, ORIGINAL_SIZE)
        images = {
            name: pb_utils.get_output_tensor_by_name(preprocessed, self.detector_images[name])
            for name in detectors
        }

        if self.concurrent_detectors:
            outcomes = await asyncio.gather(
                *(self._detect(request, name, images[name], size) for name in detectors)
            )
        else:
            outcomes = [await self._detect(request, name, images[name], size) for name in detectors]
        results = dict(zip(detectors, outcomes, strict=True))
        height, width = (int(v) for v in size.as_numpy().reshape(-1))
        dropped = self._drop_on_dials(results)
        readings = await self._readings(request, jpeg, results)
        document, masks = merge_answer(
            height, width, results, self.class_names, readings, self.keypoints, dropped
        )
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor(DETECTIONS, np.array([[document]], dtype=np.object_)),
                pb_utils.Tensor(MASKS, masks[np.newaxis]),
            ]
        )

    def _drop_on_dials(self, results):
        """Drops, in ``results``, the boxes of ``drop_on_dials`` detectors that lie on the meter
        detector's dials; returns how many per detector (none where either did not answer)."""
        meter = results.get(self.meter_detector)
        if not isinstance(meter, Detections):
            return {}
        dropped = {}
        for name in self.drop_on_dials:
            result = results.get(name)
            if isinstance(result, Detections):
                found = on_dials(result.boxes, meter, self.dial_classes, self.dial_cover)
                results[name] = select(result, ~found)
                dropped[name] = int(found.sum())
        return dropped

    async def _readings(self, request, jpeg, results):
        """The meter readings when the meter detector ran (none if it failed), else None; with
        printed ranges where asked for."""
        if self.meter_detector not in results:
            return None
        result = results[self.meter_detector]
        if not isinstance(result, Detections):
            return []
        instances = instances_from_arrays(
            result.classes,
            result.scores,
            result.boxes,
            result.mask_rects,
            result.masks,
            keypoints=result.keypoints,
        )
        layout = self.keypoints.get(self.meter_detector)
        # Without a keypoint head the reading takes its scale from the calibration.
        readings = read_meters(
            instances,
            self.class_names[self.meter_detector],
            self.calibrations,
            keypoint_names=KEYPOINT_NAMES if layout is None else layout.names,
            needle_class=self.needle_class,
        )
        wanted = []
        if self.printed_ranges:
            names = self.class_names[self.meter_detector]
            wanted = faces_to_read(instances, readings, names, self.calibrations)
        faces = (
            await self._read_faces(request, jpeg, [w.homography for w in wanted])
            if wanted
            else None
        )
        if faces is None:
            return [r.to_json() for r in readings]
        return printed_answers(readings, wanted, faces)

    async def _read_faces(self, request, jpeg, homographies):
        """The text on each face (``ocr`` model), or ``None`` when it cannot be read: then printed
        ranges are turned off, and the log says so once."""
        response = await pb_utils.InferenceRequest(
            model_name=self.ocr_model,
            requested_output_names=[TEXT],
            inputs=[
                jpeg,
                pb_utils.Tensor(FACES, np.asarray(homographies, dtype=np.float32)[np.newaxis]),
            ],
            trace=request.trace(),
        ).async_exec()
        if response.has_error():
            self._printed_ranges_off(f"{self.ocr_model}: {response.error().message()}")
            return None
        text = pb_utils.get_output_tensor_by_name(response, TEXT).as_numpy().reshape(-1)[0]
        return lines_from_json(text.decode("utf-8"))

    def _printed_ranges_off(self, why):
        self.printed_ranges = False
        pb_utils.Logger.log_warn(
            f"inspect: printed ranges off ({why}); readings fall back to calibration only"
        )

    async def _detect(self, request, detector, image, size):
        """One detector's result, or its error message: a failure stays in its own slot."""
        outputs = self.detector_outputs[detector]
        response = await pb_utils.InferenceRequest(
            model_name=detector,
            requested_output_names=outputs,
            inputs=[_renamed(image, IMAGE), size],
            trace=request.trace(),
        ).async_exec()
        if response.has_error():
            return f"{detector}: {response.error().message()}"
        return Detections.from_outputs(
            {n: pb_utils.get_output_tensor_by_name(response, n).as_numpy()[0] for n in outputs}
        )

    def finalize(self):
        self.detector_outputs = None
        self.keypoints = None


def _renamed(tensor, name):
    """The same data under another name (preprocess names each detector's image after it;
    every detector takes its own as IMAGE), without leaving the GPU if it is there."""
    if tensor.is_cpu():
        return pb_utils.Tensor(name, tensor.as_numpy())
    return pb_utils.Tensor.from_dlpack(name, tensor.to_dlpack())
