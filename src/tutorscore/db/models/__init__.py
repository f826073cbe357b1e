"""All tables. Import from here so Alembic and the app see every model."""

from tutorscore.db.base import Base
from tutorscore.db.models.analytics import AnalyticsConfig, AnalyticsRun, TutorMetrics
from tutorscore.db.models.auth import ROLES, ApiToken, AuditLog, LoginFailure, User
from tutorscore.db.models.core import (
    PARTIES,
    SESSION_STATUSES,
    SessionTranscript,
    Student,
    Tutor,
    TutoringSession,
)
from tutorscore.db.models.evaluation import QUEUED_EVALUATION, Job, LLMCall, SessionEvaluation
from tutorscore.db.models.interventions import Alert, Intervention
from tutorscore.db.models.reviews import REVIEW_SOURCES, Review

__all__ = [
    "PARTIES",
    "QUEUED_EVALUATION",
    "REVIEW_SOURCES",
    "ROLES",
    "SESSION_STATUSES",
    "Alert",
    "AnalyticsConfig",
    "AnalyticsRun",
    "ApiToken",
    "LoginFailure",
    "AuditLog",
    "Base",
    "Intervention",
    "Job",
    "LLMCall",
    "Review",
    "SessionEvaluation",
    "SessionTranscript",
    "Student",
    "Tutor",
    "TutorMetrics",
    "TutoringSession",
    "User",
]
