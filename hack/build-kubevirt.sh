#!/usr/bin/env bash
# Build KubeVirt's virt-api and virt-controller, the manifest generator (hack/kubevirt-manifests)
# and KWOK from their Go modules, pinned, into a cache outside the checkout keyed by version, and
# write beside them what the generator prints from KubeVirt's own code (kubevirt-crds.yaml and
# virt-api-webhooks.yaml, each also as a JSON List) and KWOK's stages (kwok-stages.yaml). Prints the bin directory.
# Idempotent: what is in the cache is not rebuilt.
#
# kubevirt.io/kubevirt cannot be `go install`ed: its go.mod replaces kubevirt.io/api and
# kubevirt.io/client-go with ./staging folders that its module zip lacks. A wrapper module
# requires it, copies its replace lines (the staging ones pointed at the same published version)
# and starts from its go.sum. v1.8.2 is the newest v1.8.x whose go.mod verifies against the
# checksum database here (v1.8.3 does not; v1.9 imports modules the proxy refuses).
set -euo pipefail

KUBEVIRT_VERSION="${KUBEVIRT_VERSION:-v1.8.2}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/migration-guard"
ROOT="$CACHE_ROOT/kubevirt-${KUBEVIRT_VERSION}-kwok-${KWOK_VERSION}"
BIN="$ROOT/bin"
MODULE="$ROOT/module"
mkdir -p "$BIN"
export GOFLAGS="-trimpath" CGO_ENABLED=0

step() { echo "build-kubevirt: $*" >&2; }
fail() { echo "build-kubevirt: FAILED at step: $1" >&2; exit 1; }

have() { [ -x "$BIN/$1" ]; }

# The generator's source is part of the key: a changed generator regenerates the manifests.
GENERATOR_SUM="$(sha1sum "$HERE/kubevirt-manifests/main.go" | cut -c1-12)"

wrapper_module() {
  [ -s "$MODULE/.ready" ] && return 0
  step "wrapper module for kubevirt.io/kubevirt@${KUBEVIRT_VERSION}"
  rm -rf "$MODULE" && mkdir -p "$MODULE"
  (
    cd "$MODULE"
    go mod download -json "kubevirt.io/kubevirt@${KUBEVIRT_VERSION}" >download.json || exit 31
    read -r dir gomod < <(python3 -c 'import json; d=json.load(open("download.json")); print(d["Dir"], d["GoMod"])')
    {
      echo "module mg-kubevirt"
      grep -E '^go ' "$gomod"
      echo "require kubevirt.io/kubevirt ${KUBEVIRT_VERSION}"
      sed -n '/^replace (/,/^)/p' "$gomod" \
        | sed -E "s#^(\s*kubevirt\.io/(api|client-go)) => \./staging/src/kubevirt\.io/[a-z-]+#\1 => \1 ${KUBEVIRT_VERSION}#"
    } >go.mod
    cp "$dir/go.sum" go.sum && chmod u+w go.sum
    mkdir -p kubevirt-manifests && cp "$HERE/kubevirt-manifests/main.go" kubevirt-manifests/
    printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "kubevirt.io/kubevirt/cmd/virt-api"\n\t_ "kubevirt.io/kubevirt/cmd/virt-controller"\n)\n' >tools.go
    # -e: a test-only dependency of KubeVirt fails its checksum lookup here and is not needed.
    go mod tidy -e >tidy.log 2>&1 || { cat tidy.log >&2; exit 32; }
  ) || fail "kubevirt wrapper module (exit $?: 31 download, 32 module resolution)"
  echo ok >"$MODULE/.ready"
}

build_kubevirt() {
  step "virt-api and virt-controller from kubevirt.io/kubevirt@${KUBEVIRT_VERSION}"
  (
    cd "$MODULE"
    go build -o "$BIN/virt-api" kubevirt.io/kubevirt/cmd/virt-api || exit 33
    go build -o "$BIN/virt-controller" kubevirt.io/kubevirt/cmd/virt-controller || exit 34
  ) || fail "kubevirt (exit $?: 33 virt-api, 34 virt-controller)"
}

generate_manifests() {
  step "KubeVirt CRDs and virt-api webhooks from KubeVirt's own constructors"
  cp "$HERE/kubevirt-manifests/main.go" "$MODULE/kubevirt-manifests/"
  (cd "$MODULE" && go build -o "$BIN/kubevirt-manifests" ./kubevirt-manifests) \
    || fail "kubevirt-manifests (build)"
  local kind format out
  for kind in crds webhooks; do
    for format in yaml json; do
      out="$ROOT/kubevirt-$kind.$format"
      [ "$kind" = webhooks ] && out="$ROOT/virt-api-webhooks.$format"
      "$BIN/kubevirt-manifests" "$kind" "$format" >"$out.tmp" || fail "kubevirt-manifests $kind $format"
      mv "$out.tmp" "$out"
    done
  done
  echo "$GENERATOR_SUM" >"$ROOT/manifests.sum"
  echo "$KUBEVIRT_VERSION" >"$ROOT/kubevirt-version"
}

build_kwok() {
  step "kwok from sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
  GOBIN="$BIN" go install "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}" || fail "kwok (go install)"
  # kwok runs no stage it is not given: the fast node and pod stages kwokctl would inject.
  local dir
  dir="$(go mod download -json "sigs.k8s.io/kwok@${KWOK_VERSION}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')" || fail "kwok (stages)"
  for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
    pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    [ -f "$dir/kustomize/stage/$stage.yaml" ] || fail "kwok (stage $stage missing)"
    printf -- '---\n'
    cat "$dir/kustomize/stage/$stage.yaml"
  done >"$ROOT/kwok-stages.yaml"
}

wrapper_module
{ have virt-api && have virt-controller; } || build_kubevirt
{ have kubevirt-manifests && [ "$(cat "$ROOT/manifests.sum" 2>/dev/null)" = "$GENERATOR_SUM" ]; } \
  || generate_manifests
{ have kwok && [ -s "$ROOT/kwok-stages.yaml" ]; } || build_kwok
echo "$BIN"
