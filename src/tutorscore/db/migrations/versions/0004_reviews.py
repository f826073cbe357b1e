"""Human reviews: one row per reviewer per session (score, rubric, risk tags, note).

The judges' agreement with these is what `tutorscore agreement` measures.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 16:12:04.708502
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tutorscore.db.base

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("reviewer", sa.String(length=100), nullable=False),
        sa.Column("quality_score", sa.Float(), nullable=False),
        sa.Column(
            "rubric",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("saw_ai_score", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tutorscore.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.session_id"],
            name=op.f("fk_reviews_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint("session_id", "reviewer", name="uq_reviews_session_id_reviewer"),
    )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.create_index("ix_reviews_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_reviews_reviewer", ["reviewer"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_reviews_reviewer")
        batch_op.drop_index("ix_reviews_created_at")

    op.drop_table("reviews")
