# The two set-up commands of the README: `make demo` and `make test`. Each creates .venv and installs
# the project with the pinned dependency set (requirements/constraints.txt) when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TEST_STAMP := $(VENV)/.test-installed-stamp
AIRFLOW_HOME_DIR := $(CURDIR)/.airflow_home

.PHONY: install system-packages demo test fuzz lint ui bench bench-deployment clean lock

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt -e '.[dev,typescript]'
	touch $(STAMP)

install: $(STAMP)

# The tests also run MySQL steps: the mysql extra, whose driver (mysqlclient) compiles against the
# MariaDB client library (Debian packages, installed when missing; needs root).
$(TEST_STAMP): $(STAMP)
	pkg-config --exists libmariadb 2>/dev/null || pkg-config --exists mysqlclient 2>/dev/null || $(MAKE) system-packages
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt -e '.[dev,typescript,mysql]'
	touch $(TEST_STAMP)

# Debian packages the Python dependencies build against: mysqlclient (the mysql provider's driver,
# SQL steps) compiles against the MariaDB client library, found with pkg-config. Needs root.
system-packages:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libmariadb-dev pkg-config

# Runs the example flow through Airflow (SQLite metadata DB in .airflow_home) and prints its result.
demo: $(STAMP)
	AIRFLOW_HOME=$(AIRFLOW_HOME_DIR) $(BIN)/airflow-openflow run dags/flows/f/examples/order_summary.flow \
		--input '{"customer": "Ada", "items": [{"name": "tea", "price": 4.5, "qty": 2}, {"name": "cake", "price": 3, "qty": 1}]}'

# The whole test suite: unit tests, real DAG runs, the conformance corpus.
test: $(TEST_STAMP)
	$(BIN)/python -m pytest

# The loader fuzzed with many more generated documents than make test runs.
fuzz: $(STAMP)
	OPENFLOW_FUZZ_EXAMPLES=5000 $(BIN)/python -m pytest -n0 -q tests/unit/spec/test_fuzz_documents.py

lint: $(STAMP)
	$(BIN)/ruff check airflow_openflow tests dags bench examples
	$(BIN)/ruff format --check airflow_openflow tests dags bench examples
	$(BIN)/mypy

# The example flows in the Airflow UI: http://127.0.0.1:8080 (the admin password is printed at start).
# `airflow standalone` starts its components as `airflow ...` from PATH: the venv's bin comes first.
ui: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH AIRFLOW_HOME=$(AIRFLOW_HOME_DIR) AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
		AIRFLOW__CORE__LOAD_EXAMPLES=False $(BIN)/airflow standalone

bench: $(STAMP)
	$(BIN)/python bench/parse_time.py
	$(BIN)/python bench/run_flow_time.py
	$(BIN)/python bench/loop_time.py
	$(BIN)/python bench/expression_time.py

# Load on a real deployment (PostgreSQL, CeleryExecutor with Redis, one Celery worker with 4 slots):
# RUNS concurrent runs of a flow against the same DAG written by hand (bench/deployment_load.py).
# Takes many minutes (docs/performance.md): not part of `make bench` nor `make test`.
RUNS ?= 50
BODY ?= 1
bench-deployment: $(STAMP)
	$(BIN)/python bench/deployment_load.py $(RUNS) $(BODY)

clean:
	rm -rf $(VENV) $(AIRFLOW_HOME_DIR)

# Re-pin requirements/constraints.txt from the current .venv (after changing dependencies).
lock: $(STAMP)
	(echo "# Pinned dependency set (pip constraints) for Python 3.11, produced by 'pip freeze' of a working"; \
	 echo "# environment: Airflow 3.3.2 and everything it pulls in. Regenerate with: make lock"; \
	 $(BIN)/pip freeze --exclude-editable | grep -v '^airflow-openflow') > requirements/constraints.txt
