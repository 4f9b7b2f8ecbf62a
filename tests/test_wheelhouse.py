"""The offline wheelhouse (deploy/wheelhouse.py, ``make wheelhouse``): its pieces, and a fresh
virtual environment installed from it with no package index, serving a request."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from deploy.wheelhouse import accepted_platforms, host_platform, parse_size, write_parts
from server.launch import REPO_ROOT
from tests.support import make_scenes


def test_a_manylinux_target_accepts_every_older_glibc() -> None:
    tags = accepted_platforms("manylinux_2_35_x86_64")
    assert tags[0] == "manylinux_2_35_x86_64" and tags[-1] == "manylinux1_x86_64"
    # numpy 1.26.4 and torch 2.7 are manylinux_2_17 / manylinux2014 wheels.
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux2010_x86_64"} <= set(tags)
    assert "manylinux_2_36_x86_64" not in tags
    assert all(tag.endswith("_x86_64") for tag in tags)
    assert accepted_platforms("manylinux_2_28_aarch64")[0] == "manylinux_2_28_aarch64"
    assert accepted_platforms("macosx_11_0_arm64") == ["macosx_11_0_arm64"]


def test_this_machine_has_a_manylinux_tag() -> None:
    assert host_platform() in accepted_platforms(host_platform())
    assert host_platform().startswith("manylinux_2_")


def test_part_sizes() -> None:
    assert parse_size("1G") == 2**30
    assert parse_size("1900M") == 1900 * 2**20
    assert parse_size("512k") == 512 * 1024
    assert parse_size("100") == 100
    for bad in ("", "0", "1T", "1.5G", "-1M", "big"):
        with pytest.raises(argparse.ArgumentTypeError, match="not a size"):
            parse_size(bad)


def test_parts_join_back_to_the_same_files(tmp_path: Path) -> None:
    folder = tmp_path / "wheelhouse-cp310-test"
    folder.mkdir()
    contents = {f"pkg{i}-1.0-py3-none-any.whl": os.urandom(700 + 900 * i) for i in range(3)}
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    out = tmp_path / "parts"
    parts = write_parts(folder, out, part_size=1000)

    archive_size = sum(p.stat().st_size for p in parts)
    assert len(parts) == -(-archive_size // 1000) > 3
    assert all(p.stat().st_size <= 1000 for p in parts)
    assert [p.name for p in parts] == [f"{folder.name}.tar.part-{i:03d}" for i in range(len(parts))]
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True)
    assert check.returncode == 0, check.stdout

    joined = tmp_path / "joined.tar"
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    with tarfile.open(joined) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    unpacked = tmp_path / "unpacked" / folder.name
    assert {p.name: p.read_bytes() for p in unpacked.iterdir()} == contents

    # A second run with larger parts replaces the first one's parts instead of mixing them in.
    assert len(write_parts(folder, out, part_size=parse_size("1M"))) == 1
    assert sorted(p.name for p in out.iterdir()) == ["SHA256SUMS", f"{folder.name}.tar.part-000"]
    corrupt = out / f"{folder.name}.tar.part-000"
    data = bytearray(corrupt.read_bytes())
    data[0] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    assert subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=out).returncode != 0


def test_cli_errors_are_clear(tmp_path: Path) -> None:
    script = [sys.executable, str(REPO_ROOT / "deploy" / "wheelhouse.py")]
    missing = subprocess.run(
        [*script, "--requirements", str(tmp_path / "nope.txt"), "--output", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1
    assert "requirements file not found" in missing.stderr
    for flag, value in (("--part-size", "0"), ("--python-version", "python3")):
        bad = subprocess.run([*script, flag, value], capture_output=True, text=True)
        assert bad.returncode == 2 and "not a" in bad.stderr


# Started in the fresh environment: the server from its own nvidia-pytriton, a request through
# its own tritonclient, with the checkout's repository and demo weights.
SERVE_ONE_REQUEST = """
import json, subprocess, sys
from pathlib import Path
from server.backend import find_triton_install
from server.launch import Ports, TritonServer

photo, folder = sys.argv[1], Path(sys.argv[2])
server = TritonServer(Ports.free(), build_dir=folder / "build", log_path=folder / "log")
with server:
    server.wait_until_ready(timeout_s=600)
    answer = subprocess.run(
        [sys.executable, "clients/bls_client.py", "--url", server.url("http"), "--json", photo],
        capture_output=True, text=True, timeout=300,
    )
print(json.dumps({"triton": str(find_triton_install().server_binary), "prefix": sys.prefix,
                  "rc": answer.returncode, "stdout": answer.stdout, "stderr": answer.stderr}))
"""


@pytest.mark.slow
@pytest.mark.server
def test_a_fresh_venv_installs_from_the_wheelhouse_with_no_index_and_serves(
    tmp_path: Path,
) -> None:
    """The issue's check: ``make wheelhouse`` for this machine, the parts checked and joined,
    ``make venv`` with ``PIP_NO_INDEX=1`` into a new environment, then a request served by it."""
    made = subprocess.run(
        ["make", "--no-print-directory", "wheelhouse"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    parts_dir = REPO_ROOT / "build" / "wheelhouse" / "parts"
    parts = [Path(line) for line in made.stdout.split() if ".tar.part-" in line]
    assert parts and all(p.parent.resolve() == parts_dir.resolve() for p in parts)
    check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=parts_dir, capture_output=True)
    assert check.returncode == 0, check.stdout

    unpacked = tmp_path / "host"
    unpacked.mkdir()
    joined = subprocess.run(
        f"cat {' '.join(str(p) for p in parts)} | tar -x -C {unpacked}", shell=True, check=False
    )
    assert joined.returncode == 0
    (wheels,) = unpacked.iterdir()
    assert any(w.name.startswith("nvidia_pytriton-") for w in wheels.iterdir())

    venv = tmp_path / "venv"
    offline = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}
    offline.pop("PIP_INDEX_URL", None)
    offline.pop("PIP_EXTRA_INDEX_URL", None)
    installed = subprocess.run(
        ["make", "--no-print-directory", "venv", f"VENV={venv}"],
        cwd=REPO_ROOT,
        env=offline,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]

    photo = tmp_path / "gauge.jpg"
    photo.write_bytes(make_scenes()["gauge"])
    served = subprocess.run(
        [str(venv / "bin" / "python"), "-c", SERVE_ONE_REQUEST, str(photo), str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert served.returncode == 0, served.stderr[-3000:]
    result = json.loads(served.stdout.splitlines()[-1])
    assert Path(result["prefix"]) == venv
    assert Path(result["triton"]).is_relative_to(venv), "the server must come from the new venv"
    assert result["rc"] == 0, result["stderr"]
    answer = json.loads(result["stdout"])
    classes = {i["class"] for i in answer["models"]["pointer"]["instances"] if i["score"] >= 0.5}
    assert {"pointer", "dial"} <= classes
