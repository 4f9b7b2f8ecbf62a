"""pipelines.threads: each CPU instance of a detector takes its share of the cores."""

from __future__ import annotations

import subprocess
import sys

from pipelines.threads import cpu_instances, threads_per_instance


def cpu_group(count: int) -> dict[str, object]:
    return {"kind": "KIND_CPU", "count": count}


def test_one_instance_takes_every_core() -> None:
    assert threads_per_instance({"instance_group": [cpu_group(1)]}, cores=8) == 8
    assert threads_per_instance({}, cores=2) == 2  # no group: Triton's default of one


def test_instances_share_the_cores_and_never_get_none() -> None:
    assert threads_per_instance({"instance_group": [cpu_group(2)]}, cores=2) == 1
    assert threads_per_instance({"instance_group": [cpu_group(2), cpu_group(1)]}, cores=8) == 2
    assert threads_per_instance({"instance_group": [cpu_group(4)]}, cores=2) == 1


def test_gpu_groups_do_not_count() -> None:
    config = {"instance_group": [{"kind": "KIND_GPU", "count": 2}, cpu_group(2)]}
    assert cpu_instances(config) == 2
    assert cpu_instances({"instance_group": [{"kind": "KIND_GPU", "count": 2}]}) == 1


def test_usable_cores_follow_the_affinity_not_the_machine() -> None:
    code = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); " + (
        "from pipelines.threads import usable_cores; print(usable_cores())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"
