"""Parity: what the served ensembles answer equals what detectron2 itself answers.

The reference is detectron2's ``DefaultPredictor`` with the same config and weights (the demo
models the repository serves), given the same JPEG decoded by detectron2's ``read_image``.
Tolerances: boxes within 1 px, scores within 1e-3, the same class, and masks with IoU >= 0.99,
instance by instance, on photos of meters and insulators where the detectors find real objects.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.data.detection_utils import read_image
from detectron2.engine import DefaultPredictor
from detectron2.structures import Boxes, Instances, pairwise_iou
from PIL import Image

from bls.repository import model_tensors
from clients.jpeg_client import JpegClient
from clients.masks import paste_masks
from pipelines.detector import load_config, load_weights
from server.launch import REPO_ROOT, TritonServer
from tests.support import connect, encode_jpeg, served_preprocess_config

pytestmark = pytest.mark.slow

BOX_TOLERANCE_PX = 1.0
SCORE_TOLERANCE = 1e-3
MIN_MASK_IOU = 0.99

REPOSITORY = REPO_ROOT / "repository"
# detector -> its photos among the test scenes
PHOTOS = {"pointer": ("gauge", "gauges", "both"), "insulator": ("insulator", "both")}


@dataclass
class Result:
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    masks: np.ndarray | None

    @classmethod
    def from_instances(cls, instances: Instances) -> Result:
        """What detectron2 answered."""
        return cls(
            boxes=instances.pred_boxes.tensor.numpy(),
            scores=instances.scores.numpy(),
            classes=instances.pred_classes.numpy(),
            masks=instances.pred_masks.numpy() if instances.has("pred_masks") else None,
        )

    @classmethod
    def from_outputs(cls, outputs: dict[str, np.ndarray], height: int, width: int) -> Result:
        """What an ensemble answered, its masks pasted back into full-image planes."""
        masks = None
        if "MASKS" in outputs:
            masks = paste_masks(outputs["MASK_RECTS"], outputs["MASKS"], height, width)
        return cls(outputs["BOXES"], outputs["SCORES"], outputs["CLASSES"], masks)


@pytest.fixture(scope="module")
def predictors() -> dict[str, DefaultPredictor]:
    return build_predictors()


def build_predictors() -> dict[str, DefaultPredictor]:
    """detectron2's own predictor per detector, with the config and weights it is served with,
    on the device the server runs it on (GPU 0 where there is one) with torch's default math
    settings there, as the server's stubs have them (cuDNN TF32 on, matmul TF32 off)."""
    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    predictors = {}
    for name in PHOTOS:
        parameters = model_tensors(REPOSITORY, name).parameters
        cfg = load_config(REPOSITORY / name / parameters["detectron2_config"], device)
        predictor = DefaultPredictor(cfg)
        load_weights(predictor.model, REPOSITORY / name / parameters["weights"])
        predictors[name] = predictor
    return predictors


def resized_to(jpeg: bytes, shorter_side: int, max_longer_side: int) -> bytes:
    """The photo re-encoded with its shorter side at ``shorter_side``, aspect kept within a cap."""
    photo = Image.open(io.BytesIO(jpeg))
    scale = shorter_side / min(photo.size)
    longer_side = min(round(max(photo.size) * scale), max_longer_side)
    size = (
        (longer_side, shorter_side) if photo.width > photo.height else (shorter_side, longer_side)
    )
    return encode_jpeg(photo.resize(size, Image.Resampling.BICUBIC))


def compare(
    predictor: DefaultPredictor, client: JpegClient, model: str, jpeg: bytes, tmp_path: Path
) -> tuple[Result, Result]:
    """``(detectron2's answer, the served ensemble's answer)`` for one JPEG."""
    path = tmp_path / "image.jpg"
    path.write_bytes(jpeg)
    image = read_image(str(path), format="BGR")
    expected = Result.from_instances(predictor(image)["instances"])
    outputs = client.infer(f"{model}_ensemble", jpeg)
    return expected, Result.from_outputs(outputs, *image.shape[:2])


def unmatched(expected: Result, actual: Result, threshold: float) -> list[str]:
    """Every instance of either answer that has no twin within every tolerance in the other.

    An instance scoring within the score tolerance of the model's threshold may be answered by
    one side only: the same 1e-3 that the tolerance allows puts it on either side of the line.
    """
    failures = []
    for first, second, side in ((expected, actual, "detectron2"), (actual, expected, "served")):
        iou = pairwise_iou(
            Boxes(torch.from_numpy(first.boxes)), Boxes(torch.from_numpy(second.boxes))
        ).numpy()
        for i in range(len(first.scores)):
            score = float(first.scores[i])
            same_class = np.flatnonzero(second.classes == first.classes[i])
            if same_class.size == 0:
                if abs(score - threshold) > SCORE_TOLERANCE:
                    failures.append(f"{side} #{i} (score {score:.4f}): no twin")
                continue
            j = same_class[np.argmax(iou[i, same_class])]
            box_error = float(np.abs(first.boxes[i] - second.boxes[j]).max())
            score_error = float(abs(first.scores[i] - second.scores[j]))
            mask_iou = 1.0
            if first.masks is not None and second.masks is not None:
                union = np.logical_or(first.masks[i], second.masks[j]).sum()
                inter = np.logical_and(first.masks[i], second.masks[j]).sum()
                mask_iou = float(inter / union) if union else 1.0
            within = (
                box_error <= BOX_TOLERANCE_PX
                and score_error <= SCORE_TOLERANCE
                and mask_iou >= MIN_MASK_IOU
            )
            if not within and abs(score - threshold) > SCORE_TOLERANCE:
                failures.append(
                    f"{side} #{i} (score {score:.4f}): box off by {box_error:.3f} px, "
                    f"score by {score_error:.5f}, mask IoU {mask_iou:.4f}"
                )
    return failures


def photos_for(model: str, scenes: dict[str, bytes]) -> dict[str, bytes]:
    """The model's test photos as taken, enlarged 2x, and at exactly its input size."""
    resize = served_preprocess_config().resize(f"{model.upper()}_IMAGE")
    photos = {}
    for name in PHOTOS[model]:
        photos[name] = scenes[name]
        photos[f"{name} enlarged"] = resized_to(scenes[name], 2 * resize.shortest_edge, 10_000)
    # Shorter side at the model's size, longer within its cap: detectron2 leaves it unresized.
    first = PHOTOS[model][0]
    photos[f"{first} unresized"] = resized_to(scenes[first], resize.shortest_edge, resize.max_size)
    return photos


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("model", sorted(PHOTOS))
def test_every_instance_matches_default_predictor(
    triton_server: TritonServer,
    predictors: dict[str, DefaultPredictor],
    scenes: dict[str, bytes],
    tmp_path: Path,
    model: str,
    protocol: str,
) -> None:
    threshold = predictors[model].cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST
    with connect(triton_server, protocol) as client:
        for name, jpeg in photos_for(model, scenes).items():
            expected, actual = compare(predictors[model], client, model, jpeg, tmp_path)
            assert len(expected.scores) > 0, f"{name}: a parity test over nothing proves nothing"
            failures = unmatched(expected, actual, threshold)
            assert not failures, f"{model}, {name}: {failures[:5]}"


@pytest.mark.parametrize("model", sorted(PHOTOS))
def test_detector_step_equals_detectron2_on_the_served_image(
    triton_server: TritonServer,
    predictors: dict[str, DefaultPredictor],
    scenes: dict[str, bytes],
    model: str,
) -> None:
    """Given the very image the ensemble preprocessed, detectron2 answers what Triton answers."""
    jpeg = scenes["both"]
    with connect(triton_server, "http") as client:
        preprocessed = client.infer("preprocess_ensemble", jpeg)
        actual_outputs = client.infer(f"{model}_ensemble", jpeg)
    height, width = (int(v) for v in preprocessed["ORIGINAL_SIZE"])
    image = torch.as_tensor(preprocessed[f"{model.upper()}_IMAGE"]).permute(2, 0, 1).float()
    with torch.inference_mode():
        [output] = predictors[model].model([{"image": image, "height": height, "width": width}])
    expected = Result.from_instances(output["instances"])
    actual = Result.from_outputs(actual_outputs, height, width)
    assert len(expected.scores) > 0
    np.testing.assert_allclose(actual.boxes, expected.boxes, atol=1e-3)
    np.testing.assert_allclose(actual.scores, expected.scores, atol=1e-5)
    np.testing.assert_array_equal(actual.classes, expected.classes)
    if expected.masks is not None:
        np.testing.assert_array_equal(actual.masks, expected.masks)
