# Runtree: `make run` to try it, `make test` to check it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run up worker beat test lint migrations-check chromium bench bench-smoke bench-smoke-sqlite bench-smoke-postgresql clean

# uv installs the requirements: ~7 s from an empty cache where pip took ~2 min with a warm one,
# and every CI run starts from a fresh clone. Same resolver results, same pins.
# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (it is on our CI machines) Python never
# writes a .pyc, so every process compiled the packages it imports from source, each time:
# importing mlflow, sklearn, Django and Celery took 10.5-12 s instead of 3.7 (a 2-core EPYC).
# Compiling once at install costs ~25 s; the suite starts hundreds of such processes (pytest, live
# servers, Celery workers, mlflow servers).
UV_VERSION := 0.13.9
PIP_INSTALL := $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet uv==$(UV_VERSION)

# Stamp files: reinstall only when a requirements file changes.
$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(PIP_INSTALL) -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(PIP_INSTALL) -r requirements-dev.txt
	touch $(VENV)/.installed $@

# The embedded default: one command, no server beyond itself, yet a write never waits for a summary
# refresh. honcho runs the Procfile (granian, a Celery worker and beat) with the broker a folder on
# disk (config/file_broker.py: runtree-broker/ beside the SQLite file). Served by granian, as in
# production, not runserver: the dev server answers a kept-alive client ~40 ms late per request
# (Nagle's algorithm), which the mlflow client, one blocking call at a time, pays in full.
run: export CELERY_BROKER_URL ?= filesystem://localhost/

run: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo
	@echo "Runtree at http://$(HOST):$(PORT)/  (MLFLOW_TRACKING_URI=http://$(HOST):$(PORT))"
	HOST=$(HOST) $(BIN)/honcho start --port $(PORT)

# The production shape on one machine: the same processes with Redis as the broker.
up worker beat: export CELERY_BROKER_URL ?= redis://127.0.0.1:6379/0

up: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo
	HOST=$(HOST) $(BIN)/honcho start --port $(PORT)

worker: $(VENV)/.installed
	$(BIN)/celery -A config worker --loglevel=info

beat: $(VENV)/.installed
	$(BIN)/celery -A config beat --loglevel=info

# Browser tests drive Debian's Chromium; install it when missing (root only), else say how.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "Browser tests need Debian's chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

test: $(VENV)/.installed-dev chromium
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

migrations-check: $(VENV)/.installed-dev
	$(BIN)/python manage.py makemigrations --check --dry-run

# FastTrackML's wheel pins mlflow 2; --no-deps keeps our mlflow 3 client and takes only its `fml` binary.
FASTTRACKML := fasttrackml==0.6.0

# The benchmarks behind docs/benchmarks.md (PostgreSQL and Redis on 127.0.0.1; about an hour).
bench: $(VENV)/.installed-bench
	$(PIP_INSTALL) --no-deps $(FASTTRACKML)
	$(BIN)/python bench/ingest.py --write
	$(BIN)/python bench/ingest.py --postgres --write
	$(BIN)/python bench/profile_ingest.py --write
	$(BIN)/python bench/http_server.py --write
	$(BIN)/python bench/search.py --write
	$(BIN)/python bench/tree_page.py --write
	$(BIN)/python bench/compare_page.py --write
	$(BIN)/python bench/summaries.py --write
	$(BIN)/python bench/charts.py --write
	$(BIN)/python bench/logged_models.py --write
	$(BIN)/python bench/import_mlflow.py --write
	$(BIN)/python bench/artifacts.py --write
	$(BIN)/python bench/live_polling.py --write
	$(BIN)/python bench/million.py --write

# Tiny sizes, run by CI so the benchmarks never rot, beside the end of the PostgreSQL suite (.ci/run
# runs the one test that restarts PostgreSQL before the rest). Split by the database they use.
bench-smoke: bench-smoke-sqlite bench-smoke-postgresql

$(VENV)/.installed-bench: bench/requirements.txt $(VENV)/.installed-dev
	$(PIP_INSTALL) -r bench/requirements.txt
	touch $@

bench-smoke-sqlite: $(VENV)/.installed-bench
	$(BIN)/python bench/ingest.py --smoke
	$(BIN)/python bench/live_polling.py --smoke
	$(BIN)/python bench/http_server.py --smoke
	$(BIN)/python bench/artifacts.py --smoke
	$(BIN)/python bench/import_server.py --smoke

bench-smoke-postgresql: $(VENV)/.installed-bench
	$(BIN)/python bench/profile_ingest.py --smoke
	$(BIN)/python bench/search.py --smoke
	$(BIN)/python bench/summaries.py --smoke
	$(BIN)/python bench/million.py --smoke
	$(BIN)/python bench/charts.py --smoke
	$(BIN)/python bench/logged_models.py --smoke
	$(BIN)/python bench/compare_page.py --smoke
	$(BIN)/python bench/import_mlflow.py --smoke

clean:
	rm -rf $(VENV) runtree.sqlite3 runtree.sqlite3-* runtree-broker
