"""Evaluation jobs: a `judge` column and a partial unique index on queued (session, judge).

Replaces the enqueue's global advisory lock on Postgres: two enqueues of the same
session and judge that race now meet at `uq_jobs_queued_evaluation` (the INSERT
says ON CONFLICT DO NOTHING) instead of queueing behind one lock. The judge moves
from `payload` (kept there too) to a column the index can cover; existing
duplicate queued jobs, if any, are merged into the oldest (most urgent priority
kept) before the index is built.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUEUED_EVALUATION = "status = 'queued' AND kind = 'evaluate'"
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
jobs = sa.table(
    "jobs",
    sa.column("id", sa.Integer()),
    sa.column("kind", sa.String()),
    sa.column("session_id", sa.String()),
    sa.column("judge", sa.String()),
    sa.column("payload", JSON),
    sa.column("priority", sa.Integer()),
    sa.column("status", sa.String()),
)


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("judge", sa.String(length=32), nullable=True))
    conn = op.get_bind()
    conn.execute(
        sa.update(jobs)
        .where(jobs.c.kind == "evaluate")
        .values(judge=sa.func.coalesce(jobs.c.payload["judge"].as_string(), "heuristic"))
    )
    queued = (jobs.c.kind == "evaluate") & (jobs.c.status == "queued")
    duplicated = conn.execute(
        sa.select(jobs.c.session_id, jobs.c.judge)
        .where(queued)
        .group_by(jobs.c.session_id, jobs.c.judge)
        .having(sa.func.count() > 1)
    ).all()
    for session_id, judge in duplicated:
        rows = conn.execute(
            sa.select(jobs.c.id, jobs.c.priority)
            .where(queued, jobs.c.session_id == session_id, jobs.c.judge == judge)
            .order_by(jobs.c.id)
        ).all()
        keep = rows[0].id
        conn.execute(
            sa.update(jobs).where(jobs.c.id == keep).values(priority=min(r.priority for r in rows))
        )
        conn.execute(sa.delete(jobs).where(jobs.c.id.in_([r.id for r in rows[1:]])))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "uq_jobs_queued_evaluation",
            ["session_id", "judge"],
            unique=True,
            sqlite_where=sa.text(QUEUED_EVALUATION),
            postgresql_where=sa.text(QUEUED_EVALUATION),
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("uq_jobs_queued_evaluation")
        batch_op.drop_column("judge")
