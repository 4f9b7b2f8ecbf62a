"""Accuracy figures of a detector on a COCO ground truth (pure: no server, unit-tested).

Ground truth is a COCO "instances" document as :func:`training.coco.write_coco` writes it.
Detections are COCO result entries (``image_id``, ``category_id``, ``score``, ``bbox`` as
``x, y, width, height``, optionally ``segmentation`` as RLE), made from the server's answer by
:func:`instances_to_detections`. AP comes from pycocotools' ``COCOeval``, at IoU 0.5 only.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from clients.answer import Instance
from clients.masks import paste_masks

__all__ = [
    "GOALS",
    "IOU_THRESHOLD",
    "MAX_GOALS",
    "MODEL_OBJECTS",
    "PER_PHOTOS",
    "WORLD_GOALS",
    "WORLD_MAX_GOALS",
    "ClassCurve",
    "EmptyImages",
    "Figure",
    "Kind",
    "PhotoCounts",
    "SetResult",
    "Share",
    "WorldCounts",
    "ap50_per_class",
    "box_iou",
    "count_worlds",
    "empty_image_detections",
    "encode_mask",
    "evaluate_set",
    "first_images",
    "found_annotations",
    "found_share",
    "full_mask",
    "gauges_found",
    "image_range",
    "instances_to_detections",
    "meters_in",
    "strings_in",
    "world_figures",
]

IOU_THRESHOLD = 0.5

# How a value reads: AP50, a share found, a count, degrees, a percentage (already times 100), or
# a rate (a count per so many photos).
Kind = Literal["ap", "share", "count", "deg", "percent", "rate"]

# Figure name -> the least value that passes.
GOALS: dict[str, float] = {
    "dial found": 0.95,
    "pointer found": 0.95,
    "insulator AP50 (box)": 0.9,
    "defect AP50 (box)": 0.7,
    "gauge read": 0.95,
}

# Figure name -> the greatest value that passes (errors and false alarms).
MAX_GOALS: dict[str, float] = {
    "needle angle error median": 1.5,
    "needle angle error p90": 4.0,
    "readings ok on empty images": 0,
}

# Issue 37: each detector silent outside its world. Counted over every measured set together
# (the table's "all sets"): the photos with one detector's objects and none of the other's, and
# the photos with neither.
PER_PHOTOS = 50
METERS_ONLY = "photos with meters, no insulator"
STRINGS_ONLY = "photos with insulators, no meter"
NEITHER = "photos of neither"
DEFECTS_ON_METERS = f"defect boxes on {METERS_ONLY}"
INSULATORS_ON_METERS = f"insulator boxes per {PER_PHOTOS} {METERS_ONLY}"
POINTER_ON_STRINGS = f"pointer-model instances per {PER_PHOTOS} {STRINGS_ONLY}"
ON_NEITHER = f"detections on {NEITHER}"
WORLD_GOALS: dict[str, float] = {METERS_ONLY: 100, STRINGS_ONLY: 100}
WORLD_MAX_GOALS: dict[str, float] = {
    DEFECTS_ON_METERS: 0,
    INSULATORS_ON_METERS: 1,
    POINTER_ON_STRINGS: 1,
    ON_NEITHER: 0,
}


@dataclass(frozen=True)
class Share:
    """How many of ``total`` objects were found."""

    found: int
    total: int

    @property
    def share(self) -> float | None:
        """``found / total``; ``None`` when there is nothing to find."""
        return self.found / self.total if self.total else None


@dataclass(frozen=True)
class ClassCurve:
    """One class's AP50 and its interpolated precision-recall curve (COCO's 101 recall points).

    ``ap50`` is ``None`` and the curve empty when the ground truth has no object of the class.
    """

    ap50: float | None
    recall: list[float] = field(default_factory=list)
    precision: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class EmptyImages:
    """Detections on the images that hold no object at all (each one a false alarm)."""

    images: int
    detections: int
    images_with_detections: int


@dataclass(frozen=True)
class Figure:
    """One line of the results: a named value of one held-out set, and its goal if it has one.

    Attributes:
        set: the held-out set, e.g. ``"gauges"``.
        name: e.g. ``"dial AP50 (box)"``; :data:`GOALS` is keyed by it.
        value: AP50, share found, or a count; ``None`` when undefined (nothing to measure).
        kind: how to show ``value``.
        detail: the counts behind a share, e.g. ``"292/300"``.
        goal: the least passing value (the greatest with ``at_most``), or ``None``.
        at_most: whether ``goal`` is an upper bound, as for errors and false alarms.
    """

    set: str
    name: str
    value: float | None
    kind: Kind
    detail: str = ""
    goal: float | None = None
    at_most: bool = False

    @property
    def passed(self) -> bool | None:
        """Whether the goal is met; ``None`` without a goal. An undefined value fails."""
        if self.goal is None:
            return None
        if self.value is None:
            return False
        return self.value <= self.goal if self.at_most else self.value >= self.goal


@dataclass(frozen=True)
class SetResult:
    """Everything measured on one held-out set.

    Attributes:
        figures: in table order.
        curves: per ``"<class> (box)"`` / ``"<class> (mask)"``, for the PR plot.
    """

    figures: list[Figure]
    curves: dict[str, ClassCurve]


def _cut_to(document: Mapping[str, Any], images: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ground truth cut to ``images`` and their annotations."""
    kept = {image["id"] for image in images}
    return {
        **document,
        "images": list(images),
        "annotations": [a for a in document["annotations"] if a["image_id"] in kept],
    }


def first_images(document: Mapping[str, Any], limit: int | None) -> dict[str, Any]:
    """The ground truth cut to its first ``limit`` images (all of them for ``None``)."""
    return _cut_to(document, document["images"][:limit])


def image_range(document: Mapping[str, Any], start: int, limit: int | None) -> dict[str, Any]:
    """The ground truth cut to ``limit`` images (all the rest for ``None``) from the
    ``start``-th, in the document's order.

    Raises:
        ValueError: the document has no image at ``start``.
    """
    if not 0 <= start < len(document["images"]):
        raise ValueError(f"no image number {start} in a set of {len(document['images'])} images")
    stop = None if limit is None else start + limit
    return _cut_to(document, document["images"][start:stop])


def meters_in(image: Mapping[str, Any]) -> int:
    """How many meters a photo shows, by its ``truth``: ``meters`` (the insulator sets, where
    they are unlabelled) or the length of ``gauges`` (the gauge sets).

    Raises:
        ValueError: its truth says neither.
    """
    truth = image.get("truth") or {}
    if "meters" in truth:
        return int(truth["meters"])
    if "gauges" in truth:
        return len(truth["gauges"])
    raise ValueError(f"image {image.get('id')}: its truth says nothing of meters")


def strings_in(image: Mapping[str, Any]) -> int:
    """How many insulator strings a photo shows, by its ``truth["strings"]``.

    Raises:
        ValueError: its truth says nothing of strings.
    """
    truth = image.get("truth") or {}
    if "strings" not in truth:
        raise ValueError(f"image {image.get('id')}: its truth says nothing of insulator strings")
    return int(truth["strings"])


# Per detector: how many of its objects a photo holds, whether labelled for it or not.
MODEL_OBJECTS = {"pointer": meters_in, "insulator": strings_in}


def full_mask(instance: Instance, height: int, width: int) -> np.ndarray:
    """The instance's mask crop placed at its origin in an image of ``height x width``.

    Returns:
        ``bool [height, width]``.

    Raises:
        ValueError: the instance carries no mask.
    """
    if instance.mask is None:
        raise ValueError(f"{instance.class_name} instance has no mask")
    crop_height, crop_width = instance.mask.shape
    rect = np.array([[*instance.mask_origin, crop_width, crop_height]], dtype=np.int64)
    crop_bytes = instance.mask.astype(np.uint8).reshape(-1)
    return paste_masks(rect, crop_bytes, height, width)[0]


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE of a ``bool [H, W]`` mask, with ``counts`` as text so that it is JSON-ready."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def instances_to_detections(
    instances: Sequence[Instance],
    image_id: int,
    category_ids: Mapping[str, int],
    height: int,
    width: int,
    masks: bool,
) -> list[dict[str, Any]]:
    """COCO result entries for one image's instances.

    Args:
        instances: the detector's part of the parsed answer.
        image_id: the image's COCO id.
        category_ids: the ground truth's category id per class name.
        height: image height (for the full-size masks).
        width: image width.
        masks: whether to add each instance's mask as ``segmentation`` (RLE).

    Raises:
        ValueError: a class the ground truth does not know, or a missing mask.
    """
    detections = []
    for instance in instances:
        if instance.class_name not in category_ids:
            raise ValueError(
                f"class {instance.class_name!r} is not in the ground truth's "
                f"categories {sorted(category_ids)}"
            )
        x1, y1, x2, y2 = instance.box
        detection: dict[str, Any] = {
            "image_id": image_id,
            "category_id": category_ids[instance.class_name],
            "score": float(instance.score),
            "bbox": [x1, y1, x2 - x1, y2 - y1],
        }
        if masks:
            detection["segmentation"] = encode_mask(full_mask(instance, height, width))
        detections.append(detection)
    return detections


def _coco(document: Mapping[str, Any]) -> COCO:
    coco = COCO()
    coco.dataset = dict(document)
    coco.createIndex()
    return coco


def ap50_per_class(
    ground_truth: Mapping[str, Any],
    detections: Sequence[Mapping[str, Any]],
    iou_type: Literal["bbox", "segm"] = "bbox",
) -> dict[str, ClassCurve]:
    """COCO AP at IoU 0.5 per class name, every detection counted, objects of any size.

    Args:
        ground_truth: COCO document (``segm`` needs polygons on every annotation).
        detections: COCO result entries (``segm`` needs ``segmentation`` on every one).
        iou_type: ``"bbox"`` or ``"segm"`` (mask IoU).
    """
    results = {
        "images": ground_truth["images"],
        "categories": ground_truth["categories"],
        # loadRes() would do the same, but fails on an empty list; box area is all it needs.
        "annotations": [
            {**d, "id": i + 1, "area": d["bbox"][2] * d["bbox"][3], "iscrowd": 0}
            for i, d in enumerate(detections)
        ],
    }
    per_image = Counter(d["image_id"] for d in detections)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        evaluator = COCOeval(_coco(ground_truth), _coco(results), iou_type)
        params = evaluator.params
        params.iouThrs = np.array([IOU_THRESHOLD])
        params.areaRng, params.areaRngLbl = params.areaRng[:1], params.areaRngLbl[:1]  # "all"
        # COCO keeps 100 per image; the server's own cap is the one that should count.
        params.maxDets = [max(per_image.values(), default=1)]
        evaluator.evaluate()
        evaluator.accumulate()
    # precision: [IoU thresholds, recall points, classes, area ranges, max detections]
    precision = evaluator.eval["precision"][0, :, :, 0, 0]
    names = {c["id"]: c["name"] for c in ground_truth["categories"]}
    curves = {}
    for k, category_id in enumerate(params.catIds):
        column = precision[:, k]
        # COCO marks a class without ground truth with -1 throughout.
        if (column < 0).all():
            curves[names[category_id]] = ClassCurve(None)
        else:
            curves[names[category_id]] = ClassCurve(
                float(column.mean()), params.recThrs.tolist(), column.tolist()
            )
    return curves


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``x, y, width, height`` boxes."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    intersection = max(width, 0.0) * max(height, 0.0)
    union = a[2] * a[3] + b[2] * b[3] - intersection
    return intersection / union if union > 0 else 0.0


def found_annotations(
    ground_truth: Mapping[str, Any],
    detections: Sequence[Mapping[str, Any]],
    iou_threshold: float = IOU_THRESHOLD,
) -> dict[int, bool]:
    """Per annotation id: whether a detection of its class overlaps its box by ``iou_threshold``.

    Any score counts, and one detection may find several objects: this asks "would a reader of
    the answer see it", not AP's one-to-one matching.
    """
    by_place: dict[tuple[int, int], list[Sequence[float]]] = defaultdict(list)
    for detection in detections:
        by_place[detection["image_id"], detection["category_id"]].append(detection["bbox"])
    return {
        annotation["id"]: any(
            box_iou(annotation["bbox"], box) >= iou_threshold
            for box in by_place[annotation["image_id"], annotation["category_id"]]
        )
        for annotation in ground_truth["annotations"]
    }


def _category_id(ground_truth: Mapping[str, Any], name: str) -> int:
    for category in ground_truth["categories"]:
        if category["name"] == name:
            return category["id"]
    raise ValueError(f"no category {name!r} in the ground truth")


def found_share(ground_truth: Mapping[str, Any], found: Mapping[int, bool], category: str) -> Share:
    """How many objects of ``category`` were found (``found`` from :func:`found_annotations`)."""
    category_id = _category_id(ground_truth, category)
    flags = [found[a["id"]] for a in ground_truth["annotations"] if a["category_id"] == category_id]
    return Share(sum(flags), len(flags))


def gauges_found(ground_truth: Mapping[str, Any], found: Mapping[int, bool]) -> Share:
    """How many gauges had both their dial and their pointer found.

    A gauge is an entry of the image's ``truth["gauges"]``; its ``pointer`` and ``dial``
    annotations are the image's n-th of each, in annotation order (as the generator writes them).

    Raises:
        ValueError: an image's annotations do not pair up with its ``truth["gauges"]``.
    """
    pointer, dial = _category_id(ground_truth, "pointer"), _category_id(ground_truth, "dial")
    by_image: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for annotation in sorted(ground_truth["annotations"], key=lambda a: a["id"]):
        by_image[annotation["image_id"]][annotation["category_id"]].append(annotation["id"])
    both = total = 0
    for image in ground_truth["images"]:
        pointers, dials = by_image[image["id"]][pointer], by_image[image["id"]][dial]
        count = len(image["truth"]["gauges"])
        if len(pointers) != count or len(dials) != count:
            raise ValueError(
                f"image {image['id']}: {count} gauges but {len(pointers)} pointer and "
                f"{len(dials)} dial annotations"
            )
        both += sum(found[p] and found[d] for p, d in zip(pointers, dials, strict=True))
        total += count
    return Share(both, total)


def empty_image_detections(
    ground_truth: Mapping[str, Any], detections: Sequence[Mapping[str, Any]]
) -> EmptyImages:
    """Detections made on the images without any annotation."""
    occupied = {a["image_id"] for a in ground_truth["annotations"]}
    empty = {image["id"] for image in ground_truth["images"]} - occupied
    per_image = Counter(d["image_id"] for d in detections if d["image_id"] in empty)
    return EmptyImages(len(empty), sum(per_image.values()), len(per_image))


def ap50_by_truth(
    set_name: str,
    ground_truth: Mapping[str, Any],
    detections: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
) -> list[Figure]:
    """Box AP50 per class on each group of images that share a value of ``image["truth"][key]``.

    Tells which held-out styles the misses come from. A list value (the materials of an
    insulator photo) groups by its distinct members joined with ``+``; images without the key or
    with an empty value are left out, and a group without an object of a class gives that class
    no figure. Figures carry no goal.

    Args:
        set_name: e.g. ``"insulators"``.
        ground_truth: the set's COCO document, its images with a ``truth`` mapping.
        detections: COCO result entries for its images.
        keys: the ``truth`` keys to group by, one group of figures each, in this order.
    """
    names = {c["id"]: c["name"] for c in ground_truth["categories"]}
    figures: list[Figure] = []
    for key in keys:
        groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for image in ground_truth["images"]:
            value = image.get("truth", {}).get(key)
            if isinstance(value, list):
                value = "+".join(sorted(set(map(str, value))))
            if value:
                groups[str(value)].append(image)
        for value, images in sorted(groups.items()):
            subset = _cut_to(ground_truth, images)
            ids = {image["id"] for image in images}
            curves = ap50_per_class(subset, [d for d in detections if d["image_id"] in ids])
            objects = Counter(names[a["category_id"]] for a in subset["annotations"])
            for name, curve in curves.items():
                if curve.ap50 is not None:
                    detail = f"{objects[name]} objects, {len(images)} images"
                    figures.append(
                        Figure(set_name, f"{name} AP50, {key} {value}", curve.ap50, "ap", detail)
                    )
    return figures


def evaluate_set(
    set_name: str,
    ground_truth: Mapping[str, Any],
    detections: Sequence[Mapping[str, Any]],
    masks: bool = False,
    per_gauge: bool = False,
    goals: Mapping[str, float] = GOALS,
) -> SetResult:
    """Every figure of one held-out set, with its goals attached.

    Args:
        set_name: e.g. ``"gauges"``.
        ground_truth: the set's COCO document (as evaluated: possibly cut by ``first_images``).
        detections: COCO result entries for its images.
        masks: whether to measure mask AP too.
        per_gauge: whether to add the share of gauges with both parts found
            (:func:`gauges_found`).
        goals: figure name -> the least value that passes, on this set.
    """
    curves: dict[str, ClassCurve] = {}
    figures: list[Figure] = []

    def add(name: str, value: float | None, kind: Kind, detail: str = "") -> None:
        figures.append(Figure(set_name, name, value, kind, detail, goals.get(name)))

    iou_types: list[tuple[Literal["bbox", "segm"], str]] = [("bbox", "box")]
    if masks:
        iou_types.append(("segm", "mask"))
    for iou_type, label in iou_types:
        for name, curve in ap50_per_class(ground_truth, detections, iou_type).items():
            curves[f"{name} ({label})"] = curve
    for category in ground_truth["categories"]:
        for _, label in iou_types:
            curve = curves[f"{category['name']} ({label})"]
            add(f"{category['name']} AP50 ({label})", curve.ap50, "ap")
    found = found_annotations(ground_truth, detections)
    for category in ground_truth["categories"]:
        share = found_share(ground_truth, found, category["name"])
        add(f"{category['name']} found", share.share, "share", f"{share.found}/{share.total}")
    if per_gauge:
        share = gauges_found(ground_truth, found)
        add("gauge found (both)", share.share, "share", f"{share.found}/{share.total}")
    empty = empty_image_detections(ground_truth, detections)
    add(
        "detections on empty images",
        empty.detections,
        "count",
        f"on {empty.images_with_detections} of {empty.images} empty images",
    )
    return SetResult(figures, curves)


@dataclass(frozen=True)
class PhotoCounts:
    """A detector's detections on the photos of one kind.

    Attributes:
        photos: how many photos of the kind.
        by_class: per class name, its detections on them (only classes detected there).
        photos_with: how many of the photos got any of those detections.
    """

    photos: int = 0
    by_class: dict[str, int] = field(default_factory=dict)
    photos_with: int = 0

    @property
    def detections(self) -> int:
        """All the detections counted."""
        return sum(self.by_class.values())

    def __add__(self, other: PhotoCounts) -> PhotoCounts:
        return PhotoCounts(
            self.photos + other.photos,
            dict(Counter(self.by_class) + Counter(other.by_class)),
            self.photos_with + other.photos_with,
        )


@dataclass(frozen=True)
class WorldCounts:
    """What each detector answered outside its world, on one set (or several added up).

    Attributes:
        insulator_on_meters: the insulator model's detections on photos with meters and no
            insulator string.
        pointer_on_strings: the pointer model's instances on photos with strings and no meter.
        on_neither: both models' detections on photos with neither.
    """

    insulator_on_meters: PhotoCounts = field(default_factory=PhotoCounts)
    pointer_on_strings: PhotoCounts = field(default_factory=PhotoCounts)
    on_neither: PhotoCounts = field(default_factory=PhotoCounts)

    def __add__(self, other: WorldCounts) -> WorldCounts:
        return WorldCounts(
            self.insulator_on_meters + other.insulator_on_meters,
            self.pointer_on_strings + other.pointer_on_strings,
            self.on_neither + other.on_neither,
        )


def _count_on(
    images: Sequence[Mapping[str, Any]],
    detections: Sequence[Mapping[str, Any]],
    names: Mapping[int, str],
) -> PhotoCounts:
    ids = {image["id"] for image in images}
    mine = [d for d in detections if d["image_id"] in ids]
    return PhotoCounts(
        len(ids),
        dict(Counter(names[d["category_id"]] for d in mine)),
        len({d["image_id"] for d in mine}),
    )


def count_worlds(
    images: Sequence[Mapping[str, Any]],
    detections: Mapping[str, Sequence[Mapping[str, Any]]],
    names: Mapping[int, str],
) -> WorldCounts:
    """Counts each detector's detections on the photos of the other's world and of neither,
    by what the photos' ``truth`` says they show (:data:`MODEL_OBJECTS`), labelled or not.

    Args:
        images: COCO images of one set, each with its ``truth``.
        detections: per detector (``"pointer"``, ``"insulator"``), its COCO result entries for
            them; a detector left out was not asked and counts nothing.
        names: class name per ``category_id`` of the entries.

    Raises:
        ValueError: an image's truth does not say how many meters or strings it shows.
    """
    meters_only = [i for i in images if meters_in(i) and not strings_in(i)]
    strings_only = [i for i in images if strings_in(i) and not meters_in(i)]
    neither = [i for i in images if not meters_in(i) and not strings_in(i)]
    both = [d for model in ("pointer", "insulator") for d in detections.get(model, [])]
    return WorldCounts(
        _count_on(meters_only, detections.get("insulator", []), names),
        _count_on(strings_only, detections.get("pointer", []), names),
        _count_on(neither, both, names),
    )


def _per_photos(count: int, photos: int) -> float | None:
    return count / photos * PER_PHOTOS if photos else None


def _by_class(counts: PhotoCounts) -> str:
    classes = ", ".join(f"{n} {name}" for name, n in sorted(counts.by_class.items()))
    return f"{counts.detections} on {counts.photos_with} of {counts.photos} photos" + (
        f": {classes}" if classes else ""
    )


def world_figures(
    set_name: str,
    counts: WorldCounts,
    goals: Mapping[str, float] | None = None,
    max_goals: Mapping[str, float] | None = None,
    every_kind: bool = False,
) -> list[Figure]:
    """The counts as table lines: the photos of each kind, the defect boxes and the insulator
    boxes per :data:`PER_PHOTOS` on meters, the pointer-model instances per
    :data:`PER_PHOTOS` on strings, and the detections on photos of neither.

    Args:
        set_name: e.g. ``"gauges"``, or ``"all sets"`` for the counts added up.
        counts: from :func:`count_worlds`.
        goals: figure name -> least passing value (:data:`WORLD_GOALS` for all sets); none
            by default.
        max_goals: figure name -> greatest passing value (:data:`WORLD_MAX_GOALS`).
        every_kind: whether to give the lines of a kind of photo the set lacks (undefined
            rates, which fail their goals); by default they are left out.
    """
    at_least, at_most = goals or {}, max_goals or {}
    figures: list[Figure] = []

    def add(name: str, value: float | None, kind: Kind, detail: str = "") -> None:
        if name in at_most:
            figures.append(Figure(set_name, name, value, kind, detail, at_most[name], True))
        else:
            figures.append(Figure(set_name, name, value, kind, detail, at_least.get(name)))

    meters, strings = counts.insulator_on_meters, counts.pointer_on_strings
    if meters.photos or every_kind:
        add(METERS_ONLY, meters.photos, "count")
        defects = meters.by_class.get("defect", 0)
        add(DEFECTS_ON_METERS, defects, "count", _by_class(meters))
        insulators = meters.by_class.get("insulator", 0)
        add(INSULATORS_ON_METERS, _per_photos(insulators, meters.photos), "rate", f"{insulators}")
    if strings.photos or every_kind:
        add(STRINGS_ONLY, strings.photos, "count")
        add(
            POINTER_ON_STRINGS,
            _per_photos(strings.detections, strings.photos),
            "rate",
            _by_class(strings),
        )
    if counts.on_neither.photos or every_kind:
        add(NEITHER, counts.on_neither.photos, "count")
        add(ON_NEITHER, counts.on_neither.detections, "count", _by_class(counts.on_neither))
    return figures
