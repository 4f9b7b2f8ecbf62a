"""Interleaved timing: every variant once per round, in a rotating order."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from bench.stats import format_seconds

__all__ = ["interleaved", "rotated", "timed"]


def timed(call: Callable[[], object]) -> float:
    """Seconds one call takes (monotonic clock)."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def rotated(names: list[str], round_index: int) -> list[str]:
    """``names`` rotated by ``round_index``: no variant always runs first (or after another)."""
    if not names:
        return []
    k = round_index % len(names)
    return names[k:] + names[:k]


def interleaved(
    variants: Mapping[str, Callable[[], object]],
    rounds: int,
    warmup: int = 1,
    label: str = "",
) -> dict[str, list[float]]:
    """Times each variant ``rounds`` times, one of each per round, after ``warmup`` untimed rounds.

    Each round prints one progress line, so a long run shows where it is.

    Returns:
        Variant name -> its ``rounds`` durations in seconds, round by round (so that sample ``i``
        of two variants were taken moments apart and their ratio is fair).
    """
    names = list(variants)
    for i in range(warmup):
        for name in rotated(names, i):
            variants[name]()
        print(f"  [{label}] warm-up {i + 1}/{warmup} done", flush=True)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in rotated(names, i):
            samples[name].append(timed(variants[name]))
        shown = ", ".join(f"{n} {format_seconds(samples[n][-1])}" for n in names)
        print(f"  [{label}] round {i + 1}/{rounds}: {shown}", flush=True)
    return samples
