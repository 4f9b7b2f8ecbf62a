"""Pre-annotation (issue 38): ``bls_client.py --coco`` writes the served models' answers as a
COCO dataset that labelling tools import and ``training.train`` takes as it is."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from detectron2.data.datasets import load_coco_json
from PIL import Image
from pycocotools import mask as coco_mask

from clients.answer import Answer, CocoInstances, Instance, ModelResult, mask_polygons
from server.launch import REPO_ROOT, TritonServer
from training import gauges, insulators
from training.train import check_dataset

CLIENT = [sys.executable, str(REPO_ROOT / "clients" / "bls_client.py")]
KEYPOINTS = list(gauges.KEYPOINT_NAMES)


def rasterised(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Polygons filled as detectron2 fills them for training (pycocotools)."""
    rles = coco_mask.frPyObjects(polygons, height, width)
    return coco_mask.decode(coco_mask.merge(rles)).astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_outlines_give_back_the_mask_when_training_fills_them() -> None:
    ys, xs = np.mgrid[0:80, 0:120]
    needle = np.abs((ys - 40) - 0.4 * (xs - 60)) < 1.6  # 3 px wide
    disc = (ys - 40) ** 2 + (xs - 60) ** 2 < 30**2
    for mask in (needle, disc):
        polygons = mask_polygons(mask)
        assert len(polygons) == 1
        assert iou(rasterised(polygons, 80, 120), mask) > 0.97
    # Simplified: a disc of 2800 pixels needs tens of points, not hundreds.
    assert len(mask_polygons(disc)[0]) // 2 < 100


def test_outlines_are_placed_at_the_crops_origin_one_per_part() -> None:
    crop = np.zeros((10, 30), bool)
    crop[2:8, 1:6] = True
    crop[2:8, 20:28] = True
    polygons = mask_polygons(crop, origin=(100, 50))
    assert len(polygons) == 2
    full = np.zeros((80, 160), bool)
    full[50:60, 100:130] = crop
    assert iou(rasterised(polygons, 80, 160), full) > 0.97
    assert mask_polygons(np.zeros((5, 5), bool)) == []


def meter_answer(width: int = 200, height: int = 120) -> Answer:
    """An answer of the pointer model: a dial with keypoints, the needle on it without."""
    ys, xs = np.mgrid[0:60, 0:60]
    dial = (ys - 30) ** 2 + (xs - 30) ** 2 < 29**2
    needle = np.zeros((20, 6), bool)
    needle[:, 2:5] = True
    points = {
        name: (float(x), float(y), 3.0)
        for name, (x, y) in zip(
            KEYPOINTS, [(50, 80), (70, 32), (90, 80), (70.5, 60.5)], strict=True
        )
    }
    instances = [
        Instance("dial", 1, 0.98, (40.0, 30.0, 100.0, 90.0), dial, (40, 30), points),
        Instance("pointer", 0, 0.91, (68.0, 40.0, 74.0, 60.0), needle, (68, 40)),
        Instance("pointer", 0, 0.30, (10.0, 10.0, 16.0, 30.0), needle, (10, 10)),
    ]
    return Answer(height, width, {"pointer": ModelResult("ok", None, instances)})


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (200, 120), (128, 128, 128)).save(folder / "meter.jpg")
    return folder


def test_a_meter_answer_becomes_a_dataset_that_trains_as_it_is(
    photo_folder: Path, tmp_path: Path
) -> None:
    dataset = CocoInstances("pointer", ["pointer", "dial"], KEYPOINTS)
    assert dataset.add("meter.jpg", meter_answer(), min_score=0.5) == 2
    document = dataset.document()
    assert [(c["id"], c["name"], c["keypoints"]) for c in document["categories"]] == [
        (1, "pointer", KEYPOINTS),
        (2, "dial", KEYPOINTS),
    ]
    assert document["images"] == [{"id": 1, "file_name": "meter.jpg", "width": 200, "height": 120}]
    dial, needle = document["annotations"]
    assert (dial["category_id"], dial["score"], dial["bbox"]) == (2, 0.98, [40.0, 30.0, 60.0, 60.0])
    assert needle["keypoints"] == [0.0] * 12 and needle["num_keypoints"] == 0
    assert dial["num_keypoints"] == 4
    path = tmp_path / "draft.json"
    path.write_text(json.dumps(document))
    assert check_dataset(path, photo_folder, ["pointer", "dial"], KEYPOINTS, masks=True) == 1
    # detectron2 reads it back: the keypoints where the answer put them (continuous pixels).
    [record] = load_coco_json(str(path), str(photo_folder), "preannotated_meters")
    read_dial = next(a for a in record["annotations"] if a["category_id"] == 1)
    assert np.allclose(np.reshape(read_dial["keypoints"], (4, 3))[:, :2], [
        (50, 80), (70, 32), (90, 80), (70.5, 60.5)
    ])  # fmt: skip
    mask = rasterised(read_dial["segmentation"], 120, 200)
    assert iou(mask[30:90, 40:100], meter_answer().models["pointer"].instances[0].mask) > 0.97


def test_a_detector_without_masks_or_keypoints_writes_boxes(photo_folder: Path, tmp_path: Path):
    answer = Answer(
        120,
        200,
        {"insulator": ModelResult("ok", None, [Instance("defect", 1, 0.7, (5, 6, 55, 96))])},
    )
    dataset = CocoInstances("insulator", ["insulator", "defect"])
    dataset.add("meter.jpg", answer)
    [entry] = dataset.document()["annotations"]
    assert entry["bbox"] == [5, 6, 50, 90] and "segmentation" not in entry
    assert "keypoints" not in dataset.document()["categories"][0]
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(dataset.document()))
    assert check_dataset(path, photo_folder, ["insulator", "defect"]) == 1


def test_an_answer_of_other_classes_is_refused() -> None:
    dataset = CocoInstances("pointer", ["needle", "dial"])
    with pytest.raises(ValueError, match=r"answered class 'pointer' \(id 0\), which is not in"):
        dataset.add("meter.jpg", meter_answer())
    failed = Answer(120, 200, {"pointer": ModelResult("error", "pointer: out of memory")})
    with pytest.raises(ValueError, match="has no result of pointer"):
        CocoInstances("pointer", ["pointer", "dial"]).add("meter.jpg", failed)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: [tmp / "gone"], "no such file or folder"),
        (lambda tmp: [tmp], "no .jpg/.jpeg files in folder"),
        (lambda tmp: [tmp / "a.jpg"], "--coco takes one folder of photos"),
        (lambda tmp: [tmp, tmp], "--coco takes one folder of photos"),
    ],
)
def test_a_bad_folder_is_refused_before_anything_is_sent(tmp_path: Path, make, message) -> None:
    (tmp_path / "a.jpg").write_bytes(b"")
    if message.startswith("no .jpg"):
        (tmp_path / "a.jpg").unlink()
    paths = [str(p) for p in make(tmp_path)]
    # No server listens there: the refusal must come first.
    run = subprocess.run(
        [*CLIENT, "--url", "localhost:9", "--coco", str(tmp_path / "out.json"), *paths],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert message in run.stderr
    assert not (tmp_path / "out.json").exists()


def test_through_the_server_a_folder_becomes_a_dataset_per_model(
    triton_server: TritonServer, scenes: dict[str, bytes], tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("gauge", "gauges", "insulator", "nothing"):
        (photos / f"{name}.jpg").write_bytes(scenes[name])
    command = [*CLIENT, "--url", triton_server.url("http")]
    out = tmp_path / "draft.json"
    run = subprocess.run(
        [*command, "--models", "pointer", "--coco", str(out), str(photos)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "4/4 photos" in run.stderr
    assert f"{out}: 4 photos, " in run.stdout
    document = json.loads(out.read_text())
    by_image = {image["file_name"]: image["id"] for image in document["images"]}
    assert sorted(by_image) == ["gauge.jpg", "gauges.jpg", "insulator.jpg", "nothing.jpg"]
    found = {name: 0 for name in by_image}
    for entry in document["annotations"]:
        found[next(n for n, i in by_image.items() if i == entry["image_id"])] += 1
    assert found["gauge.jpg"] >= 2 and found["gauges.jpg"] >= 4, found
    assert check_dataset(out, photos, gauges.CATEGORIES, masks=True) == 4
    assert len(load_coco_json(str(out), str(photos), "preannotated_server")) == 4
    trained = subprocess.run(
        [
            sys.executable, "-m", "training.train",
            "--config", str(REPO_ROOT / "training" / "recipes" / "pointer_demo_finetune.yaml"),
            "--dataset", f"{out}:{photos}",
            "--output", str(tmp_path / "run"),
            "--threads", "1",
            "--iterations", "1",
            "INPUT.MIN_SIZE_TRAIN", "(160,)",
            "INPUT.MAX_SIZE_TRAIN", "256",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
    )  # fmt: skip
    assert trained.returncode == 0, (trained.stdout + trained.stderr)[-3000:]
    assert (tmp_path / "run" / "model_final.pth").is_file()

    both = subprocess.run(
        [*command, "--coco", str(out), str(photos)], capture_output=True, text=True, timeout=300
    )
    assert both.returncode == 0, both.stderr
    for model, categories in (("pointer", gauges.CATEGORIES), ("insulator", insulators.CATEGORIES)):
        path = tmp_path / f"draft.{model}.json"
        assert f"{path}: 4 photos" in both.stdout
        assert check_dataset(path, photos, categories) == 4

    # A repository that names another YAML than the server serves would name other classes.
    repository = tmp_path / "repository"
    shutil.copytree(
        REPO_ROOT / "repository" / "pointer",
        repository / "pointer",
        ignore=shutil.ignore_patterns("weights"),
    )
    config = repository / "pointer" / "config.pbtxt"
    config.write_text(
        re.sub(r'"mask_rcnn_R18_FPN_demo\.yaml"', '"mask_rcnn_R50_FPN.yaml"', config.read_text())
    )
    mismatch = subprocess.run(
        [
            *command,
            "--models",
            "pointer",
            "--repository",
            str(repository),
            "--coco",
            str(out),
            str(photos),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert mismatch.returncode == 2
    assert "the server's pointer serves 'mask_rcnn_R18_FPN_demo.yaml', but" in mismatch.stderr


def test_no_server_is_said_so_and_nothing_is_written(photo_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    run = subprocess.run(
        [*CLIENT, "--url", "localhost:9", "--coco", str(out), str(photo_folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "error: cannot reach the server at localhost:9" in run.stderr
    assert not out.exists()
