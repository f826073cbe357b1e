"""Request dependencies as Annotated aliases (`DbSession`, `State`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from tutorscore.web.state import AppState


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.tutorscore
    return state


State = Annotated[AppState, Depends(get_state)]


def get_db(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns normally."""
    state = get_state(request)
    with state.sessions() as session, session.begin():
        yield session


DbSession = Annotated[Session, Depends(get_db)]
