#!/usr/bin/env bash
# Install Prometheus (Debian's `prometheus` package) for the enforcer's integration tests.
# Idempotent: does nothing when a `prometheus` binary is already on PATH. Needs root (or sudo).
set -euo pipefail

if command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  SUDO="sudo"
fi
echo "install-prometheus: installing Debian's prometheus package" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package's service is not wanted: the tests start their own server on loopback.
if command -v service >/dev/null 2>&1; then
  $SUDO service prometheus stop >/dev/null 2>&1 || true
fi
command -v prometheus >/dev/null 2>&1 || { echo "install-prometheus: FAILED" >&2; exit 1; }
