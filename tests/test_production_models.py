"""The production R50-FPN recipes, served by switching the parameters the README names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from detectron2.data import transforms as T

from bench.servers import PRODUCTION, write_production_repository
from clients.answer import parse_answer
from server.launch import REPO_ROOT
from tests.support import connect, server_on

pytestmark = [pytest.mark.slow, pytest.mark.server]


def test_r50_recipes_serve_after_switching_two_parameters(
    tmp_path: Path, scenes: dict[str, bytes], untrained_weights: Callable[[Path], Path]
) -> None:
    weights = {
        name: untrained_weights(REPO_ROOT / "repository" / name / production)
        for name, (_, production, _) in PRODUCTION.items()
    }
    repository = write_production_repository(tmp_path / "repository", weights)
    server = server_on(repository, tmp_path)
    with server:
        server.wait_until_ready(timeout_s=600)
        with connect(server, "grpc") as client:
            outputs = client.infer("inspect", scenes["gauge"], {"MODELS": "both"})
            preprocessed = client.infer("preprocess_ensemble", scenes["gauge"])
    answer = parse_answer(outputs["DETECTIONS"][0], outputs["MASKS"])
    for name in PRODUCTION:
        # Untrained stand-ins answer their full 100 instances.
        assert answer.models[name].status == "ok", answer.models[name].error
        assert len(answer.models[name].instances) == 100
    height, width = (int(v) for v in preprocessed["ORIGINAL_SIZE"])
    resized = T.ResizeShortestEdge.get_output_shape(height, width, 800, 1333)
    assert preprocessed["POINTER_IMAGE"].shape[:2] == resized
    log = server.log_text()
    assert "mask_rcnn_R50_FPN.yaml" in log and "centernet2_R50_FPN.yaml" in log
    assert "UNTRAINED WEIGHTS" in log
