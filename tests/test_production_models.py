"""The production R50-FPN recipes, served by switching the parameters the README names."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from detectron2.data import transforms as T

from clients.answer import parse_answer
from server.launch import REPO_ROOT
from tests.support import connect, server_on

pytestmark = [pytest.mark.slow, pytest.mark.server]

PRODUCTION = {
    "pointer": ("mask_rcnn_R18_FPN_demo.yaml", "mask_rcnn_R50_FPN.yaml", "POINTER_IMAGE"),
    "insulator": ("centernet2_R18_FPN_demo.yaml", "centernet2_R50_FPN.yaml", "INSULATOR_IMAGE"),
}


def switch_to_production(repository: Path, weights: dict[str, Path]) -> None:
    """What the README tells a user to edit: two parameters per detector, one resize each."""
    preprocess = repository / "preprocess" / "config.pbtxt"
    text = preprocess.read_text()
    for name, (demo, production, image) in PRODUCTION.items():
        config = repository / name / "config.pbtxt"
        edited = config.read_text().replace(f'"{demo}"', f'"{production}"')
        edited = edited.replace('"weights/demo.pth"', f'"{weights[name]}"')
        assert f'string_value: "{production}"' in edited and str(weights[name]) in edited
        config.write_text(edited)
        text, count = re.subn(
            rf'(key: "{image}", value: {{ string_value: )"[^"]*"',
            r'\1"shortest_edge=800 max_size=1333 channel_order=BGR"',
            text,
        )
        assert count == 1
    preprocess.write_text(text)


def test_r50_recipes_serve_after_switching_two_parameters(
    tmp_path: Path, scenes: dict[str, bytes], untrained_weights: Callable[[Path], Path]
) -> None:
    repository = tmp_path / "repository"
    shutil.copytree(
        REPO_ROOT / "repository",
        repository,
        ignore=shutil.ignore_patterns("weights", "__pycache__"),
    )
    weights = {
        name: untrained_weights(REPO_ROOT / "repository" / name / production)
        for name, (_, production, _) in PRODUCTION.items()
    }
    switch_to_production(repository, weights)
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
