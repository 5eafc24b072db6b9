# The two commands of the README: `make up` runs the whole system locally, `make test` runs the tests.
# Both install what a fresh machine lacks first (PostgreSQL from Debian, a Python 3.11 venv with pinned packages).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PG_BIN := $(firstword $(wildcard /usr/lib/postgresql/*/bin/initdb))

.PHONY: up test install lint format schemas clean

up: install
	$(BIN)/rectify up

test: install
	$(BIN)/ruff check services tests infra bench
	$(BIN)/ruff format --check services tests infra bench
	$(BIN)/rectify schemas --check
	mkdir -p test-artifacts
	RECTIFY_TEST_ARTIFACTS=$(CURDIR)/test-artifacts $(BIN)/python -m pytest -q -p no:cacheprovider --durations=10; \
	  rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

install: $(STAMP)
	@# the browser tests (tests/e2e/test_public_pages.py): Debian's Chromium and CJK fonts, axe-core from npm
	@{ test -x /usr/bin/chromium && dpkg -s fonts-noto-cjk >/dev/null 2>&1; } || { \
	  echo "installing Chromium and CJK fonts (Debian packages)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; }
	@test -f tests/e2e/axe/node_modules/axe-core/axe.min.js || npm ci --prefix tests/e2e/axe --no-audit --no-fund
	@# the monitoring test (tests/e2e/test_prometheus.py): Prometheus and promtool from Debian
	@test -x /usr/bin/promtool || { \
	  echo "installing Prometheus (Debian package)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }

$(STAMP): pyproject.toml constraints.txt
	@if [ -z "$(PG_BIN)" ]; then \
	  echo "installing PostgreSQL (Debian package)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[local,dev]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check services tests infra bench

format: install
	$(BIN)/ruff format services tests infra bench
	$(BIN)/ruff check --fix services tests infra bench

schemas: install
	$(BIN)/rectify schemas

clean:
	rm -rf $(VENV) .rectify test-artifacts
