"""The README and the guides in docs/ say what the code does, so that they cannot drift from it.

- Every command in a ``bash`` block exists with what it uses: a ``make`` target and its
  variables, a module's or script's options (from its ``--help``), the repository's files it
  names, the names the Kubernetes manifests give.
- Every other quoted block or table carries a tag, ``<!-- checked: NAME -->`` on the line above,
  and NAME's check holds it to the code: the statuses and evidence of readings, the calibration
  file and its errors, the models' tensors and parameters, the input limits.
- The outputs of commands, the server's banner, the Python example and the errors of bad requests
  are checked in the server tier, against a server started as ``make serve`` starts it: each
  ``output`` block is what the command or code above it prints, to the precision it is quoted at
  (latencies aside).
- Every link leads to a file, and every ``#anchor`` to a heading of it.
- The constants the guides quote are the tests' own.
"""

from __future__ import annotations

import functools
import json
import os
import posixpath
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import tritonclient.http as httpclient
import yaml
from google.protobuf import text_format
from PIL import Image
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import InferenceServerException

from bls.meters.calibration import CalibrationError, load_calibrations
from bls.meters.records import STATUS_MEANINGS, Evidence
from bls.repository import class_names, read_config
from pipelines.jpeg import DecodeError, check_jpeg
from server.launch import REPO_ROOT, Ports
from server.prerequisites import SUPPORTED_PYTHONS, Machine, find_problems, report
from tests.bad_inputs import bad_input, with_frame_size
from tests.conftest import SMALL_SOAK_REQUESTS
from tests.support import (
    MAX_BORDER_DIFF,
    MAX_INTERIOR_DIFF,
    MAX_MEAN_DIFF,
    PHOTO,
    encode_jpeg,
)
from tests.test_deploy import docker_run_command
from tests.test_jpeg_inputs import CMYK_MAX_MEAN_DIFF
from tests.test_soak import MEMORY_MARGIN_MIB, SHM_GROWTH_MARGIN_MIB

README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
DOCUMENTS = [README, *sorted(DOCS.glob("*.md"))]
# The result logs keep each run as it was, with the files and commands of its day.
RESULT_LOGS = {DOCS / "accuracy.md", DOCS / "performance.md", DOCS / "soak.md"}
REPOSITORY = REPO_ROOT / "repository"
MAKEFILE = (REPO_ROOT / "Makefile").read_text()
K8S = REPO_ROOT / "deploy" / "k8s"
PRODUCTION = K8S / "overlays" / "production" / "kustomization.yaml"
# The README's length, as the issue that split it asked: what a newcomer reads in ten minutes.
README_MAX_LINES = 300


def text_of(path: Path) -> str:
    return path.read_text()


def relative(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


# ---------------------------------------------------------------------------------------------
# The documents' blocks and tables.


@dataclass(frozen=True)
class Element:
    """A fenced block or a table of a document.

    Attributes:
        path: the document.
        line: the line it starts on (1-based).
        kind: the fence's language (``bash``, ``json``, ``""``, ...) or ``table``.
        text: its content (a fence's lines without the fences, unindented).
        check: the name of its ``<!-- checked: NAME -->`` tag, if it has one.
    """

    path: Path
    line: int
    kind: str
    text: str
    check: str | None

    @property
    def where(self) -> str:
        return f"{relative(self.path)}:{self.line}"

    def rows(self) -> list[list[str]]:
        """A table's body rows, as cells."""
        lines = self.text.splitlines()[2:]
        return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]


_TAG = re.compile(r"<!-- checked: (.+?) -->")


@functools.cache
def elements(path: Path) -> tuple[Element, ...]:
    """The document's fenced blocks and tables, in order.

    Raises:
        AssertionError: a tag is not followed by a block or table.
    """
    lines = text_of(path).splitlines()
    found: list[Element] = []
    tag: str | None = None
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if match := _TAG.fullmatch(stripped):
            tag = match[1]
        elif stripped.startswith("```"):
            indent = len(lines[i]) - len(lines[i].lstrip())
            start, body = i, []
            i += 1
            while not lines[i].strip().startswith("```"):
                body.append(lines[i][indent:])
                i += 1
            found.append(Element(path, start + 1, stripped[3:].strip(), "\n".join(body), tag))
            tag = None
        elif stripped.startswith("|"):
            start = i
            while i + 1 < len(lines) and lines[i + 1].strip().startswith("|"):
                i += 1
            table = "\n".join(line.strip() for line in lines[start : i + 1])
            found.append(Element(path, start + 1, "table", table, tag))
            tag = None
        elif stripped:
            assert tag is None, f"{relative(path)}:{i + 1}: the tag {tag!r} is not above a block"
        i += 1
    assert tag is None, f"{relative(path)}: the tag {tag!r} ends the document"
    return tuple(found)


def all_elements() -> list[Element]:
    return [element for path in DOCUMENTS for element in elements(path)]


def element_before(element: Element) -> Element:
    siblings = elements(element.path)
    index = siblings.index(element)
    assert index > 0, f"{element.where}: an output with nothing above it"
    return siblings[index - 1]


def backticked(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


# ---------------------------------------------------------------------------------------------
# Checks of tagged blocks and tables that need no server.


def makefile_default(variable: str) -> str:
    match = re.search(rf"^{variable} \?= (\S+)$", MAKEFILE, re.M)
    assert match, f"the Makefile has no default for {variable}"
    return match[1]


# The machine of the README's example of the prerequisites check.
EXAMPLE_MACHINE = Machine(
    python="/usr/local/bin/python3",
    version=(3, 13),
    libpython=None,
    venv=".venv",
    venv_exists=False,
    free_gib=3.2,
    npm=None,
)


def check_prerequisites(element: Element, tmp_path: Path) -> None:
    assert element.text == report(find_problems(EXAMPLE_MACHINE, npm=True))


def check_models(element: Element, tmp_path: Path) -> None:
    for row in element.rows():
        model = backticked(row[0])[0]
        config = read_config(REPOSITORY, model)
        inputs = set(backticked(row[2]))
        outputs = set(backticked(row[3]))
        assert inputs == {i.name for i in config.input}, f"{model}'s inputs"
        assert outputs == {o.name for o in config.output}, f"{model}'s outputs"
    named = {backticked(row[0])[0] for row in element.rows()}
    served = {p.parent.name for p in REPOSITORY.glob("*/config.pbtxt")}
    assert named == served, "every model of the repository, and only those"


def check_inspect_parameters(element: Element, tmp_path: Path) -> None:
    named = {name for row in element.rows() for name in backticked(row[0])}
    assert named == set(read_config(REPOSITORY, "inspect").parameters)


def check_evidence(element: Element, tmp_path: Path) -> None:
    assert [backticked(row[0])[0] for row in element.rows()] == [f.name for f in fields(Evidence)]


def check_statuses(element: Element, tmp_path: Path) -> None:
    rows = element.rows()
    assert [backticked(row[0])[0] for row in rows] == list(STATUS_MEANINGS)
    for row in rows:
        assert row[1] == STATUS_MEANINGS[backticked(row[0])[0]], row[0]


def check_meters_yaml(element: Element, tmp_path: Path) -> None:
    path = tmp_path / "meters.yaml"
    path.write_text(element.text)
    named = list(yaml.safe_load(element.text))
    quoted = load_calibrations(path, ["pointer", *named])
    if "dial" in quoted:  # the demo meter: as repository/pointer/meters.yaml has it
        served = load_calibrations(
            REPOSITORY / "pointer" / "meters.yaml", class_names(REPOSITORY, "pointer")
        )
        assert quoted["dial"] == served["dial"]


def check_calibration_errors(element: Element, tmp_path: Path) -> None:
    path = tmp_path / "meters.yaml"
    classes = class_names(REPOSITORY, "pointer")
    for row in element.rows():
        (document,), (message,) = backticked(row[0]), backticked(row[1])
        path.write_text(document)
        with pytest.raises(CalibrationError) as error:
            load_calibrations(path, classes)
        assert str(error.value).replace(str(path), "meters.yaml") == message


def a_jpeg() -> bytes:
    return encode_jpeg(Image.new("RGB", (64, 48), (120, 130, 140)))


def check_limits(element: Element, tmp_path: Path) -> None:
    parameters = read_config(REPOSITORY, "preprocess").parameters
    limits = {name: int(parameters[name].string_value) for name in ("max_bytes", "max_pixels")}
    for row in element.rows():
        name = backticked(row[0])[0]
        assert int(backticked(row[1])[0]) == limits[name], name
        (message,) = backticked(row[2])
        if name == "max_bytes":
            size = int(re.search(r"input is (\d+) bytes", message)[1])
            data = a_jpeg() + bytes(size - len(a_jpeg()))
        else:
            width, height = map(int, re.search(r"image is (\d+)x(\d+)", message).groups())
            data = with_frame_size(a_jpeg(), width, height)
        with pytest.raises(DecodeError) as error:
            check_jpeg(data, **limits)
        assert str(error.value) == message


def parameters_of(element: Element) -> tuple[str, model_config_pb2.ModelConfig]:
    """The model a ``config.pbtxt`` excerpt is of (its first line names the file), and the
    excerpt parsed as that config's parameters."""
    first, *lines = element.text.splitlines()
    model = re.fullmatch(r"# repository/(\w+)/config\.pbtxt", first)[1]
    excerpt = model_config_pb2.ModelConfig()
    text_format.Parse("parameters [" + "\n".join(lines).rstrip().rstrip(",") + "]", excerpt)
    return model, excerpt


def check_config_excerpt(element: Element, tmp_path: Path) -> None:
    model, excerpt = parameters_of(element)
    served = read_config(REPOSITORY, model).parameters
    assert set(excerpt.parameters) <= set(served), f"parameters {model}'s config.pbtxt lacks"


def deployment_mounts() -> dict[str, str]:
    """The Deployment's container mounts of the model store: subPath pattern -> mountPath."""
    deployment = yaml.safe_load((K8S / "base" / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {
        mount["subPathExpr"].rsplit("/", 1)[-1]: mount["mountPath"]
        for mount in container["volumeMounts"]
        if "subPathExpr" in mount
    }


def check_release_weights(element: Element, tmp_path: Path) -> None:
    check_config_excerpt(element, tmp_path)
    model, excerpt = parameters_of(element)
    mounts = deployment_mounts()
    weights = excerpt.parameters["weights"].string_value
    resolved = posixpath.normpath(posixpath.join(mounts["repository"], model, weights))
    assert resolved.startswith(mounts["weights"] + "/"), f"{resolved} is not in a mount"


def check_production_overlay(element: Element, tmp_path: Path) -> None:
    overlay = yaml.safe_load(PRODUCTION.read_text())
    assert yaml.safe_load(element.text)["images"] == overlay["images"]


def check_prometheus(element: Element, tmp_path: Path) -> None:
    (job,) = yaml.safe_load(element.text)["scrape_configs"]
    (targets,) = [c["targets"] for c in job["static_configs"]]
    assert targets == [f"localhost:{makefile_default('METRICS_PORT')}"]


def check_stub_messages(element: Element, tmp_path: Path) -> None:
    # The watchdog's tests send requests to a killed model and expect these messages.
    expected = text_of(REPO_ROOT / "tests" / "test_watchdog.py").replace("\\", "")
    for row in element.rows():
        for message in backticked(row[1]):
            if "<model>" not in message:
                continue
            pattern = re.escape(message).replace(re.escape("<model>"), "[a-z_]+")
            assert re.search(pattern, expected), f"tests/test_watchdog.py expects no {message!r}"


def check_layout(element: Element, tmp_path: Path) -> None:
    listed = [line.split("/")[0] for line in element.text.splitlines() if not line.startswith(" ")]
    assert len(listed) == len(set(listed)), "a folder listed twice"
    assert set(listed) == _TOP_LEVEL - {"build"}, "every folder of the checkout, and only those"


UNIT_CHECKS: dict[str, Callable[[Element, Path], None]] = {
    "layout": check_layout,
    "prerequisites": check_prerequisites,
    "models": check_models,
    "inspect parameters": check_inspect_parameters,
    "evidence": check_evidence,
    "statuses": check_statuses,
    "meters.yaml": check_meters_yaml,
    "calibration errors": check_calibration_errors,
    "limits": check_limits,
    "config.pbtxt": check_config_excerpt,
    "release weights": check_release_weights,
    "production overlay": check_production_overlay,
    "prometheus": check_prometheus,
    "stub messages": check_stub_messages,
}
# Checked against a running server (the tests of the last section).
SERVER_CHECKS = {"serve banner", "output", "runs", "metrics", "errors"}


def test_every_quoted_block_is_a_command_or_checked() -> None:
    unchecked = [
        e.where for e in all_elements() if e.kind not in ("bash", "table") and e.check is None
    ]
    assert not unchecked, f"quoted blocks no test checks (tag them): {unchecked}"
    unknown = [
        (e.where, e.check)
        for e in all_elements()
        if e.check is not None and e.check not in {*UNIT_CHECKS, *SERVER_CHECKS}
    ]
    assert not unknown, f"tags with no check: {unknown}"
    used = {e.check for e in all_elements()}
    assert {*UNIT_CHECKS, *SERVER_CHECKS} <= used, "checks no document uses"
    outputs = [e for e in all_elements() if e.check in ("output", "metrics")]
    for output in outputs:
        above = element_before(output)
        assert above.kind == "bash" or above.check == "runs", f"{output.where}: output of what?"


@pytest.mark.parametrize(
    "element",
    [e for e in all_elements() if e.check in UNIT_CHECKS],
    ids=lambda e: f"{e.where}-{e.check}",
)
def test_quoted_block_agrees_with_the_code(element: Element, tmp_path: Path) -> None:
    UNIT_CHECKS[element.check](element, tmp_path)


# ---------------------------------------------------------------------------------------------
# Commands.


def commands_of(element: Element) -> list[list[str]]:
    """Each command of a ``bash`` block as words, comments left out, pipes and ``&&`` split."""
    found = []
    for line in element.text.replace("\\\n", " ").splitlines():
        command: list[str] = []
        for word in shlex.split(line, comments=True):
            if word in ("|", "&&", ";"):
                found.append(command)
                command = []
            else:
                command.append(word)
        if command:
            found.append(command)
    return found


def all_commands() -> list[tuple[str, list[str]]]:
    return [
        (e.where, command) for e in all_elements() if e.kind == "bash" for command in commands_of(e)
    ]


MAKE_TARGETS = set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE, re.M))
MAKE_VARIABLES = set(re.findall(r"^([A-Z][A-Z_]*) *(?:\?=|:=|=)", MAKEFILE, re.M))
_ASSIGNMENT = re.compile(r"[A-Z_][A-Z0-9_]*=.*")
# Plain shell tools: only the repository's files they name are checked.
_SHELL_TOOLS = {"cat", "cp", "grep", "ls", "mkdir", "sha256sum", "tar"}
_TOP_LEVEL = {p.name for p in REPO_ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")}


@functools.cache
def help_text(target: str) -> str:
    """``--help`` of a module (``-m name``) or a script (a path)."""
    module = target.removeprefix("-m ")
    command = [sys.executable, "-m", module] if module != target else [sys.executable, target]
    run = subprocess.run(
        [*command, "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, f"{target} --help failed: {run.stderr[-2000:]}"
    return run.stdout


def check_options(target: str, words: list[str]) -> None:
    text = help_text(target)
    for word in words:
        if re.fullmatch(r"--?[a-zA-Z][\w-]*(=.*)?", word):
            option = word.split("=", 1)[0]
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), (
                f"{target} has no option {option}"
            )


def check_repository_paths(words: list[str]) -> None:
    """Files of the repository that a command names exist."""
    for word in words:
        for piece in re.split(r"[:=]", word.removeprefix("$PWD/")):
            top = piece.split("/", 1)[0]
            if "/" in piece and top in _TOP_LEVEL and top != "build":
                assert (REPO_ROOT / piece).exists(), f"no {piece} in the repository"


def args_target(variable: str) -> str | None:
    """The module (``-m name``) or script a Makefile recipe hands ``$(variable)`` to."""
    for line in MAKEFILE.replace("\\\n", " ").splitlines():
        if f"$({variable})" in line:
            match = re.search(r"\$\(PY\) (-m [\w.]+|[\w/.-]+\.py)", line)
            if match:
                return match[1]
    return None


def check_make_variable(assignment: str) -> None:
    """``VAR=VALUE`` names a Makefile variable, and the options of a ``*_ARGS`` one are those of
    the module it is handed to."""
    assert _ASSIGNMENT.fullmatch(assignment), f"{assignment} is not VAR=VALUE"
    name, value = assignment.split("=", 1)
    assert name in MAKE_VARIABLES, f"the Makefile has no variable {name}"
    target = args_target(name) if name.endswith("_ARGS") else None
    if target is not None:
        check_options(target, shlex.split(value))


def check_make(words: list[str]) -> None:
    target, *arguments = words[1:]
    assert target in MAKE_TARGETS, f"no make target {target}"
    for argument in arguments:
        check_make_variable(argument)


def check_python(words: list[str]) -> None:
    if words[1] == "-m":
        module = words[2]
        path = REPO_ROOT / module.replace(".", "/")
        assert path.with_suffix(".py").is_file() or (path / "__main__.py").is_file(), module
        check_options(f"-m {module}", words[3:])
    else:
        assert (REPO_ROOT / words[1]).is_file(), f"no script {words[1]}"
        check_options(words[1], words[2:])


def served_ports() -> set[str]:
    return {makefile_default(f"{kind}_PORT") for kind in ("HTTP", "GRPC", "METRICS")}


def check_curl(words: list[str]) -> None:
    (url,) = [w for w in words if "localhost:" in w]
    port = re.search(r"localhost:(\d+)", url)[1]
    assert port in served_ports(), f"{url}: not a port make serve listens on"


def overlay_image() -> tuple[str, str]:
    (image,) = yaml.safe_load(PRODUCTION.read_text())["images"]
    return image["newName"], image["newTag"]


def check_docker(words: list[str]) -> None:
    name, tag = overlay_image()
    local = f"{name.rsplit('/', 1)[-1]}:{tag}"  # deploy/README.md's local name
    if words[1] in ("build", "push"):
        image = words[words.index("-t") + 1] if words[1] == "build" else words[2]
        assert image in (f"{name}:{tag}", local), f"{image} is not the overlay's image"
    elif words[1] == "run":
        documented = docker_run_command()  # tests/test_deploy.py holds it to the image
        if words == documented:
            return
        # The same with the user's weights mounted where the pods mount them.
        volumes = [i for i, w in enumerate(words) if w == "-v"]
        extra = [i for i in volumes if words[i + 1] not in documented]
        assert len(extra) == 1, f"docker run differs from deploy/README.md's: {words}"
        _, target, mode = words[extra[0] + 1].split(":")
        assert (target, mode) == (deployment_mounts()["weights"], "ro")
        assert words[: extra[0]] + words[extra[0] + 2 :] == documented
    else:
        raise AssertionError(f"no check for docker {words[1]}")


@functools.cache
def k8s_objects() -> set[tuple[str, str]]:
    """``(kind in lower case, name)`` of every object the manifests define."""
    found = set()
    for path in K8S.rglob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and "kind" in document and "metadata" in document:
                found.add((document["kind"].lower(), document["metadata"]["name"]))
    return found


_SHORT_KINDS = {"hpa": "horizontalpodautoscaler", "pod": "pod", "svc": "service"}


def check_kubectl(words: list[str]) -> None:
    if "-n" in words:
        namespace = words[words.index("-n") + 1]
        assert namespace == yaml.safe_load(PRODUCTION.read_text())["namespace"], namespace
    for flag in ("-k", "-f"):
        if flag in words:
            assert (REPO_ROOT / words[words.index(flag) + 1]).exists()
    for word in words:
        if match := re.fullmatch(r"(deployment|service|pod)/([\w-]+)", word):
            assert (match[1], match[2]) in k8s_objects(), f"no {word} in deploy/k8s"
        if match := re.fullmatch(r"([\w-]+):/.*", word):
            assert ("pod", match[1]) in k8s_objects(), f"no pod {match[1]} in deploy/k8s"
    if "exec" in words:
        assert ("pod", words[words.index("exec") + 1]) in k8s_objects()
    if "get" in words:
        kind, name = words[words.index("get") + 1 : words.index("get") + 3]
        assert (_SHORT_KINDS.get(kind, kind), name) in k8s_objects(), f"no {kind} {name}"


def check_helm(words: list[str]) -> None:
    if words[1:3] == ["repo", "add"]:
        return
    assert words[1] == "install", f"no check for helm {words[1]}"
    assert (REPO_ROOT / words[words.index("-f") + 1]).is_file()


def overlay_release() -> str:
    """The ``MODEL_RELEASE`` the production overlay sets."""
    for patch in yaml.safe_load(PRODUCTION.read_text())["patches"]:
        for operation in yaml.safe_load(patch["patch"]):
            value = operation.get("value")
            if isinstance(value, dict) and value.get("name") == "MODEL_RELEASE":
                return value["value"]
    raise AssertionError(f"{relative(PRODUCTION)} sets no MODEL_RELEASE")


def check_command(words: list[str]) -> None:
    if words[0].startswith("RELEASE="):  # the first release, the one the overlay serves
        assert words[0] == f"RELEASE={overlay_release()}", "not the overlay's MODEL_RELEASE"
    while words and _ASSIGNMENT.fullmatch(words[0]):
        words = words[1:]  # environment assignments
    if not words:
        return
    check_repository_paths(words)
    program = words[0]
    if program == "make":
        check_make(words)
    elif program == ".venv/bin/python":
        check_python(words)
    elif program in ("curl", "docker", "kubectl", "helm"):
        {"curl": check_curl, "docker": check_docker, "kubectl": check_kubectl, "helm": check_helm}[
            program
        ](words)
    else:
        assert program in _SHELL_TOOLS, f"no check for the command {program}"


@pytest.mark.parametrize(
    ("where", "words"), all_commands(), ids=[f"{w}-{c[0]}" for w, c in all_commands()]
)
def test_quoted_command_exists_as_quoted(where: str, words: list[str]) -> None:
    check_command(words)


def prose_of(path: Path) -> str:
    """A document without its fenced blocks (whose backticks would pair with the prose's)."""
    return re.sub(r"^ *```.*?^ *```", "", text_of(path), flags=re.M | re.S)


def inline_commands() -> list[tuple[str, str]]:
    """Commands quoted inline in the prose: ``make ...`` and ``.venv/bin/python ...``."""
    return [
        (relative(path), quoted)
        for path in DOCUMENTS
        if path not in RESULT_LOGS
        for quoted in backticked(prose_of(path))
        if quoted.startswith(("make ", ".venv/bin/python ")) or _ARGS.match(quoted)
    ]


_ARGS = re.compile(r"[A-Z_]+_ARGS=")


@pytest.mark.parametrize(("where", "quoted"), inline_commands(), ids=lambda x: x)
def test_inline_command_exists_as_quoted(where: str, quoted: str) -> None:
    quoted = " ".join(quoted.split())  # wrapped across lines
    if _ARGS.match(quoted):
        check_make_variable(" ".join(shlex.split(quoted)))
    else:
        check_command(shlex.split(quoted))


# ---------------------------------------------------------------------------------------------
# Links and the README's shape.


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors of a document's headings."""
    anchors = set()
    in_fence = False
    for line in text_of(path).splitlines():
        if line.strip().startswith("```"):
            in_fence = not in_fence
        elif not in_fence and (match := re.match(r"#+ (.+)", line)):
            title = re.sub(r"[^\w\- ]", "", match[1].strip().lower().replace("`", ""))
            anchors.add(title.replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("path", DOCUMENTS, ids=relative)
def test_links_lead_to_files_and_headings(path: Path) -> None:
    links = re.findall(r"\]\(([^)\s:#]*)(?:#([^)\s]*))?\)", text_of(path))
    for target, anchor in links:
        destination = (path.parent / target).resolve() if target else path
        assert destination.exists(), f"{relative(path)} links to a missing {target}"
        if anchor:
            assert anchor in heading_anchors(destination), (
                f"{relative(path)} links to #{anchor}, no heading of {target or 'itself'}"
            )


@pytest.mark.parametrize("path", [p for p in DOCUMENTS if p not in RESULT_LOGS], ids=relative)
def test_files_named_in_the_text_exist(path: Path) -> None:
    for quoted in backticked(prose_of(path)):
        file = quoted.split(":")[0]
        top = file.split("/")[0]
        if "/" in file and top in _TOP_LEVEL - {"build"} and not re.search(r"[<*\s]", file):
            assert (REPO_ROOT / file).exists(), f"{relative(path)} names a missing {file}"


def test_readme_is_short_and_leads_to_every_part() -> None:
    text = text_of(README)
    assert len(text.splitlines()) <= README_MAX_LINES
    contents = text[text.index("## Contents") : text.index("## Quick start")]
    headings = re.findall(r"^## (.+)$", text, re.M)
    listed = set(re.findall(r"\]\(#([^)]+)\)", contents))
    wanted = {h.lower().replace(" ", "-") for h in headings if h != "Contents"}
    assert wanted <= listed, f"not in the table of contents: {wanted - listed}"
    guides = {p.name for p in DOCS.glob("*.md")}
    assert guides <= set(re.findall(r"\(docs/([\w-]+\.md)\)", text)), "a guide the README hides"


def test_readme_names_the_pythons_make_checks_for() -> None:
    versions = " or ".join(f"{major}.{minor}" for major, minor in SUPPORTED_PYTHONS)
    assert f"Python {versions}," in text_of(README)


@pytest.mark.parametrize(
    ("document", "quoted"),
    [
        ("inputs.md", f"mean absolute\ndifference at most {MAX_MEAN_DIFF:g} levels"),
        ("inputs.md", f"at most {MAX_INTERIOR_DIFF:g} levels inside the image"),
        ("inputs.md", f"at most {MAX_BORDER_DIFF:g} on the outermost"),
        ("inputs.md", f"the tests allow {CMYK_MAX_MEAN_DIFF:g}"),
        ("testing.md", f"within **{MEMORY_MARGIN_MIB:g} MiB**"),
        ("testing.md", f"by at most **{SHM_GROWTH_MARGIN_MIB:g} MiB**"),
        ("testing.md", f"with {SMALL_SOAK_REQUESTS} requests"),
        ("testing.md", f"`make soak` with {makefile_default('SOAK_REQUESTS')}"),
    ],
)
def test_guides_quote_the_tests_constants(document: str, quoted: str) -> None:
    assert " ".join(quoted.split()) in " ".join(text_of(DOCS / document).split())


# ---------------------------------------------------------------------------------------------
# Outputs, through a server started as `make serve` starts it.


def _number_close(quoted: str, actual: str) -> bool:
    """Whether ``actual`` is ``quoted`` to the precision ``quoted`` is written at: decimals
    within two units of their last place (or 0.01%, for floats printed in full); integers
    equal, but for pixel counts and coordinates (10 or more), which may move by one."""
    q, a = Decimal(quoted), Decimal(actual)
    if "." in quoted:
        last_place = Decimal(1).scaleb(q.as_tuple().exponent)
        return abs(q - a) <= max(2 * last_place, abs(q) * Decimal("0.0001"))
    if "." in actual or "e" in actual.lower():
        return False
    return q == a or (abs(q) >= 10 and abs(q - a) <= max(1, abs(q) * Decimal("0.005")))


_NUMBER = re.compile(r"(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)")
_LATENCY = re.compile(r"\d+(?:\.\d+)? ms\b")


def same_text(quoted: str, actual: str) -> bool:
    quoted, actual = _LATENCY.sub("# ms", quoted), _LATENCY.sub("# ms", actual)
    q, a = _NUMBER.split(quoted.strip()), _NUMBER.split(actual.strip())
    if len(q) != len(a):
        return False
    return all(
        _number_close(x, y) if i % 2 else x == y for i, (x, y) in enumerate(zip(q, a, strict=True))
    )


class _Quoted(str):
    """A number as the document writes it."""


def same_json(quoted: Any, actual: Any) -> bool:
    if isinstance(quoted, dict):
        return (
            isinstance(actual, dict)
            and quoted.keys() == actual.keys()
            and all(k == "latency_ms" or same_json(quoted[k], actual[k]) for k in quoted)
        )
    if isinstance(quoted, list):
        return (
            isinstance(actual, list)
            and len(quoted) == len(actual)
            and all(same_json(q, a) for q, a in zip(quoted, actual, strict=True))
        )
    if isinstance(quoted, _Quoted | int) and not isinstance(quoted, bool):
        return isinstance(actual, int | float) and _number_close(str(quoted), repr(actual))
    return quoted == actual


def same_output(output: Element, actual: str) -> bool:
    if output.kind != "json":
        return same_text(output.text, actual)
    quoted = json.loads(output.text, parse_float=_Quoted)
    answers = [json.loads(line) for line in actual.splitlines() if line.strip()]
    return same_json(quoted, answers[0] if len(answers) == 1 else answers)


@dataclass
class ServedDocs:
    """A server started as ``make serve`` starts it, and how to run the documents against it."""

    process: subprocess.Popen[bytes]
    log: Path
    ports: dict[str, int]
    workdir: Path

    def banner(self, timeout_s: float = 600.0) -> str:
        deadline = time.monotonic() + timeout_s
        while "Press Ctrl-C to stop." not in (text := self.log.read_text()):
            assert self.process.poll() is None, f"the server stopped:\n{text[-3000:]}"
            assert time.monotonic() < deadline, f"the server was not ready:\n{text[-3000:]}"
            time.sleep(0.5)
        banner = text[text.index("Triton is ready.") :]
        banner = banner[: banner.index("Press Ctrl-C to stop.") + len("Press Ctrl-C to stop.")]
        return self.on_default_ports(banner)

    def on_default_ports(self, text: str) -> str:
        for kind, port in self.ports.items():
            text = text.replace(f"localhost:{port}", f"localhost:{makefile_default(kind)}")
        return text

    def on_our_ports(self, text: str) -> str:
        for kind, port in self.ports.items():
            text = text.replace(f"localhost:{makefile_default(kind)}", f"localhost:{port}")
        return text

    def run_commands(self, element: Element) -> str:
        """What a ``bash`` block prints, run in a folder that holds the checkout's files (so
        that what it writes lands there), against this server."""
        printed = []
        for line in element.text.replace("\\\n", " ").splitlines():
            if not shlex.split(line, comments=True):
                continue
            command = self.on_our_ports(line).replace(".venv/bin/python", sys.executable)
            words = shlex.split(line, comments=True)
            if (
                len(words) > 1
                and words[1].startswith("clients/")
                and not {"-u", "--url"} & set(words)
            ):
                kind = "GRPC_PORT" if "grpc" in words else "HTTP_PORT"
                command += f" --url localhost:{self.ports[kind]}"
            run = subprocess.run(
                command,
                shell=True,
                executable="/bin/bash",
                cwd=self.workdir,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert run.returncode == 0, f"{element.where}: {line}\n{run.stderr[-3000:]}"
            printed.append(run.stdout)
        return "".join(printed)

    def run_python(self, element: Element) -> str:
        run = subprocess.run(
            [sys.executable, "-c", self.on_our_ports(element.text)],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, f"{element.where}:\n{run.stderr[-3000:]}"
        return run.stdout


@pytest.fixture(scope="module")
def served_docs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedDocs]:
    """``python -m server.launch`` (what ``make serve`` runs) on free ports, ready."""
    tmp_path = tmp_path_factory.mktemp("served_docs")
    free = Ports.free()
    ports = {"HTTP_PORT": free.http, "GRPC_PORT": free.grpc, "METRICS_PORT": free.metrics}
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    for entry in REPO_ROOT.iterdir():
        if not entry.name.startswith("."):
            (workdir / entry.name).symlink_to(entry)
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "server.launch",
                "--http-port", str(ports["HTTP_PORT"]),
                "--grpc-port", str(ports["GRPC_PORT"]),
                "--metrics-port", str(ports["METRICS_PORT"]),
            ],
            cwd=REPO_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        served = ServedDocs(process, log, ports, workdir)
        served.banner()
        yield served
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def metric_series(text: str) -> set[str]:
    return {line.split(" ")[0] for line in text.splitlines() if line.strip()}


# How to make the input of each row of docs/inputs.md's table of errors: the model it goes to,
# the JPEG tensor and its type, and the MODELS option.
def _error_request(row_input: str) -> tuple[str, np.ndarray, str, str | None]:
    good = PHOTO.read_bytes()
    by_bad_input = {
        "no bytes": "empty",
        "another format, renamed": "png",
        "text": "text",
        "anything else": "random",
        "cut short in the header": "cut_in_header",
        "cut short in the image data (no end-of-image marker)": "cut_in_scan",
        "a malformed header": "stray_bytes_in_header",
        "a header that parses, data the decoder rejects (e.g. a bad Huffman table)": (
            "bad_huffman_table"
        ),
    }
    if row_input in by_bad_input:
        data, _ = bad_input(by_bad_input[row_input], good)
        return "preprocess_ensemble", np.frombuffer(data, np.uint8)[np.newaxis], "UINT8", None
    if row_input == "2 color components":
        sof = good.index(b"\xff\xc0")
        data = good[: sof + 9] + b"\x02" + good[sof + 10 :]
        return "preprocess_ensemble", np.frombuffer(data, np.uint8)[np.newaxis], "UINT8", None
    if row_input == "`JPEG` of shape `[2, N]`":
        return "preprocess_ensemble", np.zeros((2, 16), np.uint8), "UINT8", None
    if row_input == "`JPEG` of another type, checked by Triton":
        return "preprocess_ensemble", np.zeros((1, 16), np.float32), "FP32", None
    if row_input == "`JPEG` of shape `[N]`, checked by Triton":
        return "preprocess_ensemble", np.zeros(64, np.uint8), "UINT8", None
    if row_input == "`MODELS` naming no detector, to `inspect`":
        return "inspect", np.frombuffer(good, np.uint8)[np.newaxis], "UINT8", "needle"
    raise AssertionError(f"no request for the row {row_input!r}: add one here")


def check_errors(element: Element, served: ServedDocs) -> list[str]:
    """What differs between the table's messages and the server's answers to its inputs."""
    problems = []
    url = f"localhost:{served.ports['HTTP_PORT']}"
    with httpclient.InferenceServerClient(url) as client:
        for row in element.rows():
            messages = backticked(row[1])
            if not messages:  # a row that points elsewhere
                continue
            model, data, datatype, models = _error_request(row[0])
            inputs = [httpclient.InferInput("JPEG", list(data.shape), datatype)]
            inputs[0].set_data_from_numpy(data)
            if models is not None:
                choice = np.array([[models.encode()]], dtype=np.object_)
                inputs.append(httpclient.InferInput("MODELS", [1, 1], "BYTES"))
                inputs[1].set_data_from_numpy(choice)
            try:
                client.infer(model, inputs)
                answer = "an answer"
            except InferenceServerException as error:
                answer = str(error)
            if messages[0] not in answer:
                quoted = messages[0]
                problems.append(f"{element.where}: {row[0]}: quotes {quoted!r}, got {answer!r}")
    return problems


def test_every_row_of_the_error_table_has_a_request() -> None:
    (table,) = [e for e in all_elements() if e.check == "errors"]
    for row in table.rows():
        if backticked(row[1]):
            _error_request(row[0])


@pytest.mark.server
@pytest.mark.slow
def test_quoted_banner_and_errors_are_the_servers(served_docs: ServedDocs) -> None:
    """What ``make serve`` prints when it is ready, and the errors of the bad requests."""
    problems = []
    for element in all_elements():
        if element.check == "serve banner":
            banner = served_docs.banner()
            if banner != element.text:
                problems.append(
                    f"{element.where} quotes\n{element.text}\nmake serve prints\n{banner}"
                )
        elif element.check == "errors":
            problems += check_errors(element, served_docs)
    assert not problems, "\n\n".join(problems)


@pytest.mark.server
@pytest.mark.slow
def test_quoted_outputs_are_the_servers(served_docs: ServedDocs) -> None:
    """Every output block, in document order, against what the command or the Python code above
    it prints: the README's request, the answer's JSON, the clients, the metrics' series."""
    problems = []
    ran: dict[Element, str] = {}
    for element in all_elements():
        if element.check == "runs":
            ran[element] = served_docs.run_python(element)
        elif element.check in ("output", "metrics"):
            above = element_before(element)
            if above not in ran:
                ran[above] = served_docs.run_commands(above)
            actual = ran[above]
            if element.check == "metrics":
                same = metric_series(element.text) == metric_series(actual)
            else:
                same = same_output(element, actual)
            if not same:
                problems.append(f"{element.where} quotes\n{element.text}\nthe code gives\n{actual}")
    if torch.cuda.is_available():
        pytest.skip(
            "the quoted outputs are a CPU's and this server ran on a GPU: commands run, "
            "outputs not compared"
        )
    assert not problems, "\n\n".join(problems)


def test_output_comparison_tells_precision_from_change() -> None:
    assert same_text("dial 0: 0.628 MPa (39% of scale)", "dial 0: 0.629 MPa (39% of scale)")
    assert not same_text("dial 0: 0.628 MPa (39% of scale)", "dial 0: 0.638 MPa (39% of scale)")
    assert not same_text("pointer: 4 instance(s)", "pointer: 5 instance(s)")
    assert same_text("box (264, 39, 439, 193)", "box (265, 39, 439, 193)")
    assert not same_text("box (264, 39, 439, 193)", "box (266, 39, 439, 193)")
    assert same_text("x.jpg: (3044 ms, http)", "x.jpg: (812.5 ms, http)")
    assert not same_text("[ok]", "[scale unsure]")
    quoted = json.loads(
        '{"score": 0.9995, "offset": 38164, "latency_ms": 1.0}', parse_float=_Quoted
    )
    assert same_json(quoted, {"score": 0.99948, "offset": 38164, "latency_ms": 9.0})
    assert not same_json(quoted, {"score": 0.9985, "offset": 38164, "latency_ms": 9.0})
    assert not same_json(quoted, {"score": 0.9995, "offset": 38164})
