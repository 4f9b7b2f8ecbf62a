"""``python -m bench.profile``: where a served detector's time goes, stage by stage, in-process.

Runs :class:`pipelines.detector.Detector` (what the ``pointer`` and ``insulator`` models run) on
the benchmark photo, resized as detectron2 resizes it, and times each stage of the detectron2
forward with module hooks: the ResNet, the FPN, the proposal generator, the ROI heads' poolers,
box heads and mask head, and what is left (normalising and padding the input, scaling boxes
back, pasting masks, copying to numpy). The decode and resize are timed on their own, with PIL
as ``DefaultPredictor`` does them. Nothing here talks to the server.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import describe_machine, machine_line
from bench.stats import format_seconds

DETECTORS = ("pointer", "insulator")
# The remainder of a forward: what no timed stage covers.
OTHER = "other (normalise, pad, postprocess, masks, copies)"


class StageTimer:
    """Times modules of a model with forward hooks, summing a module's calls within a forward."""

    def __init__(self) -> None:
        self.current: dict[str, float] = defaultdict(float)
        self._started: dict[str, list[float]] = defaultdict(list)
        self._handles: list[Any] = []

    def watch(self, name: str, module: Any) -> None:
        """Adds ``module``'s forwards to stage ``name``."""

        def before(*_: Any) -> None:
            self._started[name].append(time.perf_counter())

        def after(*_: Any) -> None:
            self.current[name] += time.perf_counter() - self._started[name].pop()

        self._handles.append(module.register_forward_pre_hook(before))
        self._handles.append(module.register_forward_hook(after))

    def take(self) -> dict[str, float]:
        """The stage times since the last call, in seconds; starts a new forward."""
        taken, self.current = dict(self.current), defaultdict(float)
        return taken

    def close(self) -> None:
        """Removes the hooks."""
        for handle in self._handles:
            handle.remove()


def watch_stages(model: Any, timer: StageTimer) -> list[str]:
    """Hooks the stages of a detectron2 ``GeneralizedRCNN``; returns their names in order.

    The FPN's own time is the backbone's less its ResNet's (``bottom_up``): the FPN has no
    module of its own that covers its lateral and output convolutions.
    """
    stages = []

    def add(name: str, module: Any) -> None:
        if module is not None:
            timer.watch(name, module)
            stages.append(name)

    add("ResNet", getattr(model.backbone, "bottom_up", None))
    add("backbone", model.backbone)
    add("proposals", model.proposal_generator)
    heads = model.roi_heads
    add("box pooler", getattr(heads, "box_pooler", None))
    box_heads = getattr(heads, "box_head", None)
    if box_heads is not None:
        # A cascade has one box head and predictor per stage; they sum into one row each.
        for head in box_heads if hasattr(box_heads, "__len__") else [box_heads]:
            timer.watch("box head", head)
        stages.append("box head")
    if getattr(heads, "mask_on", False):
        add("mask pooler", heads.mask_pooler)
        add("mask head", heads.mask_head)
    add("ROI heads", heads)
    return stages


def stage_rows(
    stages: list[str], samples: list[dict[str, float]], totals: list[float]
) -> list[tuple[str, float]]:
    """Median seconds per stage, with the FPN split from the backbone and the remainder
    (``OTHER``) from the total; nested stages (``ROI heads``) keep their own row."""

    def median(key: Callable[[dict[str, float]], float]) -> float:
        return float(np.median([key(s) for s in samples]))

    rows = []
    for name in stages:
        if name == "backbone":
            rows.append(("FPN", median(lambda s: s["backbone"] - s.get("ResNet", 0.0))))
        else:
            rows.append((name, median(lambda s, n=name: s.get(n, 0.0))))
    top = [n for n in ("backbone", "proposals", "ROI heads") if n in stages]
    rest = [t - sum(s.get(n, 0.0) for n in top) for s, t in zip(samples, totals, strict=True)]
    rows.append((OTHER, float(np.median(rest))))
    rows.append(("detector total", float(np.median(totals))))
    return rows


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile",
        description=(
            "Where each served detector's time goes on this machine: decode and resize (PIL, "
            "as DefaultPredictor), then the detectron2 forward stage by stage (ResNet, FPN, "
            "proposals, ROI heads, masks, the rest), in-process on the benchmark's 640x427 "
            "photo, with the config and weights that repository/<model>/config.pbtxt names."
        ),
        epilog="Example: make profile PROFILE_ARGS='--models pointer --threads 1'",
    )
    parser.add_argument(
        "--models",
        type=lambda text: [m.strip() for m in text.split(",") if m.strip()],
        default=list(DETECTORS),
        help="Comma-separated detectors. Default is pointer,insulator.",
    )
    parser.add_argument("--rounds", type=int, default=10, help="Timed forwards. Default is 10.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed forwards first. Default 2.")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads. Default is torch's own (one per core).",
    )
    parser.add_argument(
        "--repository",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "repository",
        help="Model repository whose config.pbtxt files name the YAML and weights.",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.models) - set(DETECTORS))
    if unknown or not args.models:
        parser.error(f"--models: choose from {', '.join(DETECTORS)}; got {unknown or 'none'}")
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be at least 1 and --warmup at least 0")
    return args


def profile_detector(
    repository: Path, model: str, jpeg: bytes, rounds: int, warmup: int
) -> tuple[list[tuple[str, float]], dict[str, Any]]:
    """Profiles one detector; returns its rows (name, median seconds) and facts about the run."""
    from detectron2.data import transforms as T
    from detectron2.data.detection_utils import convert_PIL_to_numpy
    from PIL import Image

    from bls.repository import model_tensors
    from pipelines.detector import Detector

    params = model_tensors(repository, model).parameters
    detector = Detector(
        repository / model / params["detectron2_config"], repository / model / params["weights"]
    )
    cfg = detector.cfg
    resize = T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)

    def decode_and_resize() -> np.ndarray:
        image = convert_PIL_to_numpy(Image.open(io.BytesIO(jpeg)), cfg.INPUT.FORMAT)
        return resize.get_transform(image).apply_image(image)

    image = decode_and_resize()
    size = Image.open(io.BytesIO(jpeg)).size[::-1]
    timer = StageTimer()
    stages = watch_stages(detector.model, timer)
    decode_times, totals, samples = [], [], []
    instances = 0
    for i in range(warmup + rounds):
        start = time.perf_counter()
        decode_and_resize()
        decoded = time.perf_counter()
        [detections] = detector([(image, size)])
        end = time.perf_counter()
        taken = timer.take()
        if i >= warmup:
            decode_times.append(decoded - start)
            totals.append(end - decoded)
            samples.append(taken)
        instances = len(detections.scores)
        print(
            f"  [{model}] forward {i + 1}/{warmup + rounds}: {format_seconds(end - decoded)}",
            flush=True,
        )
    timer.close()
    rows = [("decode + resize (PIL)", float(np.median(decode_times)))]
    rows += stage_rows(stages, samples, totals)
    facts = {
        "input": f"{image.shape[1]}x{image.shape[0]}",
        "instances": instances,
        "config": params["detectron2_config"],
    }
    return rows, facts


def format_profile(model: str, rows: list[tuple[str, float]], facts: dict[str, Any]) -> str:
    """One detector's table: stage, median time, share of the forward."""
    forward = dict(rows)["detector total"]
    lines = [
        f"{model}: {facts['config']}, resized to {facts['input']}, {facts['instances']} instances"
    ]
    width = max(len(name) for name, _ in rows)
    for name, seconds in rows:
        share = "" if name.startswith("decode") else f"{100 * seconds / forward:5.1f}%"
        lines.append(f"  {name:<{width}}  {format_seconds(seconds):>9}  {share}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Profiles the chosen detectors; returns the exit code."""
    args = parse_args(argv)
    import torch

    from bench.__main__ import test_images

    if args.threads:
        torch.set_num_threads(args.threads)
    jpeg, _ = test_images()
    print(machine_line(describe_machine()), f"torch threads {torch.get_num_threads()}")
    tables = []
    for model in args.models:
        rows, facts = profile_detector(args.repository, model, jpeg, args.rounds, args.warmup)
        tables.append(format_profile(model, rows, facts))
    print("\n\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
