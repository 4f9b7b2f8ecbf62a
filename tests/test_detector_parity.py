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


def pair_up(expected: Result, actual: Result) -> list[tuple[int, int]]:
    """Pairs each detectron2 instance with at most one served instance of its class and the
    reverse, closest boxes first (by IoU), so that a duplicated or a dropped instance is left
    without a twin."""
    iou = pairwise_iou(
        Boxes(torch.from_numpy(expected.boxes)), Boxes(torch.from_numpy(actual.boxes))
    ).numpy()
    same_class = expected.classes[:, None] == actual.classes[None, :]
    candidates = sorted(zip(*np.nonzero(same_class), strict=True), key=lambda ij: -iou[ij])
    pairs: list[tuple[int, int]] = []
    taken_expected: set[int] = set()
    taken_actual: set[int] = set()
    for i, j in candidates:
        if i not in taken_expected and j not in taken_actual:
            pairs.append((int(i), int(j)))
            taken_expected.add(i)
            taken_actual.add(j)
    return pairs


def unmatched(expected: Result, actual: Result, threshold: float) -> list[str]:
    """Every instance of either answer that has no twin within every tolerance in the other,
    twins paired one to one (:func:`pair_up`).

    An instance scoring within the score tolerance of the model's threshold may be answered by
    one side only: the same 1e-3 that the tolerance allows puts it on either side of the line.
    Masks are compared wherever detectron2 answers them, and then the served answer must have
    them too.
    """
    if expected.masks is not None and actual.masks is None:
        return ["detectron2 answered masks, the served answer none"]
    if actual.masks is not None and expected.masks is None:
        return ["the served answer has masks, detectron2 answered none"]

    def at_threshold(score: float) -> bool:
        return abs(score - threshold) <= SCORE_TOLERANCE

    failures = []
    pairs = pair_up(expected, actual)
    for i, j in pairs:
        box_error = float(np.abs(expected.boxes[i] - actual.boxes[j]).max())
        score_error = float(abs(expected.scores[i] - actual.scores[j]))
        mask_iou = 1.0
        if expected.masks is not None and actual.masks is not None:
            union = np.logical_or(expected.masks[i], actual.masks[j]).sum()
            inter = np.logical_and(expected.masks[i], actual.masks[j]).sum()
            # Two empty masks agree.
            mask_iou = float(inter / union) if union else 1.0
        within = (
            box_error <= BOX_TOLERANCE_PX
            and score_error <= SCORE_TOLERANCE
            and mask_iou >= MIN_MASK_IOU
        )
        # Two instances each at the threshold may be paired while each one's twin is missing.
        tied = at_threshold(float(expected.scores[i])) and at_threshold(float(actual.scores[j]))
        if not within and not tied:
            failures.append(
                f"detectron2 #{i} (score {expected.scores[i]:.4f}) and served #{j}: box off by "
                f"{box_error:.3f} px, score by {score_error:.5f}, mask IoU {mask_iou:.4f}"
            )
    for side, result, paired in (
        ("detectron2", expected, {i for i, _ in pairs}),
        ("served", actual, {j for _, j in pairs}),
    ):
        for k in sorted(set(range(len(result.scores))) - paired):
            score = float(result.scores[k])
            if not at_threshold(score):
                failures.append(f"{side} #{k} (score {score:.4f}): no twin")
    if failures:
        failures.append(f"counts: detectron2 {len(expected.scores)}, served {len(actual.scores)}")
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


def answer(scores: list[float], masks: bool = True) -> Result:
    """A made-up answer of one class: an instance per score, 10 px apart, each with its mask."""
    boxes = np.array([[10.0 * k, 0.0, 10.0 * k + 8, 8.0] for k in range(len(scores))], np.float32)
    planes = np.zeros((len(scores), 12, 10 * len(scores) + 10), dtype=bool)
    for k in range(len(scores)):
        planes[k, 0:8, 10 * k : 10 * k + 8] = True
    return Result(
        boxes.reshape(-1, 4),
        np.array(scores, np.float32),
        np.zeros(len(scores), np.int32),
        planes if masks else None,
    )


def take(result: Result, order: list[int]) -> Result:
    """The instances of ``result`` at ``order`` (repeats duplicate them)."""
    masks = None if result.masks is None else result.masks[order]
    return Result(result.boxes[order], result.scores[order], result.classes[order], masks)


def test_twins_pair_one_to_one_and_every_difference_is_named() -> None:
    """The matcher itself: it must fail a duplicate, a drop, a moved box or score, a lost mask."""
    reference = answer([0.9, 0.8, 0.7])
    assert unmatched(reference, take(reference, [2, 0, 1]), threshold=0.5) == []
    duplicated = unmatched(reference, take(reference, [0, 1, 2, 2]), threshold=0.5)
    assert "served #3 (score 0.7000): no twin" in duplicated, duplicated
    dropped = unmatched(reference, take(reference, [0, 1]), threshold=0.5)
    assert "detectron2 #2 (score 0.7000): no twin" in dropped, dropped
    assert unmatched(reference, answer([0.9, 0.8, 0.7], masks=False), threshold=0.5) == [
        "detectron2 answered masks, the served answer none"
    ]
    moved = take(reference, [0, 1, 2])
    moved.boxes[1] += 1.5
    assert any("box off by 1.500 px" in f for f in unmatched(reference, moved, threshold=0.5))
    rescored = take(reference, [0, 1, 2])
    rescored.scores[0] -= 0.01
    assert any("score by 0.01000" in f for f in unmatched(reference, rescored, threshold=0.5))
    blotted = take(reference, [0, 1, 2])
    blotted.masks[2, 0:4] = False
    assert any("mask IoU 0.5000" in f for f in unmatched(reference, blotted, threshold=0.5))


def test_an_instance_at_the_threshold_may_be_answered_by_one_side_only() -> None:
    reference = answer([0.9, 0.5004])
    assert unmatched(reference, take(reference, [0]), threshold=0.5) == []
    assert unmatched(take(reference, [0]), reference, threshold=0.5) == []
    assert unmatched(reference, take(reference, [0]), threshold=0.3) != []


@pytest.mark.slow
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


@pytest.mark.slow
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
