# The two commands a fresh machine needs: `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
ARGS ?=

.PHONY: test lint unit demo bench fidelity cluster-up cluster-down controlplane prometheus venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and helm, and
# KubeVirt's virt-api and virt-controller, its CRDs and KWOK, from their Go modules on first use
# (cached outside the checkout, keyed by version).
controlplane:
	@bash hack/build-controlplane.sh >/dev/null
	@bash hack/build-kubevirt.sh >/dev/null

# Debian's prometheus, scraped by the enforcer's integration tests.
prometheus:
	@bash hack/install-debian-tool.sh prometheus

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: venv controlplane prometheus lint
	$(PY) -m pytest

unit: venv
	$(PY) -m pytest tests/unit

cluster-up: venv controlplane
	$(PY) -m tests.harness.cluster up

cluster-down: venv
	$(PY) -m tests.harness.cluster down

demo: venv controlplane prometheus
	$(PY) -m demo $(ARGS)

# Differential tests against the real virt-controller and kube-scheduler, large sample (README
# "Fidelity"); ARGS="--pairs 200" for a shorter run. Figures go to bench/fidelity.json.
fidelity: venv controlplane
	$(PY) -m tests.fidelity $(ARGS)

# Benchmarks (not part of `make test`): wrk from Debian, the profilers from the `bench` extra.
# ARGS="--only lookup,enforcer --quick" for a subset; figures go to bench/results.json.
bench: venv controlplane
	@bash hack/install-debian-tool.sh wrk
	@$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) -m bench $(ARGS)

clean:
	rm -rf $(VENV) .cluster .demo
