"""The accuracy table, the precision-recall plot, the reading-error histograms and the curves the
score thresholds are chosen from (matplotlib's Agg backend: no display)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use(): the backend is chosen before pyplot loads
from matplotlib.axes import Axes

from bench.accuracy.metrics import ClassCurve, Figure, Kind
from bench.accuracy.thresholds import Choice, CurvePoint

__all__ = ["format_table", "plot_pr_curves", "plot_reading_errors", "plot_threshold_curves"]

_HEADERS = ("set", "figure", "value", "goal", "result")


def _format_value(value: float | None, kind: Kind) -> str:
    if value is None:
        return "n/a"
    if kind == "ap":
        return f"{value:.3f}"
    if kind == "share":
        return f"{value:.1%}"
    if kind == "deg":
        return f"{value:.2f} deg"
    if kind == "percent":
        return f"{value:.2f}%"
    if kind == "rate":
        return f"{value:.2f}"
    return f"{value:.0f}"


def format_table(figures: Sequence[Figure]) -> str:
    """The figures as an aligned plain-text table: value (with its counts), goal, pass or FAIL."""
    cells = [list(_HEADERS)]
    for figure in figures:
        value = _format_value(figure.value, figure.kind)
        goal = ""
        if figure.goal is not None:
            bound = "<=" if figure.at_most else ">="
            goal = f"{bound} {_format_value(figure.goal, figure.kind)}"
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


def _histogram(ax: Axes, errors: Sequence[float], cap: float, goals: Mapping[str, float]) -> None:
    """Errors in bins up to ``cap``; larger ones (a needle read backwards: 180 deg) pile up in
    the last bin, so that the tail stays visible without flattening the body."""
    bins = np.linspace(0.0, cap, 41)
    clipped = np.minimum(np.asarray(errors, dtype=float), cap - 1e-9)
    ax.hist(clipped, bins=bins, color="C0")
    for i, (label, value) in enumerate(goals.items()):
        if value < cap:
            ax.axvline(value, color=f"C{i + 1}", linestyle="--", label=label)
    beyond = int(np.sum(np.asarray(errors) >= cap))
    if beyond:
        ax.annotate(
            f"{beyond} >= {cap:g}",
            (cap, 0),
            xytext=(-4, 4),
            textcoords="offset points",
            ha="right",
            fontsize="small",
        )
    ax.set_ylabel("gauges")
    ax.grid(alpha=0.3)
    if goals:
        ax.legend(loc="upper right", fontsize="small")


def plot_reading_errors(
    angle_errors: Sequence[float],
    value_errors: Sequence[float],
    path: Path,
    angle_goals: Mapping[str, float] | None = None,
    fraction_errors: Sequence[float] = (),
    fraction_goals: Mapping[str, float] | None = None,
    title: str = "",
) -> Path:
    """Three histograms: fraction errors (% of the span), needle-angle errors (degrees) and
    value errors (% of full scale).

    Args:
        angle_errors: per read needle, as :class:`~bench.accuracy.readings.ReadingSummary`
            holds them.
        value_errors: per read gauge of the calibrated type.
        path: the PNG to write.
        angle_goals: vertical lines to draw on the angle panel, label -> degrees.
        fraction_errors: per reading with a fraction.
        fraction_goals: vertical lines on the fraction panel, label -> percent.
        title: the set's name, put before each panel's title.

    Returns:
        ``path``.
    """
    fig, (fractions, angles, values) = plt.subplots(1, 3, figsize=(15, 4))
    prefix = f"{title}: " if title else ""

    def median(errors: Sequence[float]) -> str:
        return f"median {np.median(errors):.2f}" if len(errors) else "none"

    _histogram(fractions, fraction_errors, 5.0, fraction_goals or {})
    fractions.set_xlabel("fraction error (% of span)")
    fractions.set_title(
        f"{prefix}fraction, {len(fraction_errors)} readings ({median(fraction_errors)})"
    )
    _histogram(angles, angle_errors, 10.0, angle_goals or {})
    angles.set_xlabel("needle angle error (deg)")
    angles.set_title(f"{prefix}needle angle, {len(angle_errors)} needles ({median(angle_errors)})")
    _histogram(values, value_errors, 5.0, {})
    values.set_xlabel("value error (% of full scale)")
    values.set_title(
        f"{prefix}value, {len(value_errors)} calibrated gauges ({median(value_errors)})"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_threshold_curves(
    curves: Mapping[str, Sequence[CurvePoint]],
    choices: Mapping[str, Choice],
    precision: float,
    path: Path,
) -> Path:
    """Per class, the curves its score threshold was chosen from: above, precision and recall
    against the score cut, the target precision and the chosen threshold marked; below,
    precision against recall, the chosen point marked.

    Args:
        curves: per class, :func:`~bench.accuracy.thresholds.pr_curve`'s points.
        choices: per class, its choice (a class without a threshold is drawn unmarked).
        precision: the target precision.
        path: the PNG to write.

    Returns:
        ``path``.
    """
    names = list(curves)
    fig, axes = plt.subplots(
        2, max(len(names), 1), figsize=(4.5 * max(len(names), 1), 8), squeeze=False
    )
    for column, name in enumerate(names):
        top, bottom = axes[0][column], axes[1][column]
        points = curves[name]
        scores = [p.score for p in points]
        precisions = [p.precision for p in points]
        recalls = [p.recall if p.recall is not None else np.nan for p in points]
        top.plot(scores, precisions, color="C0", label="precision")
        top.plot(scores, recalls, color="C1", label="recall")
        top.axhline(precision, color="C2", linestyle=":", label=f"target {precision:g}")
        bottom.plot(recalls, precisions, color="C0")
        bottom.axhline(precision, color="C2", linestyle=":")
        choice = choices.get(name)
        title = f"{name}: no threshold"
        if choice is not None and choice.threshold is not None and choice.point is not None:
            top.axvline(choice.threshold, color="C3", linestyle="--", label="chosen")
            bottom.plot([choice.point.recall], [choice.point.precision], "o", color="C3")
            title = f"{name}: score >= {choice.threshold:.3f}"
        top.set_xlim(0, 1)
        top.set_ylim(0, 1.02)
        top.set_xlabel("score threshold")
        top.set_title(title)
        top.grid(alpha=0.3)
        top.legend(loc="lower left", fontsize="small")
        bottom.set_xlim(0, 1)
        bottom.set_ylim(0, 1.02)
        bottom.set_xlabel("recall")
        bottom.set_ylabel("precision")
        bottom.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
