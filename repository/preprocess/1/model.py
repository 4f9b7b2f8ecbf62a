"""Triton python-backend model: raw JPEG bytes -> the image a detectron2 model expects.

The DALI pipeline lives in ``pipelines.preprocess``; this file only adapts it to Triton.
"""

import json

import triton_python_backend_utils as pb_utils

from pipelines.preprocess import DecodeError, PreprocessConfig, Preprocessor
from server.python_models import invalid_argument, model_parameters, output_tensor


class TritonPythonModel:
    def initialize(self, args):
        model_config = json.loads(args["model_config"])
        self.input_name = model_config["input"][0]["name"]
        # Output order in config.pbtxt is the pipeline's output order.
        self.output_names = [output["name"] for output in model_config["output"]]
        on_gpu = args["model_instance_kind"] == "GPU"
        device_id = int(args["model_instance_device_id"]) if on_gpu else None
        config = PreprocessConfig.from_parameters(model_parameters(model_config))
        self.preprocessor = Preprocessor(
            self.input_name,
            config,
            max_batch_size=max(1, model_config["max_batch_size"]),
            device_id=device_id,
        )
        pb_utils.Logger.log_info(
            f"preprocess: DALI decode on {'GPU ' + str(device_id) if on_gpu else 'CPU'}, {config}"
        )

    def execute(self, requests):
        jpegs = {}
        errors = {}
        for i, request in enumerate(requests):
            tensor = pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy()
            if tensor.ndim == 2 and tensor.shape[0] == 1:
                jpegs[i] = tensor[0]
            else:
                errors[i] = (
                    f"expected one JPEG per request: {self.input_name} of shape [1, N], "
                    f"got {list(tensor.shape)}"
                )
        results = dict(zip(jpegs, self.preprocessor(list(jpegs.values())), strict=True))

        responses = []
        for i in range(len(requests)):
            result = results.get(i)
            if result is None or isinstance(result, DecodeError):
                responses.append(invalid_argument(errors.get(i) or str(result)))
                continue
            outputs = [
                output_tensor(name, value)
                for name, value in zip(self.output_names, result, strict=True)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
        return responses

    def finalize(self):
        self.preprocessor = None
