#!/usr/bin/env bash
# Autogenerates the next migration from the models: `make migration MSG="what changed"`.
# It diffs the models against a scratch SQLite database upgraded to the current head,
# names the revision with the next number (0003, ...), and formats it. Read it before
# committing: data moves (see 0002) and dialect details are written by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
msg="${1:?usage: scripts/new_migration.sh \"what changed\"}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv/bin/python - "$tmp/scratch.db" "$msg" <<'PY'
import sys
from alembic import command
from alembic.script import ScriptDirectory
from tutorscore.db.engine import make_engine
from tutorscore.db.migrate import alembic_config, upgrade

url = "sqlite:///" + sys.argv[1]
engine = make_engine(url)
upgrade(engine)
engine.dispose()
cfg = alembic_config(url)
head = ScriptDirectory.from_config(cfg).get_current_head() or "0000"
command.revision(cfg, message=sys.argv[2], autogenerate=True, rev_id=f"{int(head) + 1:04d}")
PY
new=$(ls -t src/tutorscore/db/migrations/versions/*.py | head -1)
sed -i -e "s/astext_type=Text()/astext_type=sa.Text()/g" "$new"
.venv/bin/ruff format -q "$new"
.venv/bin/ruff check -q --fix "$new" || true
echo "wrote $new"
