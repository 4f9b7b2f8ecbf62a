"""Trains a detector with detectron2's own loop, on a COCO-format dataset.

The demo models train on the project's synthetic sets (``make train``); the same command
trains on your own photos exported from labelme, CVAT or any tool that writes COCO instances::

    python -m training.train --config repository/pointer/mask_rcnn_R18_FPN_demo.yaml \\
        --dataset my/annotations.json:my/images --output build/train/my-pointer

The dataset's category names must equal the config's ``CLASS_NAMES`` (same names; ids in that
order). Checkpoints go to ``--output`` every ``SOLVER.CHECKPOINT_PERIOD`` iterations and on
Ctrl-C; run the same command with ``--resume`` to go on from the last one. To start from other
weights (fine-tuning the demo model on your photos, say) give ``MODEL.WEIGHTS path.pth`` among
the config overrides. Training images get detectron2's resize and flip and
:class:`training.augment.PhotometricJitter` (white balance, hue, saturation, light).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetMapper, MetadataCatalog, build_detection_train_loader
from detectron2.data.datasets import register_coco_instances
from detectron2.data.detection_utils import build_augmentation
from detectron2.engine import DefaultTrainer, HookBase
from detectron2.utils.events import CommonMetricPrinter, JSONWriter
from detectron2.utils.logger import setup_logger

from pipelines.detector import read_yaml_config
from pipelines.roi_align import use_gather_roi_align
from pipelines.threads import usable_cores
from training.augment import PhotometricJitter

__all__ = [
    "DatasetError",
    "StopAfterStep",
    "Trainer",
    "build_config",
    "check_dataset",
    "cpu_has_bfloat16",
    "keypoint_flip_map",
    "main",
    "train",
]

logger = logging.getLogger("training")


class DatasetError(ValueError):
    """A dataset cannot be used for this config; the message says why and names the file."""


def check_dataset(
    annotations: Path,
    images: Path,
    class_names: Sequence[str],
    keypoint_names: Sequence[str] = (),
) -> int:
    """Checks a COCO file against the model's classes (and keypoints) before training starts.

    Returns:
        The number of images.

    Raises:
        DatasetError: the file or folder is missing or unreadable, its categories are not
            exactly ``class_names`` in id order, or, for a model with keypoints, a category
            names other keypoints than ``keypoint_names``.
    """
    if not annotations.is_file():
        raise DatasetError(f"COCO annotations not found: {annotations}")
    if not images.is_dir():
        raise DatasetError(f"image folder not found: {images}")
    try:
        document = json.loads(annotations.read_text())
        categories = sorted(document["categories"], key=lambda c: c["id"])
        names = [c["name"] for c in categories]
        count = len(document["images"])
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
    if count == 0:
        raise DatasetError(f"{annotations} has no images")
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
    return count


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


def build_config(
    config_path: Path, output: Path, device: str, overrides: Sequence[str] = ()
) -> CfgNode:
    """The training config: the detector's YAML, this run's dataset, output and device."""
    cfg = read_yaml_config(config_path)
    cfg.merge_from_list(list(overrides))
    cfg.DATASETS.TRAIN = ("train",)
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
    """

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
    parser.add_argument("--config", type=Path, required=True, help="The detector's YAML.")
    parser.add_argument(
        "--dataset",
        required=True,
        help="ANNOTATIONS.json:IMAGE_FOLDER of a COCO instances dataset.",
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
        "opts", nargs="*", default=[], help="Config overrides, e.g. SOLVER.MAX_ITER 100."
    )
    args = parser.parse_args(argv)

    setup_logger(name="detectron2", abbrev_name="d2")
    setup_logger(name="training")
    annotations, _, images = args.dataset.rpartition(":")
    try:
        cfg = build_config(args.config, args.output, args.device, args.opts)
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
        check_dataset(Path(annotations), Path(images), cfg.CLASS_NAMES, keypoint_names)
    except (DatasetError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.resume and not (args.output / "last_checkpoint").is_file():
        print(f"error: --resume: no checkpoint in {args.output}", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.threads))
    register_coco_instances("train", {}, annotations, images)
    if keypoint_names:
        MetadataCatalog.get("train").set(
            keypoint_names=list(keypoint_names), keypoint_flip_map=keypoint_flip_map(keypoint_names)
        )
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "config.yaml").write_text(cfg.dump())
    try:
        final = train(cfg, args.resume)
    except KeyboardInterrupt:
        return 130
    logger.info("Done: %s", final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
