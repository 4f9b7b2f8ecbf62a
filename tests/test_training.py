"""training/: the detectron2 training entry point, on tiny synthetic datasets."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog

from pipelines.detector import Detector
from server.launch import REPO_ROOT
from tests.support import write_gauge_set
from training import insulators
from training.augment import Jitter, PhotometricJitter, apply_jitter
from training.coco import write_coco
from training.export import export_weights
from training.train import (
    DatasetError,
    Trainer,
    build_config,
    check_dataset,
    register_training_set,
)

POINTER_YAML = REPO_ROOT / "repository" / "pointer" / "mask_rcnn_R18_FPN_demo.yaml"
INSULATOR_YAML = REPO_ROOT / "repository" / "insulator" / "centernet2_R18_FPN_demo.yaml"
# detectron2's progress line (CommonMetricPrinter): "eta: 0:01:02  iter: 19  total_loss: ..."
PROGRESS = re.compile(r"\biter: (\d+)\b")
# A few iterations on small images: the whole loop, in seconds.
SMOKE = [
    "SOLVER.CHECKPOINT_PERIOD", "2",
    "SOLVER.WARMUP_ITERS", "1",
    "SOLVER.STEPS", "()",
    "INPUT.MIN_SIZE_TRAIN", "(160,)",
    "INPUT.MAX_SIZE_TRAIN", "256",
]  # fmt: skip


@pytest.fixture(scope="module")
def gauge_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gauge_set(tmp_path_factory.mktemp("gauges"), 6, 7)


@pytest.fixture(scope="module")
def insulator_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("insulators")
    write_coco(folder, insulators.CATEGORIES, 6, partial(insulators.render_scene, 7), "test")
    return folder


def train_command(config: Path, dataset: Path, output: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "training.train",
        "--config", str(config),
        "--dataset", f"{dataset / 'annotations.json'}:{dataset / 'images'}",
        "--output", str(output),
        "--threads", "1",
        *extra,
    ]  # fmt: skip


def run_training(command: list[str], iterations: int) -> subprocess.CompletedProcess[str]:
    """``command`` with the smoke settings for ``iterations`` iterations, to its end."""
    return subprocess.run(
        [*command, *SMOKE, "SOLVER.MAX_ITER", str(iterations)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
    )


def logged_losses(output: Path) -> list[float]:
    """Every ``total_loss`` that detectron2 wrote to the run's ``metrics.json``."""
    lines = (output / "metrics.json").read_text().splitlines()
    return [record["total_loss"] for record in map(json.loads, lines) if "total_loss" in record]


def assert_the_last_step_moved_the_weights(output: Path, checkpoint: str) -> None:
    """Every weight the optimiser trains differs between ``checkpoint`` and the final one: an
    optimiser doing nothing, or a loss that reaches none of them, leaves them equal."""
    before = torch.load(output / checkpoint, weights_only=False)["model"]
    after = torch.load(output / "model_final.pth", weights_only=False)["model"]
    trained = [name for name in after if name.endswith((".weight", ".bias"))]
    assert trained, "the checkpoint holds no weights"
    still = [name for name in trained if torch.equal(before[name], after[name])]
    assert not still, f"{len(still)} of {len(trained)} weights did not change: {still[:5]}"


def test_dataset_categories_must_be_the_class_names(gauge_set: Path, tmp_path: Path) -> None:
    annotations, images = gauge_set / "annotations.json", gauge_set / "images"
    assert check_dataset(annotations, images, ["pointer", "dial"]) == 6
    with pytest.raises(DatasetError, match=r"unknown categories \['dial'\]"):
        check_dataset(annotations, images, ["pointer", "needle"])
    with pytest.raises(DatasetError, match="order by id"):
        check_dataset(annotations, images, ["dial", "pointer"])
    with pytest.raises(DatasetError, match="COCO annotations not found"):
        check_dataset(tmp_path / "missing.json", images, ["pointer", "dial"])
    with pytest.raises(DatasetError, match="image folder not found"):
        check_dataset(annotations, tmp_path / "missing", ["pointer", "dial"])
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(DatasetError, match="is not a COCO instances file"):
        check_dataset(broken, images, ["pointer", "dial"])
    empty = tmp_path / "empty.json"
    document = json.loads(annotations.read_text())
    empty.write_text(json.dumps({**document, "images": [], "annotations": []}))
    with pytest.raises(DatasetError, match="has no images"):
        check_dataset(empty, images, ["pointer", "dial"])


def test_bad_dataset_fails_before_training(insulator_set: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        train_command(POINTER_YAML, insulator_set, tmp_path / "out"),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert run.returncode == 2
    assert "unknown categories ['defect', 'insulator']" in run.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("config", "dataset"), [(POINTER_YAML, "gauge_set"), (INSULATOR_YAML, "insulator_set")]
)
def test_a_few_iterations_train_export_and_load(
    config: Path, dataset: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    output = tmp_path / "run"
    run = run_training(train_command(config, request.getfixturevalue(dataset), output), 3)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "eta:" in run.stdout, "detectron2's progress line with the time left"
    losses = logged_losses(output)
    assert losses and np.isfinite(losses).all(), f"losses logged: {losses}"
    # CHECKPOINT_PERIOD 2 saves after the second of the 3 iterations, the last one comes after.
    assert_the_last_step_moved_the_weights(output, "model_0000001.pth")
    size = export_weights(output / "model_final.pth", tmp_path / "demo.pth", note="smoke")
    assert size <= 40 * 2**20
    detector = Detector(config, tmp_path / "demo.pth")
    assert not detector.untrained


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.parametrize(
    ("config", "dataset"), [(POINTER_YAML, "gauge_set"), (INSULATOR_YAML, "insulator_set")]
)
def test_the_demo_recipes_train_on_the_gpu_in_mixed_precision(
    config: Path, dataset: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a GPU (torch.cuda.is_available() is False): GPU training not tested")
    output = tmp_path / "run"
    command = train_command(config, request.getfixturevalue(dataset), output, "--device", "cuda")
    run = run_training(command, 20)
    assert run.returncode == 0, run.stderr[-3000:]
    # detectron2's float16 AMPTrainer: every logged loss finite, and the loss scaler let
    # the steps through.
    losses = logged_losses(output)
    assert losses and np.isfinite(losses).all(), f"losses logged: {losses}"
    assert_the_last_step_moved_the_weights(output, "model_0000017.pth")


def train_one_iteration_recording_feature_dtypes(gauge_set: Path, output: Path) -> list:
    """Trains the demo pointer recipe one iteration on a CPU; returns the dtype of the backbone's
    ``p2`` features at each forward."""
    cfg = build_config(POINTER_YAML, output, "cpu", [*SMOKE, "SOLVER.MAX_ITER", "1"])
    assert cfg.SOLVER.AMP.ENABLED, "the demo recipes train in mixed precision"
    register_training_set(
        "train",
        gauge_set / "annotations.json",
        gauge_set / "images",
        cfg.KEYPOINT_NAMES,
    )
    try:
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=False)
        features = []
        trainer.model.backbone.register_forward_hook(
            lambda _, __, out: features.append(out["p2"].dtype)
        )
        trainer.train()
    finally:
        DatasetCatalog.remove("train")
        MetadataCatalog.remove("train")
    weights = torch.load(output / "model_final.pth", weights_only=False)["model"]
    assert {tensor.dtype for tensor in weights.values() if tensor.is_floating_point()} == {
        torch.float32
    }, "weights and optimizer stay float32"
    return features


def test_mixed_precision_on_a_cpu_runs_the_forward_in_bfloat16(
    gauge_set: Path, tmp_path: Path
) -> None:
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip(
            "needs a CPU with bfloat16 instructions (AVX512-BF16 or AMX): "
            "bfloat16 training not tested"
        )
    assert train_one_iteration_recording_feature_dtypes(gauge_set, tmp_path) == [torch.bfloat16]


def test_mixed_precision_on_a_cpu_without_bfloat16_trains_in_float32_and_says_so(
    gauge_set: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Emulated bfloat16 would be slower than float32: the trainer falls back and warns."""
    # The CPU's answer, as oneDNN gives it on a CPU without AVX512-BF16 and AMX.
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert train_one_iteration_recording_feature_dtypes(gauge_set, tmp_path) == [torch.float32]
    assert "this CPU has no bfloat16 instructions; training in float32" in caplog.text


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_resume_goes_on(gauge_set: Path, tmp_path: Path) -> None:
    output = tmp_path / "run"
    command = train_command(POINTER_YAML, gauge_set, output)
    process = subprocess.Popen(
        [*command, *SMOKE, "SOLVER.MAX_ITER", "1000", "SOLVER.CHECKPOINT_PERIOD", "1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO_ROOT,
        # As at a terminal: a test run started in the background inherits SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines = []
    assert process.stdout is not None
    # Interrupted once detectron2 reports an iteration (its progress line, every 20): the
    # checkpoint must be at least that far, whatever the machine's speed.
    reported = None
    for line in process.stdout:
        lines.append(line)
        if match := PROGRESS.search(line):
            reported = int(match.group(1))
            break
    assert reported is not None, "no progress line: " + "".join(lines[-30:])
    process.send_signal(signal.SIGINT)
    lines.extend(process.stdout)
    assert process.wait(timeout=120) == 130, "".join(lines[-30:])
    log = "".join(lines)
    assert "Interrupted: saved model_" in log
    saved = (output / "last_checkpoint").read_text().strip()
    iteration = int(saved.removeprefix("model_").removesuffix(".pth"))
    # The run was at the reported iteration or later; the one running when interrupted counts
    # as unfinished (training.train), even in its hooks, where the report is printed.
    assert reported - 1 <= iteration < 1000, f"saved {saved} after iteration {reported} reported"
    # As in every checkpoint detectron2 saves after an iteration: the LR scheduler has stepped
    # once per iteration done, iterations 0 to `iteration`, and resuming goes on from there.
    state = torch.load(output / saved, weights_only=False)
    steps = state["trainer"]["hooks"]["LRScheduler"]["last_epoch"]
    assert steps == iteration + 1, (
        f"{saved}: the LR scheduler took {steps} steps in iterations 0-{iteration}; a resume "
        "would repeat an iteration with its schedule ahead, and overrun it at the end"
    )

    resumed = subprocess.run(
        [*command, "--resume", *SMOKE, "SOLVER.MAX_ITER", str(iteration + 3)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    started = [line for line in resumed.stdout.splitlines() if "Starting training" in line]
    assert started and started[-1].endswith(f"from iteration {iteration + 1}"), started
    assert (output / "model_final.pth").is_file()


def test_resume_without_a_checkpoint_says_so(gauge_set: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        [*train_command(POINTER_YAML, gauge_set, tmp_path / "new"), "--resume"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert run.returncode == 2
    assert "--resume: no checkpoint in" in run.stderr


def test_identity_jitter_leaves_the_image_alone() -> None:
    image = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    same = Jitter(gains=(1.0, 1.0, 1.0), hue_shift=0, saturation=1.0, brightness=1.0, contrast=1.0)
    np.testing.assert_array_equal(apply_jitter(image, same, rgb=False), image)


@pytest.mark.parametrize("rgb", [False, True])
def test_hue_turns_in_the_images_channel_order(rgb: bool) -> None:
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0 if rgb else 2] = 200
    half_turn = Jitter((1.0, 1.0, 1.0), hue_shift=90, saturation=1.0, brightness=1.0, contrast=1.0)
    cyan = apply_jitter(red, half_turn, rgb=rgb)[0, 0]
    red_channel, blue_channel = (cyan[0], cyan[2]) if rgb else (cyan[2], cyan[0])
    assert red_channel == 0 and blue_channel == 200 and cyan[1] == 200


def test_photometric_jitter_changes_colours_not_geometry() -> None:
    image = np.full((20, 30, 3), 128, np.uint8)
    image[5:15, 5:25] = (40, 200, 90)
    augmentation = PhotometricJitter("BGR", probability=1.0)
    boxes = np.array([[5.0, 5.0, 25.0, 15.0]])
    changed = 0
    for _ in range(10):
        transform = augmentation.get_transform(image)
        out = transform.apply_image(image.copy())
        assert out.shape == image.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(transform.apply_box(boxes), boxes)
        changed += not np.array_equal(out, image)
    assert changed == 10
    with pytest.raises(ValueError, match="BGR or RGB"):
        PhotometricJitter("L")


def test_colour_filters_tint_white_and_leave_black() -> None:
    image = np.zeros((4, 8, 3), np.uint8)
    image[:, 4:] = 255
    augmentation = PhotometricJitter(
        "BGR",
        probability=1.0,
        tint_probability=1.0,
        hue_probability=0.0,
        saturation=(1.0, 1.0),
        brightness=(1.0, 1.0),
        contrast=(1.0, 1.0),
    )
    hues = set()
    for _ in range(20):
        jitter = augmentation.draw()
        assert jitter is not None
        out = apply_jitter(image, jitter, rgb=False)
        np.testing.assert_array_equal(out[:, :4], 0)
        white = out[0, 4].astype(int)
        assert white.max() == 255 and white.max() - white.min() >= 0.3 * 255 - 1
        hues.add(int(np.argmax(white)))
    assert len(hues) >= 2
