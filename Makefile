# The two commands a fresh machine needs: `make demo` and `make test`. Each installs what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
ARGS ?=

.PHONY: test lint unit demo bench fidelity cluster-up cluster-down controlplane prometheus venv clean ui ui-deps ui-test ui-chart ui-harness chromium

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

# The Rancher UI extension (ui/, docs/install.md): npm packages from the lock (again only when the
# lock changes: the stamp lives in node_modules, which `npm ci` empties), the bundle (the shell's
# build-pkg, into ui/dist-pkg/), the shell's ESLint rules, and its Jest component tests.
UI_STAMP := ui/node_modules/.installed-$(shell cat ui/package.json ui/package-lock.json ui/.npmrc | sha1sum | cut -c1-12)
UI_VERSION := $(shell sed -n 's/^  "version": "\(.*\)",/\1/p' ui/pkg/migration-guard/package.json)
UI_BUNDLE := ui/dist-pkg/migration-guard-$(UI_VERSION)/migration-guard-$(UI_VERSION).umd.min.js
UI_SOURCES := $(shell find ui/pkg/migration-guard -type f -not -path '*/__tests__/*' -not -path '*/.shell/*' 2>/dev/null)

ui: $(UI_BUNDLE) ui-test

ui-deps: $(UI_STAMP)

$(UI_STAMP): ui/package.json ui/package-lock.json ui/.npmrc
	cd ui && npm ci --no-audit --no-fund --loglevel=error
	@rm -f ui/node_modules/.installed-* && touch $@

$(UI_BUNDLE): $(UI_STAMP) $(UI_SOURCES)
	cd ui && npm run --silent build-pkg -- migration-guard >.build.log 2>&1 || { cat .build.log; exit 1; }
	@test -s $@ && echo "built $@ ($$(wc -c <$@) bytes)"

ui-test: $(UI_STAMP)
	cd ui && npm run --silent lint && npm test --silent

# The browser test's harness page with the built bundle, for `kubectl proxy --www` (make demo says how).
ui-harness: $(UI_BUNDLE)
	@bash ui/scripts/assemble-harness.sh ui/dist-harness

# The extension's Helm chart with the bundle in it, packaged into ui/dist-chart/ (docs/install.md).
ui-chart: $(UI_BUNDLE) controlplane
	@bash ui/scripts/stage-chart.sh charts/migration-guard-ui >/dev/null
	@"$$(bash hack/build-controlplane.sh | tail -1)/helm" package charts/migration-guard-ui -d ui/dist-chart

# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and helm, and
# KubeVirt's virt-api and virt-controller, its CRDs and KWOK, from their Go modules on first use
# (cached outside the checkout, keyed by version).
controlplane:
	@bash hack/build-controlplane.sh >/dev/null
	@bash hack/build-kubevirt.sh >/dev/null

# Debian's prometheus, scraped by the enforcer's integration tests.
prometheus:
	@bash hack/install-debian-tool.sh prometheus

# Debian's chromium, which the UI extension's browser test drives headless (Playwright).
chromium:
	@bash hack/install-debian-tool.sh chromium

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: venv controlplane prometheus chromium lint ui
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
	rm -rf $(VENV) .cluster .demo ui/node_modules ui/dist-pkg ui/dist-chart ui/dist-harness charts/migration-guard-ui/files/plugin
