"""Per-user session version; usernames normalised.

- `users.session_version` (int, default 0): cookie sessions carry it; logout, a
  password change and deactivation bump it, so earlier cookies stop working.
- Usernames are stored in their normalised form (NFKC, stripped, case-folded;
  `auth.users.normalize_username`), which login and the throttle now use. An
  existing name is rewritten unless that would collide with another user's
  (then it stays as it is and only its exact normalised form logs in).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 17:00:00
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

users = sa.table("users", sa.column("id", sa.Integer()), sa.column("username", sa.String()))


def _normal(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip().casefold()


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_version", sa.Integer(), server_default="0", nullable=False)
        )
    conn = op.get_bind()
    rows = conn.execute(sa.select(users.c.id, users.c.username)).all()
    taken = {name for _, name in rows}
    for user_id, name in rows:
        normal = _normal(name)
        if normal != name and normal not in taken:
            conn.execute(users.update().where(users.c.id == user_id).values(username=normal))
            taken.discard(name)
            taken.add(normal)


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("session_version")
