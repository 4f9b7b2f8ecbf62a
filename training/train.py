"""Trains a detector with detectron2's own loop, on a COCO-format dataset.

The demo models train on the project's synthetic sets (``make train``); the same command
trains on your own photos exported from labelme, CVAT or any tool that writes COCO instances::

    python -m training.train --config repository/pointer/mask_rcnn_R18_FPN_demo.yaml \\
        --dataset my/annotations.json:my/images --output build/train/my-pointer

The dataset's category names must equal the config's ``CLASS_NAMES`` (same names; ids in that
order); everything else a run would trip over later (missing images, objects outside their
image, outlines a mask head needs) is refused before it starts (:func:`check_dataset`).

To fine-tune, start from a recipe in ``training/recipes/`` (COCO or ImageNet weights of
detectron2's model zoo, or the demo weights; ``MODEL.WEIGHTS`` among the overrides picks other
weights). What fits the model is loaded, what does not (the heads of another number of classes)
starts afresh and the log names it; weights of another architecture are refused
(:mod:`training.checkpoints`). ``--iterations N`` shortens or lengthens a recipe's run with its
schedule. Checkpoints go to ``--output`` every ``SOLVER.CHECKPOINT_PERIOD`` iterations and on
Ctrl-C; run the same command with ``--resume`` to go on from the last one. ``--output`` also
gets ``config.yaml``, the whole config trained, which serves the weights as they were trained.
Training images get detectron2's resize and flip and :class:`training.augment.PhotometricJitter`
(white balance, hue, saturation, light).

detectron2's own ``tools/train_net.py`` does not take these YAMLs as they are: its ``get_cfg()``
has no ``CLASS_NAMES`` or ``KEYPOINT_NAMES`` keys and no CenterNet2 keys, and it registers no
dataset of yours; :func:`pipelines.detector.read_yaml_config` reads them as this module does.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetMapper, MetadataCatalog, build_detection_train_loader
from detectron2.data.datasets import register_coco_instances
from detectron2.data.detection_utils import build_augmentation
from detectron2.engine import DefaultTrainer, HookBase
from detectron2.evaluation import COCOEvaluator
from detectron2.utils.events import CommonMetricPrinter, JSONWriter
from detectron2.utils.logger import setup_logger
from PIL import Image

from pipelines.detector import CheckpointError, read_yaml_config
from pipelines.roi_align import use_gather_roi_align
from pipelines.threads import usable_cores
from training.augment import PhotometricJitter
from training.checkpoints import WeightsReport, load_for_training

__all__ = [
    "VAL_DATASET",
    "DatasetError",
    "StopAfterStep",
    "Trainer",
    "build_config",
    "check_dataset",
    "cpu_has_bfloat16",
    "keypoint_flip_map",
    "main",
    "register_training_set",
    "scale_schedule",
    "train",
]

logger = logging.getLogger("training")

# The dataset name --val registers, evaluated every TEST.EVAL_PERIOD.
VAL_DATASET = "val"


class DatasetError(ValueError):
    """A dataset cannot be used for this config; the message says why and names the file."""


# How far outside its image an outline or box may reach: labelling tools round to the pixel.
_OUTSIDE_PX = 1.0
_EXIF_ORIENTATION = 0x0112


def check_dataset(
    annotations: Path,
    images: Path,
    class_names: Sequence[str],
    keypoint_names: Sequence[str] = (),
    *,
    masks: bool = False,
) -> int:
    """Checks a COCO file against the model's classes (and keypoints) before training starts,
    and against its images, so that no problem shows only hours into a run.

    Args:
        annotations: the COCO instances file.
        images: the folder its ``file_name`` entries are relative to.
        class_names: the config's ``CLASS_NAMES``.
        keypoint_names: the config's ``KEYPOINT_NAMES`` for a model with a keypoint head.
        masks: whether the model has a mask head, which needs every object's outline.

    Returns:
        The number of images.

    Raises:
        DatasetError: the file or folder is missing or unreadable; its categories are not
            exactly ``class_names`` in id order; it has no images or no objects; an image is
            missing from the folder or of another size than its entry says; an object names an
            unknown image or category, has no box, lies outside its image, or (``masks``) has
            no outline; or, for a model with keypoints, a category names other keypoints than
            ``keypoint_names``. The message names the file and the first offenders.
    """
    if not annotations.is_file():
        raise DatasetError(f"COCO annotations not found: {annotations}")
    if not images.is_dir():
        raise DatasetError(f"image folder not found: {images}")
    try:
        document = json.loads(annotations.read_text())
        categories = sorted(document["categories"], key=lambda c: c["id"])
        names = [c["name"] for c in categories]
        entries = {entry["id"]: entry for entry in document["images"]}
        objects = document.get("annotations", [])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DatasetError(f"{annotations} is not a COCO instances file: {error}") from error
    if names != list(class_names):
        unknown = sorted(set(names) - set(class_names))
        missing = sorted(set(class_names) - set(names))
        details = []
        if unknown:
            details.append(f"unknown categories {unknown}")
        if missing:
            details.append(f"missing categories {missing}")
        if not details:
            details.append(f"order by id {names}")
        raise DatasetError(
            f"{annotations}: categories do not match the config's CLASS_NAMES "
            f"{list(class_names)}: {'; '.join(details)}. Rename or reorder them (ids ascending "
            "in CLASS_NAMES order), or change CLASS_NAMES and NUM_CLASSES."
        )
    if not entries:
        raise DatasetError(f"{annotations} has no images")
    if not objects:
        raise DatasetError(f"{annotations} has no annotations: there is nothing to learn")
    if keypoint_names:
        for category in categories:
            named = category.get("keypoints")
            if named is not None and list(named) != list(keypoint_names):
                raise DatasetError(
                    f"{annotations}: category {category['name']!r} has keypoints {named}, the "
                    f"config's KEYPOINT_NAMES are {list(keypoint_names)}"
                )
        if not any(c.get("keypoints") for c in categories):
            raise DatasetError(
                f"{annotations}: no category has keypoints, and the config trains a keypoint "
                f"head (KEYPOINT_NAMES {list(keypoint_names)}); label them or set "
                "MODEL.KEYPOINT_ON False"
            )
    _check_images(annotations, images, entries)
    _check_objects(
        annotations, entries, objects, {c["id"] for c in categories}, len(keypoint_names), masks
    )
    return len(entries)


def _offenders(problem: str, found: list[str]) -> str:
    """``3 images missing (e.g. a.jpg, b.jpg, c.jpg)``."""
    return f"{len(found)} {problem} (e.g. {', '.join(found[:3])})"


def _image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image as detectron2 reads it, EXIF orientation applied, from
    its header alone."""
    with Image.open(path) as image:
        width, height = image.size
        # EXIF orientations 5-8 turn the photo by 90 degrees.
        if image.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
            return height, width
    return width, height


def _check_images(annotations: Path, images: Path, entries: dict[int, dict]) -> None:
    missing, unreadable, resized = [], [], []
    for entry in entries.values():
        try:
            path = images / entry["file_name"]
            expected = (int(entry["width"]), int(entry["height"]))
        except (KeyError, TypeError, ValueError) as error:
            raise DatasetError(
                f"{annotations}: image {entry.get('id')} needs file_name, width and height: "
                f"{error!r}"
            ) from error
        if not path.is_file():
            missing.append(entry["file_name"])
            continue
        try:
            size = _image_size(path)
        except OSError:
            unreadable.append(entry["file_name"])
            continue
        if size != expected:
            resized.append(
                f"{entry['file_name']} is {size[0]}x{size[1]}, its entry {expected[0]}x"
                f"{expected[1]}"
            )
    problems = [
        _offenders(what, found)
        for what, found in (
            (f"images missing from {images}", missing),
            ("images unreadable", unreadable),
            ("images of another size than their entry says", resized),
        )
        if found
    ]
    if problems:
        raise DatasetError(f"{annotations}: {'; '.join(problems)}")


def _check_objects(
    annotations: Path,
    entries: dict[int, dict],
    objects: list[dict],
    category_ids: set[int],
    num_keypoints: int,
    masks: bool,
) -> None:
    unknown_image, unknown_category, no_box, outside, malformed, no_outline, bad_keypoints = (
        [] for _ in range(7)
    )
    for item in objects:
        name = f"annotation {item.get('id')}"
        entry = entries.get(item.get("image_id"))
        if entry is None:
            unknown_image.append(f"{name} (image_id {item.get('image_id')})")
            continue
        if item.get("category_id") not in category_ids:
            unknown_category.append(f"{name} (category_id {item.get('category_id')})")
        where = f"{name} in {entry['file_name']} ({entry['width']}x{entry['height']})"
        box = item.get("bbox")
        if not (isinstance(box, list) and len(box) == 4):
            no_box.append(name)
        elif not _inside(
            [box[0], box[1], box[0] + box[2], box[1] + box[3]], entry["width"], entry["height"]
        ):
            outside.append(f"{where}: bbox {box}")
        segmentation = item.get("segmentation")
        if isinstance(segmentation, list):
            for polygon in segmentation:
                if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
                    malformed.append(f"{where}: {str(polygon)[:40]}")
                elif not _inside(polygon, entry["width"], entry["height"]):
                    outside.append(f"{where}: a polygon")
                else:
                    continue
                break
        if masks and not segmentation:
            no_outline.append(name)
        keypoints = item.get("keypoints")
        if num_keypoints and keypoints is not None and len(keypoints) != 3 * num_keypoints:
            bad_keypoints.append(f"{name} ({len(keypoints) // 3} keypoints)")
    problems = [
        _offenders(what, found)
        for what, found in (
            ("annotations of images the file does not list", unknown_image),
            ("annotations of unknown categories", unknown_category),
            ("annotations without a bbox [x, y, width, height]", no_box),
            (f"annotations outside their image (by over {_OUTSIDE_PX} px)", outside),
            ("polygons that are not flat [x, y, ...] lists of 3 points or more", malformed),
            ("annotations without a segmentation, which the mask head needs", no_outline),
            (f"annotations without {num_keypoints} keypoints (x, y, v each)", bad_keypoints),
        )
        if found
    ]
    if problems:
        raise DatasetError(f"{annotations}: {'; '.join(problems)}")


def _inside(flat: Sequence[float], width: float, height: float) -> bool:
    """Whether every ``x, y`` of a flat list lies in the image, give or take ``_OUTSIDE_PX``."""
    try:
        xy = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        return False
    return bool(
        len(xy)
        and (xy >= -_OUTSIDE_PX).all()
        and (xy[:, 0] <= width + _OUTSIDE_PX).all()
        and (xy[:, 1] <= height + _OUTSIDE_PX).all()
    )


def keypoint_flip_map(keypoint_names: Sequence[str]) -> list[tuple[str, str]]:
    """The keypoints a horizontal flip swaps: each ``X_start`` with its ``X_end``.

    A mirrored dial's scale runs anticlockwise from where its start was, so the old end becomes
    the start of a scale that runs clockwise again, as every dial's does.
    """
    names = set(keypoint_names)
    return [
        (name, name.removesuffix("_start") + "_end")
        for name in keypoint_names
        if name.endswith("_start") and name.removesuffix("_start") + "_end" in names
    ]


def register_training_set(
    name: str, annotations: Path, images: Path, keypoint_names: Sequence[str] = ()
) -> None:
    """Registers a COCO instances set with detectron2 under ``name``, with the keypoint names
    and flip map that a keypoint head's training needs (``keypoint_names``: the config's
    ``KEYPOINT_NAMES``; none for a model without keypoints)."""
    register_coco_instances(name, {}, annotations, images)
    if keypoint_names:
        MetadataCatalog.get(name).set(
            keypoint_names=list(keypoint_names), keypoint_flip_map=keypoint_flip_map(keypoint_names)
        )


def scale_schedule(cfg: CfgNode, iterations: int) -> None:
    """Sets ``SOLVER.MAX_ITER`` to ``iterations`` and moves the learning-rate steps, the
    warm-up and the checkpoint and evaluation periods with it: each keeps its share of the run.

    Raises:
        ValueError: ``iterations`` is not positive.
    """
    if iterations <= 0:
        raise ValueError(f"--iterations must be positive, got {iterations}")
    share = iterations / cfg.SOLVER.MAX_ITER
    solver = cfg.SOLVER
    # A step the scaled run does not reach, or that another step lands on, is dropped: the
    # scheduler wants rising steps before the last iteration.
    scaled = (max(1, round(step * share)) for step in solver.STEPS)
    solver.STEPS = tuple(sorted({step for step in scaled if step < iterations}))
    solver.WARMUP_ITERS = round(solver.WARMUP_ITERS * share)
    solver.CHECKPOINT_PERIOD = max(1, round(solver.CHECKPOINT_PERIOD * share))
    if cfg.TEST.EVAL_PERIOD > 0:
        cfg.TEST.EVAL_PERIOD = max(1, round(cfg.TEST.EVAL_PERIOD * share))
    solver.MAX_ITER = iterations


def build_config(
    config_path: Path,
    output: Path,
    device: str,
    overrides: Sequence[str] = (),
    iterations: int | None = None,
    validate: bool = False,
) -> CfgNode:
    """The training config: the detector's YAML (or a recipe of training/recipes/ built on
    one), the overrides, this run's dataset, output and device.

    Args:
        config_path: the YAML.
        output: the run's folder.
        device: ``"cpu"`` or ``"cuda"``.
        overrides: ``KEY VALUE`` pairs, as detectron2's ``merge_from_list`` takes them.
        iterations: the run's length, the schedule scaled to it (:func:`scale_schedule`);
            ``None`` keeps ``SOLVER.MAX_ITER``.
        validate: whether a ``"val"`` dataset is evaluated every ``TEST.EVAL_PERIOD`` (as the
            YAML and overrides set it) and after the last iteration; without it, none is.
    """
    cfg = read_yaml_config(config_path)
    cfg.merge_from_list(list(overrides))
    if iterations is not None:
        scale_schedule(cfg, iterations)
    late = [step for step in cfg.SOLVER.STEPS if step >= cfg.SOLVER.MAX_ITER]
    if late:
        logger.warning(
            "SOLVER.STEPS %s lie at or past SOLVER.MAX_ITER %d: the learning rate never drops "
            "there. --iterations N scales the steps with the run.",
            late,
            cfg.SOLVER.MAX_ITER,
        )
    cfg.DATASETS.TRAIN = ("train",)
    if validate:
        cfg.DATASETS.TEST = (VAL_DATASET,)
    else:
        cfg.DATASETS.TEST = ()
        cfg.TEST.EVAL_PERIOD = 0
    cfg.OUTPUT_DIR = str(output)
    cfg.MODEL.DEVICE = device
    cfg.freeze()
    return cfg


def cpu_has_bfloat16() -> bool:
    """Whether this CPU computes in bfloat16 (oneDNN's bfloat16 convolutions: AVX512-BF16 or AMX).

    ``SOLVER.AMP.ENABLED`` means mixed precision on either device: on CUDA it is detectron2's own
    float16 ``AMPTrainer``; on a CPU it is bfloat16 autocast of the forward, weights and optimizer
    staying float32. A CPU without bfloat16 instructions would only emulate it, slower than
    float32, so it trains in float32 there and says so.
    """
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return True
    logger.warning(
        "SOLVER.AMP.ENABLED: this CPU has no bfloat16 instructions; training in float32."
    )
    return False


class Trainer(DefaultTrainer):
    """detectron2's trainer with photometric augmentation, CPU mixed precision and a faster CPU
    ROIAlign backward, writing metrics to the log and metrics.json only.

    Its log line every 20 iterations carries the ETA, losses, time per iteration and rate.
    (The default writers also want TensorBoard, which this project does not install.)
    ``MODEL.WEIGHTS`` loads as fine-tuning needs (:meth:`resume_or_load`).
    """

    weights: WeightsReport | None = None

    def __init__(self, cfg: CfgNode) -> None:
        cpu_amp = cfg.SOLVER.AMP.ENABLED and cfg.MODEL.DEVICE == "cpu"
        if cpu_amp:
            # detectron2's AMPTrainer is CUDA-only: build the plain trainer, then autocast.
            cfg = cfg.clone()
            cfg.defrost()
            cfg.SOLVER.AMP.ENABLED = False
            cfg.freeze()
        super().__init__(cfg)
        if cpu_amp and cpu_has_bfloat16():
            # The forward only: backward ops follow the forward's types by themselves, and
            # the module stays the one the checkpointer saves (float32 weights, same keys).
            self.model.forward = torch.autocast("cpu", dtype=torch.bfloat16)(self.model.forward)

    def resume_or_load(self, resume: bool = True) -> None:
        """Resumes from the last checkpoint in the output folder (``resume`` and one exists,
        detectron2's own), or loads ``MODEL.WEIGHTS`` for training
        (:func:`training.checkpoints.load_for_training`: what fits, the rest named).

        Raises:
            CheckpointError: ``MODEL.WEIGHTS`` cannot be read or is of another architecture.
        """
        if resume and self.checkpointer.has_checkpoint():
            super().resume_or_load(resume=True)
            return
        self.weights = load_for_training(self.model, self.cfg)
        self.start_iter = 0

    def build_writers(self) -> list:
        return [
            CommonMetricPrinter(self.max_iter),
            JSONWriter(str(Path(self.cfg.OUTPUT_DIR) / "metrics.json")),
        ]

    @classmethod
    def build_model(cls, cfg: CfgNode) -> torch.nn.Module:
        """detectron2's model; on a CPU its ROIAligns pool by :mod:`pipelines.roi_align`'s gather,
        forward and backward."""
        model = super().build_model(cfg)
        if cfg.MODEL.DEVICE == "cpu":
            use_gather_roi_align(model)
        return model

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str) -> COCOEvaluator:
        """detectron2's COCO evaluator on boxes (and masks where the model has them), its
        results under ``OUTPUT_DIR/inference``. Keypoints are left out: COCO's OKS sigmas are
        for people's 17 keypoints, not a dial's."""
        tasks = ("bbox", "segm") if cfg.MODEL.MASK_ON else ("bbox",)
        output = Path(cfg.OUTPUT_DIR) / "inference"
        return COCOEvaluator(dataset_name, tasks=tasks, distributed=False, output_dir=str(output))

    @classmethod
    def build_train_loader(cls, cfg: CfgNode):
        """detectron2's resize and flip, then :class:`PhotometricJitter`."""
        augmentations = [*build_augmentation(cfg, True), PhotometricJitter(cfg.INPUT.FORMAT)]
        mapper = DatasetMapper(cfg, is_train=True, augmentations=augmentations)
        return build_detection_train_loader(cfg, mapper=mapper)


class StopAfterStep(HookBase):
    """Ctrl-C stops training at the end of the running iteration, with a checkpoint.

    The checkpoint is then what detectron2's periodic ones are: saved after an iteration's
    hooks (the LR scheduler has stepped for it), recording that iteration, so ``--resume``
    goes on from the next one. A second Ctrl-C stops at once, without a checkpoint.
    """

    def __init__(self) -> None:
        self.requested = False

    def request(self, signum: int, frame: object) -> None:
        """The SIGINT handler."""
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("Ctrl-C: stopping after this iteration (again to stop at once).")

    def after_step(self) -> None:
        if self.requested:
            name = f"model_{self.trainer.iter:07d}"
            self.trainer.checkpointer.save(name, iteration=self.trainer.iter)
            logger.warning("Interrupted: saved %s.pth; run again with --resume to go on.", name)
            raise KeyboardInterrupt


def train(cfg: CfgNode, resume: bool) -> Path:
    """Runs detectron2's ``DefaultTrainer``; on Ctrl-C saves a checkpoint to resume from
    (:class:`StopAfterStep`).

    Returns:
        The final checkpoint, ``model_final.pth`` in the output folder.

    Raises:
        KeyboardInterrupt: after the interrupted run's checkpoint is saved.
        CheckpointError: ``MODEL.WEIGHTS`` cannot be read or is of another architecture
            (before the first iteration).
    """
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=resume)
    stop = StopAfterStep()
    # Last, so it runs after the LR scheduler and the periodic checkpointer of the same step.
    trainer.register_hooks([stop])
    previous = signal.signal(signal.SIGINT, stop.request)
    try:
        trainer.train()
    finally:
        signal.signal(signal.SIGINT, previous)
    return Path(cfg.OUTPUT_DIR) / "model_final.pth"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Example: python -m training.train --config repository/pointer/"
        "mask_rcnn_R18_FPN_demo.yaml --dataset build/data/gauges/train/annotations.json:"
        "build/data/gauges/train/images --output build/train/pointer",
    )
    parser.add_argument(
        "--config",
        type=Path,
        required=True,
        help="The detector's YAML, or a fine-tuning recipe (training/recipes/).",
    )
    parser.add_argument(
        "--dataset",
        required=True,
        help="ANNOTATIONS.json:IMAGE_FOLDER of a COCO instances dataset.",
    )
    parser.add_argument(
        "--val",
        metavar="ANN:IMAGES",
        help="ANNOTATIONS.json:IMAGE_FOLDER of a COCO set that detectron2's COCO evaluator "
        "measures every TEST.EVAL_PERIOD iterations and after the last one (AP per class in "
        "the log and metrics.json). Default is no evaluation.",
    )
    parser.add_argument("--output", type=Path, required=True, help="Checkpoint folder.")
    parser.add_argument(
        "--resume", action="store_true", help="Go on from the last checkpoint in --output."
    )
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="cpu or cuda. Default is cuda when a GPU is visible, else cpu.",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=usable_cores(),
        help="torch CPU threads; give each concurrent run its own cores (oversubscribed "
        "threads cost far more than they gain). Default is every usable core.",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        help="Train this many iterations, with the learning-rate steps, warm-up and checkpoint "
        "period moved to keep their share of the run. Default is the config's SOLVER.MAX_ITER.",
    )
    parser.add_argument(
        "opts",
        nargs="*",
        default=[],
        help="Config overrides, e.g. MODEL.WEIGHTS my/model_final.pth SOLVER.IMS_PER_BATCH 4.",
    )
    args = parser.parse_args(argv)

    setup_logger(name="detectron2", abbrev_name="d2")
    setup_logger(name="training")
    annotations, _, images = args.dataset.rpartition(":")
    try:
        try:
            cfg = build_config(
                args.config,
                args.output,
                args.device,
                args.opts,
                args.iterations,
                validate=args.val is not None,
            )
        except (KeyError, ValueError) as error:  # yacs: an unknown key, a value of another type
            raise DatasetError(f"{args.config} with {args.opts}: {error}") from error
        classes = cfg.MODEL.ROI_HEADS.NUM_CLASSES
        if len(cfg.CLASS_NAMES) != classes:
            raise DatasetError(
                f"{args.config}: CLASS_NAMES has {len(cfg.CLASS_NAMES)} names but "
                f"MODEL.ROI_HEADS.NUM_CLASSES is {classes}"
            )
        keypoint_names = cfg.KEYPOINT_NAMES if cfg.MODEL.KEYPOINT_ON else []
        if (
            cfg.MODEL.KEYPOINT_ON
            and len(keypoint_names) != cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS
        ):
            raise DatasetError(
                f"{args.config}: KEYPOINT_NAMES has {len(keypoint_names)} names but "
                f"MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS is "
                f"{cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS}"
            )
        check_dataset(
            Path(annotations),
            Path(images),
            cfg.CLASS_NAMES,
            keypoint_names,
            masks=cfg.MODEL.MASK_ON,
        )
        if args.val is not None:
            val_annotations, _, val_images = args.val.rpartition(":")
            if not val_annotations or not val_images:
                raise DatasetError(f"--val {args.val}: expected ANNOTATIONS.json:IMAGE_FOLDER")
            check_dataset(
                Path(val_annotations),
                Path(val_images),
                cfg.CLASS_NAMES,
                keypoint_names,
                masks=cfg.MODEL.MASK_ON,
            )
    except (DatasetError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.resume and not (args.output / "last_checkpoint").is_file():
        print(f"error: --resume: no checkpoint in {args.output}", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.threads))
    register_training_set("train", annotations, images, keypoint_names)
    if args.val is not None:
        register_coco_instances(VAL_DATASET, {}, val_annotations, val_images)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "config.yaml").write_text(cfg.dump())
    try:
        final = train(cfg, args.resume)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    logger.info("Done: %s", final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
