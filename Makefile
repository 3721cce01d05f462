# Stepwork: the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test check bench chaos services clean chromium

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: run the example workflows (brand store), then the shop application over HTTP, and show what happened
demo: $(STAMP)
	$(PY) -m examples.brand.demo
	$(PY) -m examples.shop.demo

JS_SDK := tests/clients/js-sdk
JS_SDK_STAMP := $(JS_SDK)/node_modules/.installed

# Medusa's @medusajs/js-sdk, pinned by its lock file, for the HTTP API's client test.
$(JS_SDK_STAMP): $(JS_SDK)/package.json $(JS_SDK)/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed to install @medusajs/js-sdk for the HTTP tests (install Node.js 18+)"; exit 1; }
	cd $(JS_SDK) && npm ci --no-audit --no-fund
	touch $(JS_SDK_STAMP)

AXE := tests/ui/axe
AXE_STAMP := $(AXE)/node_modules/.installed

# axe-core (Deque's accessibility checker), pinned by its lock file, for the admin page's accessibility test.
$(AXE_STAMP): $(AXE)/package.json $(AXE)/package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed to install axe-core for the admin page's tests (install Node.js 18+)"; exit 1; }
	cd $(AXE) && npm ci --no-audit --no-fund
	touch $(AXE_STAMP)

# Debian's Chromium, which the admin page's browser tests drive through Playwright (never `playwright install`).
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y chromium; }

## test: lint, type-check, then the whole suite (starts the services it needs)
test: $(STAMP) services check $(JS_SDK_STAMP) $(AXE_STAMP) chromium
	$(PY) -m mypy --config-file tests/typing/mypy.ini tests/typing
	$(PY) -m pytest -q

## check: ruff and mypy --strict on the package
check: $(STAMP)
	$(PY) -m ruff check src tests examples benchmarks
	$(PY) -m mypy src examples benchmarks

## bench: the named workloads, one JSON line each
bench: $(STAMP)
	$(PY) -m benchmarks.run

## chaos: the scale-out soak (issue 12): 3 workers, 5,000 workflows, a private PostgreSQL restarted every 5-40 s (CHAOS_WORKFLOWS=200 for a short one)
chaos: $(STAMP)
	$(PY) -m tests.workers.chaos

services:
	@scripts/services.sh

clean:
	rm -rf $(VENV) .stepwork .mypy_cache .ruff_cache .pytest_cache
