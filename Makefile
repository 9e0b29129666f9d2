# Comptoir: every target sets up what it needs (virtualenv, anvil, system packages).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools
ANVIL_VERSION := 1.7.1
ANVIL := $(TOOLS)/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
export COMPTOIR_ANVIL := $(abspath $(ANVIL))
# a second, independent EVM node for tests/network/test_hardhat.py
HARDHAT_VERSION := 2.22.19
HARDHAT_DIR := $(TOOLS)/hardhat
HARDHAT := $(HARDHAT_DIR)/node_modules/.bin/hardhat
export COMPTOIR_HARDHAT := $(abspath $(HARDHAT_DIR))

.PHONY: setup sysdeps test lint typecheck gas bench-trust bench-scale bench-scale-full demo bench clean artifacts wheel docs

setup: $(VENV)/.installed $(ANVIL)

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[dev]'
	touch $@

$(ANVIL):
	mkdir -p $(TOOLS)
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) @foundry-rs/anvil-linux-amd64@$(ANVIL_VERSION)
	test -x $(ANVIL)

# Recompile the contracts into the committed artifacts (src/comptoir/contracts/artifacts);
# tests/install/test_artifacts.py fails until this is run after a contract changes.
artifacts: setup
	$(PY) -m comptoir.chain.build --write

# The installable wheel (ships the compiled artifacts; vyper only with the [dev] extra).
wheel: setup
	$(PY) -m pip wheel --no-deps -q -w dist .
	@ls dist/comptoir-*.whl

# The generated settings reference (tests/install/test_docs.py fails when it is stale).
docs: setup
	$(PY) -m comptoir.settings_doc > docs/configuration.md

$(HARDHAT):
	mkdir -p $(HARDHAT_DIR)
	npm install --silent --no-audit --no-fund --prefix $(HARDHAT_DIR) hardhat@$(HARDHAT_VERSION)
	test -x $(HARDHAT)

# Debian packages the sandbox, the database and the explorer's browser tests use (needs root;
# skipped when present). Playwright drives Debian's chromium: its own browser download is not used.
sysdeps:
	@command -v bwrap >/dev/null && command -v umoci >/dev/null && command -v pg_ctlcluster >/dev/null \
	  && test -x /usr/bin/chromium && command -v ip >/dev/null && command -v nsenter >/dev/null \
	  || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap umoci postgresql chromium iproute2 util-linux >/dev/null)

test: setup sysdeps $(HARDHAT)
	$(PY) -m ruff check src tests bench scripts examples
	COMPTOIR_TEST_POSTGRES_URL="$$(scripts/postgres-test-db.sh)" $(PY) -m pytest -q -n 2 --dist loadfile

lint: setup
	$(PY) -m ruff check src tests bench scripts examples
	$(PY) -m ruff format --check src tests bench scripts examples

typecheck: setup
	$(PY) -m mypy

gas: setup
	$(PY) bench/gas.py

# Error rate against strategic saboteurs, simulated on the product's own rules (a few minutes).
bench-trust: setup $(VENV)/.bench
	$(PY) bench/trust.py

$(VENV)/.bench: pyproject.toml requirements.lock
	$(PY) -m pip install -q -c requirements.lock -e '.[dev,bench]'
	touch $@

# The main job end to end: local stack, a replicated bag of tasks, verified results, payments.
demo: setup sysdeps
	$(PY) scripts/demo.py

bench: setup sysdeps
	$(PY) bench/gas.py
	$(PY) bench/sandbox.py
	$(PY) bench/e2e.py

# Simulated workers against a real scheduler: dispatch rate, latency, CPU per task, gas.
# bench-scale measures the issue-12 targets: 10 000 workers on SQLite at trust 1 and 4
# (256 requests in flight), the per-request probes at 1 000 and 100 000 queued tasks, the
# market with a 10 000-order book, then 1 vs 2 API processes on PostgreSQL (about 47 min;
# MARKET_ORDERS=10000,100000 adds ~15 min). bench-scale-full adds 100 and 1 000 workers.
MARKET_ORDERS ?= 10000
bench-scale: setup sysdeps
	$(PY) bench/scale.py --workers 10000 --tasks 4000 --trust 1,4 --seconds 90 \
	  --concurrency 256 --probe-queued 1000,100000 --market-orders $(MARKET_ORDERS) \
	  --postgres "$$(scripts/postgres-test-db.sh)"
	$(PY) bench/scale.py --workers 1000 --tasks 2000 --trust 1,4 --seconds 60 \
	  --concurrency 64 --processes 1,2 --postgres "$$(scripts/postgres-test-db.sh)" \
	  --postgres-only --probe-queued '' --append

bench-scale-full: setup sysdeps
	$(PY) bench/scale.py --workers 100,1000,10000 --tasks 4000 --trust 1,4 --seconds 90 \
	  --concurrency 256 --probe-queued 1000,100000 --market-orders 10000,100000 \
	  --postgres "$$(scripts/postgres-test-db.sh)"
	$(PY) bench/scale.py --workers 1000 --tasks 2000 --trust 1,4 --seconds 60 \
	  --concurrency 64 --processes 1,2 --postgres "$$(scripts/postgres-test-db.sh)" \
	  --postgres-only --probe-queued '' --append

clean:
	rm -rf $(VENV) $(TOOLS) build dist .pytest_cache
