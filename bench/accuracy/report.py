"""The accuracy table and the precision-recall plot (matplotlib's Agg backend: no display)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use(): the backend is chosen before pyplot loads

from bench.accuracy.metrics import ClassCurve, Figure, Kind

__all__ = ["format_table", "plot_pr_curves"]

_HEADERS = ("set", "figure", "value", "goal", "result")


def _format_value(value: float | None, kind: Kind) -> str:
    if value is None:
        return "n/a"
    if kind == "ap":
        return f"{value:.3f}"
    if kind == "share":
        return f"{value:.1%}"
    return f"{value:.0f}"


def format_table(figures: Sequence[Figure]) -> str:
    """The figures as an aligned plain-text table: value (with its counts), goal, pass or FAIL."""
    cells = [list(_HEADERS)]
    for figure in figures:
        value = _format_value(figure.value, figure.kind)
        goal = ""
        if figure.goal is not None:
            goal = f">= {_format_value(figure.goal, figure.kind)}"
        result = {None: "", True: "pass", False: "FAIL"}[figure.passed]
        detail = f" ({figure.detail})" if figure.detail else ""
        cells.append([figure.set, figure.name, value + detail, goal, result])
    widths = [max(len(line[i]) for line in cells) for i in range(len(_HEADERS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def plot_pr_curves(curves: Mapping[str, Mapping[str, ClassCurve]], path: Path) -> Path:
    """One panel per set: precision against recall at IoU 0.5, per class, boxes solid and masks
    dashed, AP50 in the legend. Classes absent from a set's ground truth are left out.

    Args:
        curves: per set, per ``"<class> (box|mask)"``, as :class:`~bench.accuracy.metrics.SetResult`
            holds them.
        path: the PNG to write.

    Returns:
        ``path``.
    """
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4.5), squeeze=False)
    for ax, (set_name, set_curves) in zip(axes[0], curves.items(), strict=True):
        # A class keeps its colour across box and mask.
        classes = list(dict.fromkeys(label.rsplit(" (", 1)[0] for label in set_curves))
        for label, curve in set_curves.items():
            if curve.ap50 is None:
                continue
            ax.plot(
                curve.recall,
                curve.precision,
                "--" if label.endswith("(mask)") else "-",
                color=f"C{classes.index(label.rsplit(' (', 1)[0])}",
                label=f"{label} AP50 {curve.ap50:.3f}",
            )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"{set_name} (IoU 0.5)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left", fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
