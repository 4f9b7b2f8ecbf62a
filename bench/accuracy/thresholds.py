"""Per-class score thresholds chosen on held-out photos, not guessed (issue 37).

A detector's detections are collected at a low score threshold (the *floor*: the server runs on a
copy of the repository whose thresholds are all the floor, :func:`write_floor_repository`). Per
class, they are judged as COCO does at IoU 0.5: best score first, each detection takes the
unmatched true object of its class it overlaps most, and is false without one
(:func:`match_class`). A detection on a photo that holds none of the class's objects, a photo of
the other detector's world or of neither, is false too (:func:`negatives`). A class's threshold
is then the lowest score at which the detections scored at least that keep a stated precision
(:func:`choose_threshold`): the most the class can find at that precision.

The server keeps a detection when its score is at least its class's threshold
(``pipelines.detector``), in float32 as the scores are. A threshold written here is the float32
just above the score of the highest detection the choice leaves out (every threshold from there
up to the lowest detection kept answers the same detections on these photos), or the floor when
it leaves none out, so the precision chosen is the one served.

Pure but for the files it writes; unit-tested on hand-made detections.
"""

from __future__ import annotations

import hashlib
import shutil
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from google.protobuf import text_format

from bench.accuracy.metrics import IOU_THRESHOLD, box_iou
from bls.repository import class_names, read_config

__all__ = [
    "DEFAULT_FLOOR",
    "DEFAULT_PRECISION",
    "DETECTORS",
    "FLOOR_FILE",
    "Choice",
    "CurvePoint",
    "ScoredClass",
    "at_threshold",
    "choose_threshold",
    "combine",
    "format_choices",
    "format_curve",
    "match_class",
    "negatives",
    "pr_curve",
    "read_thresholds",
    "thresholds_path",
    "thresholds_yaml",
    "weights_digest",
    "write_floor_repository",
]

DEFAULT_PRECISION = 0.95
DEFAULT_FLOOR = 0.05
# The detectors whose thresholds are chosen; each names its file in config.pbtxt.
DETECTORS = ("pointer", "insulator")
PARAMETER = "score_thresholds"
# The file the floor repository's configs name instead of the shipped one.
FLOOR_FILE = "score_thresholds_floor.yaml"
# The score cuts a printed curve shows, besides the chosen one.
_PRINTED_CUTS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


@dataclass(frozen=True)
class ScoredClass:
    """One class's detections, each judged right or wrong, and the objects there were to find.

    Attributes:
        scores: per detection, its score.
        correct: per detection, whether it matched a true object (see :func:`match_class`).
        objects: the class's true objects on the photos judged.
    """

    scores: tuple[float, ...] = ()
    correct: tuple[bool, ...] = ()
    objects: int = 0

    def __post_init__(self) -> None:
        if len(self.scores) != len(self.correct):
            raise ValueError(
                f"{len(self.scores)} scores but {len(self.correct)} judgements of them"
            )


@dataclass(frozen=True)
class CurvePoint:
    """The detections scored at least ``score``: how many, how many right, and what that is.

    ``precision`` is ``None`` without a detection, ``recall`` without an object.
    """

    score: float
    detections: int
    correct: int
    objects: int

    @property
    def precision(self) -> float | None:
        """Right detections of all detections."""
        return self.correct / self.detections if self.detections else None

    @property
    def recall(self) -> float | None:
        """Objects found of all objects."""
        return self.correct / self.objects if self.objects else None


@dataclass(frozen=True)
class Choice:
    """One class's threshold, or why there is none.

    Attributes:
        class_name: the class.
        threshold: the lowest score at which its precision meets the target; ``None`` when no
            score does.
        point: the detections at ``threshold`` (``None`` without one).
        note: why there is no threshold, or what to know about it.
    """

    class_name: str
    threshold: float | None
    point: CurvePoint | None
    note: str = ""


def match_class(
    ground_truth: Mapping[str, Any],
    detections: Sequence[Mapping[str, Any]],
    category_id: int,
    iou_threshold: float = IOU_THRESHOLD,
) -> ScoredClass:
    """Judges one class's detections on a labelled set, one to one as COCO does.

    Per image, best score first, a detection takes the not yet taken true object of its class
    that it overlaps most, at IoU ``iou_threshold`` or more, and is right; without one it is
    wrong (on a photo with none of the class's objects, always).

    Args:
        ground_truth: COCO document, labelled for the class on every image.
        detections: COCO result entries; only those of ``category_id`` on its images count.
        category_id: the class.
        iou_threshold: the least box IoU of a match.
    """
    images = {image["id"] for image in ground_truth["images"]}
    truths: dict[int, list[Sequence[float]]] = defaultdict(list)
    for annotation in ground_truth["annotations"]:
        if annotation["category_id"] == category_id and annotation["image_id"] in images:
            truths[annotation["image_id"]].append(annotation["bbox"])
    mine = [d for d in detections if d["category_id"] == category_id and d["image_id"] in images]
    # Stable: equal scores keep the server's order, as COCOeval's mergesort does.
    mine.sort(key=lambda d: -d["score"])
    taken: dict[int, set[int]] = defaultdict(set)
    correct = []
    for detection in mine:
        best, best_iou = None, iou_threshold
        for index, box in enumerate(truths[detection["image_id"]]):
            if index in taken[detection["image_id"]]:
                continue
            iou = box_iou(detection["bbox"], box)
            if iou >= best_iou:
                best, best_iou = index, iou
        if best is not None:
            taken[detection["image_id"]].add(best)
        correct.append(best is not None)
    return ScoredClass(
        tuple(float(d["score"]) for d in mine),
        tuple(correct),
        sum(len(boxes) for boxes in truths.values()),
    )


def negatives(
    images: Iterable[Mapping[str, Any]],
    detections: Sequence[Mapping[str, Any]],
    category_id: int,
) -> ScoredClass:
    """One class's detections on photos that hold none of its objects: every one is wrong.

    Args:
        images: the photos without the class's objects (the caller knows by their truth).
        detections: COCO result entries; only those of ``category_id`` on ``images`` count.
        category_id: the class.
    """
    ids = {image["id"] for image in images}
    scores = tuple(
        float(d["score"])
        for d in detections
        if d["category_id"] == category_id and d["image_id"] in ids
    )
    return ScoredClass(scores, (False,) * len(scores), 0)


def combine(parts: Iterable[ScoredClass]) -> ScoredClass:
    """The judged detections and the objects of several sets together."""
    scores: list[float] = []
    correct: list[bool] = []
    objects = 0
    for part in parts:
        scores += part.scores
        correct += part.correct
        objects += part.objects
    return ScoredClass(tuple(scores), tuple(correct), objects)


def pr_curve(scored: ScoredClass) -> list[CurvePoint]:
    """One point per distinct score, highest first: the detections scored at least it."""
    pairs = sorted(zip(scored.scores, scored.correct, strict=True), key=lambda p: -p[0])
    points: list[CurvePoint] = []
    right = 0
    for index, (score, correct) in enumerate(pairs):
        right += correct
        # A cut keeps every detection of its score: the point is made after the last of them.
        if index + 1 == len(pairs) or pairs[index + 1][0] != score:
            points.append(CurvePoint(score, index + 1, right, scored.objects))
    return points


def at_threshold(scored: ScoredClass, threshold: float) -> CurvePoint:
    """The detections scored at least ``threshold``."""
    kept = [c for s, c in zip(scored.scores, scored.correct, strict=True) if s >= threshold]
    return CurvePoint(threshold, len(kept), sum(kept), scored.objects)


def choose_threshold(
    class_name: str, scored: ScoredClass, precision: float, floor: float = 0.0
) -> Choice:
    """The lowest score threshold at which the class's detections keep ``precision``.

    Of the cuts at each detection's score (:func:`pr_curve`), the lowest whose precision is at
    least ``precision``: at that threshold the class finds the most it can at that precision.
    The threshold is the lowest that answers that cut's detections and no other: the float32
    just above the next lower detection's score, or ``floor`` where the cut keeps them all.

    Args:
        class_name: the class, for the choice and its notes.
        scored: its judged detections (from :func:`match_class`, :func:`negatives`,
            :func:`combine`).
        precision: the least precision, in ``(0, 1]``.
        floor: the least score collected (the detections were answered from it).

    Raises:
        ValueError: ``precision`` outside ``(0, 1]``.
    """
    if not 0.0 < precision <= 1.0:
        raise ValueError(f"the precision to keep must be in (0, 1], got {precision}")
    if not scored.objects:
        return Choice(class_name, None, None, "no object of this class on the photos judged")
    curve = pr_curve(scored)
    if not curve:
        return Choice(class_name, None, None, "no detection of this class at all")
    meeting = [k for k, p in enumerate(curve) if (p.precision or 0.0) >= precision]
    if not meeting:
        best = max(curve, key=lambda p: (p.precision or 0.0, -p.score))
        return Choice(
            class_name,
            None,
            None,
            f"precision never reaches {precision:g}: at best {best.precision:.3f} at score "
            f">= {best.score:.4f} ({best.correct}/{best.detections} detections right)",
        )
    # The curve runs from the highest score down: the last cut that meets it is the lowest.
    index = meeting[-1]
    chosen = curve[index]
    if index + 1 == len(curve):
        threshold = float(floor)
        note = "precision is met down to the lowest score collected: a lower floor may find more"
    else:
        left_out = np.float32(curve[index + 1].score)
        threshold = float(np.nextafter(left_out, np.float32(np.inf)))
        note = ""
    point = CurvePoint(threshold, chosen.detections, chosen.correct, chosen.objects)
    return Choice(class_name, threshold, point, note)


def _format_share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def format_curve(class_name: str, scored: ScoredClass, choice: Choice) -> str:
    """The curve a threshold was chosen from, at round cuts and at the chosen one, as text."""
    cuts = sorted({*_PRINTED_CUTS, *([choice.threshold] if choice.threshold is not None else [])})
    lines = [
        f"{class_name}: {len(scored.scores)} detections, {scored.objects} objects",
        f"  {'score >=':>10}  {'detections':>10}  {'right':>6}  {'precision':>9}  {'recall':>6}",
    ]
    for cut in cuts:
        point = at_threshold(scored, cut)
        # The chosen cut to the digit that tells it from a score just below it.
        chosen = cut == choice.threshold
        label = f"{cut:.8f}" if chosen else f"{cut:.2f}"
        mark = "  <- chosen" if chosen else ""
        lines.append(
            f"  {label:>10}  {point.detections:>10}  {point.correct:>6}  "
            f"{_format_share(point.precision):>9}  {_format_share(point.recall):>6}{mark}"
        )
    return "\n".join(lines)


def format_choices(choices: Sequence[Choice], precision: float) -> str:
    """One line per class: its threshold with precision and recall there, or why none."""
    lines = []
    for choice in choices:
        if choice.point is None or choice.threshold is None:
            lines.append(f"{choice.class_name}: NO THRESHOLD: {choice.note}")
            continue
        point = choice.point
        note = f"; {choice.note}" if choice.note else ""
        lines.append(
            f"{choice.class_name}: {choice.threshold:.8f} (precision "
            f"{_format_share(point.precision)} >= {precision:g}, {point.correct}/"
            f"{point.detections} right; recall {_format_share(point.recall)}, "
            f"{point.correct}/{point.objects} objects){note}"
        )
    return "\n".join(lines)


def thresholds_path(repository: Path, model: str) -> Path:
    """The thresholds file ``repository/<model>/config.pbtxt`` names.

    Raises:
        ValueError: the config names none.
    """
    parameters = read_config(repository, model).parameters
    if PARAMETER not in parameters:
        raise ValueError(
            f"{repository / model / 'config.pbtxt'} has no {PARAMETER} parameter to name the "
            "file of per-class score thresholds"
        )
    return repository / model / parameters[PARAMETER].string_value


def read_thresholds(path: Path) -> dict[str, float]:
    """A thresholds file's ``class: threshold`` pairs, as written (the server checks them).

    Raises:
        ValueError: the file is not a mapping of names to numbers.
    """
    content = yaml.safe_load(path.read_text())
    if not isinstance(content, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in content.values()
    ):
        raise ValueError(f"{path}: not a mapping of class name to score threshold")
    return {str(k): float(v) for k, v in content.items()}


def thresholds_yaml(model: str, choices: Sequence[Choice], header: Sequence[str]) -> str:
    """The text of a thresholds file: comments saying how the values were chosen, then one
    ``class: threshold`` line per class, to the last bit.

    Args:
        model: the detector, for the first comment line.
        choices: one per class, each with a threshold.
        header: comment lines (without ``#``) saying how, when and on what they were chosen.

    Raises:
        ValueError: a choice without a threshold.
    """
    lines = [
        f"# Per-class score thresholds of the {model} model, served through config.pbtxt's",
        "# score_thresholds: a detection is answered when its score is at least its class's value.",
        *(f"# {line}".rstrip() for line in header),
    ]
    for choice in choices:
        if choice.threshold is None or choice.point is None:
            raise ValueError(f"{model}: class {choice.class_name!r} has no threshold to write")
        point = choice.point
        lines.append(
            f"# {choice.class_name}: precision {_format_share(point.precision)} "
            f"({point.correct}/{point.detections}), recall {_format_share(point.recall)} "
            f"({point.correct}/{point.objects})"
        )
    # repr: every bit, so that the server cuts exactly where the choice did.
    lines += [f"{choice.class_name}: {choice.threshold!r}" for choice in choices]
    return "\n".join(lines) + "\n"


def weights_digest(path: Path) -> str:
    """The first 12 hex digits of a file's SHA-256: which weights the thresholds fit."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def write_floor_repository(
    source: Path, target: Path, floor: float, detectors: Sequence[str] = DETECTORS
) -> Path:
    """A copy of the model repository whose detectors answer every detection scored at least
    ``floor``: each one's ``score_thresholds`` names :data:`FLOOR_FILE`, with ``floor`` for
    every class of its detectron2 YAML. Weights folders are linked, not copied.

    Args:
        source: the repository to copy (its detectors' configs need not name thresholds).
        target: where to write it; rewritten from scratch.
        floor: the least score answered, in ``[0, 1]``.
        detectors: the models to lower.

    Returns:
        ``target``.

    Raises:
        ValueError: ``floor`` outside ``[0, 1]``.
    """
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"the floor score must be in [0, 1], got {floor}")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("weights", "__pycache__"))
    for folder in source.iterdir():
        if (folder / "weights").is_dir():
            (target / folder.name / "weights").symlink_to(
                (folder / "weights").resolve(), target_is_directory=True
            )
    for model in detectors:
        config = read_config(target, model)
        config.parameters[PARAMETER].string_value = FLOOR_FILE
        (target / model / "config.pbtxt").write_text(text_format.MessageToString(config))
        names = class_names(target, model)
        (target / model / FLOOR_FILE).write_text(
            f"# Every detection scored {floor:g} or more, to choose thresholds from.\n"
            + yaml.safe_dump(dict.fromkeys(names, float(floor)), sort_keys=False)
        )
    return target
