# The two commands: `make run` serves the app with the embedded SQLite database,
# `make test` runs the whole suite (PostgreSQL included where it is reachable).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: run test install lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "training-db needs Python 3.11 or newer; set PYTHON=python3.12 (for example)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: install
	$(BIN)/training-db migrate
	READ_API_OPEN=true $(BIN)/training-db serve --bind 127.0.0.1:$(PORT) --with-worker

test: install
	$(BIN)/python -m pytest -n 2

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) training_runs.db training_runs.db-wal training_runs.db-shm
