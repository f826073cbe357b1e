"""Server-rendered SVG charts: geometry computed here, markup in templates (autoescaped)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Series:
    name: str
    css: str
    path: str = ""
    dots: list[tuple[float, float, str]] = field(default_factory=list)  # x, y, tooltip


@dataclass
class LineChart:
    """Geometry of a line chart (the tutor trend and the overview's weekly counts)."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    y_ticks: list[tuple[float, str]]
    x_labels: list[tuple[float, str]]
    series: list[Series]
    empty: bool


def _line_series(
    points: list[dict[str, Any]],
    lines: Sequence[tuple[str, str, str]],
    label_key: str,
    at: Callable[[int, float], tuple[float, float]],
    shown: Callable[[float], str],
) -> list[Series]:
    """One Series per (key, name, css); a point without the key breaks the line."""
    series: list[Series] = []
    for key, name, css in lines:
        s = Series(name=name, css=css)
        parts: list[str] = []
        pen_down = False
        for i, point in enumerate(points):
            value = point.get(key)
            if value is None:
                pen_down = False
                continue
            x, y = at(i, float(value))
            parts.append(f"{'L' if pen_down else 'M'}{x},{y}")
            pen_down = True
            s.dots.append((x, y, f"{name}: {shown(float(value))} ({point.get(label_key, '')})"))
        s.path = " ".join(parts)
        series.append(s)
    return series


def trend_chart(
    points: list[dict[str, Any]],
    *,
    label_key: str = "label",
    lines: tuple[tuple[str, str, str], ...] = (
        ("avg_rating", "Student rating", "rating"),
        ("avg_ai_score", "AI quality score", "ai"),
    ),
    width: int = 640,
    height: int = 240,
    y_min: float = 1.0,
    y_max: float = 5.0,
) -> LineChart:
    """Lines on a fixed 1-5 scale so two tutors' charts compare at a glance.

    A missing value breaks the line (no interpolation across empty weeks).
    """
    left, right, top, bottom = 36, width - 28, 12, height - 28
    n = len(points)

    def x_at(i: int) -> float:
        return left + (right - left) * (0.5 if n == 1 else i / (n - 1))

    def y_at(v: float) -> float:
        v = min(max(v, y_min), y_max)
        return bottom - (bottom - top) * (v - y_min) / (y_max - y_min)

    series = _line_series(
        points,
        lines,
        label_key,
        lambda i, v: (round(x_at(i), 1), round(y_at(v), 1)),
        lambda v: f"{v:.2f}",
    )
    y_ticks = [(round(y_at(v), 1), f"{v:g}") for v in range(int(y_min), int(y_max) + 1)]
    step = max(1, n // 6)
    x_labels = [(round(x_at(i), 1), str(points[i].get(label_key, ""))) for i in range(0, n, step)]
    empty = not any(s.dots for s in series)
    return LineChart(width, height, left, right, top, bottom, y_ticks, x_labels, series, empty)


@dataclass
class ReliabilityChart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    ticks: list[tuple[float, float, str]]  # x, y of the same value on both axes, label
    diagonal: tuple[float, float, float, float]
    points: list[tuple[float, float, float, str]]  # x, y, radius, tooltip
    path: str
    empty: bool


def reliability_chart(
    bins: list[dict[str, Any]], *, width: int = 360, height: int = 300
) -> ReliabilityChart:
    """Predicted probability (x) against the observed rate (y) per decile, on the same
    scale, with the diagonal a calibrated model would follow. The scale ends at the
    largest value rounded up to 10% so low-risk populations are not squeezed."""
    left, right, top, bottom = 44, width - 16, 12, height - 36
    values = [float(b[k]) for b in bins for k in ("mean_predicted", "observed_rate")]
    top_value = min(1.0, max(0.1, math.ceil(max(values, default=0.1) * 10 - 1e-9) / 10))

    def x_at(v: float) -> float:
        return round(left + (right - left) * min(max(v, 0.0), top_value) / top_value, 1)

    def y_at(v: float) -> float:
        return round(bottom - (bottom - top) * min(max(v, 0.0), top_value) / top_value, 1)

    steps = 5
    ticks = [
        (x_at(top_value * i / steps), y_at(top_value * i / steps), f"{top_value * i / steps:.0%}")
        for i in range(steps + 1)
    ]
    points = []
    parts: list[str] = []
    most = max((int(b["rows"]) for b in bins), default=1) or 1
    for b in bins:
        x, y = x_at(float(b["mean_predicted"])), y_at(float(b["observed_rate"]))
        r = round(3 + 3 * int(b["rows"]) / most, 1)
        tip = (
            f"decile {b['bin']}: predicted {float(b['mean_predicted']):.1%}, observed "
            f"{float(b['observed_rate']):.1%} ({b['positives']} of {b['rows']})"
        )
        points.append((x, y, r, tip))
        parts.append(f"{'L' if parts else 'M'}{x},{y}")
    return ReliabilityChart(
        width, height, left, right, top, bottom, ticks,
        (x_at(0.0), y_at(0.0), x_at(top_value), y_at(top_value)),
        points, " ".join(parts), not bins,
    )  # fmt: skip


def count_chart(
    points: list[dict[str, Any]],
    lines: list[tuple[str, str, str]],
    *,
    label_key: str = "label",
    width: int = 640,
    height: int = 220,
) -> LineChart:
    """Counts per point (tutors per week), one line per (key, name, css); y from 0 to a
    round maximum. A point without the key breaks the line."""
    left, right, top, bottom = 36, width - 28, 12, height - 28
    n = len(points)
    values = [float(p[k]) for p in points for k, _, _ in lines if p.get(k) is not None]
    top_value = _nice_max(max(values, default=0.0))

    def x_at(i: int) -> float:
        return left + (right - left) * (0.5 if n == 1 else i / (n - 1))

    def y_at(v: float) -> float:
        return bottom - (bottom - top) * min(max(v, 0.0), top_value) / top_value

    series = _line_series(
        points,
        lines,
        label_key,
        lambda i, v: (round(x_at(i), 1), round(y_at(v), 1)),
        lambda v: str(int(v)),
    )
    ticks = 4
    y_ticks = [
        (round(y_at(top_value * i / ticks), 1), f"{top_value * i / ticks:g}")
        for i in range(ticks + 1)
    ]
    step = max(1, -(-n // 6))
    x_labels = [(round(x_at(i), 1), str(points[i].get(label_key, ""))) for i in range(0, n, step)]
    return LineChart(width, height, left, right, top, bottom, y_ticks, x_labels, series, not values)


def _nice_max(value: float) -> float:
    """The smallest of 4, 8, 20, 40, 80, 200, ... at or above `value` (4 whole ticks)."""
    for exponent in range(12):
        for mantissa in (2, 4, 8):
            top = float(mantissa * 10**exponent)
            if top >= max(value, 4.0):
                return top
    return value
