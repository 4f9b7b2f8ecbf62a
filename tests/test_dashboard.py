"""The Grafana dashboard and the autoscaler's metric use metrics this Triton really exports."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest
import yaml

from clients.jpeg_client import JpegClient
from server.launch import REPO_ROOT, TritonServer

DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "triton-dashboard.json"
ADAPTER = REPO_ROOT / "deploy" / "k8s" / "prometheus-adapter" / "values.yaml"

# What the issue asks the dashboard to show: queue time, compute time per model, GPU use.
REQUIRED_METRICS = {
    "nv_inference_queue_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_gpu_utilization",
}
# Triton's GPU metrics exist only where NVML sees a GPU (the image runs with
# --allow-gpu-metrics=true); names from Triton's metrics documentation and metrics.cc.
GPU_ONLY_METRICS = {
    "nv_gpu_utilization",
    "nv_gpu_memory_used_bytes",
    "nv_gpu_memory_total_bytes",
    "nv_gpu_power_usage",
}
_METRIC = re.compile(r"\bnv_[a-z_]+\b")


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def expressions() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def adapter_queries() -> list[str]:
    rules = yaml.safe_load(ADAPTER.read_text())["rules"]["custom"]
    return [text for rule in rules for text in (rule["seriesQuery"], rule["metricsQuery"])]


def scrape(server: TritonServer) -> str:
    url = f"http://localhost:{server.ports.metrics}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


@pytest.fixture(scope="module")
def exported(triton_server: TritonServer, jpegs: dict[str, bytes]) -> str:
    """The live server's metrics after one request through the ensemble."""
    with JpegClient(f"localhost:{triton_server.ports.http}", "http") as client:
        client.infer("preprocess_ensemble", jpegs["landscape_640x427"])
    return scrape(triton_server)


def metric_names(text: str) -> set[str]:
    return {line.split("{")[0].split()[0] for line in text.splitlines() if line[:1].isalpha()}


def test_dashboard_structure() -> None:
    board = dashboard()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            expr = target["expr"]
            for opening, closing in ("()", "{}", "[]"):
                assert expr.count(opening) == expr.count(closing), f"{panel['title']}: {expr}"
            if "nv_inference" in expr:
                assert 'model=~"$model"' in expr, f"{panel['title']} ignores the model filter"


def test_dashboard_shows_queue_compute_and_gpu() -> None:
    used = {name for expr in expressions() for name in _METRIC.findall(expr)}
    assert used >= REQUIRED_METRICS


def used_metrics() -> list[tuple[str, str]]:
    """``(source, metric)`` for every metric the dashboard and the autoscaler's adapter query."""
    return [
        (source, name)
        for source, texts in (
            ("dashboard", expressions()),
            ("prometheus-adapter", adapter_queries()),
        )
        for text in texts
        for name in _METRIC.findall(text)
    ]


def test_dashboard_and_autoscaler_metrics_are_exported(exported: str) -> None:
    available = metric_names(exported)
    for source, name in used_metrics():
        if name not in GPU_ONLY_METRICS:
            assert name in available, f"{source} uses {name}, which Triton does not export"


@pytest.mark.gpu
def test_gpu_metrics_are_exported_on_a_gpu(exported: str) -> None:
    """NVML metrics: only a server that sees a GPU exports them."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a GPU (torch.cuda.is_available() is False): GPU path not tested")
    available = metric_names(exported)
    for source, name in used_metrics():
        assert name in available, f"{source} uses {name}, which Triton does not export"


def test_every_repository_model_has_per_model_series(exported: str) -> None:
    # The dashboard's model variable is label_values(nv_inference_request_success, model).
    labelled = set(re.findall(r'^nv_inference_request_success\{model="([^"]+)"', exported, re.M))
    models = {path.parent.name for path in (REPO_ROOT / "repository").glob("*/config.pbtxt")}
    assert models and models <= labelled


def test_queue_and_request_counters_move_per_request(
    triton_server: TritonServer, exported: str, jpegs: dict[str, bytes]
) -> None:
    """The autoscaler divides queue time by successful requests, per model: both must move."""

    def total(text: str, metric: str) -> float:
        pattern = rf'^{metric}\{{model="preprocess",[^}}]*\}} (\S+)$'
        values = re.findall(pattern, text, re.MULTILINE)
        assert values, f"no {metric} series for preprocess"
        return sum(float(v) for v in values)

    requests = 3
    with JpegClient(f"localhost:{triton_server.ports.http}", "http") as client:
        for _ in range(requests):
            client.infer("preprocess_ensemble", jpegs["landscape_640x427"])
    after = scrape(triton_server)
    counted = total(after, "nv_inference_request_success") - total(
        exported, "nv_inference_request_success"
    )
    assert counted >= requests
    assert total(after, "nv_inference_queue_duration_us") > total(
        exported, "nv_inference_queue_duration_us"
    )
