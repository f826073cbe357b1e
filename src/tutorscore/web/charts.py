"""Server-rendered SVG charts: geometry computed here, markup in templates (autoescaped)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Series:
    name: str
    css: str
    path: str = ""
    dots: list[tuple[float, float, str]] = field(default_factory=list)  # x, y, tooltip


@dataclass
class TrendChart:
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
) -> TrendChart:
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

    series: list[Series] = []
    any_value = False
    for key, name, css in lines:
        s = Series(name=name, css=css)
        parts: list[str] = []
        pen_down = False
        for i, point in enumerate(points):
            value = point.get(key)
            if value is None:
                pen_down = False
                continue
            any_value = True
            x, y = round(x_at(i), 1), round(y_at(float(value)), 1)
            parts.append(f"{'L' if pen_down else 'M'}{x},{y}")
            pen_down = True
            s.dots.append((x, y, f"{name}: {float(value):.2f} ({point.get(label_key, '')})"))
        s.path = " ".join(parts)
        series.append(s)
    y_ticks = [(round(y_at(v), 1), f"{v:g}") for v in range(int(y_min), int(y_max) + 1)]
    step = max(1, n // 6)
    x_labels = [(round(x_at(i), 1), str(points[i].get(label_key, ""))) for i in range(0, n, step)]
    return TrendChart(
        width, height, left, right, top, bottom, y_ticks, x_labels, series, not any_value
    )
