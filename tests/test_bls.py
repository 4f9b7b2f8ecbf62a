"""bls/ (routing, merging, repository reading) and clients/answer.py, in process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bls.merge import KeypointLayout, merge_answer
from bls.repository import class_names, keypoint_names, model_tensors
from bls.routing import RoutingError, choose_detectors, parse_detectors
from clients.answer import draw_answer, format_answer, format_reading, parse_answer
from pipelines.tensors import Detections
from server.launch import REPO_ROOT

DETECTORS = ["pointer", "insulator"]
REPOSITORY = REPO_ROOT / "repository"


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("pointer", ["pointer"]),
        ("insulator", ["insulator"]),
        ("both", ["pointer", "insulator"]),
        ("insulator,pointer", ["pointer", "insulator"]),
        (None, ["pointer", "insulator"]),
        ("  ", ["pointer", "insulator"]),
    ],
)
def test_choose_detectors(requested: str | None, expected: list[str]) -> None:
    assert choose_detectors(requested, DETECTORS, default="both") == expected


@pytest.mark.parametrize("requested", ["needle", "pointer,nope", "BOTH", ","])
def test_unknown_model_names_the_choices(requested: str) -> None:
    with pytest.raises(RoutingError, match="choose one of pointer, insulator, both"):
        choose_detectors(requested, DETECTORS, default="both")


def test_router_reads_names_from_the_repository() -> None:
    preprocess = model_tensors(REPOSITORY, "preprocess")
    pointer = model_tensors(REPOSITORY, "pointer")
    assert preprocess.inputs == ("JPEG",)
    assert preprocess.outputs == ("POINTER_IMAGE", "INSULATOR_IMAGE", "ORIGINAL_SIZE")
    assert pointer.inputs == ("IMAGE", "ORIGINAL_SIZE")
    assert pointer.outputs[:3] == ("BOXES", "SCORES", "CLASSES")
    assert class_names(REPOSITORY, "pointer") == ["pointer", "dial"]
    assert class_names(REPOSITORY, "insulator") == ["insulator", "defect"]
    inspect = model_tensors(REPOSITORY, "inspect")
    assert parse_detectors(inspect.parameters["detectors"]) == {
        "pointer": "POINTER_IMAGE",
        "insulator": "INSULATOR_IMAGE",
    }
    with pytest.raises(FileNotFoundError, match="no model 'missing'"):
        model_tensors(REPOSITORY, "missing")


@pytest.mark.parametrize("text", ["pointer", "pointer=", "=IMAGE", "a=X,a=Y", "a=X,"])
def test_detectors_parameter_errors_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="detectors: "):
        parse_detectors(text)


def pointer_result() -> Detections:
    rects = np.array([[10, 20, 3, 2], [0, 0, 2, 2]], dtype=np.int32)
    masks = np.array([1, 0, 1, 0, 1, 1, 1, 1, 0, 0], dtype=np.uint8)
    return Detections(
        boxes=np.array([[10.2, 20.5, 12.9, 21.7], [0, 0, 1.5, 1.5]], np.float32),
        scores=np.array([0.9, 0.3], np.float32),
        classes=np.array([0, 1], np.int32),
        mask_rects=rects,
        masks=masks,
    )


def test_merge_tags_results_by_model_and_keeps_masks_out_of_json() -> None:
    insulator = Detections(
        np.array([[1, 2, 3, 4]], np.float32), np.array([0.5], np.float32), np.array([1], np.int32)
    )
    document, masks = merge_answer(
        30,
        40,
        {"pointer": pointer_result(), "insulator": insulator},
        {"pointer": ["pointer", "dial"], "insulator": ["insulator", "defect"]},
    )
    parsed = json.loads(document)
    assert parsed["image"] == {"height": 30, "width": 40}
    pointer = parsed["models"]["pointer"]
    assert pointer["status"] == "ok"
    assert [i["class"] for i in pointer["instances"]] == ["pointer", "dial"]
    assert [i["mask"] for i in pointer["instances"]] == [
        {"rect": [10, 20, 3, 2], "offset": 0},
        {"rect": [0, 0, 2, 2], "offset": 6},
    ]
    assert parsed["models"]["insulator"]["instances"][0]["class"] == "defect"
    assert "mask" not in parsed["models"]["insulator"]["instances"][0]
    assert masks.dtype == np.uint8 and masks.size == 10


def test_a_failed_detector_keeps_the_other_result() -> None:
    document, _ = merge_answer(
        30,
        40,
        {"pointer": pointer_result(), "insulator": "insulator: stub died"},
        {"pointer": ["pointer", "dial"], "insulator": ["insulator", "defect"]},
    )
    answer = parse_answer(document, np.ones(10, np.uint8))
    assert answer.models["pointer"].status == "ok"
    assert len(answer.models["pointer"].instances) == 2
    assert answer.models["insulator"].status == "error"
    assert answer.models["insulator"].error == "insulator: stub died"
    assert "insulator: ERROR insulator: stub died" in format_answer(answer)


def test_parse_answer_cuts_masks_back_out() -> None:
    result = pointer_result()
    document, masks = merge_answer(30, 40, {"pointer": result}, {"pointer": ["pointer", "dial"]})
    answer = parse_answer(document, masks)
    first, second = answer.models["pointer"].instances
    np.testing.assert_array_equal(first.mask, [[1, 0, 1], [0, 1, 1]])
    assert first.mask_origin == (10, 20)
    np.testing.assert_array_equal(second.mask, [[1, 1], [0, 0]])
    assert first.box == pytest.approx((10.2, 20.5, 12.9, 21.7), abs=1e-5)


def test_draw_marks_boxes_and_masks() -> None:
    # One dial, box (20, 30)-(60, 70); its mask is the left 10 columns of the box.
    mask = np.zeros((40, 40), np.uint8)
    mask[:, :10] = 1
    dial = Detections(
        boxes=np.array([[20, 30, 60, 70]], np.float32),
        scores=np.array([0.9], np.float32),
        classes=np.array([1], np.int32),
        mask_rects=np.array([[20, 30, 40, 40]], np.int32),
        masks=mask.reshape(-1),
    )
    document, masks = merge_answer(80, 90, {"pointer": dial}, {"pointer": ["pointer", "dial"]})
    photo = Image.new("RGB", (90, 80), (0, 0, 0))
    drawn = np.asarray(draw_answer(photo, parse_answer(document, masks))).sum(axis=2)
    assert drawn.shape == (80, 90)
    assert (drawn[34:66, 23:29] > 0).all(), "the mask is tinted"
    assert (drawn[34:66, 32:57] == 0).all(), "the box outside the mask is not"
    for edge in (drawn[30, 20:61], drawn[70, 20:61], drawn[30:71, 20], drawn[30:71, 60]):
        assert (edge > 0).all(), "the box is outlined on all four sides"
    assert (drawn[19:29, 20:40] > 0).any(), "the label sits above the box"
    assert (drawn[:, 65:] == 0).all() and (drawn[72:] == 0).all(), "nothing outside the box"
    assert np.asarray(draw_answer(photo, parse_answer(document, masks), min_score=2)).sum() == 0


READINGS = [
    {
        "dial": 1,
        "needle": 0,
        "center": [30.0, 30.0],
        "needle_angle_deg": 90.0,
        "fraction": 0.63,
        "value": 1.008,
        "unit": "MPa",
        "status": "ok",
    },
    {
        "dial": 1,
        "needle": None,
        "center": [10.0, 10.0],
        "needle_angle_deg": None,
        "fraction": None,
        "value": None,
        "unit": "MPa",
        "status": "no needle",
    },
]


def test_readings_cross_the_answer_as_sent() -> None:
    names = {"pointer": ["pointer", "dial"]}
    document, masks = merge_answer(60, 80, {"pointer": pointer_result()}, names, READINGS)
    assert json.loads(document)["readings"] == READINGS, "on the wire"
    answer = parse_answer(document, masks)
    assert answer.readings == READINGS
    without, _ = merge_answer(60, 80, {"pointer": pointer_result()}, names)
    assert "readings" not in json.loads(without)
    assert parse_answer(without, masks).readings is None
    text = format_answer(answer)
    assert "dial 0: 1.01 MPa (63% of scale, needle 90.0 deg)" in text
    assert "dial 1: no reading (no needle)" in text
    uncalibrated = {**READINGS[0], "fraction": None, "value": None, "unit": None}
    assert format_reading(0, uncalibrated) == "dial 0: needle 90.0 deg (no calibration)"


def test_draw_marks_the_reading() -> None:
    result = pointer_result()
    # A larger dial box so that the needle line has room: the second instance is the dial.
    result.boxes[1] = [10, 10, 50, 50]
    names = {"pointer": ["pointer", "dial"]}
    document, masks = merge_answer(60, 80, {"pointer": result}, names, READINGS[:1])
    photo = Image.new("RGB", (80, 60), (0, 0, 0))
    with_reading = np.asarray(draw_answer(photo, parse_answer(document, masks)))
    document, masks = merge_answer(60, 80, {"pointer": result}, names)
    without = np.asarray(draw_answer(photo, parse_answer(document, masks)))
    # The needle's direction: 90 degrees is 3 o'clock, a line right of the center.
    assert with_reading[30, 45].tolist() == [255, 221, 0]
    assert without[30, 45].tolist() == [0, 0, 0]
    assert with_reading[30, 15].tolist() == [0, 0, 0], "nothing left of the center"


@pytest.mark.parametrize("cli", ["bls_client.py", "ensemble_client.py"])
def test_clis_exit_2_on_a_missing_path(cli: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for path, message in ((tmp_path / "missing.jpg", "no such file"), (empty, "no .jpg/.jpeg")):
        run = subprocess.run(
            [sys.executable, str(REPO_ROOT / "clients" / cli), str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 2, run.stderr
        assert message in run.stderr


def test_a_cli_piped_into_head_ends_quietly() -> None:
    program = (
        "from clients.jpeg_client import run_cli\n"
        "def main():\n"
        "    for _ in range(10**6):\n"
        "        print('dial 0: 1.01 MPa')\n"
        "    return 0\n"
        "run_cli(main)\n"
    )
    cli = subprocess.Popen(
        [sys.executable, "-c", program],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert cli.stdout.readline() == "dial 0: 1.01 MPa\n"
    cli.stdout.close()  # as `| head -1` does
    error = cli.stderr.read()
    assert cli.wait(timeout=60) == 1
    assert error == ""


KEYPOINT_NAMES = ["scale_start", "scale_mid", "scale_end", "center"]


def keypoint_result() -> Detections:
    """:func:`pointer_result` from a model with a keypoint head: a needle, then a dial."""
    result = pointer_result()
    result.keypoints = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
    return result


DIALS_CARRY_KEYPOINTS = {"pointer": KeypointLayout(KEYPOINT_NAMES, frozenset({"dial"}))}


def test_merge_names_each_dials_keypoints() -> None:
    names = {"pointer": ["pointer", "dial"]}
    document, masks = merge_answer(
        30, 40, {"pointer": keypoint_result()}, names, keypoints=DIALS_CARRY_KEYPOINTS
    )
    needle, dial = json.loads(document)["models"]["pointer"]["instances"]
    assert "keypoints" not in needle, "needles carry no keypoints"
    assert dial["keypoints"] == {
        "scale_start": [12.0, 13.0, 14.0],
        "scale_mid": [15.0, 16.0, 17.0],
        "scale_end": [18.0, 19.0, 20.0],
        "center": [21.0, 22.0, 23.0],
    }
    parsed = parse_answer(document, masks).models["pointer"].instances
    assert parsed[0].keypoints is None
    assert parsed[1].keypoints == {name: tuple(v) for name, v in dial["keypoints"].items()}
    # Without the detector's layout, or without keypoints, the answer is as before.
    plain, _ = merge_answer(30, 40, {"pointer": pointer_result()}, names)
    no_layout, _ = merge_answer(30, 40, {"pointer": keypoint_result()}, names)
    no_keypoints, _ = merge_answer(
        30, 40, {"pointer": pointer_result()}, names, keypoints=DIALS_CARRY_KEYPOINTS
    )
    assert no_layout == no_keypoints == plain
    assert format_answer(parse_answer(document, masks)) == format_answer(parse_answer(plain, masks))


def test_merge_refuses_keypoints_that_do_not_fit_their_names() -> None:
    result = keypoint_result()
    result.keypoints = result.keypoints[:, :3]
    with pytest.raises(ValueError, match=r"pointer: KEYPOINTS has shape \[2, 3, 3\], expected"):
        merge_answer(
            30,
            40,
            {"pointer": result},
            {"pointer": ["pointer", "dial"]},
            None,
            DIALS_CARRY_KEYPOINTS,
        )


def test_router_reads_keypoint_names_from_the_yaml_its_detector_serves(tmp_path: Path) -> None:
    assert keypoint_names(REPOSITORY, "pointer") == KEYPOINT_NAMES
    assert keypoint_names(REPOSITORY, "insulator") == []
    pointer = tmp_path / "pointer"
    shutil.copytree(REPOSITORY / "pointer", pointer, ignore=shutil.ignore_patterns("weights"))
    served = pointer / "mask_rcnn_R18_FPN_demo.yaml"
    assert keypoint_names(tmp_path, "pointer") == KEYPOINT_NAMES
    assert class_names(tmp_path, "pointer") == ["pointer", "dial"]
    served.write_text(served.read_text().replace('"scale_mid"', '"scale_end"'))
    with pytest.raises(ValueError, match=f"{served}: KEYPOINT_NAMES must be"):
        keypoint_names(tmp_path, "pointer")


SCALED = {
    **READINGS[0],
    "scale": {"start_deg": 225.0, "end_deg": 135.0, "source": "seen"},
    "evidence": {"keypoint_score": 0.93},
}


@pytest.mark.parametrize(
    ("reading", "line"),
    [
        (
            SCALED,
            "dial 0: 1.01 MPa [ok] (63% of scale, needle 90.0 deg, scale seen 225.0 to 135.0 deg)",
        ),
        (
            {**SCALED, "value": None, "unit": None},
            "dial 0: 63% of scale [ok] (needle 90.0 deg, scale seen 225.0 to 135.0 deg)",
        ),
        (
            {**SCALED, "status": "scale mismatch", "fraction": None, "value": None},
            "dial 0: no reading [scale mismatch] (needle 90.0 deg, scale seen 225.0 to 135.0 deg)",
        ),
        (
            {**SCALED, "scale": {"start_deg": 225, "end_deg": 135, "source": "calibration"}},
            "dial 0: 1.01 MPa [ok] (63% of scale, needle 90.0 deg, scale from calibration 225.0 "
            "to 135.0 deg)",
        ),
        (
            {**READINGS[1], "scale": None, "evidence": {}},
            "dial 0: no reading [no needle]",
        ),
    ],
)
def test_a_reading_with_a_scale_says_its_status_and_its_scale(reading: dict, line: str) -> None:
    assert format_reading(0, reading) == line


def test_draw_marks_the_scales_ends_and_the_arc_between_them() -> None:
    result = pointer_result()
    result.boxes[1] = [10, 10, 90, 90]
    # A dial centered at (50, 58), radius 28: its scale from 7:30 clockwise over 12 to 4:30.
    r = 28 / np.sqrt(2)
    dial = [[50 - r, 58 + r, 0.9], [50, 30, 0.9], [50 + r, 58 + r, 0.9], [50, 58, 0.9]]
    result.keypoints = np.array([np.zeros((4, 3)), dial], np.float32)
    names = {"pointer": ["pointer", "dial"]}
    document, masks = merge_answer(
        100, 100, {"pointer": result}, names, None, DIALS_CARRY_KEYPOINTS
    )
    photo = Image.new("RGB", (100, 100), (0, 0, 0))
    drawn = np.asarray(draw_answer(photo, parse_answer(document, masks)))
    assert drawn[78, 30].tolist() == [57, 255, 20], "the start, green"
    assert drawn[78, 70].tolist() == [255, 0, 255], "the end, magenta"
    arc = (0, 229, 255)
    # Through 9, 12 and 3 o'clock, not through 6 o'clock (outside the scale).
    for y, x in ((58, 22), (30, 50), (58, 78)):
        assert (drawn[y - 1 : y + 2, x - 1 : x + 2] == arc).all(axis=2).any(), (y, x)
    assert not (drawn[83:89, 44:57] == arc).all(axis=2).any(), "no arc below the center"
    without = merge_answer(100, 100, {"pointer": result}, names)
    plain = np.asarray(draw_answer(photo, parse_answer(*without)))
    assert plain[78, 30].tolist() == [0, 0, 0] and plain[30, 50].tolist() == [0, 0, 0]
    # Below the score threshold nothing of it is drawn.
    hidden = np.asarray(draw_answer(photo, parse_answer(document, masks), min_score=0.5))
    assert hidden[78, 30].tolist() == [0, 0, 0] and hidden[30, 50].tolist() == [0, 0, 0]
