"""PNG plots of a benchmark run (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use(): the backend is chosen before pyplot loads

from bench.stats import Summary, percentile

__all__ = ["write_plots"]


def _bars(title: str, samples: dict[str, list[float]], path: Path, log: bool = False) -> Path:
    """Median per variant, with a min-max bar."""
    names = list(samples)
    summaries = [Summary.of(samples[n]) for n in names]
    medians = [s.median for s in summaries]
    errors = [[s.median - s.min for s in summaries], [s.max - s.median for s in summaries]]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(names) + 1.5))
    ax.barh(names, medians, xerr=errors, color="tab:blue", capsize=3)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("seconds (median, bar = min..max)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _throughput(raw: dict[str, Any], path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, levels in raw.items():
        clients = sorted(int(c) for c in levels)
        figures = [levels[str(c)] for c in clients]
        left.plot(clients, [len(f["latencies_s"]) / f["wall_s"] for f in figures], "o-", label=name)
        for q, style in ((50, "o-"), (95, "s--"), (99, "^:")):
            tail = [percentile(f["latencies_s"], q) for f in figures]
            right.plot(clients, tail, style, label=f"{name} p{q}")
    left.set(xlabel="concurrent clients", ylabel="images/s", title="throughput (insulator)")
    right.set(xlabel="concurrent clients", ylabel="latency, s", title="latency percentiles")
    levels = sorted({int(c) for figures in raw.values() for c in figures})
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_plots(raw: dict[str, Any], out: Path) -> list[Path]:
    """Writes one PNG per section that ran; returns their paths."""
    paths = []
    if "overhead" in raw:
        for model, samples in raw["overhead"].items():
            paths.append(
                _bars(f"1 server overhead: {model}", samples, out / f"overhead_{model}.png")
            )
    if "both" in raw:
        paths.append(_bars("2 inspect: both vs each", raw["both"], out / "both.png"))
    if "preprocess" in raw:
        merged = {k: v for samples in raw["preprocess"].values() for k, v in samples.items()}
        paths.append(_bars("3 preprocessing", merged, out / "preprocess.png", log=True))
    if "throughput" in raw:
        paths.append(_throughput(raw["throughput"], out / "throughput.png"))
    if "transport" in raw:
        merged = {
            k: v
            for key, samples in raw["transport"].items()
            if key != "answer"
            for k, v in samples.items()
        }
        merged.update(raw["transport"].get("answer", {}).get("samples", {}))
        paths.append(_bars("5 transport", merged, out / "transport.png", log=True))
    return paths
