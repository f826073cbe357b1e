"""What the app holds for its lifetime: settings, rules and the engine."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tutorscore.config import RulesConfig, Settings


@dataclass
class AppState:
    settings: Settings
    rules: RulesConfig
    engine: Engine
    sessions: sessionmaker[Session]
