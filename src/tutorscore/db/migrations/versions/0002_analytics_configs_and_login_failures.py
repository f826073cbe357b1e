"""Analytics configs stored once per fingerprint; login failures shared by all web processes.

- `analytics_configs(config_hash, config, first_used_at)`: each distinct config is
  moved out of `analytics_runs` (which kept a copy in every run row, ~3 KB per live
  update) before `analytics_runs.config` is dropped; runs keep `config_hash`, now a
  foreign key.
- `login_failures`: the login throttle's failures, so every web process counts them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 16:50:28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tutorscore.db.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
UTC_DATETIME = tutorscore.db.base.UTCDateTime(timezone=True)

runs = sa.table(
    "analytics_runs",
    sa.column("id", sa.Integer()),
    sa.column("config_hash", sa.String()),
    sa.column("config", JSON),
    sa.column("started_at", UTC_DATETIME),
)
configs = sa.table(
    "analytics_configs",
    sa.column("config_hash", sa.String()),
    sa.column("config", JSON),
    sa.column("first_used_at", UTC_DATETIME),
)


def upgrade() -> None:
    op.create_table(
        "analytics_configs",
        sa.Column("config_hash", sa.String(length=32), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("first_used_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("config_hash", name=op.f("pk_analytics_configs")),
    )
    # One row per fingerprint, with the config of its earliest run.
    conn = op.get_bind()
    firsts = conn.execute(
        sa.select(runs.c.config_hash, sa.func.min(runs.c.id)).group_by(runs.c.config_hash)
    ).all()
    for config_hash, first_id in firsts:
        config, started_at = conn.execute(
            sa.select(runs.c.config, runs.c.started_at).where(runs.c.id == first_id)
        ).one()
        conn.execute(
            sa.insert(configs).values(
                config_hash=config_hash, config=config, first_used_at=started_at
            )
        )
    with op.batch_alter_table("analytics_runs", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_analytics_runs_config_hash_analytics_configs"),
            "analytics_configs",
            ["config_hash"],
            ["config_hash"],
        )
        batch_op.drop_column("config")

    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("failed_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.create_index("ix_login_failures_failed_at", ["failed_at"], unique=False)
        batch_op.create_index(
            "ix_login_failures_key", ["username", "address", "failed_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("login_failures")
    # Every run gets its config back from the table, then the table goes.
    with op.batch_alter_table("analytics_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("config", JSON, nullable=True))
    conn = op.get_bind()
    for config_hash, config in conn.execute(sa.select(configs.c.config_hash, configs.c.config)):
        conn.execute(sa.update(runs).where(runs.c.config_hash == config_hash).values(config=config))
    with op.batch_alter_table("analytics_runs", schema=None) as batch_op:
        batch_op.alter_column("config", existing_type=JSON, nullable=False)
        batch_op.drop_constraint(
            batch_op.f("fk_analytics_runs_config_hash_analytics_configs"), type_="foreignkey"
        )
    op.drop_table("analytics_configs")
