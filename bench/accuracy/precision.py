"""``make accuracy`` in a lower precision (issue 40): serve a copy of the repository whose
detectors compute in it, measure as usual, and compare with a float32 run on the same photos.

The comparison reads two ``results.json`` (and the ``readings_<set>.json`` beside them):
AP50 per class within :data:`MAX_AP50_DIFF` of float32, the needle-angle error median within
:data:`MAX_ANGLE_MEDIAN_DIFF` degrees, and the readings whose status differs on at most
:data:`MAX_STATUS_CHANGED` of the meters float32 read. Every goal of the lower-precision run is
judged by that run itself.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.servers import write_precision_repository
from server.launch import REPO_ROOT, Ports, ServerStartError, TritonServer

__all__ = [
    "DTYPES",
    "MAX_ANGLE_MEDIAN_DIFF",
    "MAX_AP50_DIFF",
    "MAX_STATUS_CHANGED",
    "Difference",
    "compare_runs",
    "format_differences",
    "measure_in_precision",
    "status_changes",
]

# The values of config.pbtxt's precision parameter.
DTYPES = ("float32", "bfloat16", "float16")
MAX_AP50_DIFF = 0.01
MAX_ANGLE_MEDIAN_DIFF = 0.1
MAX_STATUS_CHANGED = 0.01
# A reading of float32 and one of the lower precision are of the same meter when they are on the
# same photo and their dials' boxes overlap at least this much.
SAME_DIAL_IOU = 0.5
_AP50 = re.compile(r"^\S+ AP50 \((box|mask)\)$")
_ANGLE_MEDIAN = "needle angle error median"
# Where a float32 run writes by default, and so where a lower precision's run looks for one.
DEFAULT_OUT = REPO_ROOT / "build" / "accuracy"


@dataclass(frozen=True)
class Difference:
    """One figure of the lower precision against float32's, and its limit.

    Attributes:
        set: the held-out set.
        name: the figure, as ``results.json`` names it.
        baseline: float32's value; ``None`` when undefined.
        lower: the lower precision's value; ``None`` when undefined.
        limit: the largest difference that passes.
    """

    set: str
    name: str
    baseline: float | None
    lower: float | None
    limit: float

    @property
    def difference(self) -> float | None:
        """``lower - baseline``; ``None`` where either is undefined."""
        if self.baseline is None or self.lower is None:
            return None
        return self.lower - self.baseline

    @property
    def within(self) -> bool:
        """Whether the difference is at most the limit (both undefined counts as within)."""
        if self.baseline is None and self.lower is None:
            return True
        difference = self.difference
        return difference is not None and abs(difference) <= self.limit + 1e-12


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``x, y, width, height`` boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - w * h
    return w * h / union if union > 0 else 0.0


def status_changes(
    baseline: Sequence[Mapping[str, Any]], lower: Sequence[Mapping[str, Any]]
) -> tuple[int, int]:
    """How many meters' readings differ in status between two runs, of how many.

    A meter is a reading of either run; the two runs' readings of one photo are paired greedily
    by their dials' box overlap (IoU at least :data:`SAME_DIAL_IOU`). A reading without a
    partner counts as changed.

    Returns:
        ``(changed, meters)``: ``meters`` is the number of pairs plus the unpaired readings.
    """
    by_image: dict[Any, list[Mapping[str, Any]]] = {}
    for reading in lower:
        by_image.setdefault(reading["image_id"], []).append(reading)
    changed = meters = 0
    for reading in baseline:
        candidates = by_image.get(reading["image_id"], [])
        overlaps = [_iou(reading["dial_bbox"], other["dial_bbox"]) for other in candidates]
        meters += 1
        if not overlaps or max(overlaps) < SAME_DIAL_IOU:
            changed += 1
            continue
        partner = candidates.pop(overlaps.index(max(overlaps)))
        changed += partner["status"] != reading["status"]
    unpaired = sum(len(left) for left in by_image.values())
    return changed + unpaired, meters + unpaired


def compare_runs(
    baseline: Mapping[str, Any],
    lower: Mapping[str, Any],
    baseline_folder: Path,
    lower_folder: Path,
) -> tuple[list[Difference], str]:
    """The lower precision's figures against float32's, where both runs measured them.

    Args:
        baseline: the float32 run's ``results.json``.
        lower: the lower precision's.
        baseline_folder: where the float32 run wrote its ``readings_<set>.json``.
        lower_folder: where the lower precision's run wrote its own.

    Returns:
        ``(differences, why not)``: no differences and the reason when the runs did not
        measure the same photos (sets, image counts, ``--limit``) with the same weights.
    """
    if baseline.get("limit") != lower.get("limit"):
        return [], f"--limit differs: float32 {baseline.get('limit')}, lower {lower.get('limit')}"
    images = {name: s["images"] for name, s in lower["sets"].items()}
    base_images = {name: s["images"] for name, s in baseline["sets"].items()}
    shared = {name for name in images if base_images.get(name) == images[name]}
    if not shared:
        return [], f"no set measured on the same photos (float32 {base_images}, lower {images})"
    for model, files in lower.get("detector_files", {}).items():
        base_files = baseline.get("detector_files", {}).get(model, {})
        # Runs before the precision parameter served float32.
        served = base_files.get("precision", "float32")
        if served != "float32":
            return [], f"its {model} served {served}, not float32"
        for key in ("detectron2_config", "weights"):
            if base_files.get(key) != files.get(key):
                return [], f"{model}'s {key} differs: {base_files.get(key)} vs {files.get(key)}"
    base_figures = {(f["set"], f["name"]): f["value"] for f in baseline["figures"]}
    differences = []
    for figure in lower["figures"]:
        key = (figure["set"], figure["name"])
        if figure["set"] not in shared or key not in base_figures:
            continue
        if _AP50.match(figure["name"]):
            limit = MAX_AP50_DIFF
        elif figure["name"] == _ANGLE_MEDIAN:
            limit = MAX_ANGLE_MEDIAN_DIFF
        else:
            continue
        differences.append(Difference(*key, base_figures[key], figure["value"], limit))
    for name in sorted(shared):
        paths = [folder / f"readings_{name}.json" for folder in (baseline_folder, lower_folder)]
        if not all(path.is_file() for path in paths):
            continue
        changed, meters = status_changes(*(json.loads(path.read_text()) for path in paths))
        share = changed / meters if meters else 0.0
        differences.append(
            Difference(
                name, f"reading status changed ({changed}/{meters})", 0.0, share, MAX_STATUS_CHANGED
            )
        )
    return differences, ""


def format_differences(differences: Sequence[Difference], dtype: str) -> str:
    """The comparison as a table, one line per figure, with ``ok`` or ``OFF``."""
    header = ("set", "figure", "float32", dtype, "difference", "limit", "")
    rows = [header]
    for d in differences:

        def shown(value: float | None) -> str:
            return "-" if value is None else f"{value:.4f}"

        rows.append(
            (
                d.set,
                d.name,
                shown(d.baseline),
                shown(d.lower),
                "-" if d.difference is None else f"{d.difference:+.4f}",
                f"{d.limit:g}",
                "ok" if d.within else "OFF",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def measure_in_precision(
    args: argparse.Namespace, measure: Callable[[argparse.Namespace], int]
) -> int:
    """Runs ``measure`` on a server of a copy of the repository whose detectors compute in
    ``args.precision``, then prints the comparison with float32's ``results.json``
    (``args.baseline``, or the default output folder's) where there is one.

    Args:
        args: ``make accuracy``'s options; ``url`` must be ``None``. An ``out`` left at its
            default becomes ``build/accuracy-<dtype>``, so that float32's stays.
        measure: the measurement, given ``args`` with ``url`` set to the started server.

    Returns:
        ``measure``'s exit status (1 also when the server does not start).
    """
    import torch

    from pipelines.detector import parse_precision, served_precision

    dtype = args.precision
    if args.out.resolve() == DEFAULT_OUT.resolve():
        args.out = DEFAULT_OUT.with_name(f"accuracy-{dtype}")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    _, why = served_precision(parse_precision(dtype, "--precision"), device)
    if why:
        print(f"accuracy: warning: {dtype} is measured as float32 here: {why}", file=sys.stderr)
    repository = write_precision_repository(out / f"repository-{dtype}", dtype)
    print(f"accuracy: starting tritonserver on {repository} ...", file=sys.stderr)
    try:
        with TritonServer(
            Ports.free(),
            model_repository=repository,
            log_path=out / f"tritonserver-{dtype}.log",
        ) as server:
            server.wait_until_ready(timeout_s=900)
            args.url = server.url(args.protocol)
            status = measure(args)
    except ServerStartError as error:
        print(f"accuracy: error: {error}", file=sys.stderr)
        return 1
    baseline_path = args.baseline or DEFAULT_OUT / "results.json"
    results_path = out / "results.json"
    if not baseline_path.is_file() or not results_path.is_file():
        print(
            f"accuracy: no float32 results at {baseline_path} to compare {dtype} with "
            "(run make accuracy without --precision first, or give --baseline)",
            file=sys.stderr,
        )
        return status
    differences, why_not = compare_runs(
        json.loads(baseline_path.read_text()),
        json.loads(results_path.read_text()),
        baseline_path.parent,
        out,
    )
    if why_not:
        print(f"accuracy: not compared with {baseline_path}: {why_not}", file=sys.stderr)
        return status
    print(
        f"\n{dtype} against float32 ({baseline_path}), the same photos:\n\n"
        f"{format_differences(differences, dtype)}\n",
        flush=True,
    )
    return status
