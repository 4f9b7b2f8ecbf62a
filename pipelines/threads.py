"""How many torch threads a CPU instance of a detector gets: its share of the cores.

Triton starts one python stub per model instance, each a process with its own torch, and torch
takes every core in each. Two instances of a detector on 2 cores then run 4 threads on 2 cores,
and oversubscribed threads cost far more than they gain (docs/performance.md). So each CPU
instance takes ``cores // instances`` threads: one instance keeps every core (the lowest latency
for one request at a time); ``count: 2`` in ``instance_group`` on 2 cores gives each one thread,
two forwards side by side (more images per second under concurrent load, each one slower).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["cpu_instances", "threads_per_instance", "usable_cores"]


def usable_cores() -> int:
    """The cores this process may run on (its affinity, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0))


def cpu_instances(model_config: Mapping[str, Any]) -> int:
    """How many CPU instances a parsed ``config.pbtxt`` (as Triton hands it to the model) asks
    for: the sum of its ``KIND_CPU`` instance groups' counts (Triton's default count is 1)."""
    groups = model_config.get("instance_group") or []
    return sum(int(g.get("count", 1)) for g in groups if g.get("kind") == "KIND_CPU") or 1


def threads_per_instance(model_config: Mapping[str, Any], cores: int) -> int:
    """torch intra-op threads for one CPU instance: ``cores`` shared among the instances."""
    return max(1, cores // cpu_instances(model_config))
