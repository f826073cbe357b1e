"""Database: models, engine and migrations."""

from tutorscore.db.engine import make_engine, session_factory, transaction

__all__ = ["make_engine", "session_factory", "transaction"]
