"""Triton python-backend model ``bench_echo``: answers with the byte count of what it was sent.

Only the benchmark's own server loads it (``bench.servers`` copies this file into a model
repository under ``build/``): it costs the server next to nothing, so timing it times the
transport of raw JPEG bytes, HTTP against gRPC against system shared memory.
"""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "JPEG").as_numpy()
            size = np.array([data.size], dtype=np.int64)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("SIZE", size)]))
        return responses
