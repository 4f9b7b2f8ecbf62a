"""The accuracy tool's metrics on hand-made ground truth, detections and readings; no server
(seconds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from bench.accuracy import __main__ as runner
from bench.accuracy.__main__ import FOREIGN_INSULATOR_GOALS, SETS, parse_args
from bench.accuracy.metrics import (
    GOALS,
    MAX_GOALS,
    WORLD_GOALS,
    WORLD_MAX_GOALS,
    Figure,
    PhotoCounts,
    Share,
    ap50_by_truth,
    ap50_per_class,
    box_iou,
    count_worlds,
    empty_image_detections,
    encode_mask,
    evaluate_set,
    first_images,
    found_annotations,
    found_share,
    full_mask,
    gauges_found,
    image_range,
    instances_to_detections,
    meters_in,
    strings_in,
    world_figures,
)
from bench.accuracy.readings import (
    NO_READING,
    READING_GOALS,
    READING_MAX_GOALS,
    angle_error,
    face_angle,
    match_readings,
    reading_figures,
    readings_from_answer,
    summarize_readings,
    value_error_percent,
)
from bench.accuracy.report import format_table, plot_pr_curves, plot_reading_errors
from bls.merge import merge_answer
from bls.meters import Calibration
from clients.answer import Instance
from pipelines.tensors import Detections

HEIGHT, WIDTH = 120, 160


def _rectangle(x: float, y: float, w: float, h: float) -> list[float]:
    return [x, y, x + w, y, x + w, y + h, x, y + h]


STANDARD = {"start_deg": 225.0, "sweep_deg": 270.0, "min_value": 0.0, "max_value": 1.6}


def _gauge(
    x: float, y: float, size: float, fraction: float, scale: dict[str, float] | None = None
) -> dict[str, Any]:
    """A gauge's ``truth`` entry as ``training.gauges`` writes it, seen square-on (the photo's
    needle angle is the face's); the standard meter unless ``scale`` is given."""
    scale = scale or STANDARD
    low, high = scale["min_value"], scale["max_value"]
    return {
        "center": [x + size / 2, y + size / 2],
        "needle_angle_deg": (scale["start_deg"] + fraction * scale["sweep_deg"]) % 360.0,
        "fraction": fraction,
        "value": low + fraction * (high - low),
        "meter_type": "standard" if scale is STANDARD else "random",
        "scale": {
            **scale,
            "end_deg": (scale["start_deg"] + scale["sweep_deg"]) % 360.0,
            "unit": "MPa",
        },
    }


# The last gauge is another meter type: its value is read on the wrong scale, so not scored.
OTHER_SCALE = {"start_deg": 300.0, "sweep_deg": 120.0, "min_value": 0.0, "max_value": 100.0}


def _gauge_truth() -> dict[str, Any]:
    """Three images: one gauge, none, two gauges; each gauge a thin needle on a square dial."""
    gauges = {1: [(10, 10, 60, 0.5)], 2: [], 3: [(5, 5, 50, 0.1), (80, 40, 70, 0.25)]}
    images, annotations = [], []
    for image_id, places in gauges.items():
        truths = [_gauge(x, y, s, f) for x, y, s, f in places]
        if image_id == 3:
            truths[1] = _gauge(*places[1], OTHER_SCALE)
        images.append(
            {
                "id": image_id,
                "file_name": f"{image_id:06d}.jpg",
                "height": HEIGHT,
                "width": WIDTH,
                "truth": {"gauges": truths, "strings": 0},
            }
        )
        for x, y, size, _ in places:
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
            {
                "id": i,
                "file_name": f"{i:06d}.jpg",
                "height": HEIGHT,
                "width": WIDTH,
                "truth": {"strings": strings, "meters": 0},
            }
            for i, strings in ((1, 1), (2, 0))
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


def test_ap50_by_truth_tells_which_styles_are_missed() -> None:
    truth = _insulator_truth()
    perfect = _perfect(truth, masks=False)  # image 1 only: image 2 is empty
    # Image 3: image 1's objects again, in another material, and nothing found on it.
    truth["images"].append({**truth["images"][0], "id": 3, "file_name": "000003.jpg"})
    truth["annotations"] += [
        {**a, "id": a["id"] + 10, "image_id": 3} for a in list(truth["annotations"])
    ]
    materials = (["glass", "porcelain", "glass"], [], ["shed"])
    for image, drawn in zip(truth["images"], materials, strict=True):
        image["truth"] = {"materials": drawn, "sky": "dusk"}

    figures = ap50_by_truth("insulators", truth, perfect, ("materials", "sky", "missing"))
    values = _values(figures)
    assert list(values) == [
        "insulator AP50, materials glass+porcelain",
        "defect AP50, materials glass+porcelain",
        "insulator AP50, materials shed",
        "defect AP50, materials shed",
        "insulator AP50, sky dusk",
        "defect AP50, sky dusk",
    ]
    assert values["defect AP50, materials glass+porcelain"] == pytest.approx(1.0)
    assert values["defect AP50, materials shed"] == 0.0
    assert values["defect AP50, sky dusk"] == pytest.approx(0.5, abs=0.01)  # half found
    assert figures[3].detail == "1 objects, 1 images"
    assert all(f.goal is None for f in figures)
    assert "insulators" in SETS and SETS["insulators"].styles


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
    args = parse_args(["--sets", "insulators,foreign-neither", "--limit", "5", "-i", "grpc"])
    assert (args.sets, args.limit, args.protocol, args.url) == (
        ["insulators", "foreign-neither"],
        5,
        "grpc",
        None,
    )
    assert parse_args([]).sets == [
        "gauges",
        "insulators",
        "foreign-gauges",
        "foreign-insulators",
        "foreign-neither",
    ]
    assert not parse_args([]).choose_thresholds
    args = parse_args(["--choose-thresholds", "--target-precision", "0.9", "--floor", "0.02"])
    assert (args.choose_thresholds, args.target_precision, args.floor) == (True, 0.9, 0.02)
    for bad in (
        ["--sets", "cats"],
        ["--limit", "0"],
        ["--target-precision", "1.5"],
        ["--floor", "-0.1"],
        ["--target-precision", "high"],
        ["--choose-thresholds", "--precision", "0"],
        ["--choose-thresholds", "--url", "localhost:8001"],
    ):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_every_set_is_asked_for_with_both_detectors_and_each_has_its_goals() -> None:
    assert SETS["gauges"].goals["pointer found"] == 0.95
    assert SETS["insulators"].goals == {"insulator AP50 (box)": 0.9, "defect AP50 (box)": 0.7}
    assert SETS["foreign-insulators"].goals == {"insulator found": 0.9, "defect found": 0.7}
    assert SETS["foreign-neither"].labelled is None
    # Our goals are on our held-out meters; the second renderer's show a change of look.
    assert not SETS["foreign-gauges"].goals and not SETS["foreign-gauges"].max_goals
    assert SETS["foreign-gauges"].readings


# --- each detector outside its world ----------------------------------------------------------

NAMES = {1: "pointer", 2: "dial", 3: "insulator", 4: "defect"}


def _photo(image_id: int, meters: int, strings: int) -> dict[str, Any]:
    return {"id": image_id, "truth": {"meters": meters, "strings": strings}}


def _box(image_id: int, category_id: int, score: float = 0.9) -> dict[str, Any]:
    return {"image_id": image_id, "category_id": category_id, "score": score, "bbox": [0, 0, 9, 9]}


def test_each_detector_is_counted_outside_its_world_only() -> None:
    images = [_photo(1, 2, 0), _photo(2, 0, 1), _photo(3, 0, 0), _photo(4, 1, 1)]
    detections = {
        # A defect and two insulators on meters; five on the mixed scene, which do not count.
        "insulator": [_box(1, 4), _box(1, 3), _box(1, 3), *[_box(4, 3)] * 5, _box(3, 3)],
        # A dial on the strings, a needle on the photo of neither; the mixed one does not count.
        "pointer": [_box(2, 2), _box(3, 1), _box(4, 1)],
    }
    counts = count_worlds(images, detections, NAMES)
    assert counts.insulator_on_meters == PhotoCounts(1, {"defect": 1, "insulator": 2}, 1)
    assert counts.pointer_on_strings == PhotoCounts(1, {"dial": 1}, 1)
    assert counts.on_neither == PhotoCounts(1, {"insulator": 1, "pointer": 1}, 1)
    figures = {f.name: f for f in world_figures("all sets", counts, WORLD_GOALS, WORLD_MAX_GOALS)}
    assert figures["defect boxes on photos with meters, no insulator"].value == 1
    assert figures["insulator boxes per 50 photos with meters, no insulator"].value == 100
    assert figures["pointer-model instances per 50 photos with insulators, no meter"].value == 50
    assert figures["detections on photos of neither"].value == 2
    assert figures["detections on photos of neither"].detail == (
        "2 on 1 of 1 photos: 1 insulator, 1 pointer"
    )
    # Every goal missed; the count of photos of neither has none.
    assert [f.name for f in figures.values() if f.passed is not False] == ["photos of neither"]
    # Per set, the same lines carry no goal.
    assert all(f.goal is None for f in world_figures("gauges", counts))
    # A detector not asked counts nothing.
    assert count_worlds(images, {}, NAMES).on_neither == PhotoCounts(1, {}, 0)


def test_silence_goals_hold_on_a_hundred_photos() -> None:
    images = [_photo(i, 1, 0) for i in range(100)] + [_photo(100 + i, 0, 2) for i in range(101)]
    images += [_photo(300, 0, 0)]
    # One insulator box per 50 photos is allowed, and a little under one pointer instance.
    detections = {
        "insulator": [_box(3, 3), _box(70, 3)],
        "pointer": [_box(150, 1, 0.99), _box(151, 2)],
    }
    counts = count_worlds(images, detections, NAMES)
    total = counts + count_worlds([], {}, NAMES)
    assert total == counts
    figures = world_figures("all sets", total, WORLD_GOALS, WORLD_MAX_GOALS)
    values = {f.name: f.value for f in figures}
    assert values["photos with meters, no insulator"] == 100
    assert values["photos with insulators, no meter"] == 101
    assert values["insulator boxes per 50 photos with meters, no insulator"] == 1.0
    assert values["pointer-model instances per 50 photos with insulators, no meter"] == (
        pytest.approx(100 / 101)
    )
    assert all(f.passed for f in figures if f.goal is not None)
    # A single defect box on a meter fails, as does a third insulator box.
    worse = count_worlds(
        images, {**detections, "insulator": [_box(3, 4), *[_box(5, 3)] * 3]}, NAMES
    )
    graded = world_figures("all", worse, WORLD_GOALS, WORLD_MAX_GOALS)
    failed = [f.name for f in graded if f.passed is False]
    assert failed == [
        "defect boxes on photos with meters, no insulator",
        "insulator boxes per 50 photos with meters, no insulator",
    ]


def test_a_photo_says_what_it_shows_by_its_truth() -> None:
    assert meters_in({"truth": {"meters": 2, "gauges": []}}) == 2  # unlabelled meters
    assert meters_in({"truth": {"gauges": [{}, {}, {}]}}) == 3
    assert strings_in({"truth": {"strings": 4}}) == 4
    with pytest.raises(ValueError, match="image 7: its truth says nothing of meters"):
        meters_in({"id": 7, "truth": {"strings": 0}})
    with pytest.raises(ValueError, match="image 8: its truth says nothing of insulator strings"):
        strings_in({"id": 8, "truth": {"gauges": []}})


def test_image_range_cuts_from_a_photo_on() -> None:
    truth = _gauge_truth()
    cut = image_range(truth, 1, 1)
    assert [i["id"] for i in cut["images"]] == [2]
    assert cut["annotations"] == []
    rest = image_range(truth, 2, None)
    assert [i["id"] for i in rest["images"]] == [3]
    assert {a["image_id"] for a in rest["annotations"]} == {3}
    with pytest.raises(ValueError, match="no image number 3 in a set of 3 images"):
        image_range(truth, 3, None)


def test_foreign_strings_have_goals_on_what_is_found() -> None:
    truth = _insulator_truth()
    strings_only = [d for d in _perfect(truth, masks=False) if d["category_id"] == 1]
    result = evaluate_set("foreign-insulators", truth, strings_only, goals=FOREIGN_INSULATOR_GOALS)
    graded = {f.name: f.passed for f in result.figures if f.goal is not None}
    assert graded == {"insulator found": True, "defect found": False}


def test_readings_of_the_second_renderer_carry_no_goals() -> None:
    truth = _gauge_truth()
    figures = reading_figures("foreign-gauges", summarize_readings(truth, []), {}, {})
    assert figures and all(f.goal is None for f in figures)


# Answers of the scripted router: per image bytes, per detector, (class, score, x, y, w, h).
Scripted = dict[bytes, dict[str, list[tuple[str, float, int, int, int, int]]]]
CLASSES = {"pointer": ["pointer", "dial"], "insulator": ["insulator", "defect"]}


class _ScriptedRouter:
    """Stands in for ``JpegClient`` on ``inspect``: answers each photo (known by its bytes) as
    scripted, the pointer model's instances with masks filling their boxes."""

    def __init__(self, answers: Scripted) -> None:
        self.answers = answers
        self.asked: list[bytes] = []

    def infer(self, model: str, jpeg: bytes, options: dict[str, str]) -> dict[str, np.ndarray]:
        assert (model, options) == ("inspect", {"MODELS": "both"})
        self.asked.append(jpeg)
        results = {}
        for detector, names in CLASSES.items():
            found = self.answers.get(jpeg, {}).get(detector, [])
            boxes = np.array([[x, y, x + w, y + h] for _, _, x, y, w, h in found], np.float32)
            detections = Detections(
                boxes=boxes.reshape(-1, 4),
                scores=np.array([score for _, score, *_ in found], dtype=np.float32),
                classes=np.array([names.index(c) for c, *_ in found], dtype=np.int32),
            )
            if detector == "pointer":
                detections.mask_rects = np.array(
                    [[x, y, w, h] for *_, x, y, w, h in found], dtype=np.int32
                ).reshape(-1, 4)
                detections.masks = np.ones(sum(w * h for *_, w, h in found), dtype=np.uint8)
            results[detector] = detections
        detections_json, masks = merge_answer(HEIGHT, WIDTH, results, CLASSES)
        return {"DETECTIONS": np.array([detections_json], dtype=np.object_), "MASKS": masks}

    def parameters(self, model: str) -> dict[str, str]:
        return {"detectron2_config": f"{model}.yaml", "weights": "weights/demo.pth"}

    def __enter__(self) -> _ScriptedRouter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


def _write_scripted_set(folder: Path, truth: dict[str, Any], tag: str) -> None:
    """A set folder whose photos' bytes are ``<tag>:<image id>``."""
    (folder / "images").mkdir(parents=True)
    (folder / "annotations.json").write_text(json.dumps(truth))
    for image in truth["images"]:
        (folder / "images" / image["file_name"]).write_bytes(f"{tag}:{image['id']}".encode())


def _neither_truth() -> dict[str, Any]:
    """Two photos of neither, as the second renderer writes them (every class, no object)."""
    return {
        "images": [
            {
                "id": i,
                "file_name": f"{i:06d}.jpg",
                "height": HEIGHT,
                "width": WIDTH,
                "truth": {"gauges": [], "strings": 0, "defects": 0},
            }
            for i in (1, 2)
        ],
        "annotations": [],
        "categories": [{"id": i, "name": n} for i, n in NAMES.items()],
    }


def test_runner_measures_the_foreign_strings_and_photos_of_neither(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    strings = _insulator_truth()
    for image in strings["images"]:
        image["truth"] = {"gauges": [], "strings": image["truth"]["strings"], "defects": 0}
    _write_scripted_set(data / "foreign" / "insulators", strings, "strings")
    _write_scripted_set(data / "foreign" / "neither", _neither_truth(), "neither")
    router = _ScriptedRouter(
        {
            # The string and its defect found; a dial where there is no meter.
            b"strings:1": {
                "insulator": [("insulator", 0.9, 20, 10, 30, 90), ("defect", 0.8, 25, 40, 20, 15)],
                "pointer": [("dial", 0.7, 60, 10, 40, 40)],
            },
            b"neither:2": {"insulator": [("insulator", 0.4, 0, 0, 50, 50)]},
        }
    )
    monkeypatch.setattr(runner, "JpegClient", lambda url, protocol: router)
    out = tmp_path / "out"
    argv = ["--sets", "foreign-insulators,foreign-neither", "--url", "fake:1"]
    assert runner.main([*argv, "--data", str(data), "--out", str(out)]) == 1
    assert len(router.asked) == 4
    results = json.loads((out / "results.json").read_text())
    figures = {(f["set"], f["name"]): f for f in results["figures"]}
    assert figures["foreign-insulators", "insulator found"]["value"] == 1.0
    assert figures["foreign-insulators", "defect found"]["value"] == 1.0
    pointer_rate = "pointer-model instances per 50 photos with insulators, no meter"
    assert figures["foreign-insulators", pointer_rate]["value"] == 50.0
    neither = figures["all sets", "detections on photos of neither"]
    # The string set's empty photo and the two photos of neither.
    assert (neither["value"], neither["detail"]) == (1, "1 on 1 of 3 photos: 1 insulator")
    failed = {(f["set"], f["name"]) for f in results["goals"] if not f["passed"]}
    assert failed == {
        ("all sets", "photos with meters, no insulator"),
        ("all sets", "photos with insulators, no meter"),
        ("all sets", pointer_rate),
        ("all sets", "detections on photos of neither"),
        # No photo with meters and no insulator: the rate is undefined.
        ("all sets", "insulator boxes per 50 photos with meters, no insulator"),
    }
    # No labels on photos of neither: no AP, no curve; every detection there is wrong.
    assert not any(
        f["set"] == "foreign-neither" and "AP50" in f["name"] for f in results["figures"]
    )
    shipped = {(f["set"], f["name"]): f for f in results["at_score_thresholds"]}
    assert shipped["foreign-neither", "insulator precision as served"]["detail"] == "0/1"
    assert shipped["foreign-neither", "insulator recall as served"]["value"] is None
    assert shipped["foreign-insulators", "dial precision as served"]["detail"] == "0/1"
    assert shipped["foreign-insulators", "defect recall as served"]["value"] == 1.0
    # Nothing to find and nothing found: no line.
    assert ("foreign-insulators", "pointer precision as served") not in shipped
    assert ("foreign-neither", "photos with meters, no insulator") not in figures
    assert figures["foreign-neither", "detections on photos of neither"]["value"] == 1
    assert "foreign-neither" not in json.loads((out / "results.json").read_text())["by_style"]
    assert captured_last_line(capsys) == f"accuracy: wrote {out / 'results.json'}"


def captured_last_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The last line the run printed, on either stream (the JSON's path, by the brief)."""
    captured = capsys.readouterr()
    return captured.err.strip().splitlines()[-1]


# Per image id: what the fake insulator model answers there, (class, score, x, y, w, h) each.
InsulatorAnswers = dict[int, list[tuple[str, float, float, float, float, float]]]


class _FakeRouter:
    """Stands in for ``JpegClient`` on ``inspect`` with both detectors: answers each image (known
    by its bytes) with its ground truth as the pointer model's instances, built by the router's
    own :func:`bls.merge.merge_answer`, plus a perfect reading per gauge, and with
    ``insulator`` as the insulator model's; image 2 fails in the pointer model."""

    def __init__(
        self,
        truth: dict[str, Any],
        insulator: InsulatorAnswers | None = None,
        thresholds: dict[str, str] | None = None,
    ) -> None:
        self.truth = truth
        self.insulator = insulator or {}
        self.thresholds = thresholds or {}

    def infer(self, model: str, jpeg: bytes, options: dict[str, str]) -> dict[str, np.ndarray]:
        assert (model, options) == ("inspect", {"MODELS": "both"})
        image_id = int(jpeg)
        names = {c["id"]: c["name"] for c in self.truth["categories"]}
        instances = [
            _instance(a, names) for a in self.truth["annotations"] if a["image_id"] == image_id
        ]
        result: Detections | str = "pointer: model crashed"
        if image_id != 2:
            result = Detections(
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
        found = self.insulator.get(image_id, [])
        insulators = Detections(
            boxes=np.array(
                [[x, y, x + w, y + h] for _, _, x, y, w, h in found], dtype=np.float32
            ).reshape(-1, 4),
            scores=np.array([score for _, score, *_ in found], dtype=np.float32),
            classes=np.array([["insulator", "defect"].index(c) for c, *_ in found], np.int32),
        )
        detections, masks = merge_answer(
            HEIGHT,
            WIDTH,
            {"pointer": result, "insulator": insulators},
            {"pointer": ["pointer", "dial"], "insulator": ["insulator", "defect"]},
        )
        if image_id != 2:
            document = json.loads(detections)
            image = next(i for i in self.truth["images"] if i["id"] == image_id)
            # The instances alternate pointer, dial per gauge (annotation order).
            document["readings"] = [
                _reading(gauge, dial=2 * k + 1, needle=2 * k)
                for k, gauge in enumerate(image["truth"]["gauges"])
            ]
            detections = json.dumps(document).encode()
        # As JpegClient returns a batched model's outputs: without the batch dimension.
        return {"DETECTIONS": np.array([detections], dtype=np.object_), "MASKS": masks}

    def parameters(self, model: str) -> dict[str, str]:
        assert model in ("pointer", "insulator")
        files = {"detectron2_config": f"{model}.yaml", "weights": f"/elsewhere/{model}.pth"}
        if model in self.thresholds:
            files["score_thresholds"] = self.thresholds[model]
        return files

    def __enter__(self) -> _FakeRouter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


def _write_set(folder: Path, truth: dict[str, Any]) -> None:
    """A set folder as the generators write it, each image's bytes its id (for the fake)."""
    (folder / "images").mkdir(parents=True)
    (folder / "annotations.json").write_text(json.dumps(truth))
    for image in truth["images"]:
        (folder / "images" / image["file_name"]).write_bytes(str(image["id"]).encode())


# The goals a few gauge photos alone cannot meet.
UNMEASURED = {
    "photos with meters, no insulator",
    "photos with insulators, no meter",
    "pointer-model instances per 50 photos with insulators, no meter",
}


def test_runner_scores_the_routers_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = _gauge_truth()
    _write_set(tmp_path / "data" / "gauges" / "heldout", truth)
    thresholds = tmp_path / "pointer_thresholds.yaml"
    thresholds.write_text("pointer: 0.5\ndial: 0.25\n")
    monkeypatch.setattr(
        runner,
        "JpegClient",
        lambda url, protocol: _FakeRouter(truth, thresholds={"pointer": str(thresholds)}),
    )
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
    # What the server loaded, not this checkout's repository/.
    assert results["detector_files"]["pointer"] == {
        "detectron2_config": "pointer.yaml",
        "weights": "/elsewhere/pointer.pth",
        "score_thresholds": str(thresholds),
    }
    assert results["score_thresholds"] == {"pointer": 0.5, "dial": 0.25}
    # 3 photos are too few for the goals on silence outside each detector's world, and with
    # no photo of insulators the pointer model's rate there is undefined.
    failed = {(f["set"], f["name"]) for f in results["goals"] if not f["passed"]}
    assert failed == {("all sets", name) for name in UNMEASURED}
    figures = {f["name"]: f["value"] for f in results["figures"]}
    assert figures["pointer AP50 (mask)"] == pytest.approx(1.0)
    assert figures["gauge found (both)"] == 1.0
    assert figures["gauge read"] == 1.0
    assert figures["needle angle error p90"] == 0.0
    assert figures["value error median"] == pytest.approx(0.0)
    assert figures["false readings"] == 0
    assert "dial found" in captured.out
    assert "gauge read" in captured.out and "<= 1.50 deg" in captured.out
    assert (out / "pr_curves.png").is_file()
    assert (out / "reading_errors.png").is_file()
    detections = json.loads((out / "detections_gauges.json").read_text())
    assert len(detections["pointer"]) == 6 and detections["insulator"] == []
    # Every detection right, the served thresholds named: precision and recall 1.
    shipped = {f["name"]: f["value"] for f in results["at_score_thresholds"]}
    assert shipped["dial precision at 0.2500"] == shipped["pointer recall at 0.5000"] == 1.0
    assert "At the served score thresholds (pointer 0.5000, dial 0.2500)" in captured.out
    readings = json.loads((out / "readings_gauges.json").read_text())
    assert [r["image_id"] for r in readings] == [1, 3, 3]
    assert readings[0]["dial_bbox"] == [10, 10, 60, 60]
    assert results["sets"]["gauges"]["reading_statuses"] == {"ok": 3}

    # --limit 1: image 1 only, which succeeds; only the photo-count goals fail.
    assert runner.main([*argv, "--out", str(out), "--limit", "1"]) == 1
    results = json.loads((out / "results.json").read_text())
    assert {f["name"] for f in results["goals"] if not f["passed"]} == UNMEASURED


# --- meter readings ---------------------------------------------------------------------------


def _reading(
    gauge: dict[str, Any], dial: int = 0, needle: int | None = 0, **changes: Any
) -> dict[str, Any]:
    """The reading a perfect server answers for ``gauge`` (``changes`` spoil it)."""
    reading = {
        "dial": dial,
        "needle": needle,
        "center": gauge["center"],
        "needle_angle_deg": gauge["needle_angle_deg"],
        "fraction": gauge["fraction"],
        "value": gauge["value"],
        "unit": "MPa",
        "status": "ok",
    }
    return {**reading, **changes}


def _perfect_readings(truth: dict[str, Any]) -> list[dict[str, Any]]:
    """Per gauge a perfect reading, tagged as ``readings_from_answer`` tags them."""
    dials = sorted(
        (a for a in truth["annotations"] if a["category_id"] == 2), key=lambda a: a["id"]
    )
    readings = []
    for image in truth["images"]:
        boxes = [a["bbox"] for a in dials if a["image_id"] == image["id"]]
        for gauge, box in zip(image["truth"]["gauges"], boxes, strict=True):
            readings.append({**_reading(gauge), "image_id": image["id"], "dial_bbox": box})
    return readings


def test_angle_error_is_circular() -> None:
    assert angle_error(359.0, 1.0) == pytest.approx(2.0)
    assert angle_error(1.0, 359.0) == pytest.approx(2.0)
    assert angle_error(90.0, 270.0) == pytest.approx(180.0)
    assert angle_error(217.4, 217.4) == 0.0


def test_value_error_in_percent_of_full_scale() -> None:
    gauge = _gauge(0, 0, 10, 0.5)  # 0.8 MPa on 0-1.6
    assert value_error_percent(0.9, gauge) == pytest.approx(6.25)
    falling = {"value": 1.0, "scale": {"min_value": 2.0, "max_value": 0.0}}
    assert value_error_percent(0.5, falling) == pytest.approx(25.0)


def test_perfect_readings_read_every_gauge_without_error() -> None:
    truth = _gauge_truth()
    summary = summarize_readings(truth, _perfect_readings(truth))
    assert (summary.read.found, summary.read.total) == (3, 3)
    assert summary.angle_errors == [0.0, 0.0, 0.0]
    # The other meter type's value is not scored: two standard gauges.
    assert summary.value_errors == pytest.approx([0.0, 0.0])
    assert (summary.false_readings, summary.ok_on_empty, summary.empty_images) == (0, 0, 1)
    assert summary.statuses == {"ok": 3}
    figures = reading_figures("gauges", summary)
    values = _values(figures)
    assert values["gauge read"] == 1.0
    assert values["needle angle error median"] == 0.0
    assert values["value error p90"] == pytest.approx(0.0)
    assert all(f.passed for f in figures if f.goal is not None)
    goals = {f.name for f in figures if f.goal is not None}
    assert goals == {"gauge read", *MAX_GOALS, *READING_GOALS, *READING_MAX_GOALS}


def test_wrap_around_angle_error_and_value_error() -> None:
    truth = _gauge_truth()
    truth["images"][0]["truth"]["gauges"][0]["needle_angle_deg"] = 1.0
    readings = _perfect_readings(truth)
    readings[0].update(needle_angle_deg=359.0, value=0.8 + 0.016)  # 1% of 1.6 MPa too high
    summary = summarize_readings(truth, readings)
    assert summary.angle_errors == pytest.approx([2.0, 0.0, 0.0])
    assert summary.value_errors == pytest.approx([1.0, 0.0])
    values = _values(reading_figures("gauges", summary))
    assert values["needle angle error median"] == 0.0
    assert values["needle angle error p90"] == pytest.approx(1.6)  # 0, 0, 2: linear at 90%
    assert values["value error median"] == pytest.approx(0.5)


def test_status_not_ok_is_not_read() -> None:
    truth = _gauge_truth()
    readings = _perfect_readings(truth)
    # The needle lies off the calibrated scale: its angle is still known, no value.
    readings[1].update(status="outside the scale", fraction=None, value=None)
    readings[2].update(status="no needle", needle=None, needle_angle_deg=None, value=None)
    summary = summarize_readings(truth, readings)
    assert (summary.read.found, summary.read.total) == (1, 3)
    assert summary.statuses == {"ok": 1, "outside the scale": 1, "no needle": 1}
    assert len(summary.angle_errors) == 2  # the "no needle" one has no angle
    assert len(summary.value_errors) == 1
    assert summary.false_readings == 0
    figure = next(f for f in reading_figures("gauges", summary) if f.name == "gauge read")
    assert figure.passed is False
    assert figure.detail == "1/3; 1 outside the scale; 1 no needle"


def test_gauge_without_reading_is_not_read() -> None:
    truth = _gauge_truth()
    gauges, false = match_readings(truth, _perfect_readings(truth)[1:])
    assert [g.read for g in gauges] == [False, True, True]
    assert gauges[0].status == NO_READING and gauges[0].reading is None
    assert false == []


def test_unmatched_reading_counts_as_false() -> None:
    truth = _gauge_truth()
    readings = _perfect_readings(truth)
    # Image 1: a dial box beside the gauge's (IoU 0); image 2 has no gauge at all.
    stray = {**readings[0], "dial_bbox": [100, 60, 40, 40]}
    on_empty = {**readings[0], "image_id": 2}
    off = {**on_empty, "status": "no needle"}
    summary = summarize_readings(truth, [*readings, stray, on_empty, off])
    assert summary.read.share == 1.0
    assert (summary.false_readings, summary.false_ok) == (3, 2)
    assert (summary.ok_on_empty, summary.empty_images_with_ok) == (1, 1)
    figures = {f.name: f for f in reading_figures("gauges", summary)}
    assert figures["readings ok on empty images"].passed is False
    assert figures["false readings"].value == 3
    assert figures["false readings"].detail == "2 of them ok"


def test_the_best_overlapping_dial_is_matched() -> None:
    truth = _gauge_truth()
    (reading,) = [r for r in _perfect_readings(truth) if r["image_id"] == 1]
    x, y, w, h = reading["dial_bbox"]
    # Both overlap the dial with IoU >= 0.5: the closer one is matched, the other is not false.
    near = {**reading, "dial_bbox": [x + 2, y, w, h], "value": 0.1}
    far = {**reading, "dial_bbox": [x + 12, y, w, h], "value": 0.2}
    below = {**reading, "dial_bbox": [x + 0.4 * w, y, w, h], "value": 0.3}  # IoU 0.43
    gauges, false = match_readings(first_images(truth, 1), [far, near, below])
    assert gauges[0].reading is near
    assert false == [below]


def test_share_read_of_needles_on_the_calibrated_scale() -> None:
    truth = _gauge_truth()
    # The other meter's needle points straight down: in the standard scale's gap.
    other = truth["images"][2]["truth"]["gauges"][1]
    other.update(fraction=0.5, scale={**other["scale"], "start_deg": 120.0})
    assert face_angle(other) == pytest.approx(180.0)
    readings = _perfect_readings(truth)
    readings[2].update(status="outside the scale", value=None)
    standard = Calibration(225.0, 135.0, 0.0, 1.6, "MPa")
    summary = summarize_readings(truth, readings, standard)
    assert summary.read.share == pytest.approx(2 / 3)
    assert summary.on_scale is not None
    assert (summary.on_scale.found, summary.on_scale.total) == (2, 2)
    names = [f.name for f in reading_figures("gauges", summary)]
    assert "gauge read (needle on the scale)" in names
    assert summarize_readings(truth, readings).on_scale is None


def test_no_readings_fail_the_goals() -> None:
    truth = _gauge_truth()
    figures = reading_figures("gauges", summarize_readings(truth, []))
    values = _values(figures)
    assert values["gauge read"] == 0.0
    assert values["needle angle error median"] is None
    assert values["value error median"] is None
    assert values["readings ok on empty images"] == 0
    assert [f.name for f in figures if f.passed is False] == [
        "gauge read",
        "scale found, fraction within 2% of span",
        "fraction error median",
        "fraction error p90",
        "needle angle error median",
        "needle angle error p90",
    ]


def test_readings_are_tagged_with_their_dials_box() -> None:
    document = {
        "models": {
            "pointer": {
                "status": "ok",
                "instances": [
                    {"class": "pointer", "box": [40.0, 15.0, 44.0, 40.0]},
                    {"class": "dial", "box": [10.0, 10.0, 70.0, 70.0]},
                ],
            }
        },
        "readings": [_reading(_gauge(10, 10, 60, 0.5), dial=1)],
    }
    (tagged,) = readings_from_answer(document, "pointer", 7)
    assert tagged["image_id"] == 7
    assert tagged["dial_bbox"] == [10.0, 10.0, 60.0, 60.0]
    assert tagged["status"] == "ok" and tagged["dial"] == 1
    assert readings_from_answer({"models": {}}, "pointer", 7) == []
    document["readings"][0]["dial"] = 2
    with pytest.raises(ValueError, match="dial 2"):
        readings_from_answer(document, "pointer", 7)


def test_table_shows_upper_bound_goals(tmp_path: Path) -> None:
    figures = [
        Figure("gauges", "needle angle error median", 1.2, "deg", "", 1.5, at_most=True),
        Figure("gauges", "needle angle error p90", 4.5, "deg", "", 4.0, at_most=True),
        Figure("gauges", "value error median", 0.61, "percent", "of full scale"),
    ]
    lines = format_table(figures).splitlines()
    assert "1.20 deg" in lines[2] and "<= 1.50 deg" in lines[2] and lines[2].endswith("pass")
    assert "4.50 deg" in lines[3] and lines[3].endswith("FAIL")
    assert "0.61% (of full scale)" in lines[4]
    png = plot_reading_errors(
        [0.2, 0.9, 1.4, 179.0],
        [0.3, 7.0],
        tmp_path / "r.png",
        {"g": 1.5},
        fraction_errors=[0.1, 0.4, 12.0],
        fraction_goals={"median": 0.5},
        title="foreign-gauges",
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_reading_errors([], [], tmp_path / "empty.png").is_file()
