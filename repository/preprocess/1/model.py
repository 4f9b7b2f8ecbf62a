"""Triton python-backend model: raw JPEG bytes -> the image each detectron2 model expects.

The DALI pipeline lives in ``pipelines.preprocess``; this file only adapts it to Triton. Each
JPEG is decoded once and resized once per image output the request asks for (an ensemble asks
for its detector's; a client that names no outputs gets them all). At load it reads the YAML of
each image output's detector through the repository folder, as ``inspect`` does.
"""

import json
from pathlib import Path

import triton_python_backend_utils as pb_utils

from pipelines.preprocess import DecodeError, PreprocessConfig, PreprocessFault, Preprocessor
from pipelines.tensors import JPEG, ORIGINAL_SIZE, preprocess_contract
from server.python_models import (
    check_config,
    failure,
    instance_gpu,
    invalid_argument,
    model_parameters,
    output_tensor,
)


class TritonPythonModel:
    def initialize(self, args):
        model_config = json.loads(args["model_config"])
        # Every output but ORIGINAL_SIZE is an image, resized as the parameter of its name says.
        self.image_outputs = [
            o["name"] for o in model_config["output"] if o["name"] != ORIGINAL_SIZE
        ]
        check_config("preprocess", model_config, preprocess_contract(self.image_outputs))
        device_id = instance_gpu(args)
        # Each image's resize is its detector's YAML's, read (or checked) here: the model
        # fails its load, naming both files, rather than feed a detector the wrong size.
        config = PreprocessConfig.from_parameters(
            model_parameters(model_config),
            self.image_outputs,
            model_dir=Path(args["model_repository"]),
        )
        self.preprocessor = Preprocessor(
            JPEG,
            config,
            max_batch_size=max(1, model_config["max_batch_size"]),
            device_id=device_id,
        )
        where = (
            "DALI decode, torch resize on CPU"
            if device_id is None
            else f"DALI decode on GPU {device_id}"
        )
        pb_utils.Logger.log_info(f"preprocess: {where}, {config}")

    def execute(self, requests):
        # Requests are grouped by the images they ask for: one pipeline run per group.
        groups = {}
        errors = {}
        for i, request in enumerate(requests):
            tensor = pb_utils.get_input_tensor_by_name(request, JPEG).as_numpy()
            if tensor.ndim == 2 and tensor.shape[0] == 1:
                asked = set(request.requested_output_names()) & set(self.image_outputs)
                wanted = tuple(n for n in self.image_outputs if n in asked) or tuple(
                    self.image_outputs
                )
                groups.setdefault(wanted, {})[i] = tensor[0]
            else:
                errors[i] = (
                    f"expected one JPEG per request: {JPEG} of shape [1, N], "
                    f"got {list(tensor.shape)}"
                )
        results = {}
        for wanted, jpegs in groups.items():
            outcomes = self.preprocessor(list(jpegs.values()), wanted)
            results.update(zip(jpegs, outcomes, strict=True))

        responses = []
        for i in range(len(requests)):
            result = results.get(i)
            if isinstance(result, PreprocessFault):  # the server's fault: answered as such
                responses.append(failure(f"preprocess: {result}"))
                continue
            if result is None or isinstance(result, DecodeError):
                responses.append(invalid_argument(errors.get(i) or str(result)))
                continue
            outputs = [output_tensor(name, image) for name, image in result.images.items()]
            outputs.append(output_tensor(ORIGINAL_SIZE, result.original_size))
            responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
        return responses

    def finalize(self):
        self.preprocessor = None
