SHELL := /bin/bash
# The two commands of the README: `make run` (the hook server on 127.0.0.1:8080) and
# `make test` (every suite). Both set up what they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080
PYTEST_ARGS ?=

.PHONY: run test unit integration kernels e2e e2e-metacontroller bench bench-abuse lint crds render clean system-deps runtimes

# Set-up output goes to stderr, so that `make render > children.yaml` holds only YAML.
$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) >&2
	@$(BIN)/pip install --quiet --upgrade pip >&2

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@$(BIN)/pip install --quiet -e '.[test]' >&2
	@touch $@

.cache/bin/psacheck: tests/psa/main.go tests/psa/go.mod tests/psa/go.sum
	cd tests/psa && go build -o ../../.cache/bin/psacheck .

## system-deps: Debian packages the tests and the benchmark drive (wrk)
system-deps:
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }

## runtimes: Enterprise Gateway 3.3 and Jupyter Server 2.21 venvs, Debian's chromium (integration tests)
runtimes:
	bash tests/integration/provision.sh

## run: the hook server, as Metacontroller would call it (http://127.0.0.1:$(PORT))
run: $(VENV)/.installed
	$(BIN)/python -m hooks serve --host 127.0.0.1 --port $(PORT)

# Tests that need Metacontroller are left out: the Go module proxy here refuses its module
# (403), so its binary cannot be built (make e2e-metacontroller runs them where it can).
NOT_HERE := -m "not metacontroller"

## test: lint, then every test suite
test: lint system-deps runtimes $(VENV)/.installed .cache/bin/psacheck
	@echo "make test: tests marked 'metacontroller' are not run (Metacontroller cannot be built here; see README)"
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest $(NOT_HERE) $(PYTEST_ARGS)

## integration: the rendered gateway and notebook as real local processes, and a real browser
integration: runtimes $(VENV)/.installed
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

## kernels: kernel pods created, run (fake node) and culled by a real Enterprise Gateway on a real API server
kernels: runtimes $(VENV)/.installed
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest tests/kernels $(PYTEST_ARGS)

## e2e: our manifests and hooks' output on a real kube-apiserver and kube-controller-manager
e2e: $(VENV)/.installed
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest tests/e2e $(NOT_HERE) $(PYTEST_ARGS)

## e2e-metacontroller: the Metacontroller scenarios (needs github.com/metacontroller/metacontroller from the Go proxy)
e2e-metacontroller: $(VENV)/.installed
	E2E_METACONTROLLER=1 PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest tests/e2e -m metacontroller $(PYTEST_ARGS)

## unit: the pure functions, schemas, manifests and HTTP layer only (seconds)
unit: $(VENV)/.installed .cache/bin/psacheck
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

## bench: latency, throughput and memory of the hook server against two references
bench: system-deps $(VENV)/.installed
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## bench-abuse: the hook server against a 200 MB body and header, 1,000 slow clients, random child kinds
bench-abuse: $(VENV)/.installed
	$(BIN)/python -m bench.abuse

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint --failure-threshold warning Dockerfile

## crds: regenerate manifests/crds/ from hooks/models.py
crds: $(VENV)/.installed
	$(BIN)/python -m hooks crds

## render: preview the children of the sample CRs (only YAML on stdout)
render: $(VENV)/.installed
	@$(BIN)/python -m hooks render -f manifests/samples/jupytergateway-sample.yaml \
	  -f manifests/samples/jupyternotebook-sample.yaml

clean:
	rm -rf $(VENV) .cache test-output
