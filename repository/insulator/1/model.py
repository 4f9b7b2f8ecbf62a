"""Triton python-backend model "insulator": CenterNet2 detecting insulators and their defects.

``initialize``/``execute``/``finalize`` are the shared detector adapter in
``server/python_models.py``; the model itself is ``pipelines.detector.Detector`` configured by
this model's ``config.pbtxt`` parameters (the demo R18-FPN YAML by default, the
R50-FPN one for production weights).
"""

from server.python_models import DetectorModel


class TritonPythonModel(DetectorModel):
    pass
