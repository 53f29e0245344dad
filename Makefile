# gitops-mesh — the commands everyone relies on. See README.md.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STACK := deploy/local/stack.sh
PYTEST_ARGS ?=

.PHONY: setup system-packages venv stack-build stack-up stack-down stack-status demo demo-down test test-unit lint typecheck bench clean

setup: system-packages venv stack-build ## Debian peers (sshd, gpg), Python deps into .venv, the stack binaries into ~/.cache/gitops-mesh

system-packages:
	deploy/local/system-packages.sh

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

stack-build:
	deploy/local/build.sh

stack-up: venv
	$(STACK) up

stack-down:
	$(STACK) down

stack-status:
	$(STACK) status

# The main job: the stack, every controller, a sample repository reconciled and notified, a push via a Receiver.
demo: setup stack-up
	$(PY) deploy/local/demo.py

demo-down:
	@for f in .stack/run/demo-*.pid; do [ -f "$$f" ] || continue; kill "$$(cat $$f)" 2>/dev/null || true; rm -f "$$f"; done
	@rm -f .stack/demo/ports
	@echo "[demo] stopped (the stack keeps running: make stack-down)"

lint: venv ## ruff, mypy --strict, import layers
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

typecheck: venv
	$(VENV)/bin/mypy

test-unit: venv
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

# The README's test command: lint, then every test tier against the real stack (brought up if it is not).
test: lint
	$(STACK) status >/dev/null 2>&1 || $(STACK) up
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: venv
	$(STACK) status >/dev/null 2>&1 || $(STACK) up
	$(PY) -m bench

clean:
	rm -rf .mypy_cache .ruff_cache .pytest_cache
