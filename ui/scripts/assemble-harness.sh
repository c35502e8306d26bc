#!/usr/bin/env bash
# The harness page (tests/ui/harness) with what it loads beside it: Vue's global build and the
# built extension bundle, in one folder that `kubectl proxy --www=DEST --www-prefix=/harness/`
# serves next to the API. Used by the browser test and `make ui-harness` (make demo prints how).
# Usage: assemble-harness.sh DEST
set -euo pipefail

UI="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:?usage: assemble-harness.sh DEST}"
ID=$(node -p "const p = require('$UI/pkg/migration-guard/package.json'); p.name + '-' + p.version")
BUNDLE="$UI/dist-pkg/$ID/$ID.umd.min.js"

if [ ! -s "$BUNDLE" ]; then
  echo "assemble-harness: $BUNDLE is missing: build it first (make ui)" >&2
  exit 1
fi
mkdir -p "$DEST"
cp "$UI/../tests/ui/harness/"* "$DEST/"
cp "$UI/node_modules/vue/dist/vue.global.prod.js" "$DEST/"
cp "$BUNDLE" "$DEST/extension.umd.min.js"
echo "$DEST"
