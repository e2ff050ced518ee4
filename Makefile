SHELL := /bin/bash
# The two commands of the README: `make run` (the hook server on 127.0.0.1:8080) and
# `make test` (every suite). Both set up what they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080
PYTEST_ARGS ?=

.PHONY: run test unit integration kernels e2e e2e-bins e2e-metacontroller bench bench-abuse bench-scale up down \
	metacontroller-given lint crds render clean system-deps runtimes images image-deps images-test node node-deps

# Set-up output goes to stderr, so that `make render > children.yaml` holds only YAML.
$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) >&2
	@$(BIN)/pip install --quiet --upgrade pip >&2

# What the hook server needs (make run, make up): the package and its runtime dependencies only.
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	@$(BIN)/pip install --quiet -e . >&2
	@touch $@

# Everything the tests, linters and benchmarks need on top.
$(VENV)/.installed: $(VENV)/.runtime
	@$(BIN)/pip install --quiet -e '.[test]' >&2
	@touch $@

.cache/bin/psacheck: tests/psa/main.go tests/psa/go.mod tests/psa/go.sum
	cd tests/psa && go build -o ../../.cache/bin/psacheck .

## system-deps: Debian packages the tests and the benchmark drive (wrk)
system-deps:
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }

## image-deps: Debian packages `make images` uses (a static C toolchain, debootstrap, buildah)
image-deps:
	@command -v gcc >/dev/null && [ -e /usr/lib/x86_64-linux-gnu/libc.a ] && command -v debootstrap >/dev/null \
	  && command -v buildah >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq gcc libc6-dev debootstrap buildah; }

## images: the images a local node runs, as OCI archives in .cache/images/ (built when their inputs change)
images: image-deps
	nice $(PYTHON) images/build.py $(IMAGES)

## images-test: the local images, unpacked and run under chroot (tests/images; builds what is missing)
images-test: images $(VENV)/.installed
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest tests/images $(PYTEST_ARGS)

## node-deps: Debian's containerd, runc, CNI plugins, iptables, conntrack, busybox-static (the real node; root)
NODE_PACKAGES := containerd runc containernetworking-plugins iptables conntrack busybox-static
node-deps:
	@if [ "$$(id -u)" != 0 ]; then echo "node-deps: not root, so no real node: tests/node will be left out" >&2; \
	elif ! dpkg -s $(NODE_PACKAGES) >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(NODE_PACKAGES) >&2; fi

## runtimes: Enterprise Gateway 3.3 and Jupyter Server 2.21 venvs, Debian's chromium (integration tests)
runtimes:
	bash tests/integration/provision.sh

## run: the hook server, as Metacontroller would call it (http://127.0.0.1:$(PORT))
run: $(VENV)/.runtime
	$(BIN)/python -m hooks serve --host 127.0.0.1 --port $(PORT)

# The Metacontroller scenarios run when METACONTROLLER_BIN and METACONTROLLER_CRDS name the upstream
# release's binary and CRD manifest; otherwise pytest leaves them out and prints how many (see README).
export METACONTROLLER_BIN METACONTROLLER_CRDS

## e2e-bins: build kube-apiserver, kube-controller-manager, kubectl, kubelet, kube-scheduler, kube-proxy and etcd (with progress)
e2e-bins:
	bash tests/e2e/build.sh

## test: lint, then every test suite
test: lint system-deps node-deps runtimes images $(VENV)/.installed .cache/bin/psacheck e2e-bins
	E2E_SKIP_BUILD=1 PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest $(PYTEST_ARGS)

## integration: the rendered gateway and notebook as real local processes, and a real browser
integration: runtimes $(VENV)/.installed e2e-bins
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

## kernels: kernel pods created by a real Enterprise Gateway, run on the real node (kubelet, containerd) and culled
kernels: node-deps images runtimes $(VENV)/.installed e2e-bins
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest tests/kernels $(PYTEST_ARGS)

## e2e: our manifests and hooks' output on a real kube-apiserver and kube-controller-manager
e2e: $(VENV)/.installed e2e-bins
	E2E_SKIP_BUILD=1 PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

## node: pods on a real node (containerd, kubelet, kube-scheduler, kube-proxy; root with CAP_SYS_ADMIN, CAP_NET_ADMIN)
node: node-deps $(VENV)/.installed e2e-bins
	E2E_SKIP_BUILD=1 PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest tests/node $(PYTEST_ARGS)

## e2e-metacontroller: the Metacontroller scenarios only (METACONTROLLER_BIN=... METACONTROLLER_CRDS=...)
e2e-metacontroller: $(VENV)/.installed e2e-bins
	E2E_SKIP_BUILD=1 PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest tests/e2e -m metacontroller $(PYTEST_ARGS)

## up: a local control plane with the hook server and Metacontroller, samples applied (METACONTROLLER_BIN=...)
up: metacontroller-given $(VENV)/.runtime e2e-bins
	$(BIN)/python tests/e2e/localcluster.py up

# Before any install or build: without Metacontroller, say where to get it and stop.
metacontroller-given:
	@[ -n "$$METACONTROLLER_BIN" ] || { $(PYTHON) tests/e2e/localcluster.py up; exit 2; }

## down: stop everything `make up` started
down:
	$(PYTHON) tests/e2e/localcluster.py down

## bench-scale: convergence of 100/300/1,000 notebooks under the real Metacontroller (bench/RESULTS.md)
bench-scale: $(VENV)/.installed e2e-bins
	$(BIN)/python -m bench.scale $(BENCH_SCALE_ARGS)

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
	$(BIN)/hadolint --failure-threshold warning Dockerfile images/*/Dockerfile

## crds: regenerate manifests/crds/ from hooks/models.py
crds: $(VENV)/.installed
	$(BIN)/python -m hooks crds

## render: preview the children of the sample CRs (only YAML on stdout)
render: $(VENV)/.installed
	@$(BIN)/python -m hooks render -f manifests/samples/jupytergateway-sample.yaml \
	  -f manifests/samples/jupyternotebook-sample.yaml

clean:
	@# buildah's storage under .cache/images may still be mounted (an interrupted build)
	@awk '$$2 ~ "^$(CURDIR)/.cache/" {print $$2}' /proc/mounts | sort -r | xargs -r umount
	rm -rf $(VENV) .cache test-output
