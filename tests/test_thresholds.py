"""Per-class score thresholds: chosen on hand-made detections, written, read back by the
server's loader, refused when wrong, and the whole choice run against a scripted router; no
server (seconds)."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from bench.accuracy import __main__ as runner
from bench.accuracy.thresholds import (
    FLOOR_FILE,
    Choice,
    CurvePoint,
    ScoredClass,
    at_threshold,
    choose_threshold,
    combine,
    format_choices,
    format_curve,
    match_class,
    negatives,
    pr_curve,
    thresholds_path,
    thresholds_yaml,
    weights_digest,
    write_floor_repository,
)
from bls.repository import class_names, model_tensors
from pipelines.detector import ScoreThresholdsError, load_score_thresholds
from server.launch import REPO_ROOT
from tests.test_accuracy import HEIGHT, WIDTH, _ScriptedRouter, _write_scripted_set

REPOSITORY = REPO_ROOT / "repository"


def _scored(pairs: list[tuple[float, bool]], objects: int) -> ScoredClass:
    return ScoredClass(tuple(s for s, _ in pairs), tuple(c for _, c in pairs), objects)


# Precision at each cut, highest score first: 1/1, 2/2, 2/3, 3/4, 4/5, 4/6, 4/7, 5/8.
DIPPING = _scored(
    [
        (0.4, False),
        (0.9, True),
        (0.6, True),
        (0.8, True),
        (0.2, True),
        (0.7, False),
        (0.5, True),
        (0.3, False),
    ],
    objects=6,
)


def _just_above(threshold: float | None, score: float) -> bool:
    """Whether ``threshold`` leaves a float32 ``score`` out and keeps anything a little above."""
    return (
        threshold is not None
        and score < threshold
        and np.float32(threshold) > np.float32(score)
        and threshold - score < 1e-6
    )


def test_the_lowest_score_that_keeps_the_precision_is_chosen() -> None:
    # 0.75 is kept at 0.6 and again at 0.5 (4/5), after a dip at 0.7 (2/3): the lowest wins,
    # and the threshold is as low as that cut goes, just above the wrong one at 0.4.
    choice = choose_threshold("dial", DIPPING, 0.75)
    assert _just_above(choice.threshold, 0.4)
    assert choice.point == CurvePoint(choice.threshold, 5, 4, 6)
    assert choice.point.precision == 0.8 and choice.point.recall == pytest.approx(4 / 6)
    assert choice.note == ""
    # 0.95: only the two best are all right.
    strict = choose_threshold("dial", DIPPING, 0.95)
    assert _just_above(strict.threshold, 0.7)
    assert strict.point == CurvePoint(strict.threshold, 2, 2, 6)
    # Every detection at 0.625 (5/8): down to the floor they were collected from, and a note.
    loose = choose_threshold("dial", DIPPING, 0.6, floor=0.05)
    assert loose.threshold == 0.05
    assert loose.point == CurvePoint(0.05, 8, 5, 6)
    assert "lowest score collected" in loose.note


def test_precision_is_met_at_the_chosen_score_and_missed_just_below() -> None:
    choice = choose_threshold("dial", DIPPING, 0.75)
    assert at_threshold(DIPPING, choice.threshold).precision == 0.8
    below = at_threshold(DIPPING, 0.4)  # the next score down is a wrong one
    assert (below.detections, below.correct) == (6, 4)
    assert below.precision < 0.75


def test_a_class_that_never_reaches_the_precision_says_so() -> None:
    scored = _scored([(0.9, False), (0.8, True), (0.7, False)], objects=2)
    choice = choose_threshold("defect", scored, 0.95)
    assert choice.threshold is None and choice.point is None
    assert choice.note == (
        "precision never reaches 0.95: at best 0.500 at score >= 0.8000 (1/2 detections right)"
    )
    assert format_choices([choice], 0.95) == f"defect: NO THRESHOLD: {choice.note}"
    with pytest.raises(ValueError, match="class 'defect' has no threshold to write"):
        thresholds_yaml("insulator", [choice], [])
    nothing = choose_threshold("defect", _scored([], objects=3), 0.95)
    assert (nothing.threshold, nothing.note) == (None, "no detection of this class at all")
    no_objects = choose_threshold("defect", _scored([(0.9, False)], objects=0), 0.95)
    assert no_objects.note == "no object of this class on the photos judged"
    for precision in (0.0, 1.5):
        with pytest.raises(ValueError, match=r"must be in \(0, 1\]"):
            choose_threshold("defect", DIPPING, precision)


def test_equal_scores_are_cut_together() -> None:
    scored = _scored([(0.9, True), (0.7, True), (0.7, False), (0.5, True)], objects=3)
    assert pr_curve(scored) == [
        CurvePoint(0.9, 1, 1, 3),
        CurvePoint(0.7, 3, 2, 3),
        CurvePoint(0.5, 4, 3, 3),
    ]
    # A cut between the two 0.7s does not exist: 0.75 precision is met only at 0.5 (all, down
    # to the floor), 0.9 only above both 0.7s.
    assert choose_threshold("pointer", scored, 0.75, floor=0.3).threshold == 0.3
    above = choose_threshold("pointer", scored, 0.9)
    assert _just_above(above.threshold, 0.7)
    assert at_threshold(scored, above.threshold) == CurvePoint(above.threshold, 1, 1, 3)


def _annotation(n: int, image_id: int, category_id: int, box: list[float]) -> dict[str, Any]:
    return {"id": n, "image_id": image_id, "category_id": category_id, "bbox": box}


def _detection(image_id: int, category_id: int, score: float, box: list[float]) -> dict[str, Any]:
    return {"image_id": image_id, "category_id": category_id, "score": score, "bbox": box}


def test_detections_are_matched_one_to_one_best_score_first() -> None:
    truth = {
        "images": [{"id": 1}, {"id": 2}, {"id": 3}],
        "annotations": [
            _annotation(1, 1, 1, [0, 0, 10, 10]),
            _annotation(2, 1, 1, [8, 0, 10, 10]),
            _annotation(3, 2, 1, [0, 0, 10, 10]),
            _annotation(4, 1, 2, [50, 50, 10, 10]),  # another class
        ],
    }
    detections = [
        # Image 1: the best takes the object it overlaps most; the second, which overlaps
        # that one most too, takes the other one (IoU 0.5 or more) ...
        _detection(1, 1, 0.9, [1, 0, 10, 10]),
        _detection(1, 1, 0.8, [6, 0, 10, 10]),
        # ... and a third finds both taken.
        _detection(1, 1, 0.7, [0, 0, 10, 10]),
        # Image 2: shifted too far (IoU 1/3).
        _detection(2, 1, 0.6, [5, 0, 10, 10]),
        # Image 3 holds no object of the class.
        _detection(3, 1, 0.5, [0, 0, 10, 10]),
        # Another class and a photo outside the set do not count.
        _detection(1, 2, 0.99, [50, 50, 10, 10]),
        _detection(4, 1, 0.99, [0, 0, 10, 10]),
    ]
    scored = match_class(truth, detections, 1)
    assert scored == _scored(
        [(0.9, True), (0.8, True), (0.7, False), (0.6, False), (0.5, False)], objects=3
    )


def test_every_detection_on_a_photo_without_the_class_is_wrong() -> None:
    images = [{"id": 1}, {"id": 2}]
    detections = [
        _detection(1, 3, 0.8, [0, 0, 5, 5]),
        _detection(2, 3, 0.4, [0, 0, 5, 5]),
        _detection(2, 4, 0.9, [0, 0, 5, 5]),  # another class
        _detection(5, 3, 0.9, [0, 0, 5, 5]),  # a photo left out (it shows the class)
    ]
    assert negatives(images, detections, 3) == _scored([(0.8, False), (0.4, False)], objects=0)
    labelled = _scored([(0.7, True)], objects=1)
    together = combine([labelled, negatives(images, detections, 3)])
    assert together == _scored([(0.7, True), (0.8, False), (0.4, False)], objects=1)
    # The negatives' best outranks the right one: no precision above 1/2 anywhere.
    assert choose_threshold("insulator", together, 0.9).threshold is None


def test_the_printed_curve_marks_the_choice() -> None:
    choice = choose_threshold("dial", DIPPING, 0.75)
    text = format_curve("dial", DIPPING, choice)
    lines = text.splitlines()
    assert lines[0] == "dial: 8 detections, 6 objects"
    chosen = next(line for line in lines if line.endswith("<- chosen"))
    assert chosen.split()[:5] == ["0.40000004", "5", "4", "0.800", "0.667"]
    # The round cuts, among them 0.4 itself, which keeps the wrong detection at 0.4.
    assert "        0.40           6       4      0.667   0.667" in lines
    assert lines[2].split()[0] == "0.05" and lines[-1].split()[0] == "0.99"
    assert format_choices([choice], 0.75) == (
        "dial: 0.40000004 (precision 0.800 >= 0.75, 4/5 right; recall 0.667, 4/6 objects)"
    )


def test_written_thresholds_are_the_scores_to_the_last_bit(tmp_path: Path) -> None:
    # Scores come from the server as float32 values.
    pointer_score = float(np.float32(0.61234567))
    dial_score = float(np.float32(0.1))
    choices = [
        Choice("pointer", pointer_score, CurvePoint(pointer_score, 10, 10, 11)),
        Choice("dial", dial_score, CurvePoint(dial_score, 20, 19, 19)),
    ]
    path = tmp_path / "score_thresholds.yaml"
    path.write_text(thresholds_yaml("pointer", choices, ["Chosen today.", "On photos 300-599."]))
    text = path.read_text()
    assert text.startswith("# Per-class score thresholds of the pointer model")
    assert "# Chosen today.\n# On photos 300-599.\n" in text
    assert "# dial: precision 0.950 (19/20), recall 1.000 (19/19)" in text
    loaded = load_score_thresholds(path, ["pointer", "dial"])
    assert loaded == {"pointer": pointer_score, "dial": dial_score}
    # The server compares in float32: the detection at the threshold is kept.
    assert np.float32(loaded["pointer"]) == np.float32(0.61234567)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("pointer: 0.5\ndial: 0.5\nneedle: 0.5\n", r"unknown class\(es\) \['needle'\]"),
        ("pointer: 0.5\n", r"no threshold for class\(es\) \['dial'\]"),
        ("pointer: 0.5\ndial: 1.2\n", r"'dial' must be a number in \[0, 1\], got 1.2"),
        ("pointer: -0.1\ndial: 0.5\n", r"'pointer' must be a number in \[0, 1\], got -0.1"),
        ("pointer: .nan\ndial: 0.5\n", r"'pointer' must be a number in \[0, 1\], got nan"),
        ("pointer: yes\ndial: 0.5\n", r"'pointer' must be a number in \[0, 1\], got True"),
        ("pointer: high\ndial: 0.5\n", r"'pointer' must be a number in \[0, 1\], got 'high'"),
        ("- pointer\n- dial\n", "expected a mapping of class name to score threshold, got list"),
        ("", "expected a mapping of class name to score threshold, got NoneType"),
        ("pointer: [0.5\n", "not a YAML file"),
    ],
)
def test_a_bad_thresholds_file_is_refused_naming_it(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "score_thresholds.yaml"
    path.write_text(content)
    with pytest.raises(ScoreThresholdsError, match=message) as error:
        load_score_thresholds(path, ["pointer", "dial"])
    assert str(path) in str(error.value)


def test_a_missing_thresholds_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ScoreThresholdsError, match=f"score thresholds file not found: {path}"):
        load_score_thresholds(path, ["pointer"])


def test_thresholds_at_the_ends_of_the_range_are_served(tmp_path: Path) -> None:
    path = tmp_path / "score_thresholds.yaml"
    path.write_text("dial: 1\npointer: 0\n")
    assert load_score_thresholds(path, ["pointer", "dial"]) == {"pointer": 0.0, "dial": 1.0}


@pytest.mark.parametrize("model", ["pointer", "insulator"])
def test_the_shipped_thresholds_fit_their_models(model: str) -> None:
    path = thresholds_path(REPOSITORY, model)
    assert path == REPOSITORY / model / "score_thresholds.yaml"
    names = class_names(REPOSITORY, model)
    thresholds = load_score_thresholds(path, names)
    assert list(thresholds) == names


def test_a_config_without_thresholds_says_so(tmp_path: Path) -> None:
    (tmp_path / "pointer").mkdir()
    (tmp_path / "pointer" / "config.pbtxt").write_text('name: "pointer"\nbackend: "python"\n')
    with pytest.raises(ValueError, match="has no score_thresholds parameter"):
        thresholds_path(tmp_path, "pointer")


def test_weights_digest_is_the_files_sha256(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    path.write_bytes(b"abc")
    assert weights_digest(path) == "ba7816bf8f01"


def test_the_floor_repository_answers_every_class_from_the_floor(tmp_path: Path) -> None:
    copy = write_floor_repository(REPOSITORY, tmp_path / "floor", 0.05)
    for model in ("pointer", "insulator"):
        shipped = model_tensors(REPOSITORY, model).parameters
        parameters = model_tensors(copy, model).parameters
        assert parameters == {**shipped, "score_thresholds": FLOOR_FILE}
        names = class_names(copy, model)
        floor = load_score_thresholds(copy / model / FLOOR_FILE, names)
        assert floor == dict.fromkeys(names, 0.05)
        assert (copy / model / "weights").is_symlink()
        assert (copy / model / "weights").resolve() == (REPOSITORY / model / "weights").resolve()
        # The shipped thresholds are copied, untouched.
        assert (copy / model / "score_thresholds.yaml").read_text() == (
            REPOSITORY / model / "score_thresholds.yaml"
        ).read_text()
    assert (copy / "inspect" / "config.pbtxt").read_text() == (
        REPOSITORY / "inspect" / "config.pbtxt"
    ).read_text()
    # Written again from scratch.
    assert write_floor_repository(REPOSITORY, tmp_path / "floor", 0.1) == copy
    assert yaml.safe_load((copy / "pointer" / FLOOR_FILE).read_text())["dial"] == 0.1
    with pytest.raises(ValueError, match=r"floor score must be in \[0, 1\], got 1.5"):
        write_floor_repository(REPOSITORY, tmp_path / "bad", 1.5)


# --- the choice end to end, against a scripted router ------------------------------------------

MEASURED = 2  # stands in for the 300 photos make accuracy measures


def _gauge_calibration() -> dict[str, Any]:
    """Photos 3 and 4 (after the measured two): a gauge, and a photo without one."""
    images = [
        {"id": i, "file_name": f"{i:06d}.jpg", "height": HEIGHT, "width": WIDTH, "truth": truth}
        for i, truth in (
            (1, {"gauges": [], "strings": 0}),
            (2, {"gauges": [], "strings": 0}),
            (3, {"gauges": [{}], "strings": 0}),
            (4, {"gauges": [], "strings": 0}),
        )
    ]
    annotations = [_annotation(1, 3, 1, [40, 15, 4, 25]), _annotation(2, 3, 2, [10, 10, 60, 60])]
    categories = [{"id": 1, "name": "pointer"}, {"id": 2, "name": "dial"}]
    return {"images": images, "annotations": annotations, "categories": categories}


def _insulator_calibration() -> dict[str, Any]:
    """Photos 3 and 4: a string with a defect, and a negative with a meter (unlabelled)."""
    images = [
        {"id": i, "file_name": f"{i:06d}.jpg", "height": HEIGHT, "width": WIDTH, "truth": truth}
        for i, truth in (
            (1, {"strings": 0, "meters": 0}),
            (2, {"strings": 0, "meters": 0}),
            (3, {"strings": 1, "meters": 0}),
            (4, {"strings": 0, "meters": 1}),
        )
    ]
    annotations = [_annotation(1, 3, 1, [20, 10, 30, 90]), _annotation(2, 3, 2, [25, 40, 20, 15])]
    categories = [{"id": 1, "name": "insulator"}, {"id": 2, "name": "defect"}]
    return {"images": images, "annotations": annotations, "categories": categories}


ANSWERS = {
    # Photo 1 is measured, not chosen on: a wrong needle there must not count.
    b"gauges:1": {"pointer": [("pointer", 0.95, 100, 100, 5, 5)]},
    b"gauges:3": {
        "pointer": [
            ("pointer", 0.9, 40, 15, 4, 25),
            ("dial", 0.95, 10, 10, 60, 60),
            ("dial", 0.6, 90, 50, 30, 30),
        ],
        # On a photo without strings: wrong.
        "insulator": [("insulator", 0.5, 0, 0, 20, 60)],
    },
    b"gauges:4": {"pointer": [("pointer", 0.7, 10, 10, 5, 30)]},
    b"insulators:3": {
        "insulator": [("insulator", 0.8, 20, 10, 30, 90), ("defect", 0.4, 25, 40, 20, 15)],
        # On a photo without meters: wrong.
        "pointer": [("dial", 0.3, 100, 10, 30, 30)],
    },
    b"insulators:4": {
        "insulator": [("defect", 0.45, 60, 60, 10, 10)],
        # A meter unlabelled for the pointer model: this photo is left out for it.
        "pointer": [("pointer", 0.99, 60, 20, 4, 20)],
    },
}


@pytest.fixture()
def choosing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[list[str], Path, _ScriptedRouter]]:
    """A copy of the repository to write into, calibration sets and a scripted router."""
    repository = tmp_path / "repository"
    shutil.copytree(REPOSITORY, repository, ignore=shutil.ignore_patterns("weights", "__pycache__"))
    for model in ("pointer", "insulator"):
        (repository / model / "weights").mkdir()
        (repository / model / "weights" / "demo.pth").write_bytes(model.encode())
    data = tmp_path / "data"
    _write_scripted_set(data / "gauges" / "calibration", _gauge_calibration(), "gauges")
    _write_scripted_set(data / "insulators" / "calibration", _insulator_calibration(), "insulators")
    router = _ScriptedRouter(ANSWERS)
    served: list[Path] = []

    @contextlib.contextmanager
    def server(url: str | None, protocol: str, folder: Path, log: Path) -> Iterator[Any]:
        assert url is None
        served.append(folder)
        yield router

    monkeypatch.setattr(runner, "REPOSITORY", repository)
    monkeypatch.setattr(runner, "MEASURED_PHOTOS", MEASURED)
    monkeypatch.setattr(runner, "_server", server)
    argv = ["--choose-thresholds", "--data", str(data), "--out", str(tmp_path / "out")]
    yield argv, repository, router
    # What was served is the floor copy of the repository.
    assert served == [tmp_path / "out" / "repository-floor"]
    parameters = model_tensors(served[0], "pointer").parameters
    assert parameters["score_thresholds"] == FLOOR_FILE


def _f32(value: float) -> float:
    return float(np.float32(value))


def test_thresholds_are_chosen_and_written_where_the_configs_name_them(
    choosing: tuple[list[str], Path, _ScriptedRouter], capsys: pytest.CaptureFixture[str]
) -> None:
    argv, repository, router = choosing
    shipped = {m: (repository / m / "score_thresholds.yaml").read_text() for m in ("pointer",)}
    # At 0.95 the defects never get there (the best one is wrong): the insulator model's
    # file stays as it is, the pointer model's is written.
    insulator_before = (repository / "insulator" / "score_thresholds.yaml").read_text()
    assert runner.main([*argv, "--target-precision", "0.95"]) == 1
    assert sorted(router.asked) == [b"gauges:3", b"gauges:4", b"insulators:3", b"insulators:4"]
    out = capsys.readouterr()
    assert "defect: NO THRESHOLD: precision never reaches 0.95" in out.out
    assert "insulator: NOT WRITTEN" in out.err
    assert (repository / "insulator" / "score_thresholds.yaml").read_text() == insulator_before
    pointer_file = repository / "pointer" / "score_thresholds.yaml"
    assert pointer_file.read_text() != shipped["pointer"]
    written = load_score_thresholds(pointer_file, ["pointer", "dial"])
    # The unlabelled meter's needle (0.99) is left out, or no needle would reach 0.95; each
    # threshold is just above the wrong detection below the right ones.
    assert set(written) == {"pointer", "dial"}
    assert _just_above(written["pointer"], _f32(0.7))
    assert _just_above(written["dial"], _f32(0.6))
    # The comments as one text, however they are wrapped.
    header = " ".join(
        line.removeprefix("#").strip()
        for line in pointer_file.read_text().splitlines()
        if line.startswith("#")
    )
    assert (
        "python -m bench.accuracy --choose-thresholds --target-precision 0.95 --floor 0.05"
        in header
    )
    assert "on photos 2-3 of training.data's held-out split" in header
    digest = weights_digest(pointer_file.parent / "weights" / "demo.pth")
    assert f"with weights/demo.pth (sha256 {digest})" in header
    results = json.loads((Path(argv[-1]) / "thresholds.json").read_text())
    by_class = {c["class_name"]: c for c in results["choices"]}
    assert by_class["dial"]["threshold"] == written["dial"]
    assert by_class["insulator"]["threshold"] is not None
    assert by_class["defect"]["threshold"] is None
    assert (Path(argv[-1]) / "threshold_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "<- chosen" in out.out


def test_a_lower_precision_writes_both_files(
    choosing: tuple[list[str], Path, _ScriptedRouter],
) -> None:
    argv, repository, _ = choosing
    assert runner.main([*argv, "--target-precision", "0.5"]) == 0
    pointer = load_score_thresholds(
        repository / "pointer" / "score_thresholds.yaml", ["pointer", "dial"]
    )
    insulator = load_score_thresholds(
        repository / "insulator" / "score_thresholds.yaml", ["insulator", "defect"]
    )
    # Half right: every needle, string and defect down to the floor; the dials above the
    # wrong one at 0.3 (with it, a third).
    assert pointer["pointer"] == insulator["insulator"] == insulator["defect"] == 0.05
    assert _just_above(pointer["dial"], _f32(0.3))
    assert all(0.0 <= v <= 1.0 and not math.isnan(v) for v in {**pointer, **insulator}.values())


def test_a_limited_choice_is_a_trial_that_writes_nothing(
    choosing: tuple[list[str], Path, _ScriptedRouter], capsys: pytest.CaptureFixture[str]
) -> None:
    argv, repository, router = choosing
    before = {
        m: (repository / m / "score_thresholds.yaml").read_text() for m in ("pointer", "insulator")
    }
    assert runner.main([*argv, "--target-precision", "0.5", "--limit", "1"]) == 0
    assert sorted(router.asked) == [b"gauges:3", b"insulators:3"]
    for model, text in before.items():
        assert (repository / model / "score_thresholds.yaml").read_text() == text
    assert "--limit 1 is a trial: no thresholds written" in capsys.readouterr().err
