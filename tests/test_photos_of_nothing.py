"""The served demo detectors, in process, find nothing on photos of nothing (tests/data/nothing).

Each detector runs with the config, weights and score thresholds it is served with, on the photo
preprocessed as detectron2 does (the server's DALI preprocessing is within 2 levels of it,
tests/test_server_preprocess.py). Kinds on which a model still finds something are expected to
fail (``FOUND_IN_NOTHING``), strictly: a retrained model that no longer does turns them red
until the entry goes.
"""

from __future__ import annotations

import pytest

from bls.repository import model_tensors
from pipelines.detector import Detector, load_config, load_score_thresholds
from tests.support import (
    FOUND_IN_NOTHING,
    NOTHING_KINDS,
    REPOSITORY,
    nothing_photos,
    reference_preprocess,
    served_preprocess_config,
)

MODELS = ("pointer", "insulator")


@pytest.fixture(scope="module")
def detectors() -> dict[str, Detector]:
    """Each demo detector as the repository serves it, with its per-class score thresholds
    where config.pbtxt names them (as server/python_models.py loads them)."""
    served = {}
    for model in MODELS:
        parameters = model_tensors(REPOSITORY, model).parameters
        config = REPOSITORY / model / parameters["detectron2_config"]
        thresholds = None
        if "score_thresholds" in parameters:
            thresholds = load_score_thresholds(
                REPOSITORY / model / parameters["score_thresholds"],
                list(load_config(config).CLASS_NAMES),
            )
        served[model] = Detector(
            config, REPOSITORY / model / parameters["weights"], score_thresholds=thresholds
        )
    return served


@pytest.fixture(scope="module")
def photos() -> dict[str, bytes]:
    return nothing_photos()


def cases() -> list:
    """Every (model, kind), those with a known finding marked as expected failures."""
    params = []
    for model in MODELS:
        for kind in NOTHING_KINDS:
            known = FOUND_IN_NOTHING.get(kind, {}).get(model)
            marks = [pytest.mark.xfail(strict=True, reason=known)] if known else []
            params.append(pytest.param(model, kind, marks=marks, id=f"{model}-{kind}"))
    return params


@pytest.mark.parametrize(("model", "kind"), cases())
def test_a_photo_of_nothing_gets_no_detection(
    detectors: dict[str, Detector], photos: dict[str, bytes], model: str, kind: str
) -> None:
    detector = detectors[model]
    resize = served_preprocess_config().resize(f"{model.upper()}_IMAGE")
    image, size = reference_preprocess(photos[kind], resize)
    [found] = detector([(image, size)])
    names = [detector.class_names[c] for c in found.classes]
    described = [
        f"{name} {score:.3f} at {box.round().astype(int).tolist()}"
        for name, score, box in zip(names, found.scores, found.boxes, strict=True)
    ]
    thresholds = detector.score_thresholds or detector.cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST
    assert not described, f"{model} (thresholds {thresholds}) found on {kind}: {described}"
