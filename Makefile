# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint format bench clean browser sandbox openapi

# The PyPI `codeowners` package (the peer that comparison tests and the benchmark measure
# against) shares our package's name, so it is installed outside site-packages.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,models]'
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps \
		--target $(VENV)/peers codeowners==0.9.0
	touch $(STAMP)

# Pull-request code runs only inside bubblewrap (and util-linux's setpriv and prlimit); Debian
# ships them. Without them the bot refuses to run any pull request's code.
sandbox:
	@command -v bwrap >/dev/null 2>&1 \
		|| DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null 2>&1 \
		|| (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null) \
		|| echo "bubblewrap could not be installed: pull-request jobs will be refused"

## Start the bot: for real when credentials are set, else against the built-in sandbox.
run: $(STAMP) sandbox
	$(PY) -m bot run

# The page tests load the bot's pages in headless Chromium; Debian ships it.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
		|| DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
		|| (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null) \
		|| echo "chromium could not be installed: the browser tests will be skipped"

# GitHub's published OpenAPI description (REST and webhooks), pinned: the conformance test checks
# the sandbox's answers and payloads, and the bot's requests, against it. Installed once per pin.
OPENAPI_DIR := var/openapi
OPENAPI_REST_VERSION := 23.0.2
OPENAPI_HOOKS_VERSION := 12.1.0
OPENAPI_PACKAGES := $(OPENAPI_DIR)/node_modules/@octokit
openapi:
	@grep -qs '"version": "$(OPENAPI_REST_VERSION)"' $(OPENAPI_PACKAGES)/openapi/package.json \
		&& grep -qs '"version": "$(OPENAPI_HOOKS_VERSION)"' \
			$(OPENAPI_PACKAGES)/openapi-webhooks/package.json \
		|| npm install --no-save --no-audit --no-fund --prefix $(OPENAPI_DIR) \
			@octokit/openapi@$(OPENAPI_REST_VERSION) \
			@octokit/openapi-webhooks@$(OPENAPI_HOOKS_VERSION)

# The suite mostly waits (on servers, git, confined subprocesses), so it runs in more worker
# processes than a small machine has cores; `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 4

## Lint, format check and the whole test suite.
test: $(STAMP) browser sandbox openapi
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q -n $(TEST_WORKERS)

format: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

# wrk drives the ingest benchmark; Debian ships it.
bench: $(STAMP) sandbox
	command -v wrk >/dev/null || apt-get install -y wrk || (apt-get update && apt-get install -y wrk)
	$(PY) bench/webhook_ingest.py
	$(PY) bench/slow_ci_latency.py
	$(PY) bench/run_page.py
	$(PY) bench/actions_scale.py
	$(PY) bench/style_job.py
	$(PY) bench/confinement.py
	$(PY) bench/scheduled_ci.py
	$(PY) bench/scheduled_pages.py
	$(PY) bench/benchmarks_page.py
	$(PY) bench/codeowners_match.py
	$(PY) bench/model_lib.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
