# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint format bench clean

# The PyPI `codeowners` package (the peer that comparison tests and the benchmark measure
# against) shares our package's name, so it is installed outside site-packages.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,models]'
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps \
		--target $(VENV)/peers codeowners==0.9.0
	touch $(STAMP)

## Start the bot: for real when credentials are set, else against the built-in sandbox.
run: $(STAMP)
	$(PY) -m bot run

## Lint, format check and the whole test suite.
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q

format: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# wrk drives the ingest benchmark; Debian ships it.
bench: $(STAMP)
	command -v wrk >/dev/null || apt-get install -y wrk || (apt-get update && apt-get install -y wrk)
	$(PY) bench/webhook_ingest.py
	$(PY) bench/slow_ci_latency.py
	$(PY) bench/codeowners_match.py
	$(PY) bench/model_lib.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
