"""Training the pointer model's keypoint head: the dataset's keypoints, flip map, a smoke run."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.detector import Detector
from server.launch import REPO_ROOT
from tests.support import write_gauge_set
from tests.test_training import logged_losses, run_training, train_command
from training import gauges
from training.coco import write_coco
from training.export import export_weights
from training.train import DatasetError, check_dataset, keypoint_flip_map

KEYPOINT_YAML = REPO_ROOT / "repository" / "pointer" / "mask_rcnn_R18_FPN_demo.yaml"
CLASSES = list(gauges.CATEGORIES)
KEYPOINTS = list(gauges.KEYPOINT_NAMES)


@pytest.fixture(scope="module")
def keypoint_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gauge_set(tmp_path_factory.mktemp("gauges_keypoints"), 6, 7)


def test_a_flip_swaps_the_scales_ends_only() -> None:
    assert keypoint_flip_map(KEYPOINTS) == [("scale_start", "scale_end")]
    assert keypoint_flip_map(["center", "tip"]) == []


def test_the_datasets_keypoints_must_be_the_configs(keypoint_set: Path, tmp_path: Path) -> None:
    annotations, images = keypoint_set / "annotations.json", keypoint_set / "images"
    assert check_dataset(annotations, images, CLASSES, KEYPOINTS) == 6
    with pytest.raises(DatasetError, match=r"category 'pointer' has keypoints .*KEYPOINT_NAMES"):
        check_dataset(annotations, images, CLASSES, ["scale_end", "scale_mid", "scale_start", "c"])
    document = json.loads(annotations.read_text())
    for category in document["categories"]:
        del category["keypoints"]
    unlabelled = tmp_path / "unlabelled.json"
    unlabelled.write_text(json.dumps(document))
    with pytest.raises(DatasetError, match="no category has keypoints"):
        check_dataset(unlabelled, images, CLASSES, KEYPOINTS)
    # A model without a keypoint head trains on it as before.
    assert check_dataset(unlabelled, images, CLASSES) == 6


@pytest.mark.slow
def test_a_few_iterations_train_the_keypoint_head(keypoint_set: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"
    run = run_training(train_command(KEYPOINT_YAML, keypoint_set, output), 3)
    assert run.returncode == 0, run.stderr[-3000:]
    records = [json.loads(line) for line in (output / "metrics.json").read_text().splitlines()]
    keypoint_losses = [r["loss_keypoint"] for r in records if "loss_keypoint" in r]
    assert keypoint_losses and np.isfinite(keypoint_losses).all(), keypoint_losses
    assert np.isfinite(logged_losses(output)).all()
    before = torch.load(output / "model_0000001.pth", weights_only=False)["model"]
    after = torch.load(output / "model_final.pth", weights_only=False)["model"]
    head = [name for name in after if name.startswith("roi_heads.keypoint_head.")]
    assert head, "the checkpoint has no keypoint head"
    assert all(not torch.equal(before[name], after[name]) for name in head)
    export_weights(output / "model_final.pth", tmp_path / "demo.pth", note="smoke")
    detector = Detector(KEYPOINT_YAML, tmp_path / "demo.pth")
    assert not detector.untrained


def test_a_keypoint_config_refuses_a_dataset_without_keypoints(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    write_coco(plain, CLASSES, 2, partial(gauges.render_scene, 7), "test")
    run = run_training(train_command(KEYPOINT_YAML, plain, tmp_path / "out"), 1)
    assert run.returncode == 2
    assert "no category has keypoints" in run.stderr
    assert not (tmp_path / "out").exists()
