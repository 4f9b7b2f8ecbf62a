"""Evaluation on your own labelled photos (issue 38, item 5): ``make evaluate`` through the real
server, and ``training.train --val`` evaluating with detectron2's COCO evaluator."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.evaluate import AP, AP50, COLUMNS, MASK_AP, MASK_AP50, ap_per_class
from server.launch import REPO_ROOT, TritonServer
from tests.support import write_gauge_set
from tests.test_training import SMOKE

EVALUATE = [sys.executable, "-m", "bench.evaluate"]
FINETUNE = REPO_ROOT / "training" / "recipes" / "pointer_demo_finetune.yaml"


@pytest.fixture(scope="module")
def gauge_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four drawn photos of meters, labelled as the pointer model's classes and keypoints."""
    return write_gauge_set(tmp_path_factory.mktemp("gauges"), 4, 11)


def refused(tmp_path: Path, data: str, *extra: str) -> str:
    """Runs ``bench.evaluate`` on ``data`` against no server; asserts it refused; its stderr."""
    out = tmp_path / "out"
    run = subprocess.run(
        [*EVALUATE, "--data", data, "--out", str(out), "--url", "localhost:1", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert run.returncode == 2, run.stderr
    assert not out.exists(), "refused before anything was written"
    return run.stderr


def test_a_set_without_images_is_refused(gauge_set: Path, tmp_path: Path) -> None:
    annotations = gauge_set / "annotations.json"
    message = refused(tmp_path, str(annotations))
    assert f"--data '{annotations}': no image folder" in message
    assert "ANNOTATIONS.json:IMAGE_FOLDER" in message


def test_a_missing_file_or_folder_is_named(gauge_set: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"
    assert f"COCO annotations not found: {missing}" in refused(
        tmp_path, f"{missing}:{gauge_set / 'images'}"
    )
    folder = tmp_path / "no-images"
    assert f"image folder not found: {folder}" in refused(
        tmp_path, f"{gauge_set / 'annotations.json'}:{folder}"
    )


def test_categories_other_than_the_served_models_are_refused(
    gauge_set: Path, tmp_path: Path
) -> None:
    document = json.loads((gauge_set / "annotations.json").read_text())
    document["categories"][0]["name"] = "needle"
    annotations = tmp_path / "renamed.json"
    annotations.write_text(json.dumps(document))
    message = refused(tmp_path, f"{annotations}:{gauge_set / 'images'}")
    assert f"the served pointer model: {annotations}: categories do not match" in message
    assert "unknown categories ['needle']" in message
    assert "missing categories ['pointer']" in message
    # Held to the other detector, the gauges' classes are unknown to it.
    message = refused(
        tmp_path, f"{gauge_set / 'annotations.json'}:{gauge_set / 'images'}", "--model", "insulator"
    )
    assert "the served insulator model" in message and "unknown categories" in message


def test_a_repository_without_the_detector_is_refused(gauge_set: Path, tmp_path: Path) -> None:
    data = f"{gauge_set / 'annotations.json'}:{gauge_set / 'images'}"
    empty = tmp_path / "empty"
    empty.mkdir()
    message = refused(tmp_path, data, "--repository", str(empty))
    assert f"{empty} has no detector (pointer or insulator)" in message
    # A repository of the pointer model alone is held to it; the insulator is not there.
    alone = tmp_path / "alone"
    shutil.copytree(REPO_ROOT / "repository" / "pointer", alone / "pointer")
    message = refused(tmp_path, data, "--repository", str(alone), "--model", "insulator")
    assert f"--model insulator: {alone / 'insulator' / 'config.pbtxt'} is missing" in message
    assert "cannot reach the server" in refused(tmp_path, data, "--repository", str(alone))


def test_nothing_listening_is_said_so(gauge_set: Path, tmp_path: Path) -> None:
    message = refused(tmp_path, f"{gauge_set / 'annotations.json'}:{gauge_set / 'images'}")
    assert "cannot reach the server at localhost:1" in message


def test_ap_averages_over_iou_thresholds_where_ap50_does_not() -> None:
    truth = {
        "images": [{"id": 1, "width": 100, "height": 100}],
        "categories": [{"id": 1, "name": "dial"}, {"id": 2, "name": "pointer"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40], "area": 1600,
             "iscrowd": 0},
        ],
    }  # fmt: skip
    # IoU 40*32 / 40*40 = 0.8: a hit at 0.50..0.80 (7 of COCO's 10 thresholds), a miss above.
    shifted = [{"image_id": 1, "category_id": 1, "bbox": [10, 18, 40, 32], "score": 0.9}]
    figures = ap_per_class(truth, shifted)
    assert figures["dial"] == pytest.approx(0.7)
    assert figures["pointer"] is None  # no object of the class: undefined, not 0
    assert ap_per_class(truth, []) == {"dial": 0.0, "pointer": None}


def test_a_drawn_set_through_the_server(
    triton_server: TritonServer, gauge_set: Path, tmp_path: Path
) -> None:
    out = tmp_path / "evaluation"
    run = subprocess.run(
        [
            *EVALUATE,
            "--data", f"{gauge_set / 'annotations.json'}:{gauge_set / 'images'}",
            "--url", triton_server.url("http"),
            "--out", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    path = Path(run.stdout.strip().splitlines()[-1])
    assert path == out.resolve() / "results.json", "the results' path is printed last"
    results = json.loads(path.read_text())
    assert results["model"] == "pointer" and results["images"] == 4
    assert results["masks"] is True and results["failed_images"] == 0
    header = next(line for line in run.stdout.splitlines() if line.startswith("class "))
    columns = [c.strip() for c in header.split("  ") if c.strip()]
    assert columns == ["class", *COLUMNS]
    assert results["columns"] == list(COLUMNS)
    assert set(results["classes"]) == {"pointer", "dial"}
    labels = json.loads((gauge_set / "annotations.json").read_text())
    ids = {c["name"]: c["id"] for c in labels["categories"]}
    for name, row in results["classes"].items():
        assert set(COLUMNS) <= set(row), name
        # The demo model finds the meters it was trained on; AP at stricter IoUs is lower.
        assert row[AP50] > 0.5 and 0.0 < row[AP] <= row[AP50], (name, row)
        assert 0.0 < row[MASK_AP] <= row[MASK_AP50], (name, row)
        assert row["objects"] == sum(a["category_id"] == ids[name] for a in labels["annotations"])
    # The drawn photos' truth carries gauges: the readings are scored too.
    assert "Meter readings" in run.stdout and results["readings"]
    assert all(figure["goal"] is None for figure in results["readings"]), "no demo goals"
    assert {Path(p).name for p in results["plots"]} == {"pr_curves.png", "reading_errors.png"}
    assert all(Path(p).is_file() for p in results["plots"])


def test_training_evaluates_the_val_set_every_eval_period(gauge_set: Path, tmp_path: Path) -> None:
    dataset = f"{gauge_set / 'annotations.json'}:{gauge_set / 'images'}"
    output = tmp_path / "run"
    run = subprocess.run(
        [
            sys.executable, "-m", "training.train",
            "--config", str(FINETUNE),
            "--dataset", dataset,
            "--val", dataset,
            "--output", str(output),
            "--threads", "1",
            *SMOKE, "SOLVER.MAX_ITER", "4", "TEST.EVAL_PERIOD", "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    log = run.stdout + run.stderr  # detectron2's logger writes to stdout
    assert log.count("Evaluation results for bbox") == 2, "after iterations 2 and 4"
    assert log.count("Evaluation results for segm") == 2
    records = [json.loads(line) for line in (output / "metrics.json").read_text().splitlines()]
    evaluated = [r for r in records if "bbox/AP50" in r]
    # The periodic one after the 2nd iteration (detectron2 counts from 0), the last one after
    # training, which detectron2 records at MAX_ITER.
    assert [r["iteration"] for r in evaluated] == [1, 4]
    for record in evaluated:
        # From the demo weights, on meters like those it learnt: far from nothing.
        assert record["bbox/AP-dial"] > 50 and record["bbox/AP-pointer"] > 50, record
        assert record["segm/AP50"] > 50, record


@pytest.mark.parametrize("problem", ["other classes", "no image folder"])
def test_a_bad_val_set_is_refused_before_training(
    gauge_set: Path, tmp_path: Path, problem: str
) -> None:
    annotations = tmp_path / "renamed.json"
    if problem == "other classes":
        document = json.loads((gauge_set / "annotations.json").read_text())
        document["categories"][1]["name"] = "face"
        annotations.write_text(json.dumps(document))
        val = f"{annotations}:{gauge_set / 'images'}"
        expected = [f"{annotations}: categories do not match", "unknown categories ['face']"]
    else:
        val = f"{gauge_set / 'annotations.json'}:"
        expected = [f"--val {val}: expected ANNOTATIONS.json:IMAGE_FOLDER"]
    output = tmp_path / "run"
    run = subprocess.run(
        [
            sys.executable, "-m", "training.train",
            "--config", str(FINETUNE),
            "--dataset", f"{gauge_set / 'annotations.json'}:{gauge_set / 'images'}",
            "--val", val,
            "--output", str(output),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    for message in expected:
        assert message in run.stderr
    assert not output.exists()
