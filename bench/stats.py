"""Pure helpers of the benchmark: summaries, ratios and the printed table (unit-tested)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Row", "Summary", "format_seconds", "format_table", "paired_ratios", "percentile"]


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks.

    Raises:
        ValueError: no samples, or ``q`` outside 0-100.
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0-100, got {q}")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    """min/median/max and tail percentiles of a set of samples (seconds, or a unitless ratio)."""

    n: int
    min: float
    median: float
    max: float
    p95: float
    p99: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        """Summarises ``samples``.

        Raises:
            ValueError: no samples.
        """
        if not samples:
            raise ValueError("summary of no samples")
        return cls(
            n=len(samples),
            min=min(samples),
            median=statistics.median(samples),
            max=max(samples),
            p95=percentile(samples, 95),
            p99=percentile(samples, 99),
        )

    def as_dict(self) -> dict[str, float]:
        """Plain fields, for the JSON result."""
        return asdict(self)


def paired_ratios(variant: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """Per-round ratios ``variant[i] / baseline[i]``.

    Rounds are interleaved, so a burst of load from elsewhere slows both members of a pair; the
    ratio of a pair is steadier than the ratio of two medians taken minutes apart.

    Raises:
        ValueError: the sequences differ in length, or a baseline sample is not positive.
    """
    if len(variant) != len(baseline):
        raise ValueError(f"{len(variant)} variant samples against {len(baseline)} baseline")
    if any(b <= 0 for b in baseline):
        raise ValueError("baseline samples must be positive")
    return [v / b for v, b in zip(variant, baseline, strict=True)]


def format_seconds(seconds: float) -> str:
    """A duration with a unit that keeps three significant digits: ``2.71 s``, ``41.2 ms``."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} us"


@dataclass
class Row:
    """One line of the result table.

    Attributes:
        section: which question it answers, e.g. ``"1 overhead"``.
        name: what was measured, e.g. ``"pointer_ensemble grpc"``.
        summary: its samples' summary (seconds), or ``None`` for a derived figure.
        baseline: what the ratio is taken against ('' for none).
        ratio: median of the per-round ratios to the baseline (``None`` without one).
        goal: the issue's goal for this line, in words ('' for none).
        note: anything else worth a column (throughput, sizes).
    """

    section: str
    name: str
    summary: Summary | None = None
    baseline: str = ""
    ratio: float | None = None
    goal: str = ""
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain fields, for the JSON result."""
        fields = asdict(self)
        fields["summary"] = self.summary.as_dict() if self.summary else None
        return fields


_HEADERS = ("section", "measured", "median", "min", "max", "vs", "ratio", "goal", "note")


def format_table(rows: Sequence[Row]) -> str:
    """The rows as an aligned plain-text table, one line per row, with a header."""
    cells = [list(_HEADERS)]
    for row in rows:
        s = row.summary
        cells.append(
            [
                row.section,
                row.name,
                format_seconds(s.median) if s else "",
                format_seconds(s.min) if s else "",
                format_seconds(s.max) if s else "",
                row.baseline,
                f"{row.ratio:.3f}x" if row.ratio is not None else "",
                row.goal,
                row.note,
            ]
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(_HEADERS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
