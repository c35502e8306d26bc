#!/usr/bin/env bash
# Install a tool from Debian's packages when its binary is not on PATH yet (idempotent).
#   hack/install-debian-tool.sh BINARY [PACKAGE]   (PACKAGE defaults to BINARY)
# Used for prometheus (the enforcer's integration tests) and wrk (`make bench`). Needs root or sudo.
set -euo pipefail

binary="${1:?usage: install-debian-tool.sh BINARY [PACKAGE]}"
package="${2:-$binary}"
command -v "$binary" >/dev/null 2>&1 && exit 0

SUDO=""
[ "$(id -u)" = "0" ] || SUDO="sudo"
echo "install-debian-tool: installing Debian's $package package" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "$package" >/dev/null
# A package that starts a service of its own (prometheus does) is stopped: tests start their own.
if command -v service >/dev/null 2>&1; then
  $SUDO service "$package" stop >/dev/null 2>&1 || true
fi
command -v "$binary" >/dev/null 2>&1 || { echo "install-debian-tool: FAILED to install $package" >&2; exit 1; }
