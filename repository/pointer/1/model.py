"""Triton python-backend model "pointer": Mask R-CNN segmenting meter needles and dials.

``initialize``/``execute``/``finalize`` are the shared detector adapter in
``server/python_models.py``; the model itself is ``pipelines.detector.Detector`` configured by
this model's ``config.pbtxt`` parameters (the demo R18-FPN YAML by default, the
R50-FPN one for production weights).

A YAML with a keypoint head (``MODEL.KEYPOINT_ON``) adds the output ``KEYPOINTS``, which
``config.pbtxt`` must then declare, and must not declare otherwise: the load fails naming both
files when they disagree.
"""

from server.python_models import DetectorModel


class TritonPythonModel(DetectorModel):
    pass
