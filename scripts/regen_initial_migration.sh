#!/usr/bin/env bash
# Regenerates the initial migration from the models. Only while nothing has
# been released: once a schema ships, add new revisions instead.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
rm -f src/tutorscore/db/migrations/versions/0001_initial.py
.venv/bin/python - "$tmp/empty.db" <<'PY'
import sys
from alembic import command
from tutorscore.db.migrate import alembic_config
cfg = alembic_config("sqlite:///" + sys.argv[1])
command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
PY
mv src/tutorscore/db/migrations/versions/0001_initial_schema.py src/tutorscore/db/migrations/versions/0001_initial.py
sed -i -e "s/astext_type=Text()/astext_type=sa.Text()/g" -e "/# ###/d" src/tutorscore/db/migrations/versions/0001_initial.py
.venv/bin/ruff format -q src/tutorscore/db/migrations/versions/0001_initial.py
.venv/bin/ruff check -q --fix src/tutorscore/db/migrations/versions/0001_initial.py || true
rm -rf "$tmp"
echo "regenerated src/tutorscore/db/migrations/versions/0001_initial.py"
