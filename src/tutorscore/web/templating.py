"""Jinja2 environment for the dashboard: autoescape always on, small shared context."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup, escape

from tutorscore.analytics.flags import FLAG_NAMES
from tutorscore.analytics.flags import LABELS as FLAG_LABELS
from tutorscore.analytics.flags import label as flag_label
from tutorscore.evaluation.judge import RISK_TAGS
from tutorscore.web.csrf import csrf_token

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def _pct(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _when(value: Any) -> str:
    if value is None:
        return "—"
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d %H:%M"))
    return str(value)[:16].replace("T", " ")


def _reason_value(value: Any, threshold: Any = None) -> str:
    """Numbers behind a flag: rates as percentages, scores with two decimals, labels as is."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(threshold, float) and 0 < threshold < 1 and 0 <= value <= 1:
        return f"{value * 100:.1f}%".replace(".0%", "%")
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.2f}"
    return f"{value:g}"


# Badges (the markup of _badge.html's macros) as Python functions: the tutor list and
# tutor page call them once or more per row, and a Jinja macro call costs several times
# a plain function call. Values are escaped here; the result is Markup.
_RISK_CLASS = {"high": "high", "medium": "medium", "low": "low"}
_STATUS_CLASS = {
    "completed": "low",
    "no_show": "high",
    "rescheduled": "medium",
    "cancelled": "na",
    "scheduled": "na",
}


def risk_badge(level: Any, prefix: str = "") -> Markup:
    text = str(level)
    shown = "not enough data" if level == "not_enough_data" else text
    cls = _RISK_CLASS.get(text, "na")
    pre = escape(prefix)
    return Markup(
        f'<span class="badge badge-{cls}" title="{pre}{escape(text.replace("_", " "))}">'
        f"{pre}{escape(shown)}</span>"
    )


def flag_badge(name: str) -> Markup:
    label = flag_label(str(name))
    return Markup(f'<span class="badge badge-flag">{escape(label)}</span>')


def status_badge(value: Any) -> Markup:
    text = str(value)
    cls = _STATUS_CLASS.get(text, "na")
    return Markup(f'<span class="badge badge-{cls}">{escape(text.replace("_", " "))}</span>')


def score_badge(value: float | None, thresholds: Any) -> Markup:
    """AI score: red below the low-AI-quality threshold, amber below the low-rating one."""
    if value is None:
        return Markup('<span class="muted">—</span>')
    if value < thresholds.low_ai_quality:
        cls = "high"
    elif value < thresholds.low_rating:
        cls = "medium"
    else:
        cls = "low"
    return Markup(f'<span class="badge badge-{cls}">{value:.1f}</span>')


def _build_env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = _pct
    env.filters["num"] = _num
    env.filters["when"] = _when
    env.filters["reason_value"] = _reason_value
    env.globals["urlencode"] = urlencode
    env.globals["risk_badge"] = risk_badge
    env.globals["flag_badge"] = flag_badge
    env.globals["status_badge"] = status_badge
    env.globals["score_badge"] = score_badge
    env.globals["FLAG_LABELS"] = FLAG_LABELS
    env.globals["FLAG_NAMES"] = FLAG_NAMES
    env.globals["RISK_TAGS"] = RISK_TAGS
    return env


templates = Jinja2Templates(env=_build_env())


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    ctx: dict[str, Any] = {
        "THRESHOLDS": request.app.state.tutorscore.rules.thresholds,
        "user": getattr(request.state, "principal", None),
        "csrf_token": csrf_token(request),
        "path": request.url.path,
    }
    ctx.update(context or {})
    return templates.TemplateResponse(request, name, ctx, status_code=status_code, headers=headers)


def render_error(
    request: Request, status: int, message: str, *, headers: dict[str, str] | None = None
) -> HTMLResponse:
    return render(
        request,
        "error.html",
        {"status": status, "message": message},
        status_code=status,
        headers=headers,
    )
