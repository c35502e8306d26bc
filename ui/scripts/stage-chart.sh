#!/usr/bin/env bash
# Puts the built extension into the UI chart's files/ as the UIPlugin endpoint serves it (the
# layout of Rancher's extension catalog images):
#   files/plugin/<name>-<version>/files.txt                       the list Rancher fetches first
#   files/plugin/<name>-<version>/plugin/<name>-<version>.umd.min.js
#   files/plugin/<name>-<version>/plugin/package.json
# Usage: stage-chart.sh CHART_DIR   (CHART_DIR defaults to charts/migration-guard-ui)
set -euo pipefail

UI="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="${1:-$UI/../charts/migration-guard-ui}"
NAME=$(node -p "require('$UI/pkg/migration-guard/package.json').name")
VERSION=$(node -p "require('$UI/pkg/migration-guard/package.json').version")
ID="$NAME-$VERSION"
DIST="$UI/dist-pkg/$ID"

if [ ! -s "$DIST/$ID.umd.min.js" ]; then
  echo "stage-chart: $DIST/$ID.umd.min.js is missing: build it first (make ui)" >&2
  exit 1
fi
rm -rf "$CHART/files/plugin"
mkdir -p "$CHART/files/plugin/$ID/plugin"
cp "$DIST/$ID.umd.min.js" "$DIST/package.json" "$CHART/files/plugin/$ID/plugin/"
(cd "$CHART/files/plugin/$ID" && find plugin -type f | sort > files.txt)
echo "$CHART/files/plugin/$ID"
