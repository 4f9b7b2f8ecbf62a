"""Triton python-backend model "pointer": Mask R-CNN R50-FPN segmenting meter needles and dials.

``initialize``/``execute``/``finalize`` are the shared detector adapter in
``server/python_models.py``; the model itself is ``pipelines.detector.Detector`` configured by
this model's ``config.pbtxt`` parameters.
"""

from server.python_models import DetectorModel


class TritonPythonModel(DetectorModel):
    pass
