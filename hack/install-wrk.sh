#!/usr/bin/env bash
# Install wrk (Debian's `wrk` package), the HTTP load generator `make bench` drives the webhook with.
# Idempotent: does nothing when a `wrk` binary is already on PATH. Needs root (or sudo).
set -euo pipefail

if command -v wrk >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  SUDO="sudo"
fi
echo "install-wrk: installing Debian's wrk package" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null
command -v wrk >/dev/null 2>&1 || { echo "install-wrk: FAILED" >&2; exit 1; }
