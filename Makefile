# tutorscore: `make run` for the demo, `make test` for everything CI checks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# uv itself comes from PyPI into its own small venv (not .venv: an exact `uv sync` would remove it)
UV_VERSION := 0.13.9
UV_HOME := .uv
UV := $(UV_HOME)/bin/uv
UV_STAMP := $(UV_HOME)/.uv-$(UV_VERSION)
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
export DATABASE_URL ?= sqlite:///./data/tutorscore.db
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never

.PHONY: install lock run demo serve test lint typecheck pytest bench chromium postgres screenshots clean migration judge-model

$(UV_STAMP):
	rm -rf $(UV_HOME)
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install --quiet uv==$(UV_VERSION)
	touch $@

## .venv holds exactly what uv.lock pins (an older pip-made .venv is brought in line, not rebuilt)
$(STAMP): pyproject.toml uv.lock $(UV_STAMP)
	$(UV) sync --quiet --frozen --extra dev --python $(PYTHON)
	touch $(STAMP)

install: $(STAMP)

## make run: create the database, seed demo data, compute everything, serve the dashboard
run: install
	$(BIN)/tutorscore demo
	$(BIN)/tutorscore serve --host $(HOST) --port $(PORT)

serve: install
	$(BIN)/tutorscore serve --host $(HOST) --port $(PORT)

## system Chromium for the browser tests (Debian package; Playwright never downloads a browser)
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

## the local Postgres the tests use (started if this machine has it stopped)
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || { \
		echo "starting the local PostgreSQL"; \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
		for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; }

## make lock: after changing dependencies in pyproject.toml; commit the new uv.lock
lock: $(UV_STAMP)
	$(UV) lock --python $(PYTHON)

lint: install
	$(UV) lock --check --python $(PYTHON)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

typecheck: lint

pytest: install chromium postgres
	$(BIN)/pytest -n 2 --dist loadfile -q $(PYTEST_ARGS)

## make test: lint, type checks and the whole suite on SQLite and Postgres
test: lint pytest

bench: install postgres
	$(BIN)/python benchmarks/seed_import.py
	$(BIN)/python benchmarks/analytics.py
	$(BIN)/python benchmarks/evaluation.py
	$(BIN)/python benchmarks/evaluation_queue.py
	$(BIN)/python benchmarks/web.py
	$(BIN)/python benchmarks/ingest_rate.py
	$(BIN)/python benchmarks/prediction.py
	$(BIN)/python benchmarks/caption_import.py
	$(BIN)/python benchmarks/judge_validity.py

## make judge-model: retrain the offline judge's tutor-move model from corpora/ (deterministic)
judge-model: install
	$(BIN)/tutorscore judge train

screenshots: install chromium
	$(BIN)/python scripts/screenshots.py

migration: install
	scripts/new_migration.sh "$(MSG)"

clean:
	rm -rf $(VENV) $(UV_HOME) data .pytest_cache .mypy_cache .ruff_cache .hypothesis
