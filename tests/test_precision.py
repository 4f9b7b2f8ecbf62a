"""The detectors' lower precision (issue 40): config.pbtxt's ``precision``, what it lowers and
what it keeps float32, its fallback where the hardware lacks it, and its answers against float32.

The parity tests (tests/test_detector_parity.py) stay on float32; a lower precision is judged by
accuracy, here on a few drawn photos and by ``make accuracy`` on the held-out sets.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from centernet.modeling.dense_heads.centernet import CenterNet
from detectron2.modeling import box_regression
from detectron2.modeling.poolers import ROIPooler
from detectron2.modeling.roi_heads import keypoint_head, mask_head
from torch.utils._python_dispatch import TorchDispatchMode
from torchvision.ops import box_iou

import pipelines.detector
from bench.__main__ import lower_precision_note
from bench.__main__ import parse_args as bench_args
from bench.accuracy.__main__ import parse_args as accuracy_args
from bench.accuracy.precision import (
    compare_runs,
    format_differences,
    measure_in_precision,
    status_changes,
)
from bench.servers import DETECTOR_PATHS, set_precision, write_precision_repository
from clients.jpeg_client import JpegClient
from pipelines.detector import (
    PRECISIONS,
    Detector,
    PrecisionError,
    load_config,
    parse_precision,
    served_precision,
)
from pipelines.preprocess import Resize
from pipelines.tensors import Detections
from server.launch import REPO_ROOT, ServerStartError
from tests.support import reference_preprocess, server_on

REPOSITORY = REPO_ROOT / "repository"
POINTER_YAML = REPOSITORY / "pointer" / "mask_rcnn_R18_FPN_demo.yaml"
POINTER_WEIGHTS = REPOSITORY / "pointer" / "weights" / "demo.pth"
INSULATOR_YAML = REPOSITORY / "insulator" / "centernet2_R18_FPN_demo.yaml"
INSULATOR_WEIGHTS = REPOSITORY / "insulator" / "weights" / "demo.pth"

NO_GPU = "needs a GPU (torch.cuda.is_available() is False): GPU path not tested"
NO_BFLOAT16 = (
    "needs a CPU with bfloat16 instructions (AVX512-BF16 or AMX): bfloat16's answers not "
    "compared with float32's"
)
# Each device's lower precision; the GPU's runs only where there is one.
LOWER = [
    pytest.param("cpu", torch.bfloat16, id="cpu-bfloat16"),
    pytest.param("cuda", torch.float16, id="cuda-float16", marks=pytest.mark.gpu),
]

# Answers of the same photo in float32 and the lower precision: every detection scored at least
# MARGIN above the YAML's threshold in one has one of the same class in the other, its box at
# IoU MIN_IOU or more and its score within MAX_SCORE_DIFF. (Measured with bfloat16 emulated on
# the demo pointer: boxes within 0.1 px, scores within 0.001.)
MARGIN = 0.05
MIN_IOU = 0.9
MAX_SCORE_DIFF = 0.05


def needs(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip(NO_GPU)


def preprocessed(yaml_path: Path, jpeg: bytes) -> tuple[np.ndarray, np.ndarray]:
    cfg = load_config(yaml_path)
    return reference_preprocess(
        jpeg, Resize(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, cfg.INPUT.FORMAT)
    )


# --- the setting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        ("float32", torch.float32),
        ("bfloat16", torch.bfloat16),
        ("float16", torch.float16),
        (" BFloat16 ", torch.bfloat16),
    ],
)
def test_precision_names_parse(value: str, dtype: torch.dtype) -> None:
    assert parse_precision(value, "config.pbtxt") == dtype


@pytest.mark.parametrize("value", ["fp16", "bf16", "half", "float64", "int8", ""])
def test_an_unknown_precision_names_its_source_value_and_choices(value: str) -> None:
    with pytest.raises(PrecisionError) as error:
        parse_precision(value, "repository/pointer/config.pbtxt, parameter precision")
    message = str(error.value)
    assert message.startswith("repository/pointer/config.pbtxt, parameter precision: ")
    assert repr(value) in message
    assert all(name in message for name in PRECISIONS)


def test_float16_on_a_cpu_fails_before_the_weights_load(tmp_path: Path) -> None:
    with pytest.raises(PrecisionError, match=r"float16 is a GPU's precision .* use bfloat16"):
        Detector(POINTER_YAML, tmp_path / "absent.pth", precision=torch.float16)


def test_float32_is_served_everywhere_unchanged() -> None:
    assert served_precision(torch.float32, "cpu") == (torch.float32, "")


@pytest.mark.parametrize("has_bfloat16", [True, False])
def test_bfloat16_on_a_cpu_needs_its_instructions(
    monkeypatch: pytest.MonkeyPatch, has_bfloat16: bool
) -> None:
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: has_bfloat16)
    dtype, why = served_precision(torch.bfloat16, "cpu")
    if has_bfloat16:
        assert (dtype, why) == (torch.bfloat16, "")
    else:
        assert dtype == torch.float32
        assert "no bfloat16 instructions" in why and "serving float32" in why


@pytest.mark.parametrize(
    ("capability", "requested", "served"),
    [
        ((6, 1), torch.float16, torch.float32),  # Pascal consumer cards: float16 is slow
        ((7, 0), torch.float16, torch.float16),  # tensor cores from Volta
        ((7, 5), torch.bfloat16, torch.float32),
        ((8, 0), torch.bfloat16, torch.bfloat16),
        ((9, 0), torch.float16, torch.float16),
    ],
)
def test_a_gpu_serves_the_lower_precision_only_where_it_is_fast(
    monkeypatch: pytest.MonkeyPatch,
    capability: tuple[int, int],
    requested: torch.dtype,
    served: torch.dtype,
) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "a GPU")
    dtype, why = served_precision(requested, "cuda:0")
    assert dtype == served
    if served == requested:
        assert why == ""
    else:
        assert f"compute capability {capability[0]}.{capability[1]}" in why
        assert "serving float32" in why


def test_a_cpu_without_bfloat16_serves_float32s_very_answers(
    monkeypatch: pytest.MonkeyPatch, scenes: dict[str, bytes]
) -> None:
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    image = preprocessed(POINTER_YAML, scenes["gauges"])
    fallback = Detector(POINTER_YAML, POINTER_WEIGHTS, precision=torch.bfloat16)
    assert fallback.precision == torch.float32
    assert fallback.lowered == []
    assert "no bfloat16 instructions" in fallback.precision_fallback
    [expected] = Detector(POINTER_YAML, POINTER_WEIGHTS)([image])
    [found] = fallback([image])
    assert len(expected.scores) > 0
    for name, array in expected.outputs().items():
        np.testing.assert_array_equal(found.outputs()[name], array, err_msg=name)


# --- what is lowered, and what stays float32 --------------------------------------------------


class OpTypes(TorchDispatchMode):
    """Records, per operator that reaches a kernel, the dtypes of its tensor arguments (after
    autocast has cast them: what the kernel computes in)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, set[torch.dtype]]] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        for a in args:
            if isinstance(a, (list, tuple)):
                tensors += [t for t in a if isinstance(t, torch.Tensor)]
        self.calls.append((func.name(), {t.dtype for t in tensors if t.is_floating_point()}))
        return func(*args, **kwargs)

    def of(self, name: str) -> list[set[torch.dtype]]:
        return [dtypes for op, dtypes in self.calls if op == name]

    def computing_in(self, dtype: torch.dtype, fragment: str) -> int:
        return sum(1 for op, dtypes in self.calls if fragment in op and dtype in dtypes)


@dataclass
class Recorded:
    """The float dtypes each stage kept to be float32 saw, by stage."""

    stages: dict[str, list[torch.dtype]] = field(default_factory=dict)
    ops: OpTypes = field(default_factory=OpTypes)

    def add(self, stage: str, *values: Any) -> None:
        seen = self.stages.setdefault(stage, [])
        for value in values:
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                seen.append(value.dtype)


def spying(record: Recorded, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, recording its float tensor arguments and result under ``stage``."""

    def spy(*args: Any, **kwargs: Any) -> Any:
        record.add(stage, *args, *kwargs.values())
        for value in (*args, *kwargs.values()):
            if isinstance(value, (list, tuple)):
                record.add(stage, *value)
        result = function(*args, **kwargs)
        record.add(stage, *(result if isinstance(result, tuple) else (result,)))
        return result

    return spy


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorded]:
    """Spies on the stages that must stay float32 (each spy calls the real function)."""
    record = Recorded()
    transform = box_regression.Box2BoxTransform.apply_deltas
    monkeypatch.setattr(
        box_regression.Box2BoxTransform,
        "apply_deltas",
        lambda self, deltas, boxes: spying(record, "box decoding", transform)(self, deltas, boxes),
    )
    decode = CenterNet.predict_single_level
    monkeypatch.setattr(
        CenterNet,
        "predict_single_level",
        lambda self, *a, **k: spying(record, "centernet decoding", decode)(self, *a, **k),
    )
    monkeypatch.setattr(
        keypoint_head,
        "keypoint_rcnn_inference",
        spying(record, "keypoint decoding", keypoint_head.keypoint_rcnn_inference),
    )
    monkeypatch.setattr(
        mask_head,
        "mask_rcnn_inference",
        spying(record, "mask probabilities", mask_head.mask_rcnn_inference),
    )
    monkeypatch.setattr(
        pipelines.detector,
        "_do_paste_mask",
        spying(record, "mask pasting", pipelines.detector._do_paste_mask),
    )
    yield record


def run_recorded(detector: Detector, image: Any, record: Recorded) -> Detections:
    """One forward with every ROIPooler hooked and every operator's dtypes recorded."""

    def pooled(module: torch.nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
        features, boxes = args
        record.add("ROIAlign", *features, *(b.tensor for b in boxes), output)

    hooks = [
        module.register_forward_hook(pooled)
        for module in detector.model.modules()
        if isinstance(module, ROIPooler)
    ]
    try:
        with record.ops:
            [found] = detector([image])
    finally:
        for hook in hooks:
            hook.remove()
    return found


@pytest.mark.parametrize(("device", "dtype"), LOWER)
@pytest.mark.parametrize("model", ["pointer with keypoints", "insulator"])
def test_decoding_nms_roialign_and_pasting_stay_float32(
    monkeypatch: pytest.MonkeyPatch,
    recorded: Recorded,
    scenes: dict[str, bytes],
    device: str,
    dtype: torch.dtype,
    model: str,
) -> None:
    """The backbone's and heads' convolutions and linear layers compute in the lower precision;
    box decoding, NMS, ROIAlign, keypoint decoding and mask pasting get float32. On a CPU
    without bfloat16 instructions bfloat16 is forced (emulated: slower, the same dtypes)."""
    needs(device)
    if device == "cpu":
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    if model == "insulator":
        yaml_path, weights, photo = INSULATOR_YAML, INSULATOR_WEIGHTS, "insulator"
        expected_stages = {"box decoding", "centernet decoding", "ROIAlign"}
        lowered = {"backbone", "proposal_generator.centernet_head", "roi_heads.box_head.0"}
    else:
        yaml_path, weights, photo = POINTER_YAML, POINTER_WEIGHTS, "gauges"
        expected_stages = {
            "box decoding",
            "ROIAlign",
            "keypoint decoding",
            "mask probabilities",
            "mask pasting",
        }
        lowered = {
            "backbone",
            "proposal_generator.rpn_head",
            "roi_heads.box_head",
            "roi_heads.mask_head.layers",
            "roi_heads.keypoint_head.layers",
        }
    detector = Detector(yaml_path, weights, device=device, precision=dtype)
    assert detector.precision == dtype and detector.precision_fallback == ""
    assert lowered <= set(detector.lowered)
    found = run_recorded(detector, preprocessed(yaml_path, scenes[photo]), recorded)

    assert len(found.scores) > 0, "nothing found: the stages after the heads did not run"
    assert expected_stages <= set(recorded.stages), sorted(recorded.stages)
    for stage, dtypes in recorded.stages.items():
        assert dtypes, f"{stage}: no float tensors seen"
        assert set(dtypes) == {torch.float32}, f"{stage} saw {sorted(map(str, set(dtypes)))}"
    nms = recorded.ops.of("torchvision::nms")
    assert nms, "no NMS ran"
    assert all(dtypes == {torch.float32} for dtypes in nms), nms
    assert all(dtypes == {torch.float32} for dtypes in recorded.ops.of("torchvision::roi_align"))
    # The lowering did take: convolutions and the box head's matrix products in `dtype`.
    assert recorded.ops.computing_in(dtype, "conv") > 10
    assert recorded.ops.computing_in(dtype, "linear") > 0


# --- the answers, against float32's -----------------------------------------------------------


def unmatched(
    reference: Detections, other: Detections, at_least: float, class_names: list[str]
) -> list[str]:
    """``reference``'s detections scored ``at_least`` or more that ``other`` has no detection
    of the same class for, with its box at IoU :data:`MIN_IOU` or more and a score within
    :data:`MAX_SCORE_DIFF`."""
    ious = box_iou(torch.from_numpy(reference.boxes), torch.from_numpy(other.boxes)).numpy()
    missing = []
    for i, (box, score, cls) in enumerate(
        zip(reference.boxes, reference.scores, reference.classes, strict=True)
    ):
        if score < at_least:
            continue
        partners = (
            (other.classes == cls)
            & (ious[i] >= MIN_IOU)
            & (np.abs(other.scores - score) <= MAX_SCORE_DIFF)
        )
        if not partners.any():
            best = float(ious[i].max()) if ious.shape[1] else 0.0
            where = f"{box.round(1).tolist()} score {score:.3f}"
            missing.append(f"{class_names[cls]} {where} (best IoU {best:.3f})")
    return missing


@pytest.mark.parametrize(("device", "dtype"), LOWER)
@pytest.mark.parametrize(
    ("yaml_path", "weights", "photos"),
    [
        pytest.param(POINTER_YAML, POINTER_WEIGHTS, ("gauge", "gauges"), id="pointer"),
        pytest.param(INSULATOR_YAML, INSULATOR_WEIGHTS, ("insulator", "both"), id="insulator"),
    ],
)
def test_the_lower_precision_finds_what_float32_finds(
    scenes: dict[str, bytes],
    yaml_path: Path,
    weights: Path,
    photos: tuple[str, ...],
    device: str,
    dtype: torch.dtype,
) -> None:
    """Drawn photos (a seed training never drew): the same objects, of the same classes, at
    nearly the same boxes and scores, in both directions."""
    needs(device)
    lower = Detector(yaml_path, weights, device=device, precision=dtype)
    if lower.precision_fallback:
        pytest.skip(NO_BFLOAT16 if dtype == torch.bfloat16 else lower.precision_fallback)
    full = Detector(yaml_path, weights, device=device)
    at_least = full.cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST + MARGIN
    for photo in photos:
        image = preprocessed(yaml_path, scenes[photo])
        [expected], [found] = full([image]), lower([image])
        assert (expected.scores >= at_least).any(), f"{photo}: nothing to compare"
        missing = unmatched(expected, found, at_least, full.class_names)
        assert not missing, f"{photo}: float32 found, {dtype} did not: {missing}"
        extra = unmatched(found, expected, at_least, full.class_names)
        assert not extra, f"{photo}: {dtype} found, float32 did not: {extra}"


# --- through the server -----------------------------------------------------------------------


def with_precision(repository: Path, model: str, precision: str) -> Path:
    """Sets ``model``'s precision in its config.pbtxt (on a CPU instance); returns the file."""
    config = repository / model / "config.pbtxt"
    text = config.read_text()
    shipped = '{ key: "precision", value: { string_value: "float32" } }'
    assert shipped in text, f"{config}: the shipped precision parameter is gone"
    text = text.replace(shipped, shipped.replace("float32", precision))
    config.write_text(text + "instance_group [ { kind: KIND_CPU, count: 1 } ]\n")
    return config


@pytest.mark.server
def test_the_server_serves_bfloat16_or_says_once_why_not_and_refuses_float16_on_a_cpu(
    tmp_path: Path,
) -> None:
    repository = tmp_path / "repository"
    for name in ("pointer", "insulator"):
        shutil.copytree(REPOSITORY / name, repository / name)
    with_precision(repository, "pointer", "bfloat16")
    refused = with_precision(repository, "insulator", "float16")
    server = server_on(repository, tmp_path)
    with server, pytest.raises(ServerStartError, match="failed to load all models"):
        server.wait_until_ready(timeout_s=600)
    log = server.log_text()
    assert f"insulator: {refused}, parameter precision 'float16': float16 is a GPU's" in log
    fallback = "pointer: precision bfloat16 asked for in"
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        assert "precision bfloat16 in backbone, proposal_generator.rpn_head" in log
        assert fallback not in log
    else:
        assert log.count(fallback) == 1, log[-3000:]
        assert "this CPU has no bfloat16 instructions" in log
        assert "pointer: mask_rcnn_R18_FPN_demo.yaml on cpu" in log
        assert "precision float32" in log


# --- make bench --------------------------------------------------------------------------------


def test_a_precision_copy_of_the_repository_sets_the_detectors_only(tmp_path: Path) -> None:
    copy = write_precision_repository(tmp_path / "copy", "bfloat16", models=DETECTOR_PATHS)
    assert sorted(p.name for p in copy.iterdir()) == sorted(DETECTOR_PATHS)
    for name in ("pointer", "insulator"):
        config = (copy / name / "config.pbtxt").read_text()
        assert '{ key: "precision", value: { string_value: "bfloat16" } }' in config
        assert config == set_precision(
            (REPOSITORY / name / "config.pbtxt").read_text(), "bfloat16", Path(name)
        )
        assert (copy / name / "weights").is_symlink()
    assert (copy / "preprocess" / "config.pbtxt").read_text() == (
        REPOSITORY / "preprocess" / "config.pbtxt"
    ).read_text()


def test_a_config_without_a_precision_parameter_is_named(tmp_path: Path) -> None:
    text = (REPOSITORY / "pointer" / "config.pbtxt").read_text()
    stripped = "\n".join(line for line in text.splitlines() if '"precision"' not in line)
    with pytest.raises(ValueError, match=r"somewhere/config\.pbtxt: no precision parameter"):
        set_precision(stripped, "bfloat16", Path("somewhere/config.pbtxt"))


def test_bench_takes_a_lower_precision_with_either_recipes() -> None:
    assert bench_args(["--precision", "bfloat16", "--recipes", "r50"]).precision == "bfloat16"
    assert bench_args([]).precision is None
    with pytest.raises(SystemExit):
        bench_args(["--precision", "float32"])


def test_bench_says_when_its_lower_precision_rows_measure_float32(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(PrecisionError, match="float16 is a GPU's precision"):
        lower_precision_note("float16", on_gpu=False)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    note = lower_precision_note("bfloat16", on_gpu=False)
    assert note.startswith("the bfloat16 rows measure float32: this CPU has no bfloat16")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert lower_precision_note("bfloat16", on_gpu=False) == ""


# --- make accuracy --precision -------------------------------------------------------------------


def reading(image_id: int, x: float, status: str) -> dict[str, Any]:
    return {"image_id": image_id, "dial_bbox": [x, 10.0, 100.0, 100.0], "status": status}


def test_reading_statuses_are_compared_meter_by_meter() -> None:
    float32 = [reading(1, 0, "ok"), reading(1, 300, "ok"), reading(2, 0, "no needle")]
    # Photo 1: both dials again, a few pixels off, one now unread; photo 2's dial lost, and a
    # dial float32 did not read found on photo 3.
    lower = [reading(1, 304, "ok"), reading(1, 3, "no needle"), reading(3, 0, "ok")]
    assert status_changes(float32, lower) == (3, 4)
    assert status_changes(float32, float32) == (0, 3)


def results(ap50: float, angle: float | None, limit: int | None = 20) -> dict[str, Any]:
    return {
        "limit": limit,
        "sets": {"gauges": {"images": 20}, "insulators": {"images": 20}},
        "detector_files": {"pointer": {"detectron2_config": "a.yaml", "weights": "w.pth"}},
        "figures": [
            {"set": "gauges", "name": "dial AP50 (box)", "value": ap50},
            {"set": "gauges", "name": "dial AP50 (mask)", "value": 0.9},
            {"set": "gauges", "name": "needle angle error median", "value": angle},
            {"set": "gauges", "name": "dial found", "value": 0.5},
            {"set": "insulators", "name": "defect AP50 (box)", "value": 0.7},
        ],
    }


def test_the_comparison_holds_each_figure_to_its_limit(tmp_path: Path) -> None:
    folders = tmp_path / "float32", tmp_path / "bfloat16"
    for folder, statuses in zip(folders, (["ok"] * 100, ["ok"] * 99 + ["no needle"]), strict=True):
        folder.mkdir()
        readings = [reading(i, 0, status) for i, status in enumerate(statuses)]
        (folder / "readings_gauges.json").write_text(json.dumps(readings))
    differences, why_not = compare_runs(results(0.80, 1.00), results(0.795, 1.12), *folders)
    assert why_not == ""
    by_name = {(d.set, d.name): d for d in differences}
    assert set(by_name) == {
        ("gauges", "dial AP50 (box)"),
        ("gauges", "dial AP50 (mask)"),
        ("gauges", "needle angle error median"),
        ("insulators", "defect AP50 (box)"),
        ("gauges", "reading status changed (1/100)"),
    }, "AP50 per class, the angle median and the statuses; not the other figures"
    assert by_name["gauges", "dial AP50 (box)"].within
    assert not by_name["gauges", "needle angle error median"].within
    assert by_name["gauges", "reading status changed (1/100)"].within
    table = format_differences(differences, "bfloat16")
    assert "OFF" in table and table.count(" ok") == 4
    differences, _ = compare_runs(results(0.80, None), results(0.78, None), *folders)
    by_name = {(d.set, d.name): d for d in differences}
    assert not by_name["gauges", "dial AP50 (box)"].within
    assert by_name["gauges", "needle angle error median"].within, "undefined in both"


def test_runs_of_other_photos_or_weights_are_not_compared(tmp_path: Path) -> None:
    def why_not(float32: dict[str, Any], lower: dict[str, Any]) -> str:
        return compare_runs(float32, lower, tmp_path, tmp_path)[1]

    assert why_not(results(0.8, 1.0), results(0.8, 1.0)) == ""
    assert "--limit differs" in why_not(results(0.8, 1.0), results(0.8, 1.0, None))
    other = results(0.8, 1.0)
    other["detector_files"]["pointer"]["weights"] = "other.pth"
    assert "pointer's weights differs" in why_not(results(0.8, 1.0), other)
    fewer = results(0.8, 1.0)
    fewer["sets"] = {"gauges": {"images": 5}}
    assert "no set measured on the same photos" in why_not(results(0.8, 1.0), fewer)
    lowered = results(0.8, 1.0)
    lowered["detector_files"]["pointer"]["precision"] = "bfloat16"
    assert "served bfloat16, not float32" in why_not(lowered, results(0.8, 1.0))


def test_accuracy_serves_a_precision_only_from_its_own_copy() -> None:
    assert accuracy_args(["--precision", "bfloat16"]).precision == "bfloat16"
    assert accuracy_args([]).precision == "float32"
    for argv in (["--precision", "bfloat16", "--url", "localhost:8001"], ["--precision", "fp16"]):
        with pytest.raises(SystemExit):
            accuracy_args(argv)


@pytest.mark.server
def test_accuracy_in_a_precision_serves_a_copy_and_compares_with_float32(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The glue of ``make accuracy --precision``: the measurement (here a stand-in that asks the
    server what it serves) gets a server of a copy whose detectors name the precision, and its
    results are compared with the float32 ones given."""
    baseline = tmp_path / "float32" / "results.json"
    baseline.parent.mkdir()
    baseline.write_text(json.dumps(results(0.80, 1.00)))
    args = accuracy_args(
        ["--precision", "bfloat16", "--out", str(tmp_path / "out"), "--baseline", str(baseline)]
    )
    served: dict[str, str] = {}

    def measure(args: argparse.Namespace) -> int:
        with JpegClient(args.url, args.protocol) as client:
            for model in ("pointer", "insulator"):
                served[model] = client.parameters(model)["precision"]
        (args.out / "results.json").write_text(json.dumps(results(0.79, 1.20)))
        return 0

    assert measure_in_precision(args, measure) == 0
    assert served == {"pointer": "bfloat16", "insulator": "bfloat16"}
    assert (tmp_path / "out" / "repository-bfloat16" / "inspect" / "config.pbtxt").is_file()
    printed = capsys.readouterr().out
    assert f"bfloat16 against float32 ({baseline}), the same photos" in printed

    def row(figure: str) -> str:
        return next(line for line in printed.splitlines() if f"  {figure}  " in line)

    assert row("dial AP50 (box)").startswith("gauges") and row("dial AP50 (box)").endswith("ok")
    assert row("needle angle error median").endswith("OFF")
