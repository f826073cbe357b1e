"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 15:01:56.810269
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tutorscore.db.base

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "analytics_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("as_of", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("started_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("tutors", sa.Integer(), nullable=False),
        sa.Column("config_hash", sa.String(length=32), nullable=False),
        sa.Column(
            "config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_runs")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity_type", sa.String(length=64), nullable=False),
        sa.Column("entity_id", sa.String(length=100), nullable=True),
        sa.Column(
            "before",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "after",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_at", ["at"], unique=False)

    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_expires_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("locked_by", sa.String(length=100), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_claim", ["status", "priority", "run_after"], unique=False)
        batch_op.create_index("ix_jobs_session_id", ["session_id"], unique=False)

    op.create_table(
        "llm_calls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("prompt_version", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("tokens_in", sa.Integer(), nullable=False),
        sa.Column("tokens_out", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_llm_calls")),
    )
    with op.batch_alter_table("llm_calls", schema=None) as batch_op:
        batch_op.create_index("ix_llm_calls_created_at", ["created_at"], unique=False)

    op.create_table(
        "students",
        sa.Column("student_id", sa.String(length=64), nullable=False),
        sa.Column("grade_level", sa.Integer(), nullable=True),
        sa.Column("segment", sa.String(length=100), nullable=True),
        sa.Column("is_synthetic", sa.Boolean(), nullable=False),
        sa.Column("created_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("student_id", name=op.f("pk_students")),
    )
    op.create_table(
        "tutors",
        sa.Column("tutor_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "subjects",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("years_experience", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("hire_date", sa.Date(), nullable=True),
        sa.Column("churned_on", sa.Date(), nullable=True),
        sa.Column("is_synthetic", sa.Boolean(), nullable=False),
        sa.Column("created_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tutor_id", name=op.f("pk_tutors")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tutor_id", sa.String(length=64), nullable=False),
        sa.Column("flag", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("delivery_attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tutor_id"],
            ["tutors.tutor_id"],
            name=op.f("fk_alerts_tutor_id_tutors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("ix_alerts_dedup", ["tutor_id", "flag"], unique=False)

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("created_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "interventions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tutor_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column("flag", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=True),
        sa.Column("created_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "outcome",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tutor_id"],
            ["tutors.tutor_id"],
            name=op.f("fk_interventions_tutor_id_tutors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interventions")),
    )
    with op.batch_alter_table("interventions", schema=None) as batch_op:
        batch_op.create_index("ix_interventions_tutor_id", ["tutor_id"], unique=False)

    op.create_table(
        "sessions",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("tutor_id", sa.String(length=64), nullable=False),
        sa.Column("student_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column(
            "scheduled_start_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("actual_start_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("duration_minutes", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("no_show_by", sa.String(length=16), nullable=True),
        sa.Column("reschedule_initiator", sa.String(length=16), nullable=True),
        sa.Column("rescheduled_from_session_id", sa.String(length=64), nullable=True),
        sa.Column("is_first_session_for_student", sa.Boolean(), nullable=True),
        sa.Column("is_first_session", sa.Boolean(), nullable=False),
        sa.Column("student_rating", sa.Integer(), nullable=True),
        sa.Column("student_feedback", sa.Text(), nullable=True),
        sa.Column("student_churned_after_session", sa.Boolean(), nullable=True),
        sa.Column("is_synthetic", sa.Boolean(), nullable=False),
        sa.Column("created_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["students.student_id"],
            name=op.f("fk_sessions_student_id_students"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tutor_id"],
            ["tutors.tutor_id"],
            name=op.f("fk_sessions_tutor_id_tutors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_sessions")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sessions_scheduled_start_at", ["scheduled_start_at"], unique=False
        )
        batch_op.create_index("ix_sessions_status", ["status"], unique=False)
        batch_op.create_index("ix_sessions_student_id", ["student_id"], unique=False)
        batch_op.create_index(
            "ix_sessions_tutor_id_scheduled_start_at",
            ["tutor_id", "scheduled_start_at"],
            unique=False,
        )

    op.create_table(
        "tutor_metrics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tutor_id", sa.String(length=64), nullable=False),
        sa.Column("as_of", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("computed_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("config_hash", sa.String(length=32), nullable=False),
        sa.Column("total_sessions", sa.Integer(), nullable=False),
        sa.Column("first_sessions", sa.Integer(), nullable=False),
        sa.Column("tutor_reschedules", sa.Integer(), nullable=False),
        sa.Column("tutor_no_shows", sa.Integer(), nullable=False),
        sa.Column("first_session_dropouts", sa.Integer(), nullable=False),
        sa.Column("rated_sessions", sa.Integer(), nullable=False),
        sa.Column("evaluated_sessions", sa.Integer(), nullable=False),
        sa.Column("tutor_reschedule_rate", sa.Float(), nullable=True),
        sa.Column("tutor_no_show_rate", sa.Float(), nullable=True),
        sa.Column("first_session_dropout_rate", sa.Float(), nullable=True),
        sa.Column("avg_student_rating", sa.Float(), nullable=True),
        sa.Column("ai_avg_quality_score", sa.Float(), nullable=True),
        sa.Column("rating_trend", sa.Float(), nullable=True),
        sa.Column("ai_score_trend", sa.Float(), nullable=True),
        sa.Column("high_rescheduler_flag", sa.Boolean(), nullable=False),
        sa.Column("poor_first_session_flag", sa.Boolean(), nullable=False),
        sa.Column("low_rating_flag", sa.Boolean(), nullable=False),
        sa.Column("low_ai_quality_flag", sa.Boolean(), nullable=False),
        sa.Column("no_show_risk_label", sa.String(length=16), nullable=False),
        sa.Column("churn_risk_label", sa.String(length=16), nullable=False),
        sa.Column("churn_probability", sa.Float(), nullable=True),
        sa.Column("insufficient_data", sa.Boolean(), nullable=False),
        sa.Column(
            "reasons",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["analytics_runs.id"], name=op.f("fk_tutor_metrics_run_id_analytics_runs")
        ),
        sa.ForeignKeyConstraint(
            ["tutor_id"],
            ["tutors.tutor_id"],
            name=op.f("fk_tutor_metrics_tutor_id_tutors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tutor_metrics")),
        sa.UniqueConstraint("tutor_id", "as_of", name="uq_tutor_metrics_tutor_id_as_of"),
    )
    with op.batch_alter_table("tutor_metrics", schema=None) as batch_op:
        batch_op.create_index("ix_tutor_metrics_as_of", ["as_of"], unique=False)
        batch_op.create_index(
            "ix_tutor_metrics_current",
            [
                "is_current",
                "tutor_id",
                "churn_risk_label",
                "insufficient_data",
                "churn_probability",
                "no_show_risk_label",
                "tutor_reschedule_rate",
                "tutor_no_show_rate",
                "first_session_dropout_rate",
                "avg_student_rating",
                "ai_avg_quality_score",
                "rating_trend",
                "ai_score_trend",
                "total_sessions",
                "first_sessions",
                "high_rescheduler_flag",
                "poor_first_session_flag",
                "low_rating_flag",
                "low_ai_quality_flag",
            ],
            unique=False,
            sqlite_where=sa.text("is_current = 1"),
            postgresql_where=sa.text("is_current"),
        )

    op.create_table(
        "session_evaluations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("judge", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("prompt_version", sa.String(length=32), nullable=False),
        sa.Column("transcript_hash", sa.String(length=64), nullable=False),
        sa.Column("quality_score", sa.Float(), nullable=False),
        sa.Column(
            "rubric",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "strengths",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "areas_for_improvement",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "risk_tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "evidence",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "features",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.session_id"],
            name=op.f("fk_session_evaluations_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_evaluations")),
        sa.UniqueConstraint(
            "session_id",
            "judge",
            "model",
            "prompt_version",
            "transcript_hash",
            name="uq_session_evaluations_cache_key",
        ),
    )
    with op.batch_alter_table("session_evaluations", schema=None) as batch_op:
        batch_op.create_index("ix_session_evaluations_session_id", ["session_id"], unique=False)

    op.create_table(
        "session_transcripts",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column(
            "turns",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("raw_text", sa.Text(), nullable=False),
        sa.Column("turn_count", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.session_id"],
            name=op.f("fk_session_transcripts_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_session_transcripts")),
    )


def downgrade() -> None:
    op.drop_table("session_transcripts")
    with op.batch_alter_table("session_evaluations", schema=None) as batch_op:
        batch_op.drop_index("ix_session_evaluations_session_id")

    op.drop_table("session_evaluations")
    with op.batch_alter_table("tutor_metrics", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_tutor_metrics_current",
            sqlite_where=sa.text("is_current = 1"),
            postgresql_where=sa.text("is_current"),
        )
        batch_op.drop_index("ix_tutor_metrics_as_of")

    op.drop_table("tutor_metrics")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_tutor_id_scheduled_start_at")
        batch_op.drop_index("ix_sessions_student_id")
        batch_op.drop_index("ix_sessions_status")
        batch_op.drop_index("ix_sessions_scheduled_start_at")

    op.drop_table("sessions")
    with op.batch_alter_table("interventions", schema=None) as batch_op:
        batch_op.drop_index("ix_interventions_tutor_id")

    op.drop_table("interventions")
    op.drop_table("api_tokens")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_dedup")

    op.drop_table("alerts")
    op.drop_table("users")
    op.drop_table("tutors")
    op.drop_table("students")
    with op.batch_alter_table("llm_calls", schema=None) as batch_op:
        batch_op.drop_index("ix_llm_calls_created_at")

    op.drop_table("llm_calls")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_session_id")
        batch_op.drop_index("ix_jobs_claim")

    op.drop_table("jobs")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_at")

    op.drop_table("audit_log")
    op.drop_table("analytics_runs")
