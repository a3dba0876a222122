# Two commands on a fresh machine: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
FRONTEND := node_modules/.installed
WORKERS ?= auto
PYTEST_ARGS ?=

.PHONY: run test lint format bench chaos schemathesis browsers frontend stop clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Front-end packages from the npm registry, pinned by package-lock.json; healthmail/frontend.py lists
# the files the app serves. Node.js and npm come from Debian when the machine has none.
$(FRONTEND): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm >/dev/null; }
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

frontend: $(FRONTEND)

# Browser tests drive Debian's chromium through Playwright (Playwright's own browser download is not used).
browsers:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

run: $(INSTALLED) $(FRONTEND)
	$(PY) -m healthmail.devstack run

test: $(INSTALLED) $(FRONTEND) browsers lint
	$(PY) -m healthmail.devstack test -- -n $(WORKERS) $(PYTEST_ARGS)

# Style (ruff), the layer contracts (import-linter, [tool.importlinter]) and types (mypy, [tool.mypy]).
lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo
	$(VENV)/bin/mypy

format: $(INSTALLED)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Fault injection and long property runs at full size (RELIABILITY R1-R3, C4): `make test` runs the
# same tests small.
chaos: $(INSTALLED) $(FRONTEND)
	CHAOS_RECIPIENTS=$${CHAOS_RECIPIENTS:-10000} CHAOS_KILLS=$${CHAOS_KILLS:-20} CHAOS_SINK_DELAY=$${CHAOS_SINK_DELAY:-0.02} \
	  CHAOS_OUTAGE_RECIPIENTS=$${CHAOS_OUTAGE_RECIPIENTS:-2000} CHAOS_OUTAGE_SECONDS=$${CHAOS_OUTAGE_SECONDS:-20} \
	  CHAOS_OUTAGE_SINK_DELAY=$${CHAOS_OUTAGE_SINK_DELAY:-0.2} CHAOS_OUTAGE_WORKERS=$${CHAOS_OUTAGE_WORKERS:-2} \
	  CHAOS_RETENTION_EXAMPLES=$${CHAOS_RETENTION_EXAMPLES:-10000} \
	  $(PY) -m healthmail.devstack test -- -m chaos -s $(PYTEST_ARGS) tests/chaos tests/retention/test_retention_state_machine.py

# Schemathesis at full volume (RELIABILITY S4): a few hundred generated cases per operation and longer
# call sequences, and the FHIR fuzz (tests/fhir/test_fuzz.py) with 300 cases per interaction; `make
# test` runs the same tests with 100 cases per operation, 20 sequences and 60 FHIR cases.
schemathesis: $(INSTALLED)
	SCHEMATHESIS_EXAMPLES=$${SCHEMATHESIS_EXAMPLES:-300} SCHEMATHESIS_SCENARIOS=$${SCHEMATHESIS_SCENARIOS:-400} \
	  FHIR_FUZZ_EXAMPLES=$${FHIR_FUZZ_EXAMPLES:-300} \
	  $(PY) -m healthmail.devstack test -- -n $(WORKERS) $(PYTEST_ARGS) \
	  tests/api/test_schemathesis.py tests/api/test_schemathesis_stateful.py tests/api/test_scope_enforcement.py \
	  tests/fhir/test_fuzz.py

bench: $(INSTALLED) $(FRONTEND)
	$(PY) -m healthmail.devstack bench $(NAME)

stop: $(INSTALLED)
	$(PY) -m healthmail.devstack stop

clean: stop
	rm -rf .devstack .staticfiles artifacts bench/results node_modules
