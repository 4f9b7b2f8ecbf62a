"""pipelines.detector, pipelines.untrained and training.export, in process (no server)."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from detectron2.modeling import build_model

from clients.masks import paste_masks
from pipelines.detector import (
    UNTRAINED_KEY,
    CheckpointError,
    Detector,
    ScoreThresholdsError,
    fold_frozen_batch_norms,
    load_config,
    load_weights,
    mask_rect,
)
from pipelines.preprocess import Resize
from pipelines.tensors import Detections
from pipelines.untrained import make_untrained_checkpoint
from server.launch import REPO_ROOT
from tests.support import reference_preprocess
from training.export import export_weights

REPOSITORY = REPO_ROOT / "repository"
# Production architectures: their weights are the user's; tests build untrained stand-ins.
POINTER_YAML = REPOSITORY / "pointer" / "mask_rcnn_R50_FPN.yaml"
INSULATOR_YAML = REPOSITORY / "insulator" / "centernet2_R50_FPN.yaml"
# The demo models the repository serves, with their committed weights.
DEMO = {
    "pointer": (REPOSITORY / "pointer" / "mask_rcnn_R18_FPN_demo.yaml", ["pointer", "dial"]),
    "insulator": (
        REPOSITORY / "insulator" / "centernet2_R18_FPN_demo.yaml",
        ["insulator", "defect"],
    ),
}
# The demo pointer model's keypoint head on the dials (issue 36).
KEYPOINT_YAML = DEMO["pointer"][0]
KEYPOINT_NAMES = {"pointer": ["scale_start", "scale_mid", "scale_end", "center"], "insulator": []}
# The demo weights stay small: every version stays in the git history.
MAX_DEMO_WEIGHTS_BYTES = 40 * 2**20


@pytest.fixture(scope="module")
def pointer(untrained_weights) -> Detector:
    return Detector(POINTER_YAML, untrained_weights(POINTER_YAML))


@pytest.mark.parametrize("path", [POINTER_YAML, INSULATOR_YAML, *(y for y, _ in DEMO.values())])
def test_configs_name_their_classes(path: Path) -> None:
    cfg = load_config(path)
    assert len(cfg.CLASS_NAMES) == cfg.MODEL.ROI_HEADS.NUM_CLASSES > 0
    assert cfg.MODEL.WEIGHTS == "", "weights come from config.pbtxt, never from a URL"


@pytest.mark.parametrize("path", [POINTER_YAML, INSULATOR_YAML])
def test_production_configs_keep_detectron2s_input_defaults(path: Path) -> None:
    cfg = load_config(path)
    assert Resize() == Resize(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, cfg.INPUT.FORMAT)


@pytest.mark.parametrize("name", sorted(DEMO))
def test_demo_weights_are_small_trained_and_load_as_fp32(name: str) -> None:
    config, class_names = DEMO[name]
    weights = REPOSITORY / name / "weights" / "demo.pth"
    assert weights.stat().st_size <= MAX_DEMO_WEIGHTS_BYTES
    stored = torch.load(weights, map_location="cpu", weights_only=False)["model"]
    assert {t.dtype for t in stored.values() if t.is_floating_point()} == {torch.float16}
    detector = Detector(config, weights)
    assert not detector.untrained
    assert detector.class_names == class_names
    assert detector.keypoint_names == KEYPOINT_NAMES[name]
    for key, value in detector.model.state_dict().items():
        if value.is_floating_point():
            assert value.dtype == torch.float32, key
            torch.testing.assert_close(value, stored[key].float(), rtol=0, atol=0)


def test_export_halves_a_training_checkpoint(tmp_path: Path) -> None:
    state = {"w": torch.tensor([1.0, 1 / 3], dtype=torch.float32), "n": torch.tensor([7])}
    torch.save({"model": state, "optimizer": {"lr": 1}, "iteration": 99}, tmp_path / "ckpt.pth")
    export_weights(tmp_path / "ckpt.pth", tmp_path / "out" / "demo.pth", note="test")
    exported = torch.load(tmp_path / "out" / "demo.pth", weights_only=False)
    assert set(exported) == {"model", "iteration", "note"} and exported["iteration"] == 99
    assert exported["model"]["w"].dtype == torch.float16
    assert exported["model"]["n"].dtype == torch.int64
    torch.save({"optimizer": {}}, tmp_path / "no_model.pth")
    with pytest.raises(ValueError, match="holds no 'model'"):
        export_weights(tmp_path / "no_model.pth", tmp_path / "x.pth", note="")


def test_config_with_wrong_class_count_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(POINTER_YAML.read_text().replace('["pointer", "dial"]', '["pointer"]'))
    with pytest.raises(ValueError, match=r"CLASS_NAMES has 1 names but .*NUM_CLASSES is 2"):
        load_config(bad)


@pytest.mark.parametrize(
    ("names", "problem"),
    [
        ('["scale_start", "scale_mid", "scale_end"]', "NUM_KEYPOINTS is 4"),
        ('["scale_start", "scale_mid", "scale_mid", "center"]', "one distinct name"),
        ("[]", "KEYPOINT_NAMES is []"),
    ],
)
def test_a_keypoint_head_must_name_each_keypoint_once(
    tmp_path: Path, names: str, problem: str
) -> None:
    text = KEYPOINT_YAML.read_text()
    listed = '["scale_start", "scale_mid", "scale_end", "center"]'
    assert f"KEYPOINT_NAMES: {listed}" in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(listed, names))
    with pytest.raises(ValueError, match=rf"{bad}: MODEL.KEYPOINT_ON needs KEYPOINT_NAMES") as err:
        load_config(bad)
    assert problem in str(err.value)


def test_keypoint_names_come_from_the_yaml_and_only_with_a_head() -> None:
    for name, (config, _) in DEMO.items():
        assert list(load_config(config).KEYPOINT_NAMES) == KEYPOINT_NAMES[name]
    assert list(load_config(POINTER_YAML).KEYPOINT_NAMES) == []


def finds_everything(config: Path, folder: Path) -> Path:
    """A copy of a detector YAML that keeps every detection however low its score: untrained
    weights score below the recipes' thresholds."""
    settings = yaml.safe_load(config.read_text())
    settings["MODEL"]["ROI_HEADS"]["SCORE_THRESH_TEST"] = 0.0
    copy_path = folder / config.name
    copy_path.write_text(yaml.safe_dump(settings))
    return copy_path


@pytest.fixture(scope="module")
def keypoint_detector(tmp_path_factory: pytest.TempPathFactory, untrained_weights) -> Detector:
    config = finds_everything(KEYPOINT_YAML, tmp_path_factory.mktemp("keypoints"))
    return Detector(config, untrained_weights(config))


def test_keypoints_are_detectron2s_in_original_pixels(
    keypoint_detector: Detector, jpegs: dict[str, bytes]
) -> None:
    """The served keypoints are those of detectron2's own forward and postprocessing (which
    the masked path replaces), scaled from the resized image back to the photo."""
    cfg = keypoint_detector.cfg
    resize = Resize(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, cfg.INPUT.FORMAT)
    image, size = reference_preprocess(jpegs["landscape_640x427"], resize)
    assert image.shape[:2] != tuple(size), "resized: the keypoints are scaled back"
    [served] = keypoint_detector([(image, size)])
    chw = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)
    with torch.inference_mode():
        [output] = keypoint_detector.model(
            [{"image": chw, "height": int(size[0]), "width": int(size[1])}]
        )
    expected = output["instances"].pred_keypoints.numpy()
    count = len(served.scores)
    assert count == keypoint_detector.cfg.TEST.DETECTIONS_PER_IMAGE
    assert served.keypoints.shape == (count, 4, 3) and served.keypoints.dtype == np.float32
    np.testing.assert_array_equal(served.keypoints, expected)
    # detectron2 places each keypoint in its box's heatmap: inside the box, in original pixels.
    x, y = served.keypoints[..., 0], served.keypoints[..., 1]
    boxes = served.boxes[:, np.newaxis]
    assert ((x >= boxes[..., 0] - 1) & (x <= boxes[..., 2] + 1)).all()
    assert ((y >= boxes[..., 1] - 1) & (y <= boxes[..., 3] + 1)).all()
    assert served.outputs()["KEYPOINTS"] is served.keypoints


def test_nothing_found_is_no_keypoints_of_the_declared_shape(untrained_weights) -> None:
    # Untrained, every score stays below the recipe's threshold: no instance.
    detector = Detector(KEYPOINT_YAML, untrained_weights(KEYPOINT_YAML))
    [found] = detector([(np.full((320, 480, 3), 128, np.uint8), (427, 640))])
    assert found.scores.shape == (0,)
    assert found.keypoints.shape == (0, 4, 3) and found.keypoints.dtype == np.float32


def test_missing_weights_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "model_final.pth"
    with pytest.raises(CheckpointError, match=f"weights file not found: {missing}"):
        Detector(POINTER_YAML, missing)


def test_garbage_weights_name_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "model_final.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=f"cannot read weights file {garbage}"):
        Detector(POINTER_YAML, garbage)


def test_wrong_shaped_weights_say_what_is_wrong(tmp_path: Path) -> None:
    """A checkpoint of the other detector (different heads) must not load."""
    from detectron2.modeling import build_model

    model = build_model(load_config(POINTER_YAML))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    key = "roi_heads.box_predictor.cls_score.weight"
    state[key] = torch.zeros(81, state[key].shape[1])  # a COCO head: 80 classes + background
    del state["roi_heads.mask_head.predictor.bias"]
    path = tmp_path / "model_final.pth"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError) as error:
        load_weights(model, path)
    message = str(error.value)
    assert str(path) in message
    assert "1 weights missing (e.g. roi_heads.mask_head.predictor.bias)" in message
    assert f"{key}: file (81, 1024), model (3, 1024)" in message


@pytest.mark.slow  # an R50-FPN built and run on the CPU
def test_untrained_checkpoint_is_deterministic_and_labelled(tmp_path: Path) -> None:
    first = make_untrained_checkpoint(POINTER_YAML, tmp_path / "a.pth", seed=0)
    second = make_untrained_checkpoint(POINTER_YAML, tmp_path / "b.pth", seed=0)

    def digest(path: Path) -> str:
        state = torch.load(path, weights_only=False)["model"]
        return hashlib.sha256(
            b"".join(state[k].numpy().tobytes() for k in sorted(state))
        ).hexdigest()

    assert digest(first) == digest(second)
    checkpoint = torch.load(first, weights_only=False)
    assert checkpoint[UNTRAINED_KEY] is True
    assert "UNTRAINED" in checkpoint["note"]


@pytest.mark.slow  # an R50-FPN built and run on the CPU
def test_detector_reports_untrained_weights(pointer: Detector) -> None:
    assert pointer.untrained
    assert pointer.class_names == ["pointer", "dial"]


@pytest.mark.slow  # an R50-FPN built and run on the CPU
def test_batch_forward_returns_one_result_per_image_in_original_pixels(
    pointer: Detector, jpegs: dict[str, bytes]
) -> None:
    names = ["landscape_640x427", "portrait_300x1000", "tiny_64x48"]
    inputs = [reference_preprocess(jpegs[name], Resize()) for name in names]
    results = pointer(inputs)  # one forward of three images of different sizes
    assert len(results) == len(names)
    for (_, (height, width)), detections in zip(inputs, results, strict=True):
        count = len(detections.scores)
        assert count > 0
        assert detections.boxes.shape == (count, 4) and detections.boxes.dtype == np.float32
        assert detections.classes.dtype == np.int32
        assert detections.boxes[:, [0, 2]].max() <= width
        assert detections.boxes[:, [1, 3]].max() <= height
        assert detections.mask_rects.shape == (count, 4)
        assert int((detections.mask_rects[:, 2] * detections.mask_rects[:, 3]).sum()) == len(
            detections.masks
        )


@pytest.mark.slow  # two R50-FPNs built and run on the CPU
@pytest.mark.parametrize("config", [POINTER_YAML, INSULATOR_YAML], ids=["pointer", "insulator"])
def test_folded_batch_norms_compute_the_same_features(config: Path, untrained_weights) -> None:
    cfg = load_config(config)
    model = build_model(cfg).eval()
    # The stand-in's batch norms are calibrated (pipelines.untrained): far from identities.
    load_weights(model, untrained_weights(config))
    reference = copy.deepcopy(model)
    assert fold_frozen_batch_norms(model) == 53  # ResNet-50: stem, 16 blocks x 3, 4 shortcuts
    assert fold_frozen_batch_norms(model) == 0
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 320, 448, generator=generator) * 255
    x = (image - model.pixel_mean) / model.pixel_std
    with torch.inference_mode():
        folded, expected = model.backbone(x), reference.backbone(x)
    assert folded.keys() == expected.keys()
    for name, feature in expected.items():
        scale = float(feature.abs().max())
        assert float((folded[name] - feature).abs().max()) <= 1e-4 * scale, name


def crop_masks(masks: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Full-image masks cut to their :func:`mask_rect` crops: the reference for the server's."""
    height, width = masks.shape[1:]
    rects = np.zeros((len(masks), 4), dtype=np.int32)
    crops = [np.zeros(0, dtype=bool)]
    for i, (mask, box) in enumerate(zip(masks, boxes, strict=True)):
        rects[i] = x, y, w, h = mask_rect(box, height, width)
        crops.append(mask[y : y + h, x : x + w].reshape(-1))
    return rects, np.concatenate(crops).astype(np.uint8)


@pytest.mark.slow  # an R50-FPN built and run on the CPU
def test_masks_pasted_into_boxes_equal_detectron2s_full_paste_cropped(
    pointer: Detector, jpegs: dict[str, bytes]
) -> None:
    # The detector pastes each mask only into its box; detectron2's own postprocessing pastes
    # full-image planes, which crop_masks then crops. Same boxes, same bytes.
    image, size = reference_preprocess(jpegs["landscape_640x427"], Resize())
    image = image[::2, ::2].copy()  # a quarter of the pixels: a faster forward, scaled back up
    [served] = pointer([(image, size)])
    chw = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)
    with torch.inference_mode():
        [output] = pointer.model([{"image": chw, "height": int(size[0]), "width": int(size[1])}])
    instances = output["instances"]
    boxes = instances.pred_boxes.tensor.numpy()
    rects, masks = crop_masks(instances.pred_masks.numpy(), boxes)
    assert len(served.scores) > 0
    np.testing.assert_array_equal(served.boxes, boxes)
    np.testing.assert_array_equal(served.scores, instances.scores.numpy())
    np.testing.assert_array_equal(served.mask_rects, rects)
    np.testing.assert_array_equal(served.masks, masks)


def test_crop_masks_round_trips_through_paste_masks() -> None:
    rng = np.random.default_rng(0)
    masks = np.zeros((3, 40, 60), dtype=bool)
    boxes = np.array([[5.2, 3.7, 20.1, 30.0], [0, 0, 60, 40], [50.5, 35.5, 59.9, 39.9]], np.float32)
    for mask, (x0, y0, x1, y1) in zip(masks, boxes, strict=True):
        region = mask[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))]
        region[...] = rng.random(region.shape) > 0.5
    rects, flat = crop_masks(masks, boxes)
    assert rects.tolist()[0] == [5, 3, 16, 27]
    np.testing.assert_array_equal(paste_masks(rects, flat, 40, 60), masks)


def test_paste_masks_checks_the_byte_count() -> None:
    with pytest.raises(ValueError, match="MASKS has 5 bytes, MASK_RECTS describe 6"):
        paste_masks(np.array([[0, 0, 2, 3]], np.int32), np.zeros(5, np.uint8), 4, 4)


# --- per-class score thresholds (config.pbtxt's score_thresholds) -----------------------------


def _rows(found: Detections) -> list[tuple]:
    """Each detection as one comparable row: box, score, class, mask rect and mask bytes."""
    sizes = [int(w) * int(h) for _, _, w, h in found.mask_rects]
    crops = np.split(found.masks, np.cumsum(sizes)[:-1]) if sizes else []
    return [
        (tuple(box), float(score), int(cls), tuple(rect), crop.tobytes())
        for box, score, cls, rect, crop in zip(
            found.boxes.tolist(),
            found.scores,
            found.classes,
            found.mask_rects.tolist(),
            crops,
            strict=True,
        )
    ]


@pytest.fixture(scope="module")
def demo_pointer_input(scenes: dict[str, bytes]) -> tuple[np.ndarray, np.ndarray]:
    cfg = load_config(DEMO["pointer"][0])
    resize = Resize(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, cfg.INPUT.FORMAT)
    return reference_preprocess(scenes["gauges"], resize)


@pytest.fixture(scope="module")
def demo_pointer_found(demo_pointer_input: tuple[np.ndarray, np.ndarray]) -> Detections:
    """What the demo pointer model answers at its YAML's own threshold."""
    yaml_path, _ = DEMO["pointer"]
    [found] = Detector(yaml_path, REPOSITORY / "pointer" / "weights" / "demo.pth")(
        [demo_pointer_input]
    )
    return found


def test_thresholds_equal_to_the_yamls_answer_the_same(
    demo_pointer_input: tuple[np.ndarray, np.ndarray], demo_pointer_found: Detections
) -> None:
    yaml_path, names = DEMO["pointer"]
    shipped = load_config(yaml_path).MODEL.ROI_HEADS.SCORE_THRESH_TEST
    detector = Detector(
        yaml_path,
        REPOSITORY / "pointer" / "weights" / "demo.pth",
        score_thresholds=dict.fromkeys(names, shipped),
    )
    [found] = detector([demo_pointer_input])
    assert set(demo_pointer_found.classes.tolist()) == {0, 1}, "the gauges' needles and dials"
    for name, array in demo_pointer_found.outputs().items():
        np.testing.assert_array_equal(found.outputs()[name], array, err_msg=name)


def test_each_class_is_cut_at_its_own_threshold(
    demo_pointer_input: tuple[np.ndarray, np.ndarray],
) -> None:
    """Needles answered from score 0, dials from a threshold between two of their scores:
    detectron2 runs at the lower threshold and each class is cut at its own."""
    yaml_path, names = DEMO["pointer"]
    weights = REPOSITORY / "pointer" / "weights" / "demo.pth"
    pointer, dial = names.index("pointer"), names.index("dial")
    at_zero = Detector(yaml_path, weights, score_thresholds=dict.fromkeys(names, 0.0))
    everything = _rows(at_zero([demo_pointer_input])[0])
    dial_scores = sorted(row[1] for row in everything if row[2] == dial)
    assert len(dial_scores) >= 2, f"too few dials to cut between on this photo: {dial_scores}"
    cut = (dial_scores[0] + dial_scores[1]) / 2
    detector = Detector(yaml_path, weights, score_thresholds={"pointer": 0.0, "dial": cut})
    rows = _rows(detector([demo_pointer_input])[0])
    dials = [row for row in rows if row[2] == dial]
    assert dials == [row for row in everything if row[2] == dial and row[1] >= cut]
    assert len(dials) == len(dial_scores) - 1
    assert [row for row in rows if row[2] == pointer] == [
        row for row in everything if row[2] == pointer
    ]


def test_thresholds_that_do_not_fit_the_classes_fail_before_the_weights(tmp_path: Path) -> None:
    yaml_path, _ = DEMO["pointer"]
    missing_weights = tmp_path / "absent.pth"
    with pytest.raises(ScoreThresholdsError, match=r"no threshold for class\(es\) \['dial'\]"):
        Detector(yaml_path, missing_weights, score_thresholds={"pointer": 0.5})
    with pytest.raises(ScoreThresholdsError, match=r"unknown class\(es\) \['needle'\]"):
        Detector(
            yaml_path,
            missing_weights,
            score_thresholds={"pointer": 0.5, "dial": 0.5, "needle": 0.5},
        )
    with pytest.raises(ScoreThresholdsError, match=r"'dial' must be a number in \[0, 1\]"):
        Detector(yaml_path, missing_weights, score_thresholds={"pointer": 0.5, "dial": 1.5})
