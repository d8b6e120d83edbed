# thrive-tracking-sync: the two commands are `make demo` and `make test`.
# Everything runs from .venv (created here) against local services under .local/.

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)/plugins:$(CURDIR)/tools
DATE   ?= $(shell date -u -d yesterday +%F 2>/dev/null || date -u -v-1d +%F)
EVENTS ?= 20000

SEED   ?= 20261126
RECIPIENTS ?= 500
ROWS   ?= 200000
BASELINE ?= 1
PROFILE ?= 0
SLOW   ?= 1
GROUPING ?= 1
ORGS   ?= 1
TEST_WORKERS ?= 3

.PHONY: demo test test-fast reliability up down airflow sample bench lint clean-local help

help:
	@echo "make demo [DATE=YYYY-MM-DD] [EVENTS=N]  sample data for DATE, run the DAG for that day, print the report"
	@echo "make test [TEST_WORKERS=3]             install test tools and run the whole suite (both tiers) on N pytest-xdist workers (0: one process)"
	@echo "make test-fast                         the unit tier only: the rules, no services (seconds)"
	@echo "make reliability                       run the reliability tests and rewrite docs/reliability.md from them, failures included"
	@echo "make up / make down                    start / stop the local services (data stays in .local/)"
	@echo "make airflow                           the Airflow UI on the local services; prints the URL and login"
	@echo "make sample [DATE= EVENTS= RECIPIENTS=] replace the thrive tables with deterministic sample data"
	@echo "make bench [ROWS=N] [BASELINE=0] [PROFILE=1] [SLOW=0] [GROUPING=0] [ORGS=0]  N events in a day: our DAG vs the floor vs the provider operator (and a, b under a slow org; a with and without grouping by parent; the day over 4 orgs vs 1, LocalExecutor)"
	@echo "make lint                              ruff, with Airflow's AIR rules"

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found: install Python 3.11, or run make PYTHON=/path/to/python3.11"; exit 2; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || { echo "make: $(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'), need 3.11: run make PYTHON=/path/to/python3.11"; exit 2; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-local: $(PY) requirements.txt requirements-local.txt
	$(PY) -m pip install --quiet -r requirements-local.txt
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed-local requirements-test.txt requirements-lineage.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	@touch $@

up: $(VENV)/.installed-local
	@$(PY) -m thrive_dev up

down:
	@if [ -x $(PY) ]; then $(PY) -m thrive_dev down; else echo "nothing to stop: no .venv"; fi

demo: up
	@$(PY) -m thrive_dev demo --date $(DATE) --events $(EVENTS)

airflow: up
	@$(PY) -m thrive_dev airflow

# pytest exits 5 when it collected no test: a suite that ran nothing proves nothing, so that fails too.
sample: up
	@$(PY) -m thrive_dev generate --date $(DATE) --events $(EVENTS) --recipients $(RECIPIENTS) --seed $(SEED)

# Overwrites the thrive tables with ROWS sample events (yesterday) and empties the sandbox between runs.
$(VENV)/.installed-bench: $(VENV)/.installed-local requirements-bench.txt
	$(PY) -m pip install --quiet -r requirements-bench.txt
	@touch $@

bench: $(VENV)/.installed-bench up
	@$(PY) -m thrive_dev bench --rows $(ROWS) --date $(DATE) $(if $(filter 0,$(BASELINE)),--no-baseline) \
	  $(if $(filter 1,$(PROFILE)),--profile) $(if $(filter 0,$(SLOW)),--no-slow-org) \
	  $(if $(filter 0,$(GROUPING)),--no-grouping) $(if $(filter 0,$(ORGS)),--no-orgs)

test: $(VENV)/.installed-test
	@$(PY) -m pytest -n $(TEST_WORKERS) --durations=30 $(PYTEST_ARGS); status=$$?; \
	  if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests"; exit 1; fi; exit $$status

test-fast: $(VENV)/.installed-test
	@$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

# The reliability tests, then docs/reliability.md from what they measured (test-output/reliability.json),
# failing and unrun cases included; exits non-zero after writing it when a test failed. PYTEST_ARGS="-k 503"
# runs a subset (the other cases show as not run).
reliability: $(VENV)/.installed-test
	@rm -f test-output/reliability.json
	@$(PY) -m pytest -n $(TEST_WORKERS) tests/system/test_reliability.py tests/system/test_configuration.py \
	  tests/system/test_hostile_input.py tests/system/test_secrets.py $(PYTEST_ARGS); status=$$?; \
	  $(PY) tests/system/reliability_report.py || exit 1; \
	  if [ $$status -eq 5 ]; then echo "make reliability: pytest collected no tests"; exit 1; fi; exit $$status

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Removes the local services' data (the embedded PostgreSQL and Airflow's metadata).
clean-local: down
	rm -rf .local
