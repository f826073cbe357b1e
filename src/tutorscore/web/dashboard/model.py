"""`/model`: the churn model's gate decision, held-out scores and reliability diagram,
and the no-show model's gate against the formula."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tutorscore.web.charts import reliability_chart
from tutorscore.web.deps import CurrentUser, State
from tutorscore.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/model", response_class=HTMLResponse)
def model_page(request: Request, state: State, user: CurrentUser) -> HTMLResponse:
    """What `tutorscore model show` prints, for the newest stored churn model."""
    from tutorscore.prediction.churn import model_status
    from tutorscore.prediction.model_store import list_models
    from tutorscore.prediction.no_show_model import no_show_model_status

    status = model_status(state.settings)
    versions: list[dict[str, Any]] = list_models(state.settings.data_dir)[:10]
    heldout = status.get("heldout") or {}
    context = {
        "status": status,
        "heldout": heldout,
        "reliability": status.get("reliability") or [],
        "chart": reliability_chart(status.get("reliability") or []),
        "versions": versions,
        "no_show": no_show_model_status(state.settings),
    }
    return render(request, "model.html", context)
