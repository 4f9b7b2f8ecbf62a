"""Triton python-backend model "insulator": CenterNet2 R50-FPN detecting insulators and defects.

``initialize``/``execute``/``finalize`` are the shared detector adapter in
``server/python_models.py``; the model itself is ``pipelines.detector.Detector`` configured by
this model's ``config.pbtxt`` parameters.
"""

from server.python_models import DetectorModel


class TritonPythonModel(DetectorModel):
    pass
