"""The accuracy tool's metrics on hand-made ground truth and detections; no server (seconds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from bench.accuracy import __main__ as runner
from bench.accuracy.__main__ import SETS, parse_args
from bench.accuracy.metrics import (
    GOALS,
    Figure,
    Share,
    ap50_per_class,
    box_iou,
    empty_image_detections,
    encode_mask,
    evaluate_set,
    first_images,
    found_annotations,
    found_share,
    full_mask,
    gauges_found,
    instances_to_detections,
)
from bench.accuracy.report import format_table, plot_pr_curves
from bls.merge import DetectorResult, merge_answer
from clients.answer import Instance

HEIGHT, WIDTH = 120, 160


def _rectangle(x: float, y: float, w: float, h: float) -> list[float]:
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def _gauge_truth() -> dict[str, Any]:
    """Three images: one gauge, none, two gauges; each gauge a thin needle on a square dial."""
    gauges = {1: [(10, 10, 60)], 2: [], 3: [(5, 5, 50), (80, 40, 70)]}
    images, annotations = [], []
    for image_id, places in gauges.items():
        images.append(
            {
                "id": image_id,
                "file_name": f"{image_id:06d}.jpg",
                "height": HEIGHT,
                "width": WIDTH,
                "truth": {"gauges": [{"center": [x + s / 2, y + s / 2]} for x, y, s in places]},
            }
        )
        for x, y, size in places:
            needle = (x + size / 2 - 2, y + 5, 4, size / 2 - 5)
            for category_id, box in ((1, needle), (2, (x, y, size, size))):
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": category_id,
                        "bbox": list(box),
                        "segmentation": [_rectangle(*box)],
                        "area": box[2] * box[3],
                        "iscrowd": 0,
                    }
                )
    categories = [{"id": 1, "name": "pointer"}, {"id": 2, "name": "dial"}]
    return {"images": images, "annotations": annotations, "categories": categories}


def _insulator_truth() -> dict[str, Any]:
    """Two images: an insulator with a defect, and an empty one."""
    boxes = [(1, (20, 10, 30, 90)), (2, (25, 40, 20, 15))]
    return {
        "images": [
            {"id": i, "file_name": f"{i:06d}.jpg", "height": HEIGHT, "width": WIDTH, "truth": {}}
            for i in (1, 2)
        ],
        "annotations": [
            {
                "id": n,
                "image_id": 1,
                "category_id": category_id,
                "bbox": list(box),
                "area": box[2] * box[3],
                "iscrowd": 0,
            }
            for n, (category_id, box) in enumerate(boxes, start=1)
        ],
        "categories": [{"id": 1, "name": "insulator"}, {"id": 2, "name": "defect"}],
    }


def _truth_mask(annotation: dict[str, Any]) -> np.ndarray:
    rles = mask_utils.frPyObjects(annotation["segmentation"], HEIGHT, WIDTH)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def _instance(annotation: dict[str, Any], names: dict[int, str], score: float = 0.9) -> Instance:
    """The instance a perfect detector would answer: the true box, the true mask as a crop."""
    x, y, w, h = annotation["bbox"]
    instance = Instance(names[annotation["category_id"]], 0, score, (x, y, x + w, y + h))
    if "segmentation" in annotation:
        mask = _truth_mask(annotation)
        rows, cols = np.nonzero(mask)
        top, left = rows.min(), cols.min()
        instance.mask = mask[top : rows.max() + 1, left : cols.max() + 1]
        instance.mask_origin = (int(left), int(top))
    return instance


def _perfect(truth: dict[str, Any], masks: bool) -> list[dict[str, Any]]:
    names = {c["id"]: c["name"] for c in truth["categories"]}
    ids = {c["name"]: c["id"] for c in truth["categories"]}
    detections = []
    for image in truth["images"]:
        instances = [
            _instance(a, names) for a in truth["annotations"] if a["image_id"] == image["id"]
        ]
        detections += instances_to_detections(instances, image["id"], ids, HEIGHT, WIDTH, masks)
    return detections


def _values(figures: list[Figure]) -> dict[str, float | None]:
    return {f.name: f.value for f in figures}


def test_perfect_detections_score_one_everywhere() -> None:
    truth = _gauge_truth()
    result = evaluate_set("gauges", truth, _perfect(truth, masks=True), masks=True, per_gauge=True)
    values = _values(result.figures)
    for name in ("pointer", "dial"):
        assert values[f"{name} AP50 (box)"] == pytest.approx(1.0)
        assert values[f"{name} AP50 (mask)"] == pytest.approx(1.0)
        assert values[f"{name} found"] == 1.0
    assert values["gauge found (both)"] == 1.0
    assert values["detections on empty images"] == 0
    assert all(f.passed for f in result.figures if f.goal is not None)
    assert set(result.curves) == {"pointer (box)", "dial (box)", "pointer (mask)", "dial (mask)"}


def test_no_detections_score_zero() -> None:
    truth = _gauge_truth()
    result = evaluate_set("gauges", truth, [], masks=True, per_gauge=True)
    values = _values(result.figures)
    for name in ("pointer", "dial"):
        assert values[f"{name} AP50 (box)"] == 0.0
        assert values[f"{name} AP50 (mask)"] == 0.0
        assert values[f"{name} found"] == 0.0
    assert values["gauge found (both)"] == 0.0
    assert not any(f.passed for f in result.figures if f.goal is not None)


def test_box_shifted_below_iou_half_is_a_miss() -> None:
    truth = _insulator_truth()
    detections = _perfect(truth, masks=False)
    defect = next(d for d in detections if d["category_id"] == 2)
    x, y, w, h = defect["bbox"]
    defect["bbox"] = [x + w * 0.4, y, w, h]  # IoU 0.6 / 1.4 = 0.43
    assert box_iou(defect["bbox"], [x, y, w, h]) < 0.5
    found = found_annotations(truth, detections)
    assert found_share(truth, found, "insulator").share == 1.0
    assert found_share(truth, found, "defect").share == 0.0
    curves = ap50_per_class(truth, detections)
    assert curves["insulator"].ap50 == pytest.approx(1.0)
    assert curves["defect"].ap50 == 0.0

    defect["bbox"] = [x + w * 0.2, y, w, h]  # IoU 0.8 / 1.2 = 0.67: found
    assert found_share(truth, found_annotations(truth, detections), "defect").share == 1.0
    assert ap50_per_class(truth, detections)["defect"].ap50 == pytest.approx(1.0)


def test_box_iou() -> None:
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert box_iou([0, 0, 10, 10], [5, 0, 10, 10]) == pytest.approx(50 / 150)
    assert box_iou([0, 0, 10, 10], [20, 20, 5, 5]) == 0.0


def test_detections_on_empty_images_are_counted() -> None:
    truth = _insulator_truth()
    false_alarms = [
        {"image_id": 2, "category_id": c, "score": 0.5, "bbox": [10, 10, 20, 20]} for c in (1, 2)
    ]
    detections = _perfect(truth, masks=False) + false_alarms
    empty = empty_image_detections(truth, detections)
    assert (empty.images, empty.detections, empty.images_with_detections) == (1, 2, 1)
    values = _values(evaluate_set("insulators", truth, detections).figures)
    assert values["detections on empty images"] == 2
    # Scored below the true ones, the false alarms leave AP50 at 1.
    assert values["insulator AP50 (box)"] == pytest.approx(1.0)


def test_false_alarm_scored_above_the_truth_lowers_ap() -> None:
    truth = _insulator_truth()
    alarm = {"image_id": 2, "category_id": 2, "score": 0.99, "bbox": [10, 10, 20, 20]}
    curves = ap50_per_class(truth, [*_perfect(truth, masks=False), alarm])
    assert curves["insulator"].ap50 == pytest.approx(1.0)
    assert curves["defect"].ap50 == pytest.approx(0.5, abs=0.01)  # precision 1/2 at recall 1


def test_mask_rebuilt_from_crop_and_origin_is_exact() -> None:
    rng = np.random.default_rng(0)
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[30:47, 100:131] = rng.random((17, 31)) > 0.5
    instance = Instance("pointer", 0, 0.9, (100, 30, 131, 47), mask[30:47, 100:131], (100, 30))
    rebuilt = full_mask(instance, HEIGHT, WIDTH)
    assert rebuilt.dtype == bool
    np.testing.assert_array_equal(rebuilt, mask)
    rle = encode_mask(rebuilt)
    assert isinstance(rle["counts"], str)
    np.testing.assert_array_equal(mask_utils.decode(rle), mask)


def test_instances_become_coco_results() -> None:
    instance = Instance("dial", 1, 0.75, (10.0, 20.0, 40.0, 60.0))
    (detection,) = instances_to_detections([instance], 7, {"dial": 2}, HEIGHT, WIDTH, False)
    assert detection == {"image_id": 7, "category_id": 2, "score": 0.75, "bbox": [10, 20, 30, 40]}
    with pytest.raises(ValueError, match="not in the ground truth"):
        instances_to_detections([instance], 7, {"pointer": 1}, HEIGHT, WIDTH, False)
    with pytest.raises(ValueError, match="no mask"):
        instances_to_detections([instance], 7, {"dial": 2}, HEIGHT, WIDTH, True)


def test_class_without_ground_truth_has_no_ap_and_fails_its_goal() -> None:
    truth = _insulator_truth()
    truth["annotations"] = [a for a in truth["annotations"] if a["category_id"] == 1]
    assert ap50_per_class(truth, _perfect(truth, masks=False))["defect"].ap50 is None
    figure = Figure("insulators", "defect AP50 (box)", None, "ap", goal=GOALS["defect AP50 (box)"])
    assert figure.passed is False


def test_gauge_needs_both_parts() -> None:
    truth = _gauge_truth()
    # Image 3's two needles are missed: only image 1's gauge has both parts.
    detections = [
        d for d in _perfect(truth, masks=False) if (d["image_id"], d["category_id"]) != (3, 1)
    ]
    found = found_annotations(truth, detections)
    assert gauges_found(truth, found) == Share(1, 3)
    assert found_share(truth, found, "dial").share == 1.0
    truth["images"][0]["truth"]["gauges"].append({})
    with pytest.raises(ValueError, match="2 gauges"):
        gauges_found(truth, found)


def test_first_images_cuts_the_annotations_too() -> None:
    truth = _gauge_truth()
    cut = first_images(truth, 2)
    assert [i["id"] for i in cut["images"]] == [1, 2]
    assert {a["image_id"] for a in cut["annotations"]} == {1}
    assert first_images(truth, None)["annotations"] == truth["annotations"]


def test_table_shows_values_goals_and_results(tmp_path: Path) -> None:
    gauges = _gauge_truth()
    insulators = _insulator_truth()
    no_defect = [d for d in _perfect(insulators, masks=False) if d["category_id"] == 1]
    results = {
        "gauges": evaluate_set("gauges", gauges, _perfect(gauges, True), True, True),
        "insulators": evaluate_set("insulators", insulators, no_defect),
    }
    table = format_table([f for r in results.values() for f in r.figures])
    lines = table.splitlines()
    assert lines[0].split() == ["set", "figure", "value", "goal", "result"]
    dial = next(line for line in lines if "dial found" in line)
    assert "100.0% (3/3)" in dial and ">= 95.0%" in dial and dial.endswith("pass")
    defect = next(line for line in lines if "defect AP50 (box)" in line)
    assert "0.000" in defect and ">= 0.700" in defect and defect.endswith("FAIL")
    png = plot_pr_curves({name: r.curves for name, r in results.items()}, tmp_path / "pr.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_options() -> None:
    args = parse_args(["--sets", "insulators", "--limit", "5", "-i", "grpc"])
    assert (args.sets, args.limit, args.protocol, args.url) == (["insulators"], 5, "grpc", None)
    assert parse_args([]).sets == list(SETS)
    for bad in (["--sets", "cats"], ["--limit", "0"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


class _FakeRouter:
    """Stands in for ``JpegClient`` on ``inspect``: answers each image (known by its bytes) with
    the ground truth, built by the router's own :func:`bls.merge.merge_answer`; image 2 fails."""

    def __init__(self, truth: dict[str, Any]) -> None:
        self.truth = truth

    def infer(self, model: str, jpeg: bytes, options: dict[str, str]) -> dict[str, np.ndarray]:
        assert (model, options) == ("inspect", {"MODELS": "pointer"})
        image_id = int(jpeg)
        names = {c["id"]: c["name"] for c in self.truth["categories"]}
        instances = [
            _instance(a, names) for a in self.truth["annotations"] if a["image_id"] == image_id
        ]
        result: DetectorResult | str = "pointer: model crashed"
        if image_id != 2:
            result = DetectorResult(
                boxes=np.array([i.box for i in instances], dtype=np.float32).reshape(-1, 4),
                scores=np.array([i.score for i in instances], dtype=np.float32),
                classes=np.array([["pointer", "dial"].index(i.class_name) for i in instances]),
                mask_rects=np.array(
                    [[*i.mask_origin, i.mask.shape[1], i.mask.shape[0]] for i in instances]
                ).reshape(-1, 4),
                masks=np.concatenate(
                    [i.mask.astype(np.uint8).reshape(-1) for i in instances] or [np.zeros(0)]
                ).astype(np.uint8),
            )
        detections, masks = merge_answer(
            HEIGHT, WIDTH, {"pointer": result}, {"pointer": ["pointer", "dial"]}
        )
        # As JpegClient returns a batched model's outputs: without the batch dimension.
        return {"DETECTIONS": np.array([detections], dtype=np.object_), "MASKS": masks}

    def __enter__(self) -> _FakeRouter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


def test_runner_scores_the_routers_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = _gauge_truth()
    folder = tmp_path / "data" / "gauges" / "heldout"
    (folder / "images").mkdir(parents=True)
    (folder / "annotations.json").write_text(json.dumps(truth))
    for image in truth["images"]:
        (folder / "images" / image["file_name"]).write_bytes(str(image["id"]).encode())
    monkeypatch.setattr(runner, "JpegClient", lambda url, protocol: _FakeRouter(truth))
    out = tmp_path / "out"
    argv = ["--sets", "gauges", "--url", "fake:1", "--data", str(tmp_path / "data")]

    # The failed image (2) holds no gauge: the figures stay perfect, the exit code says 1.
    assert runner.main([*argv, "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "pointer: model crashed" in captured.err
    assert "3/3 images" in captured.err
    results = json.loads((out / "results.json").read_text())
    assert results["sets"]["gauges"]["images"] == 3
    assert results["sets"]["gauges"]["failed_images"] == 1
    assert results["sets"]["gauges"]["detector_files"]["weights"]
    assert results["all_goals_passed"]
    figures = {f["name"]: f["value"] for f in results["figures"]}
    assert figures["pointer AP50 (mask)"] == pytest.approx(1.0)
    assert figures["gauge found (both)"] == 1.0
    assert "dial found" in captured.out
    assert (out / "pr_curves.png").is_file()
    assert len(json.loads((out / "detections_gauges.json").read_text())) == 6

    # --limit 1: image 1 only, which succeeds.
    assert runner.main([*argv, "--out", str(out), "--limit", "1"]) == 0
