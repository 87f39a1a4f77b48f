# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Python packages come from pyproject.toml + uv.lock (installed by uv into .venv);
# Debian packages the tests need are installed with apt-get when missing.
SHELL := /bin/bash
PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
STAMP := $(VENV)/.installed-stamp
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install demo test lint format lab bench sysdeps clean npm

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv>=0.9,<1"

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --all-extras --python $(PYTHON)
	touch $(STAMP)

install: $(STAMP)

# The Codex CLI (npm @openai/codex, pinned in package.json + package-lock.json, with its
# platform binary package) goes into ./node_modules, where the codex runtime looks first.
NPM_STAMP := node_modules/.installed
$(NPM_STAMP): package.json package-lock.json | sysdeps
	@command -v npm >/dev/null || { echo "npm is needed to install @openai/codex (install Node.js >= 18)" >&2; exit 1; }
	npm ci --no-audit --no-fund
	touch $(NPM_STAMP)

npm: $(NPM_STAMP)

# System tools the tests and the demo use (git for the sample project's history; headless
# Chromium and fonts for the notebook browser test). Each is installed only when missing.
sysdeps:
	@command -v git >/dev/null || { apt-get update -qq && apt-get install -y -qq git; }
	@command -v npm >/dev/null || { echo "sysdeps: installing nodejs and npm (the codex CLI)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends nodejs npm >/dev/null; }
	@test -x /usr/bin/chromium || { echo "sysdeps: installing chromium (notebook browser test)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends chromium fonts-liberation fonts-dejavu-core >/dev/null; }

demo: install sysdeps
	$(VENV)/bin/stagent-lab --home .stagent-demo demo --runtime scripted

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: install sysdeps lint npm
	$(VENV)/bin/pytest

lab: install
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

bench: install sysdeps
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .stagent-demo .pytest_cache .ruff_cache node_modules
