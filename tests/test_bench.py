"""The benchmark's pure helpers and its CLI; no server, no timing assertion (seconds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.machine import describe_machine, machine_line
from bench.sections import LOOP, _loop, _per_image
from bench.servers import (
    PRODUCTION,
    strip_dynamic_batching,
    switch_to_production,
    write_bench_repository,
    write_production_repository,
)
from bench.stats import Row, Summary, format_seconds, format_table, paired_ratios, percentile
from bench.timing import interleaved, rotated
from bls.repository import model_tensors
from server.launch import REPO_ROOT


def test_percentile_interpolates_between_ranks() -> None:
    samples = [4.0, 1.0, 3.0, 2.0]
    assert percentile(samples, 0) == 1.0
    assert percentile(samples, 100) == 4.0
    assert percentile(samples, 50) == pytest.approx(2.5)
    assert percentile(samples, 95) == pytest.approx(3.85)
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile(samples, 101)


def test_summary_of_samples() -> None:
    summary = Summary.of([3.0, 1.0, 2.0, 10.0, 4.0])
    assert (summary.n, summary.min, summary.median, summary.max) == (5, 1.0, 3.0, 10.0)
    assert summary.p99 == pytest.approx(9.76)
    with pytest.raises(ValueError):
        Summary.of([])


def test_paired_ratios_pair_rounds() -> None:
    assert paired_ratios([2.0, 3.0], [1.0, 2.0]) == [2.0, 1.5]
    with pytest.raises(ValueError):
        paired_ratios([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        paired_ratios([1.0], [0.0])


@pytest.mark.parametrize(
    ("seconds", "text"), [(2.714, "2.71 s"), (0.04123, "41.2 ms"), (0.00056, "560 us")]
)
def test_format_seconds_picks_the_unit(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def test_format_table_aligns_columns() -> None:
    rows = [
        Row("1 overhead", "DefaultPredictor", Summary.of([2.0, 2.2, 2.1])),
        Row("1 overhead", "pointer_ensemble grpc", Summary.of([2.1]), "DefaultPredictor", 1.0123),
        Row("5 transport", "answer", note="42 KiB"),
    ]
    lines = format_table(rows).splitlines()
    header = ["section", "measured", "median", "min", "max", "vs", "ratio", "goal", "note"]
    assert lines[0].split() == header
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert len(lines) == 2 + len(rows)
    assert "1.012x" in lines[3] and "2.10 s" in lines[2] and lines[4].endswith("42 KiB")
    # Every column starts at the same offset on every line.
    column = lines[0].index("median")
    assert lines[2][column:].startswith("2.10 s")


def test_describe_machine_reads_proc_files() -> None:
    machine = describe_machine(
        cpuinfo="processor\t: 0\nmodel name\t: AMD  EPYC 7B13\n",
        meminfo="MemTotal:       24576000 kB\n",
        gpus=[],
        cores=2,
    )
    assert machine["cpu"] == "AMD EPYC 7B13"
    assert machine["memory_gib"] == pytest.approx(23.4)
    assert machine_line(machine) == "AMD EPYC 7B13, 2 cores, 23.4 GiB, no GPU"
    machine["gpus"] = ["NVIDIA H100 80GB HBM3, 81559 MiB"]
    assert machine_line(machine).endswith("NVIDIA H100 80GB HBM3, 81559 MiB")


def test_rotated_and_interleaved_vary_the_order() -> None:
    assert rotated(["a", "b", "c"], 1) == ["b", "c", "a"]
    assert rotated([], 3) == []
    calls: list[str] = []
    samples = interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=2, warmup=1
    )
    assert calls == ["a", "b", "a", "b", "b", "a"]
    assert [len(v) for v in samples.values()] == [2, 2]


def test_loop_baseline_counts_calls_and_ratios_are_per_image() -> None:
    calls: list[int] = []
    wall, latencies = _loop(lambda: calls.append(1), 5)
    assert len(calls) == len(latencies) == 5 and wall >= sum(latencies)
    # 8 images in 2 s against 4 in 2 s: half the time per image, twice the images/s.
    measured = {"dynamic batching": (2.0, [1.0] * 8), LOOP: (2.0, [0.5] * 4)}
    assert _per_image(measured, "dynamic batching", LOOP) == pytest.approx(0.5)
    assert _per_image(measured, "dynamic batching", "") is None


def test_one_at_a_time_repository(tmp_path: Path) -> None:
    text = (
        'name: "x"\nmax_batch_size: 4\n'
        "dynamic_batching {\n  max_queue_delay_microseconds: 5\n}\ninput []\n"
    )
    assert strip_dynamic_batching(text) == 'name: "x"\nmax_batch_size: 4\ninput []\n'
    copy = write_bench_repository(tmp_path / "repo")
    for model in ("preprocess", "insulator", "insulator_ensemble", "bench_echo"):
        config = (copy / model / "config.pbtxt").read_text()
        assert "dynamic_batching" not in config, model
    shipped = (REPO_ROOT / "repository" / "insulator" / "config.pbtxt").read_text()
    assert "dynamic_batching" in shipped  # otherwise the comparison compares nothing
    assert (copy / "insulator" / "weights").is_symlink()
    assert (copy / "bench_echo" / "1" / "model.py").is_file()


def test_production_repository_switches_what_the_readme_names(tmp_path: Path) -> None:
    weights = {name: tmp_path / f"{name}.pth" for name in PRODUCTION}
    repository = write_production_repository(tmp_path / "repo", weights)
    for name, (_, production, image) in PRODUCTION.items():
        parameters = model_tensors(repository, name).parameters
        assert parameters["detectron2_config"] == production
        assert parameters["weights"] == str(weights[name])
        assert "score_thresholds" not in parameters, "the demo weights' thresholds"
        assert (repository / name / production).is_file()
        assert not (repository / name / "weights").exists()
        resize = model_tensors(repository, "preprocess").parameters[image]
        assert resize.startswith("shortest_edge=800 max_size=1333")
    # mask_rcnn_R50_FPN.yaml has no keypoint head: the README's step 1 removes the output.
    for model in ("pointer", "pointer_ensemble"):
        assert "KEYPOINTS" in model_tensors(REPO_ROOT / "repository", model).outputs
        assert "KEYPOINTS" not in model_tensors(repository, model).outputs, model
    assert "MASKS" in model_tensors(repository, "pointer_ensemble").outputs
    # A second switch finds no demo parameters left to replace, and says so.
    with pytest.raises(ValueError, match="not the shipped demo parameters"):
        switch_to_production(repository, weights)


def test_cli_help_names_every_section() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for option in ("--quick", "--sections", "--concurrency", "--out"):
        assert option in done.stdout
    assert "DefaultPredictor" in done.stdout


def test_cli_refuses_an_unknown_section() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--sections", "overhead,nope"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "choose from" in done.stderr


def test_stage_timer_sums_repeated_calls_and_nests() -> None:
    import torch

    from bench.profile import StageTimer

    inner = torch.nn.Linear(4, 4)
    outer = torch.nn.Sequential(inner, inner)
    timer = StageTimer()
    timer.watch("inner", inner)
    timer.watch("outer", outer)
    outer(torch.zeros(1, 4))
    first = timer.take()
    assert set(first) == {"inner", "outer"}
    assert 0 < first["inner"] <= first["outer"]
    assert timer.take() == {}  # each take starts a new forward
    timer.close()
    outer(torch.zeros(1, 4))
    assert timer.take() == {}


def test_stage_rows_split_the_fpn_and_the_remainder() -> None:
    from bench.profile import OTHER, stage_rows

    samples = [
        {"ResNet": 5.0, "backbone": 7.0, "proposals": 1.0, "ROI heads": 1.5},
        {"ResNet": 6.0, "backbone": 9.0, "proposals": 1.0, "ROI heads": 2.5},
    ]
    rows = dict(stage_rows(["ResNet", "backbone", "proposals", "ROI heads"], samples, [10, 14]))
    assert rows["ResNet"] == 5.5
    assert rows["FPN"] == 2.5
    assert rows[OTHER] == 1.0  # the median of 10 - 9.5 and 14 - 12.5
    assert rows["detector total"] == 12


def test_profile_times_every_stage_of_the_served_detectors(capsys: pytest.CaptureFixture) -> None:
    from bench.profile import main

    assert main(["--rounds", "1", "--warmup", "0", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    for stage in ("decode + resize (PIL)", "ResNet", "FPN", "proposals", "box head", "mask head"):
        assert stage in out
    assert out.count("detector total") == 2  # pointer and insulator


def test_profile_refuses_an_unknown_detector() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.profile", "--models", "pointer,nope"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "choose from" in done.stderr
