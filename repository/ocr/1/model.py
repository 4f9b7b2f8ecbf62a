"""Triton python-backend model "ocr": the text printed on meter faces (``pipelines.ocr``).

Takes the photo's JPEG bytes (decoded here once more: ``inspect`` holds only the detectors'
resized images) and per dial the homography from photo pixels to its face; answers per dial the
lines read on its rectified face, as JSON. An engine that does not load (the package missing, its
models unreadable) does not fail the model's load, which would stop the whole server at start:
the model says why in the log, and answers every request with that error, which ``inspect``
takes as the sign to read on without printed ranges.
"""

import io
import json

import numpy as np
import triton_python_backend_utils as pb_utils
from PIL import Image

from pipelines.ocr import (
    FACES,
    OCR,
    TEXT,
    OcrEngine,
    OcrUnavailableError,
    lines_to_json,
    read_faces,
)
from pipelines.tensors import JPEG
from pipelines.threads import usable_cores
from server.python_models import check_config, failure, invalid_argument, model_parameters

# How an answer starts when the engine is not there; inspect recognizes it.
UNAVAILABLE = "ocr unavailable: "


class TritonPythonModel:
    def initialize(self, args):
        model_config = json.loads(args["model_config"])
        check_config("ocr", model_config, OCR)
        params = model_parameters(model_config)
        self.face_size = _positive(params, "face_size")
        threads = int(params["threads"]) or usable_cores()
        self.engine = None
        self.unavailable = None
        try:
            self.engine = OcrEngine(threads, detector_side=_positive(params, "detector_side"))
        except OcrUnavailableError as error:
            self.unavailable = f"{UNAVAILABLE}{error}"
            pb_utils.Logger.log_error(f"ocr: {self.unavailable}; readings get no printed ranges")
            return
        pb_utils.Logger.log_info(
            f"ocr: PP-OCRv4 on the CPU, {threads} threads, faces of {self.face_size} px"
        )

    def execute(self, requests):
        return [self._answer(request) for request in requests]

    def _answer(self, request):
        if self.engine is None:
            return failure(self.unavailable)
        jpeg = pb_utils.get_input_tensor_by_name(request, JPEG).as_numpy()
        faces = pb_utils.get_input_tensor_by_name(request, FACES).as_numpy()
        if jpeg.ndim != 2 or jpeg.shape[0] != 1 or faces.ndim != 4 or faces.shape[0] != 1:
            return invalid_argument(
                f"expected one photo per request: {JPEG} [1, N] and {FACES} [1, K, 3, 3], got "
                f"{list(jpeg.shape)} and {list(faces.shape)}"
            )
        try:
            image = np.asarray(Image.open(io.BytesIO(jpeg[0].tobytes())).convert("RGB"))
        except OSError as error:
            return invalid_argument(f"{JPEG} is not a decodable image: {error}")
        try:
            lines = read_faces(self.engine, image, list(faces[0]), self.face_size)
        except ValueError as error:
            return invalid_argument(f"{FACES}: {error}")
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor(TEXT, np.array([[lines_to_json(lines)]], dtype=np.object_))
            ]
        )

    def finalize(self):
        self.engine = None


def _positive(params, key):
    value = int(params[key])
    if value <= 0:
        raise ValueError(f"ocr: parameter {key} must be a positive number of pixels, got {value}")
    return value
