"""Triton python-backend model "pointer": Mask R-CNN segmenting meter needles and dials.

``initialize``/``execute``/``finalize`` are the shared detector adapter in
``server/python_models.py``; the model itself is ``pipelines.detector.Detector`` configured by
this model's ``config.pbtxt`` parameters (the demo R18-FPN YAML by default, the
R50-FPN one for production weights).

A YAML with a keypoint head (``MODEL.KEYPOINT_ON``) adds the output ``KEYPOINTS``, which
``config.pbtxt`` must then declare, and must not declare otherwise: the load fails naming both
files when they disagree.
"""

import json
from pathlib import Path

from pipelines.detector import load_config
from pipelines.tensors import KEYPOINTS, detector_contract, keypoint_mismatch
from server.python_models import DetectorModel, check_config, model_parameters


class TritonPythonModel(DetectorModel):
    def initialize(self, args):
        model_config = json.loads(args["model_config"])
        model_dir = Path(args["model_repository"])
        yaml_path = model_dir / model_parameters(model_config)["detectron2_config"]
        cfg = load_config(yaml_path)
        num_keypoints = len(cfg.KEYPOINT_NAMES) if cfg.MODEL.KEYPOINT_ON else 0
        problem = keypoint_mismatch(
            model_config, num_keypoints, model_dir / "config.pbtxt", yaml_path
        )
        if problem:
            raise ValueError(f"{args['model_name']}: {problem}")
        # DetectorModel holds config.pbtxt to the contract without keypoints; KEYPOINTS, just
        # checked against the YAML, is set aside for that check and the whole contract held
        # after it.
        others = [o for o in model_config.get("output", []) if o["name"] != KEYPOINTS]
        super().initialize({**args, "model_config": json.dumps({**model_config, "output": others})})
        check_config(
            self.model_name, model_config, detector_contract(self.detector.has_masks, num_keypoints)
        )
