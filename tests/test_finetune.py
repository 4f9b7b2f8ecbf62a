"""Fine-tuning (issue 38): the recipes, loading weights of another task for training, datasets
refused before training starts, a short run from a local 80-class COCO-shaped checkpoint, and
the whole own-photos journey (draft labels, fine-tune, export, serve, evaluate) through servers.

Nothing downloads: the model zoo's files are stood in for by checkpoints of the same shapes,
built by detectron2 itself and saved as the zoo saves them.
"""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.modeling import build_model
from google.protobuf import text_format
from PIL import Image

from bench.evaluate import AP, AP50
from bls.repository import read_config
from pipelines.detector import UNTRAINED_KEY, CheckpointError, Detector, read_yaml_config
from pipelines.untrained import make_untrained_checkpoint
from server.launch import REPO_ROOT, TritonServer
from tests.support import server_on
from training import gauges
from training.checkpoints import load_for_training
from training.coco import write_coco
from training.train import DatasetError, build_config, check_dataset

RECIPES = REPO_ROOT / "training" / "recipes"
CLIENT = [sys.executable, str(REPO_ROOT / "clients" / "bls_client.py")]
REPOSITORY = REPO_ROOT / "repository"
POINTER_COCO = RECIPES / "pointer_R50_FPN_from_coco.yaml"
INSULATOR_IMAGENET = RECIPES / "insulator_R50_FPN_from_imagenet.yaml"
POINTER_DEMO = RECIPES / "pointer_demo_finetune.yaml"
INSULATOR_DEMO = RECIPES / "insulator_demo_finetune.yaml"
# Each recipe and the served YAML it builds on.
SERVED = {
    POINTER_COCO: REPOSITORY / "pointer" / "mask_rcnn_R50_FPN.yaml",
    INSULATOR_IMAGENET: REPOSITORY / "insulator" / "centernet2_R50_FPN.yaml",
    POINTER_DEMO: REPOSITORY / "pointer" / "mask_rcnn_R18_FPN_demo.yaml",
    INSULATOR_DEMO: REPOSITORY / "insulator" / "centernet2_R18_FPN_demo.yaml",
}
DEMO_POINTER_WEIGHTS = REPOSITORY / "pointer" / "weights" / "demo.pth"
# What an 80-class COCO Mask R-CNN has that a 2-class one has in another shape.
COCO_CLASS_HEADS = [
    ("roi_heads.box_predictor.cls_score.weight", (81, 1024), (3, 1024)),
    ("roi_heads.box_predictor.cls_score.bias", (81,), (3,)),
    ("roi_heads.box_predictor.bbox_pred.weight", (320, 1024), (8, 1024)),
    ("roi_heads.box_predictor.bbox_pred.bias", (320,), (8,)),
    ("roi_heads.mask_head.predictor.weight", (80, 256, 1, 1), (2, 256, 1, 1)),
    ("roi_heads.mask_head.predictor.bias", (80,), (2,)),
]


def with_classes(yaml: Path, count: int, folder: Path) -> Path:
    """A copy of a served YAML with ``count`` classes, as COCO's 80."""
    names = [f"class{i}" for i in range(count)]
    text = yaml.read_text().replace("NUM_CLASSES: 2", f"NUM_CLASSES: {count}")
    text = text.replace(text[text.index("CLASS_NAMES:") :].splitlines()[0], f"CLASS_NAMES: {names}")
    copy = folder / f"{yaml.stem}_{count}.yaml"
    copy.write_text(text)
    return copy


def model_of(config: Path, weights: Path | None = None) -> tuple[torch.nn.Module, object]:
    """The model of a YAML, built on the CPU, and its config; ``weights`` replace the YAML's."""
    cfg = read_yaml_config(config)
    cfg.MODEL.DEVICE = "cpu"
    if weights is not None:
        cfg.MODEL.WEIGHTS = str(weights)
    return build_model(cfg), cfg


@pytest.fixture(scope="module")
def coco_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 80-class Mask R-CNN R50-FPN as detectron2's zoo stores it (``.pkl``, numpy arrays,
    ``__author__``), at random weights whose activations stay in range (as a trained model's
    do: a short run from it must not diverge)."""
    folder = tmp_path_factory.mktemp("coco")
    yaml = with_classes(SERVED[POINTER_COCO], 80, folder)
    made = make_untrained_checkpoint(yaml, folder / "coco.pth")
    state = torch.load(made, weights_only=False)["model"]
    path = folder / "model_final_coco80.pkl"
    with path.open("wb") as file:
        pickle.dump(
            {
                "model": {name: value.numpy() for name, value in state.items()},
                "__author__": "Detectron2 Model Zoo",
            },
            file,
        )
    return path


@pytest.fixture(scope="module")
def centernet2_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An 80-class CenterNet2 R50-FPN, saved as detectron2 saves a ``.pth``."""
    folder = tmp_path_factory.mktemp("centernet2")
    yaml = with_classes(SERVED[INSULATOR_IMAGENET], 80, folder)
    cfg = read_yaml_config(yaml)
    cfg.MODEL.DEVICE = "cpu"
    torch.manual_seed(0)
    path = folder / "centernet2_coco80.pth"
    torch.save({"model": build_model(cfg).state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def gauge_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gauges")
    write_coco(folder, gauges.CATEGORIES, 4, partial(gauges.render_scene, 7), "test")
    return folder


@pytest.mark.parametrize("recipe", sorted(SERVED), ids=lambda p: p.stem)
def test_a_recipe_trains_the_model_its_served_yaml_serves(recipe: Path) -> None:
    """Weights trained with a recipe load into the YAML that serves them, and its schedule
    fits its run."""
    trained, cfg = model_of(recipe)
    served, _ = model_of(SERVED[recipe])
    shapes = {name: tuple(v.shape) for name, v in trained.state_dict().items()}
    assert shapes == {name: tuple(v.shape) for name, v in served.state_dict().items()}
    solver = cfg.SOLVER
    assert list(solver.STEPS) == sorted(solver.STEPS)
    assert 0 < solver.WARMUP_ITERS < solver.STEPS[0] < solver.STEPS[-1] < solver.MAX_ITER
    assert 0 < solver.CHECKPOINT_PERIOD < solver.MAX_ITER
    assert 0 < cfg.TEST.EVAL_PERIOD < solver.MAX_ITER
    assert not cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS
    weights = cfg.MODEL.WEIGHTS
    assert weights.startswith("detectron2://") or (REPO_ROOT / weights).is_file(), weights


@pytest.mark.parametrize("recipe", [POINTER_COCO, INSULATOR_IMAGENET], ids=lambda p: p.stem)
def test_a_zoo_recipes_learning_rate_is_the_published_one_for_its_batch(recipe: Path) -> None:
    """detectron2's and CenterNet2's R50 recipes train at 0.02 for 16 photos a step."""
    solver = read_yaml_config(recipe).SOLVER
    assert pytest.approx(0.02 * solver.IMS_PER_BATCH / 16) == solver.BASE_LR


def test_an_80_class_coco_mask_rcnn_loads_all_but_its_class_heads(coco_checkpoint: Path) -> None:
    model, cfg = model_of(POINTER_COCO, coco_checkpoint)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    report = load_for_training(model, cfg)
    assert report is not None
    assert list(report.reshaped) == COCO_CLASS_HEADS
    assert report.absent == () and report.unused == ()
    assert report.reinitialised == [name for name, _, _ in COCO_CLASS_HEADS]
    with coco_checkpoint.open("rb") as file:
        coco = pickle.load(file)["model"]
    state = model.state_dict()
    for name in report.loaded:
        assert np.array_equal(state[name].numpy(), coco[name]), name
    for name in report.reinitialised:
        assert torch.equal(state[name], before[name]), f"{name} was not left as initialised"
    assert "roi_heads.box_predictor.cls_score.weight (file [81, 1024], model [3, 1024])" in (
        report.summary()
    )


def test_an_80_class_centernet2_loads_all_but_its_cascades_classifiers(
    centernet2_checkpoint: Path,
) -> None:
    model, cfg = model_of(INSULATOR_IMAGENET, centernet2_checkpoint)
    report = load_for_training(model, cfg)
    assert report is not None
    assert report.reinitialised == [
        f"roi_heads.box_predictor.{stage}.cls_score.{part}"
        for stage in range(3)
        for part in ("weight", "bias")
    ]
    assert {(file, model) for _, file, model in report.reshaped} == {
        ((81, 1024), (3, 1024)),
        ((81,), (3,)),
    }


def test_a_backbone_alone_loads_and_the_detector_starts_afresh(
    coco_checkpoint: Path, tmp_path: Path
) -> None:
    """As from an ImageNet checkpoint: the ResNet is taken, the FPN and every head are new."""
    with coco_checkpoint.open("rb") as file:
        coco = pickle.load(file)["model"]
    backbone = {
        k: torch.from_numpy(v) for k, v in coco.items() if k.startswith("backbone.bottom_up.")
    }
    path = tmp_path / "R-50.pth"
    torch.save({"model": backbone}, path)
    model, cfg = model_of(POINTER_COCO, path)
    report = load_for_training(model, cfg)
    assert report is not None
    assert set(report.loaded) == set(backbone)
    assert report.reshaped == () and report.unused == ()
    assert set(report.absent) == set(model.state_dict()) - set(backbone)
    summary = report.summary()
    assert "roi_heads.box_head.{fc1,fc2}" in summary
    assert "proposal_generator.rpn_head.{conv,objectness_logits,anchor_deltas}" in summary


def test_the_demo_weights_start_the_demo_recipe_whole() -> None:
    model, cfg = model_of(SERVED[POINTER_DEMO], DEMO_POINTER_WEIGHTS)
    assert cfg.MODEL.KEYPOINT_ON
    report = load_for_training(model, cfg)
    assert report is not None
    assert report.reinitialised == [] and not report.untrained


@pytest.mark.parametrize(
    ("weights", "recipe", "problem"),
    [
        ("coco_checkpoint", INSULATOR_IMAGENET, "holds a detector of another kind"),
        ("centernet2_checkpoint", POINTER_COCO, "holds a detector of another kind"),
        ("coco_checkpoint", POINTER_DEMO, "is not a checkpoint of the model's backbone"),
        ("demo_pointer", INSULATOR_DEMO, "holds a detector of another kind"),
    ],
)
def test_a_checkpoint_of_another_architecture_is_refused_naming_the_file(
    request: pytest.FixtureRequest, weights: str, recipe: Path, problem: str
) -> None:
    path = DEMO_POINTER_WEIGHTS if weights == "demo_pointer" else request.getfixturevalue(weights)
    model, cfg = model_of(recipe, path)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    with pytest.raises(CheckpointError) as error:
        load_for_training(model, cfg)
    assert str(error.value).startswith(f"{path} {problem}")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_weights_that_cannot_be_read_are_named(tmp_path: Path) -> None:
    cases = {
        tmp_path / "gone.pth": "weights file not found",
        tmp_path / "text.pth": "cannot read weights file",
        tmp_path / "list.pth": "holds no 'model' weights",
    }
    (tmp_path / "text.pth").write_text("not a checkpoint")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    for path, problem in cases.items():
        model, cfg = model_of(POINTER_DEMO, path)
        with pytest.raises(CheckpointError, match=problem) as error:
            load_for_training(model, cfg)
        assert str(path) in str(error.value)


def test_untrained_weights_load_and_say_so(tmp_path: Path) -> None:
    state = torch.load(DEMO_POINTER_WEIGHTS, weights_only=False)["model"]
    path = tmp_path / "untrained.pth"
    torch.save({"model": state, UNTRAINED_KEY: True}, path)
    model, cfg = model_of(POINTER_DEMO, path)
    report = load_for_training(model, cfg)
    assert report is not None and report.untrained and report.reinitialised == []


def test_no_weights_train_from_the_models_initial_ones() -> None:
    model, cfg = model_of(SERVED[POINTER_DEMO])
    assert cfg.MODEL.WEIGHTS == ""
    assert load_for_training(model, cfg) is None


def test_iterations_scale_a_recipes_schedule(tmp_path: Path) -> None:
    cfg = build_config(POINTER_COCO, tmp_path, "cpu", iterations=400)
    assert cfg.SOLVER.MAX_ITER == 400
    assert cfg.SOLVER.STEPS == (300, 360)
    assert (cfg.SOLVER.WARMUP_ITERS, cfg.SOLVER.CHECKPOINT_PERIOD) == (20, 100)
    # Steps a short run does not reach before its end are dropped.
    assert build_config(POINTER_COCO, tmp_path, "cpu", iterations=3).SOLVER.STEPS == (2,)
    with pytest.raises(ValueError, match="--iterations must be positive"):
        build_config(POINTER_COCO, tmp_path, "cpu", iterations=0)


def edited(dataset: Path, folder: Path, edit) -> Path:
    """A copy of ``dataset``'s annotations changed by ``edit(document)``."""
    document = json.loads((dataset / "annotations.json").read_text())
    edit(document)
    path = folder / "edited.json"
    path.write_text(json.dumps(document))
    return path


def _first(document: dict, key: str) -> dict:
    return document[key][0]


BAD_DATASETS = {
    "an image missing": (
        lambda d: _first(d, "images").update(file_name="gone.jpg"),
        "1 images missing from",
    ),
    "an image of another size": (
        lambda d: _first(d, "images").update(width=100),
        "1 images of another size than their entry says (e.g. 000000.jpg is 632x435, its "
        "entry 100x435)",
    ),
    "a polygon out of the image": (
        lambda d: _first(d, "annotations")["segmentation"][0].__setitem__(0, 5000.0),
        "1 annotations outside their image (by over 1.0 px) (e.g. annotation 1 in 000000.jpg "
        "(632x435): a polygon)",
    ),
    "a box out of the image": (
        lambda d: _first(d, "annotations").update(bbox=[600, 400, 100, 100]),
        "annotations outside their image",
    ),
    "a polygon of two points": (
        lambda d: _first(d, "annotations").update(segmentation=[[1, 1, 2, 2]]),
        "1 polygons that are not flat [x, y, ...] lists of 3 points or more",
    ),
    "no outline for a mask head": (
        lambda d: _first(d, "annotations").pop("segmentation"),
        "1 annotations without a segmentation, which the mask head needs",
    ),
    "an unknown category": (
        lambda d: _first(d, "annotations").update(category_id=7),
        "1 annotations of unknown categories (e.g. annotation 1 (category_id 7))",
    ),
    "an unknown image": (
        lambda d: _first(d, "annotations").update(image_id=99),
        "1 annotations of images the file does not list",
    ),
    "no annotations": (lambda d: d.update(annotations=[]), "has no annotations"),
    "no images": (lambda d: d.update(images=[]), "has no images"),
    "an extra category": (
        lambda d: d["categories"].append({"id": 3, "name": "gauge"}),
        "unknown categories ['gauge']",
    ),
    "a missing category": (
        lambda d: d["categories"].pop(),
        "missing categories ['dial']",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_DATASETS))
def test_a_bad_dataset_is_refused_naming_the_file_and_the_problem(
    gauge_set: Path, tmp_path: Path, case: str
) -> None:
    edit, problem = BAD_DATASETS[case]
    annotations = edited(gauge_set, tmp_path, edit)
    with pytest.raises(DatasetError) as error:
        check_dataset(annotations, gauge_set / "images", gauges.CATEGORIES, masks=True)
    assert str(error.value).startswith(f"{annotations}")
    assert problem in str(error.value)


def test_a_photo_turned_by_exif_has_its_turned_size(gauge_set: Path, tmp_path: Path) -> None:
    """detectron2 reads photos upright (EXIF orientation), so their entries say so too."""
    images = tmp_path / "images"
    images.mkdir()
    for path in (gauge_set / "images").iterdir():
        image = Image.open(path)
        exif = Image.Exif()
        exif[0x0112] = 6  # turned 90 degrees: stored lying on its side
        image.transpose(Image.Transpose.ROTATE_90).save(images / path.name, exif=exif)
    assert check_dataset(gauge_set / "annotations.json", images, gauges.CATEGORIES) == 4


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=900, check=False
    )


def finetune_command(
    recipe: Path, dataset: Path, output: Path, *extra: str, iterations: int = 3
) -> list[str]:
    """``iterations`` (a few) of ``recipe`` on small images."""
    return [
        sys.executable, "-m", "training.train",
        "--config", str(recipe),
        "--dataset", f"{dataset / 'annotations.json'}:{dataset / 'images'}",
        "--output", str(output),
        "--threads", "1",
        "--iterations", str(iterations),
        "INPUT.MIN_SIZE_TRAIN", "(160,)",
        "INPUT.MAX_SIZE_TRAIN", "256",
        "DATALOADER.NUM_WORKERS", "0",
        *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_fine_tuning_from_a_local_coco_checkpoint_trains_exports_and_serves(
    coco_checkpoint: Path, gauge_set: Path, tmp_path: Path
) -> None:
    output = tmp_path / "run"
    done = run(
        finetune_command(POINTER_COCO, gauge_set, output, "MODEL.WEIGHTS", str(coco_checkpoint))
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert "301 of the model's 307 weights loaded" in log
    assert (
        "roi_heads.mask_head.predictor.weight (file [80, 256, 1, 1], model [2, 256, 1, 1])" in log
    )
    records = [json.loads(line) for line in (output / "metrics.json").read_text().splitlines()]
    losses = [r["total_loss"] for r in records if "total_loss" in r]
    assert losses and np.isfinite(losses).all(), losses
    # Exported, the weights serve with the served YAML (checked as the server loads them) and
    # with the run's own config.yaml.
    weights = tmp_path / "pointer.pth"
    served = SERVED[POINTER_COCO]
    exported = run(
        [
            sys.executable, "-m", "training.export", str(output / "model_final.pth"),
            str(weights), "--config", str(served),
        ]
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert f"serves with {served} (classes ['pointer', 'dial'])" in exported.stdout
    detector = Detector(output / "config.yaml", weights)
    assert detector.class_names == ["pointer", "dial"]
    image = np.asarray(Image.open(next((gauge_set / "images").iterdir())).resize((256, 176)))
    [detections] = detector([(image[..., ::-1].copy(), (176, 256))])
    assert detections.boxes.shape[1] == 4


@pytest.mark.slow
def test_training_refuses_another_architecture_before_its_first_iteration(
    centernet2_checkpoint: Path, gauge_set: Path, tmp_path: Path
) -> None:
    output = tmp_path / "run"
    done = run(
        finetune_command(
            POINTER_COCO, gauge_set, output, "MODEL.WEIGHTS", str(centernet2_checkpoint)
        )
    )
    assert done.returncode == 2, (done.stdout + done.stderr)[-3000:]
    assert f"error: {centernet2_checkpoint} holds a detector of another kind" in done.stderr
    assert "Starting training" not in done.stdout + done.stderr
    assert not (output / "model_final.pth").exists()


def test_export_refuses_weights_that_do_not_fit_the_yaml_to_serve(tmp_path: Path) -> None:
    done = run(
        [
            sys.executable, "-m", "training.export", str(DEMO_POINTER_WEIGHTS),
            str(tmp_path / "w.pth"), "--config", str(SERVED[INSULATOR_DEMO]),
        ]
    )  # fmt: skip
    assert done.returncode == 2
    assert f"error: weights file {tmp_path / 'w.pth'} does not fit the model" in done.stderr


def serving_repository(target: Path, yaml: str, weights: Path) -> Path:
    """The pointer's part of the repository (preprocess, pointer, its ensemble, inspect for the
    pointer alone) serving ``weights`` with ``yaml``, a served YAML without a keypoint head: the
    edits the README's journey has a user make to their checkout's repository."""
    for name in ("preprocess", "pointer", "pointer_ensemble", "inspect"):
        ignore = shutil.ignore_patterns("weights", "__pycache__")
        shutil.copytree(REPOSITORY / name, target / name, ignore=ignore)
    configs = {name: read_config(target, name) for name in ("pointer", "pointer_ensemble")}
    for config in configs.values():
        kept = [output for output in config.output if output.name != "KEYPOINTS"]
        del config.output[:]
        config.output.extend(kept)
    pointer = configs["pointer"]
    pointer.parameters["detectron2_config"].string_value = yaml
    pointer.parameters["weights"].string_value = str(weights)
    del pointer.parameters["score_thresholds"]  # chosen for the demo weights only
    [step] = [
        s for s in configs["pointer_ensemble"].ensemble_scheduling.step if s.model_name == "pointer"
    ]
    del step.output_map["KEYPOINTS"]
    # The resize is the served YAML's (800 and 1333 for R50), taken from it when preprocess loads.
    configs["preprocess"] = read_config(target, "preprocess")
    configs["preprocess"].parameters["POINTER_IMAGE"].string_value = "detector=pointer"
    configs["inspect"] = read_config(target, "inspect")
    configs["inspect"].parameters["detectors"].string_value = "pointer=POINTER_IMAGE"
    configs["inspect"].parameters["default_models"].string_value = "pointer"
    for name, config in configs.items():
        (target / name / "config.pbtxt").write_text(text_format.MessageToString(config))
    return target


@pytest.mark.slow
def test_the_journey_from_photos_to_a_served_measured_model(
    triton_server: TritonServer, coco_checkpoint: Path, gauge_set: Path, tmp_path: Path
) -> None:
    """The README's own-photos journey on four drawn photos: the demo server drafts the labels,
    20 iterations fine-tune a Mask R-CNN R50-FPN from an 80-class COCO checkpoint on them, the
    export serves on a second server, and ``bench.evaluate`` measures it against the truth."""
    mine = tmp_path / "mine"
    shutil.copytree(gauge_set / "images", mine / "images")
    draft = mine / "annotations.json"
    drafted = run(
        [*CLIENT, "--url", triton_server.url("http"), "--models", "pointer", "--coco", str(draft),
         str(mine / "images")]
    )  # fmt: skip
    assert drafted.returncode == 0, drafted.stderr[-2000:]
    assert check_dataset(draft, mine / "images", gauges.CATEGORIES, masks=True) == 4

    output = tmp_path / "run"
    trained = run(
        finetune_command(
            POINTER_COCO, mine, output, "MODEL.WEIGHTS", str(coco_checkpoint), iterations=20
        )
    )
    assert trained.returncode == 0, (trained.stdout + trained.stderr)[-3000:]
    assert "301 of the model's 307 weights loaded" in trained.stdout + trained.stderr
    weights = tmp_path / "pointer.pth"
    served_yaml = SERVED[POINTER_COCO]
    exported = run(
        [sys.executable, "-m", "training.export", str(output / "model_final.pth"), str(weights),
         "--config", str(served_yaml)]
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-2000:]

    repository = serving_repository(tmp_path / "repository", served_yaml.name, weights)
    with server_on(repository, tmp_path) as server:
        server.wait_until_ready(timeout_s=600)
        evaluation = tmp_path / "evaluation"
        evaluate = [
            sys.executable, "-m", "bench.evaluate", "--url", server.url("http"),
            "--data", f"{gauge_set / 'annotations.json'}:{gauge_set / 'images'}",
        ]  # fmt: skip
        measured = run([*evaluate, "--repository", str(repository), "--out", str(evaluation)])
        # Without --repository the checkout's is read, which names another YAML: refused.
        mismatched = run([*evaluate, "--out", str(tmp_path / "not-written")])
        log = server.log_text()
    assert mismatched.returncode == 2, mismatched.stderr[-2000:]
    assert "give --repository the server's model repository" in mismatched.stderr
    assert measured.returncode == 0, measured.stderr[-3000:] + log[-3000:]
    results = json.loads(Path(measured.stdout.strip().splitlines()[-1]).read_text())
    assert results["detector_files"]["weights"] == str(weights)
    assert results["detector_files"]["detectron2_config"] == served_yaml.name
    assert results["images"] == 4 and results["failed_images"] == 0
    # Twenty steps from random heads find little: the figures are measured, not judged.
    for name in gauges.CATEGORIES:
        row = results["classes"][name]
        assert 0.0 <= row[AP] <= row[AP50] <= 1.0, (name, row)
