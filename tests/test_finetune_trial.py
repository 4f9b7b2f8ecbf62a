"""``python -m bench.finetune`` (issue 38's trial), its pure parts: refusals before any work, the
serving copy of the repository, and the side-by-side table. No server, no training: the trial
itself is ``python -m bench.finetune``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from bench import finetune
from bench.accuracy.readings import FRACTION_READ, OK_FAR_OFF
from bench.accuracy.report import format_table
from bls.repository import read_config
from server.launch import REPO_ROOT
from training.data import SPLITS

REPOSITORY = REPO_ROOT / "repository"


@pytest.mark.parametrize("option", ["--photos", "--iterations", "--threads", "--limit"])
@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_a_count_below_one_is_refused_naming_the_option(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        finetune.parse_args([option, value])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {option}: expected a positive integer, got '{value}'" in error


def test_the_defaults_are_the_issues_trial() -> None:
    args = finetune.parse_args([])
    assert args.photos == 200
    assert args.iterations is None and args.threads is None and args.limit is None
    assert args.heldout == REPO_ROOT / "build" / "data" / "gauges" / "heldout"


def test_a_missing_measurement_set_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    missing = tmp_path / "nowhere"
    assert finetune.main(["--heldout", str(missing), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert (
        f"finetune: error: --heldout: the measurement set {missing / 'annotations.json'}" in error
    )
    assert f"python -m training.data gauges --split heldout --output {missing}" in error
    assert not out.exists()


def test_the_default_measurement_set_missing_names_its_make_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(finetune, "HELDOUT", tmp_path / "heldout")
    args = argparse.Namespace(heldout=tmp_path / "heldout")
    with pytest.raises(
        finetune.TrialError, match=r"make build/data/gauges/heldout/annotations\.json"
    ):
        finetune.check_inputs(args)


def test_a_measurement_set_without_its_images_is_refused(tmp_path: Path) -> None:
    (tmp_path / "annotations.json").write_text("{}")
    with pytest.raises(finetune.TrialError, match="has no image folder"):
        finetune.check_inputs(argparse.Namespace(heldout=tmp_path))


def test_missing_demo_weights_are_refused_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text('MODEL:\n  WEIGHTS: "build/no-such-dir/demo.pth"\n')
    monkeypatch.setattr(finetune, "RECIPE", recipe)
    with pytest.raises(finetune.TrialError) as error:
        finetune.check_inputs(argparse.Namespace(heldout=tmp_path))
    assert f"the demo weights {REPO_ROOT / 'build/no-such-dir/demo.pth'}" in str(error.value)
    assert "make train-pointer" in str(error.value)


def test_the_training_photos_are_drawn_with_a_seed_no_split_uses() -> None:
    assert finetune.TRAIN_SEED not in {seed for seed, _, _ in SPLITS.values()}


def test_the_serving_copy_serves_the_weights_alone_and_leaves_the_repository(
    tmp_path: Path,
) -> None:
    weights = tmp_path / "weights" / "pointer.pth"
    target = finetune.serving_repository(tmp_path / "repository-x", weights)
    pointer = read_config(target, "pointer")
    assert pointer.parameters["weights"].string_value == str(weights.resolve())
    assert "score_thresholds" not in pointer.parameters
    router = read_config(target, "inspect")
    assert router.parameters["detectors"].string_value == "pointer=POINTER_IMAGE"
    assert router.parameters["default_models"].string_value == "pointer"
    # The other weights are linked, not copied; the checkout's own configs are untouched.
    assert (target / "insulator" / "weights").is_symlink()
    assert (target / "insulator" / "weights").resolve() == (REPOSITORY / "insulator" / "weights")
    served = read_config(REPOSITORY, "pointer")
    assert served.parameters["weights"].string_value != str(weights.resolve())


def _results(found: float, fraction_median: float, extra_status: bool = True) -> dict[str, Any]:
    """A small bench.evaluate results.json for the pointer model."""
    readings = [
        {"set": "your set", "name": FRACTION_READ, "value": 0.9, "kind": "share",
         "detail": "90/100", "goal": None, "at_most": False},
        {"set": "your set", "name": "fraction error median", "value": fraction_median,
         "kind": "percent", "detail": "of span", "goal": None, "at_most": False},
        {"set": "your set", "name": OK_FAR_OFF, "value": 2, "kind": "count", "detail": "",
         "goal": None, "at_most": False},
    ]  # fmt: skip
    if extra_status:
        readings.append(
            {"set": "your set", "name": "status: ok", "value": 90, "kind": "count",
             "detail": "of 100 gauges", "goal": None, "at_most": False}
        )  # fmt: skip
    return {
        "failed_images": 0,
        "classes": {
            "pointer": {"AP": 0.5, "AP50": 0.8, "mask AP50": 0.7, "found": found, "objects": 120},
            "dial": {"AP": 0.6, "AP50": 0.9, "mask AP50": 0.85, "found": 0.99, "objects": 120},
        },
        "readings": readings,
    }


def test_the_table_pairs_the_weights_line_by_line_against_issue_36s_goals() -> None:
    goals, max_goals = finetune.gauge_goals()
    below, above = goals["pointer found"] - 0.05, 1.0
    median_goal = max_goals["fraction error median"]
    measured = {
        finetune.DEMO: _results(below, median_goal * 4),
        finetune.FINE_TUNED: _results(above, median_goal / 2),
    }
    figures = finetune.comparison_figures(measured, goals, max_goals)
    by_line = {(f.set, f.name): f for f in figures}

    assert by_line[("demo", "pointer found")].passed is False
    assert by_line[("fine-tuned", "pointer found")].passed is True
    assert by_line[("fine-tuned", "pointer found")].goal == goals["pointer found"]
    assert by_line[("demo", "fraction error median")].passed is False
    assert by_line[("fine-tuned", "fraction error median")].at_most
    assert by_line[("fine-tuned", "fraction error median")].passed is True
    # An ok reading far off fails its goal of none in both.
    assert by_line[("fine-tuned", OK_FAR_OFF)].passed is False
    # AP50 has no goal on the gauges; the mask's is shown too.
    assert by_line[("demo", "dial AP50 (mask)")].value == 0.85
    assert by_line[("demo", "dial AP50 (box)")].goal is None
    # The per-status lines repeat the readings' detail: left out.
    assert not any(f.name.startswith("status: ") for f in figures)
    # Each figure's demo line comes right before its fine-tuned one.
    names = [f.name for f in figures]
    assert names[0::2] == names[1::2]
    assert [f.set for f in figures[:2]] == ["demo", "fine-tuned"]

    table = format_table(figures).splitlines()
    [demo_line] = [line for line in table if line.startswith("demo") and "pointer found" in line]
    [tuned_line] = [
        line for line in table if line.startswith("fine-tuned") and "pointer found" in line
    ]
    assert demo_line.rstrip().endswith("FAIL") and tuned_line.rstrip().endswith("pass")
    assert "100.0% (of 120)" in tuned_line


def test_a_failed_evaluation_shows_not_available_and_fails() -> None:
    goals, max_goals = finetune.gauge_goals()
    measured = {
        finetune.DEMO: {"error": "the server did not start"},
        finetune.FINE_TUNED: _results(1.0, 0.1, extra_status=False),
    }
    figures = finetune.comparison_figures(measured, goals, max_goals)
    demo = [f for f in figures if f.set == "demo"]
    assert demo and all(f.value is None for f in demo)
    [found] = [f for f in demo if f.name == "pointer found"]
    assert found.passed is False
    assert "n/a" in format_table([found])


def test_the_wall_time_is_held_to_twenty_minutes() -> None:
    assert finetune.wall_time_figure(19.5 * 60).passed is True
    over = finetune.wall_time_figure(20.5 * 60, "1000 iterations")
    assert over.passed is False and over.set == "fine-tuned"
    assert over.value == pytest.approx(20.5)


def test_a_model_that_did_not_load_is_named_with_its_error() -> None:
    log = "\n".join(
        [
            'I1207 15:42:36.065446 20063 pb_stub.cc:366] "Failed to initialize Python stub"',
            "E1207 15:42:38.781560 20063 model_lifecycle.cc:642] \"failed to load 'pointer' "
            "version 1: Internal: CheckpointError: weights file w.pth does not fit the model: 10 "
            'weights missing\\n\\nAt:\\n  /x/model.py(52): initialize\\n"',
            "E1207 15:42:39.000000 20063 model_lifecycle.cc:642] \"failed to load 'pointer' "
            'version 1: a second attempt"',
            'I1207 15:42:47.341692 20063 server.cc:345] "Timeout 24: Found 0 live models"',
            "error: creating server: Internal - failed to load all models",
        ]
    )
    assert finetune.load_failures(log) == [
        "pointer: Internal: CheckpointError: weights file w.pth does not fit the model: 10 "
        "weights missing"
    ]
    assert finetune.load_failures("error: creating server: Internal - failed to load all") == []
