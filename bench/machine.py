"""What machine the figures come from: CPU model, cores, memory, GPUs (unit-tested)."""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from pipelines.threads import usable_cores

__all__ = ["describe_machine", "machine_line"]


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return " ".join(value.split())
    return platform.processor() or platform.machine()


def _memory_gib(meminfo: str) -> float | None:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)  # the kernel counts kB
    return None


def _nvidia_gpus() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def describe_machine(
    cpuinfo: str | None = None,
    meminfo: str | None = None,
    gpus: list[str] | None = None,
    cores: int | None = None,
) -> dict[str, Any]:
    """The machine's description for the results.

    Arguments default to this machine's; tests pass their own.

    Args:
        cpuinfo: text of ``/proc/cpuinfo``.
        meminfo: text of ``/proc/meminfo``.
        gpus: one ``"name, memory"`` line per GPU (``nvidia-smi``'s CSV).
        cores: CPUs this process may run on.
    """
    if cores is None:
        cores = usable_cores()
    return {
        "cpu": _cpu_model(_read("/proc/cpuinfo") if cpuinfo is None else cpuinfo),
        "cores": cores,
        "memory_gib": _memory_gib(_read("/proc/meminfo") if meminfo is None else meminfo),
        "gpus": _nvidia_gpus() if gpus is None else gpus,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def machine_line(machine: dict[str, Any]) -> str:
    """One line for the table's header and the README: ``CPU, N cores, M GiB, GPU``."""
    memory = f", {machine['memory_gib']:g} GiB" if machine.get("memory_gib") else ""
    gpus = "; ".join(machine.get("gpus") or []) or "no GPU"
    return f"{machine['cpu']}, {machine['cores']} cores{memory}, {gpus}"
