"""The held-out-only renderer (bench/accuracy/foreign.py): deterministic, labels exact against
the pixels it draws and against its own design parameters, and never imported by training."""

from __future__ import annotations

import ast
import itertools
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.accuracy import foreign
from bench.accuracy.foreign import DrawOptions, render_scene

REPO = Path(__file__).resolve().parents[1]
SEED = 5
# A pixel counts as drawn by a part when leaving the part out moves a channel by more than this.
CHANGED = 30


def _gauge_scenes(count: int) -> list[tuple[int, object]]:
    """The first ``count`` gauge photos of SEED that hold at least one meter."""
    found = []
    index = 0
    while len(found) < count:
        scene = render_scene("gauges", SEED, index)
        if scene.truth["gauges"]:
            found.append((index, scene))
        index += 1
    return found


@pytest.fixture(scope="module")
def gauge_scenes() -> list[tuple[int, object]]:
    return _gauge_scenes(6)


def _changed(a: np.ndarray, b: np.ndarray, threshold: int = CHANGED) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) > threshold


def _fill(shape: tuple[int, int], polygons: list[list[float]]) -> np.ndarray:
    """Pixels whose centre lies in the polygons (continuous photo coordinates)."""
    mask = np.zeros(shape, np.uint8)
    for polygon in polygons:
        index = (np.reshape(polygon, (-1, 2)) - 0.5) * 16
        cv2.fillPoly(mask, [np.round(index).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def _grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def _to_face(gauge: dict, points: np.ndarray) -> np.ndarray:
    """Photo pixels -> the face's own coordinates (pivot at 0, bezel radius 1), by inverting the
    camera the truth records."""
    inverse = np.linalg.inv(np.asarray(gauge["face_to_photo"], dtype=np.float64))
    xy = np.c_[np.asarray(points, dtype=np.float64).reshape(-1, 2), np.ones(len(points))]
    uvw = xy @ inverse.T
    return uvw[:, :2] / uvw[:, 2:3]


def _run_along_radius(gauge: dict, mask: np.ndarray, point: np.ndarray) -> tuple[float, float]:
    """How far ``mask`` runs from ``point`` towards the pivot and away from it, in photo pixels,
    along the face's radius through ``point``."""
    direction = _to_face(gauge, point[None])[0]
    steps = np.linspace(0.0, 0.3, 1200)
    runs = []
    for sign in (-1.0, 1.0):
        face = (1.0 + sign * steps[:, None] / np.linalg.norm(direction)) * direction
        homography = np.asarray(gauge["face_to_photo"], dtype=np.float64)
        uvw = np.c_[face, np.ones(len(face))] @ homography.T
        photo = uvw[:, :2] / uvw[:, 2:3]
        rows = np.clip(photo[:, 1].astype(int), 0, mask.shape[0] - 1)
        cols = np.clip(photo[:, 0].astype(int), 0, mask.shape[1] - 1)
        on = mask[rows, cols]
        last = len(on) - 1 if on.all() else int(np.argmin(on)) - 1
        runs.append(float(np.linalg.norm(photo[last] - point)))
    return runs[0], runs[1]


def _clockwise_from_up(dx: float, dy: float) -> float:
    return math.degrees(math.atan2(dx, -dy)) % 360.0


def _angle_gap(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def test_same_arguments_give_the_same_photo() -> None:
    for kind in foreign.KINDS:
        first, again = render_scene(kind, SEED, 3), render_scene(kind, SEED, 3)
        assert np.array_equal(first.image, again.image), kind
        assert first.annotations == again.annotations, kind
        assert json.dumps(first.truth) == json.dumps(again.truth), kind
        other = render_scene(kind, SEED, 4)
        assert first.image.shape != other.image.shape or not np.array_equal(
            first.image, other.image
        ), kind
        assert 480 <= first.image.shape[1] <= 800, kind


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind 'meters'"):
        render_scene("meters", SEED, 0)


def test_needle_polygon_covers_the_drawn_needle(gauge_scenes) -> None:
    for index, scene in gauge_scenes:
        bare = render_scene("gauges", SEED, index, DrawOptions(needles=False))
        needle = _changed(scene.image, bare.image)
        pointers = [a for a in scene.annotations if a.category == "pointer"]
        inside = _fill(needle.shape, [p for a in pointers for p in a.polygons])
        assert needle.sum() > 20, index
        # Anti-aliased edge pixels may change while their centre lies just outside the outline.
        outside = needle & ~_grow(inside, 1)
        assert outside.sum() <= 0.002 * needle.sum() + 1, (index, int(outside.sum()))
        # Most of the outline shows needle (the hub's cap and same-coloured ticks hide the rest).
        assert (needle & inside).sum() >= 0.5 * inside.sum(), index


def test_tip_and_angle_are_where_the_needle_ends(gauge_scenes) -> None:
    for index, scene in gauge_scenes:
        bare = render_scene("gauges", SEED, index, DrawOptions(needles=False))
        needle = _changed(scene.image, bare.image)
        dials = [a for a in scene.annotations if a.category == "dial"]
        for gauge, dial in zip(scene.truth["gauges"], dials, strict=True):
            ys, xs = np.nonzero(needle & _fill(needle.shape, dial.polygons))
            pixels = np.c_[xs + 0.5, ys + 0.5]
            centre, tip = np.asarray(gauge["center"]), np.asarray(gauge["tip"])
            reach = np.linalg.norm(pixels - centre, axis=1)
            farthest = pixels[np.argmax(reach)]
            assert np.linalg.norm(farthest - tip) <= 2.0, (index, farthest, tip)
            dx, dy = tip - centre
            assert _angle_gap(_clockwise_from_up(dx, dy), gauge["needle_angle_deg"]) < 1e-3
            # The blade's far half points the same way (the tail and weight lie near the pivot).
            blade = pixels[reach > 0.5 * np.linalg.norm(tip - centre)]
            mean = (blade - centre).mean(axis=0)
            assert _angle_gap(_clockwise_from_up(*mean), gauge["needle_angle_deg"]) < 3.0, index


def test_keypoints_lie_on_the_scale_ends(gauge_scenes) -> None:
    tilts = []
    for index, scene in gauge_scenes:
        ticks = DrawOptions(needles=False, numerals=False)
        plain = render_scene("gauges", SEED, index, ticks)
        blank = render_scene("gauges", SEED, index, DrawOptions(needles=False, scales=False))
        # Ticks, arc and bands: the pixels the scale's marks were drawn on.
        scale = _changed(plain.image, blank.image)
        dials = [a for a in scene.annotations if a.category == "dial"]
        for gauge, dial in zip(scene.truth["gauges"], dials, strict=True):
            tilts.append(gauge["tilt_deg"])
            keypoints = np.asarray(gauge["keypoints"])
            flat = np.reshape(dial.keypoints, (-1, 3))
            assert np.allclose(flat[:, :2], keypoints) and (flat[:, 2] == 2).all()
            for x, y in keypoints[[0, 2]]:
                assert scale[int(y), int(x)], (index, x, y)
                inward, outward = _run_along_radius(gauge, scale, np.array([x, y]))
                # Mid-length of the end tick: as far from its inner end as from its outer one.
                assert abs(inward - outward) <= 1.5, (index, x, y, inward, outward)
                assert min(inward, outward) >= 1.0, (index, x, y)
            # In the face's own coordinates: one radius, at the scale's start, half its sweep
            # angle and its end, and the centre at the pivot.
            face = _to_face(gauge, keypoints)
            radii = np.linalg.norm(face, axis=1)
            assert np.allclose(radii[:3], gauge["keypoint_radius"], atol=1e-4)
            assert radii[3] < 1e-4
            assert np.allclose(keypoints[3], gauge["center"], atol=1e-2)
            s = gauge["scale"]
            expected = (s["start_deg"], s["start_deg"] + s["sweep_deg"] / 2, s["end_deg"])
            for (u, v), angle in zip(face[:3], expected, strict=True):
                assert _angle_gap(_clockwise_from_up(u, v), angle) < 1e-2
            assert s["start_deg"] + s["sweep_deg"] == pytest.approx(
                s["end_deg"] + (360 if s["end_deg"] < s["start_deg"] else 0), abs=1e-3
            )
            # The dial's outline is the bezel's edge, radius 1 on the face.
            outline = _to_face(gauge, np.reshape(dial.polygons[0], (-1, 2)))
            assert np.allclose(np.linalg.norm(outline, axis=1), 1.0, atol=1e-3)
    assert max(tilts) > 25


def _value_on_scale(scale: dict, share: float) -> float:
    """The value at ``share`` of the sweep: straight between the printed ends, or between the
    scale's non-linear points."""
    points = scale.get("points")
    if not points:
        return scale["min_value"] + share * (scale["max_value"] - scale["min_value"])
    for (s0, v0), (s1, v1) in itertools.pairwise(points):
        if s0 <= share <= s1:
            return v0 + (v1 - v0) * (share - s0) / (s1 - s0)
    raise AssertionError(f"share {share} beyond the scale's points")


def test_fraction_and_value_follow_the_needle_on_the_face() -> None:
    checked, nonlinear, sweeps, below_zero, above_zero = 0, 0, [], 0, 0
    for index in range(24):
        scene = render_scene("gauges", SEED + 1, index)
        for gauge in scene.truth["gauges"]:
            s = gauge["scale"]
            centre, tip = _to_face(gauge, np.array([gauge["center"], gauge["tip"]]))
            angle = _clockwise_from_up(*(tip - centre))
            share = ((angle - s["start_deg"]) % 360.0) / s["sweep_deg"]
            assert -1e-4 <= share <= 1 + 1e-4
            share = min(max(share, 0.0), 1.0)
            value = _value_on_scale(s, share)
            span = s["max_value"] - s["min_value"]
            assert gauge["value"] == pytest.approx(value, abs=1e-4 * span), index
            # fraction is the needle's share of the sweep's angle, the reading's convention.
            assert gauge["fraction"] == pytest.approx(share, abs=1e-4), index
            value_share = (value - s["min_value"]) / span
            assert gauge["value_share"] == pytest.approx(value_share, abs=1e-4), index
            checked += 1
            nonlinear += bool(s.get("points"))
            sweeps.append(s["sweep_deg"])
            below_zero += s["min_value"] < 0
            above_zero += s["min_value"] > 0
    assert checked >= 25 and nonlinear >= 3 and below_zero >= 3 and above_zero >= 2
    assert 60 <= min(sweeps) < 120 and 280 < max(sweeps) <= 340


def test_insulator_boxes_are_tight() -> None:
    strings = 0
    whole = DrawOptions(repair_defects=True)
    for index in range(4):
        scene = render_scene("insulators", SEED, index)
        repaired = render_scene("insulators", SEED, index, whole)
        boxes = [a.bbox for a in scene.annotations if a.category == "insulator"]
        assert boxes == [a.bbox for a in repaired.annotations if a.category == "insulator"]
        assert len(boxes) == scene.truth["strings"] >= 1
        for i, (x, y, w, h) in enumerate(boxes):
            # The box is the whole string's, a missing unit's place included.
            without = render_scene(
                "insulators",
                SEED,
                index,
                DrawOptions(repair_defects=True, skip_strings=frozenset({i})),
            )
            ys, xs = np.nonzero(_changed(repaired.image, without.image, 0))
            drawn = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            assert np.allclose(drawn, (x, y, x + w, y + h), rtol=0, atol=1.25), (index, i, drawn)
            strings += 1
    assert strings >= 5


def test_defect_boxes_hold_the_defective_unit() -> None:
    kinds: set[str] = set()
    for index in range(12):
        scene = render_scene("insulators", SEED, index)
        found = [a.bbox for a in scene.annotations if a.category == "defect"]
        assert len(found) == scene.truth["defects"] == len(scene.truth["defect_kinds"])
        if not found:
            continue
        strings = [a.bbox for a in scene.annotations if a.category == "insulator"]
        whole = render_scene("insulators", SEED, index, DrawOptions(repair_defects=True))
        changed = _changed(scene.image, whole.image, 0)
        covered = np.zeros_like(changed)
        for (x, y, w, h), kind in zip(found, scene.truth["defect_kinds"], strict=True):
            assert any(
                sx - 0.01 <= x
                and sy - 0.01 <= y
                and x + w <= sx + sw + 0.01
                and y + h <= sy + sh + 0.01
                for sx, sy, sw, sh in strings
            ), (index, (x, y, w, h))
            box = np.zeros_like(changed)
            box[int(y) : math.ceil(y + h), int(x) : math.ceil(x + w)] = True
            ys, xs = np.nonzero(changed & _grow(box, 1))
            # A broken unit shows its broken-off piece inside the box; a missing one's whole
            # outline reaches every side of it.
            assert len(xs) >= 3, (index, kind, (x, y, w, h))
            if kind == "missing":
                drawn = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
                assert drawn[0] <= x + 1.25 and drawn[1] <= y + 1.25, (index, drawn)
                assert drawn[2] >= x + w - 1.25 and drawn[3] >= y + h - 1.25, (index, drawn)
            covered |= _grow(box, 1)
            kinds.add(kind)
        assert not (changed & ~covered).any(), index
    assert kinds == {"missing", "broken"}


def test_photos_of_neither_have_no_objects() -> None:
    for index in range(6):
        scene = render_scene("neither", SEED, index)
        assert scene.annotations == []
        assert scene.truth["gauges"] == [] and scene.truth["strings"] == 0


def test_command_line_writes_coco_with_dial_keypoints(tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.jpg"
    assert (
        foreign.main(
            ["gauges", "--output", str(tmp_path / "set"), "--count", "3", "--sheet", str(sheet)]
        )
        == 0
    )
    document = json.loads((tmp_path / "set" / "annotations.json").read_text())
    assert [c["name"] for c in document["categories"]] == ["pointer", "dial"]
    assert document["categories"][1]["keypoints"] == list(foreign.KEYPOINT_NAMES)
    assert len(document["images"]) == 3 and sheet.stat().st_size > 0
    for annotation in document["annotations"]:
        visible = annotation["keypoints"][2::3]
        assert visible == ([2] * 4 if annotation["category_id"] == 2 else [0] * 4)
    for image in document["images"]:
        dials = [
            a
            for a in document["annotations"]
            if a["image_id"] == image["id"] and a["category_id"] == 2
        ]
        assert len(dials) == len(image["truth"]["gauges"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["meters", "--output", "x"], "invalid choice: 'meters'"),
        (["gauges", "--output", "x", "--count", "0"], "--count must be at least 1"),
        (["gauges"], "give --output DIR, --sheet FILE.jpg or both"),
    ],
)
def test_command_line_refuses_bad_input(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        foreign.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_training_never_sees_the_foreign_renderer() -> None:
    sources = sorted((REPO / "training").rglob("*.py"))
    assert sources
    for path in sources:
        text = path.read_text()
        assert "accuracy.foreign" not in text and "import foreign" not in text, path
        assert not any(name.startswith("bench") for name in _imports(path)), path
    # And the renderer draws on its own: of training it uses only the COCO records.
    used = {
        n for n in _imports(REPO / "bench" / "accuracy" / "foreign.py") if n.startswith("training")
    }
    assert used <= {
        "training.coco",
        "training.coco.Annotation",
        "training.coco.Scene",
        "training.coco.contact_sheet",
        "training.coco.write_coco",
    }
