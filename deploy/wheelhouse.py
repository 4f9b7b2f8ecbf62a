"""Packs every wheel ``make venv`` installs into a wheelhouse, for a host with no package index.

GPU hosts are often cut off from the internet. On a machine that has an index, this script
downloads (or, for the few pure-Python packages published only as source, builds) every wheel of
requirements.txt and its dependencies, detectron2 and CenterNet2, for the target's Python version
and platform, and writes them as one tar archive in parts of a chosen size, with their SHA-256
sums. On the host, with the parts and a checkout of this repository::

    cd parts && sha256sum -c SHA256SUMS
    cat wheelhouse-*.tar.part-* | tar -x
    PIP_NO_INDEX=1 PIP_FIND_LINKS="$PWD/wheelhouse-cp310-manylinux_2_35_x86_64" make venv

``make venv`` then installs exactly what it installs online, with no index. The Triton server is
among the wheels (nvidia-pytriton), so ``make serve`` runs from it as it does here.

Usage:
    python deploy/wheelhouse.py --requirements requirements.txt --no-deps sal-detectron2==0.7.2 \\
        --python-version 3.10 --platform manylinux_2_35_x86_64 --output build/wheelhouse
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "WheelhouseError",
    "accepted_platforms",
    "build_wheelhouse",
    "host_platform",
    "parse_size",
    "write_parts",
]

# The one wheel make venv installs with --python-version 3.10 into any Python: sal-detectron2
# ships a cp310 wheel only, whose Python code runs on newer versions too (the Makefile says why).
NO_DEPS_PYTHON_VERSION = "3.10"
# A source-only package must build into a wheel that runs anywhere, or it cannot be carried.
PURE_WHEEL = re.compile(r"-(py3|py2\.py3)-none-any\.whl$")
_MISSING = re.compile(r"No matching distribution found for (\S+)")
_MANYLINUX = re.compile(r"manylinux_2_(\d+)_(\w+)")
# pip's own names for manylinux_2_5, _2_12 and _2_17 (PEP 600).
_LEGACY_MANYLINUX = {5: "manylinux1", 12: "manylinux2010", 17: "manylinux2014"}
_SIZE = re.compile(r"(\d+)([KMG]?)")


class WheelhouseError(RuntimeError):
    """The wheelhouse cannot be made; the message says which package or step failed."""


def host_platform() -> str:
    """This machine's manylinux platform tag, e.g. ``manylinux_2_36_x86_64``."""
    libc, version = platform.libc_ver()
    if libc != "glibc":
        raise WheelhouseError(f"not a glibc system ({libc or 'unknown libc'}): give --platform")
    major, minor = version.split(".")[:2]
    if major != "2":
        raise WheelhouseError(f"unexpected glibc version {version}: give --platform")
    return f"manylinux_2_{minor}_{platform.machine()}"


def accepted_platforms(target: str) -> list[str]:
    """Every platform tag a host of ``target`` installs, newest first.

    pip takes a ``--platform`` literally: ``manylinux_2_35_x86_64`` alone would refuse numpy's
    ``manylinux_2_17`` wheels, which such a host installs. So a manylinux tag becomes itself and
    every older glibc's tag, the legacy names included; any other tag stays as it is.
    """
    match = _MANYLINUX.fullmatch(target)
    if not match:
        return [target]
    newest, arch = int(match.group(1)), match.group(2)
    tags = []
    for minor in range(newest, 4, -1):
        tags.append(f"manylinux_2_{minor}_{arch}")
        if minor in _LEGACY_MANYLINUX:
            tags.append(f"{_LEGACY_MANYLINUX[minor]}_{arch}")
    return tags


def parse_size(text: str) -> int:
    """Bytes in ``"1900M"``, ``"1G"``, ``"512K"`` or ``"1000000"`` (binary units)."""
    match = _SIZE.fullmatch(text.strip().upper())
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1G, 1900M, 512K)")
    return int(match.group(1)) * 1024 ** " KMG".index(match.group(2) or " ")


def _run(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Runs pip with its progress (stdout) shown and its errors (stderr) kept for reading."""
    return subprocess.run(command, stderr=subprocess.PIPE, text=True, check=False)


def _target_options(python_version: str, platforms: Sequence[str]) -> list[str]:
    options = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python_version]
    for tag in platforms:
        options += ["--platform", tag]
    return options


def _build_pure_wheel(pip: Sequence[str], spec: str, folder: Path) -> Path:
    """Builds the wheel of a package that is published as source only."""
    before = set(folder.glob("*.whl"))
    run = _run([*pip, "wheel", "--no-deps", "--wheel-dir", str(folder), spec])
    built = sorted(set(folder.glob("*.whl")) - before)
    if run.returncode != 0 or len(built) != 1:
        raise WheelhouseError(
            f"no wheel of {spec} for the target, and building one failed:\n{run.stderr[-2000:]}"
        )
    if not PURE_WHEEL.search(built[0].name):
        built[0].unlink()
        raise WheelhouseError(
            f"{spec} has no wheel for the target and builds only for this machine "
            f"({built[0].name}): build it on a machine like the target"
        )
    return built[0]


def build_wheelhouse(
    requirements: Path,
    no_deps: Sequence[str],
    python_version: str,
    platform_tag: str,
    folder: Path,
) -> list[Path]:
    """Downloads every wheel of ``requirements`` and ``no_deps`` for the target into ``folder``.

    ``requirements`` are resolved with their dependencies for ``python_version`` and every
    platform :func:`accepted_platforms` gives; ``no_deps`` are taken alone, for Python
    :data:`NO_DEPS_PYTHON_VERSION`, as ``make venv`` installs them. A package published only as
    source is built here into a pure-Python wheel (an error names it if it does not build into
    one). Files already in ``folder`` are kept, so a second run downloads only what is missing.

    Returns:
        The wheels in ``folder``, sorted by name.
    """
    folder.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    download = [
        *pip,
        "download",
        "--progress-bar",
        "off",
        "--dest",
        str(folder),
        "--find-links",
        str(folder),
    ]
    platforms = accepted_platforms(platform_tag)
    built: list[str] = []
    while True:
        run = _run(
            [*download, *_target_options(python_version, platforms), "-r", str(requirements)]
        )
        if run.returncode == 0:
            break
        missing = _MISSING.search(run.stderr)
        if not missing or missing.group(1) in built:
            raise WheelhouseError(f"pip download failed:\n{run.stderr[-3000:]}")
        spec = missing.group(1)
        built.append(spec)
        wheel = _build_pure_wheel(pip, spec, folder)
        print(f"{spec}: source only, built {wheel.name}", file=sys.stderr)
    if no_deps:
        options = _target_options(NO_DEPS_PYTHON_VERSION, platforms)
        run = _run([*download, "--no-deps", *options, *no_deps])
        if run.returncode != 0:
            raise WheelhouseError(f"pip download failed:\n{run.stderr[-3000:]}")
    return sorted(folder.glob("*.whl"))


class _Parts:
    """A writable stream cut into files of at most ``size`` bytes: NAME.part-000, -001, ..."""

    def __init__(self, stem: Path, size: int) -> None:
        self.stem, self.size = stem, size
        self.paths: list[Path] = []
        self._file: BinaryIO | None = None
        self._left = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            if self._left == 0:
                self._next()
            assert self._file is not None
            chunk = view[: self._left]
            self._file.write(chunk)
            self._left -= len(chunk)
            view = view[len(chunk) :]
        return len(data)

    def _next(self) -> None:
        self.close()
        path = self.stem.with_name(f"{self.stem.name}.part-{len(self.paths):03d}")
        self.paths.append(path)
        self._file = path.open("wb")
        self._left = self.size

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _members(folder: Path) -> Iterator[Path]:
    yield from sorted(p for p in folder.iterdir() if p.is_file())


def write_parts(folder: Path, output: Path, part_size: int) -> list[Path]:
    """Writes ``folder`` as one uncompressed tar (wheels are compressed already) cut into parts.

    The parts are ``output/<folder name>.tar.part-NNN``, each at most ``part_size`` bytes, and
    ``output/SHA256SUMS`` holds their sums in ``sha256sum -c`` form. Earlier parts of the same
    name are removed first.

    Returns:
        The parts, in order.
    """
    output.mkdir(parents=True, exist_ok=True)
    stem = output / f"{folder.name}.tar"
    for old in output.glob(f"{stem.name}.part-*"):
        old.unlink()
    parts = _Parts(stem, part_size)
    try:
        with tarfile.open(fileobj=parts, mode="w|", format=tarfile.PAX_FORMAT) as archive:
            for path in _members(folder):
                archive.add(path, arcname=f"{folder.name}/{path.name}")
    finally:
        parts.close()
    sums = "".join(f"{_sha256(p)}  {p.name}\n" for p in parts.paths)
    (output / "SHA256SUMS").write_text(sums)
    return parts.paths


def _python_version(text: str) -> str:
    if not re.fullmatch(r"3\.\d+", text):
        raise argparse.ArgumentTypeError(f"not a Python version: {text!r} (e.g. 3.10)")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build the wheelhouse, then its parts."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="For the production image's Python: --python-version 3.10 --platform "
        "manylinux_2_35_x86_64 (Ubuntu 22.04). On the host: sha256sum -c SHA256SUMS; "
        "cat *.tar.part-* | tar -x; PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/<folder> make venv.",
    )
    parser.add_argument(
        "--requirements",
        type=Path,
        default=Path("requirements.txt"),
        help="Pinned requirements, resolved with their dependencies. Default is requirements.txt.",
    )
    parser.add_argument(
        "--no-deps",
        action="append",
        default=[],
        metavar="SPEC",
        help="A package taken without dependencies, for Python "
        f"{NO_DEPS_PYTHON_VERSION}, as make venv installs detectron2 and "
        "CenterNet2 (repeat for several).",
    )
    parser.add_argument(
        "--python-version",
        type=_python_version,
        default=here,
        help=f"The target's Python, e.g. 3.10. Default is this one's ({here}).",
    )
    parser.add_argument(
        "--platform",
        help="The target's platform tag, e.g. "
        "manylinux_2_35_x86_64 (glibc 2.35). Default is this machine's.",
    )
    parser.add_argument(
        "--part-size",
        type=parse_size,
        default=parse_size("1G"),
        help="Largest part, e.g. 1900M or 4G. Default is 1G.",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("build/wheelhouse"),
        help="Where the wheel folder and its parts go. Default is build/wheelhouse.",
    )
    args = parser.parse_args(argv)

    try:
        platform_tag = args.platform or host_platform()
        if not args.requirements.is_file():
            raise WheelhouseError(f"requirements file not found: {args.requirements}")
        name = f"wheelhouse-cp{args.python_version.replace('.', '')}-{platform_tag}"
        folder = args.output / name
        print(
            f"downloading wheels for Python {args.python_version}, {platform_tag} into "
            f"{folder} (first time: several GB) ...",
            file=sys.stderr,
            flush=True,
        )
        wheels = build_wheelhouse(
            args.requirements, args.no_deps, args.python_version, platform_tag, folder
        )
        total = sum(w.stat().st_size for w in wheels)
        print(
            f"{len(wheels)} wheels, {total / 2**30:.2f} GiB; writing parts ...",
            file=sys.stderr,
            flush=True,
        )
        parts = write_parts(folder, args.output / "parts", args.part_size)
    except (WheelhouseError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for part in parts:
        print(part)
    print(f"{len(parts)} parts and SHA256SUMS in {args.output / 'parts'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
