#!/usr/bin/env bash
# Build the test control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, helm) from their Go modules,
# pinned, into a cache outside the checkout keyed by version. Prints the bin directory.
# Idempotent: a binary already in the cache is not rebuilt.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.35.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.19.5}"

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/migration-guard"
BIN="$CACHE_ROOT/controlplane-k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}-helm-${HELM_VERSION}/bin"
mkdir -p "$BIN"
export GOFLAGS="-trimpath" CGO_ENABLED=0

step() { echo "build-controlplane: $*" >&2; }
fail() { echo "build-controlplane: FAILED at step: $1" >&2; exit 1; }

have() { [ -x "$BIN/$1" ]; }

build_k8s() {
  local work minor
  work="$(mktemp -d)"
  minor="v0.${K8S_VERSION#v1.}"
  step "kube-apiserver, kube-controller-manager, kube-scheduler and kubectl from k8s.io/kubernetes@${K8S_VERSION} (staging modules at ${minor})"
  (
    cd "$work"
    go mod init mg-controlplane-k8s >/dev/null 2>&1
    go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" >download.json || exit 11
    gomod="$(python3 -c 'import json,sys; print(json.load(open("download.json"))["GoMod"])')"
    # The kubernetes module replaces each staging module with a local path that only exists in
    # its own repository; point each of them at its published v0.<minor>.<patch> instead.
    {
      echo "require k8s.io/kubernetes ${K8S_VERSION}"
      echo "replace ("
      grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$gomod" \
        | awk -v v="$minor" '{print "\t" $1 " => " $1 " " v}'
      echo ")"
    } >>go.mod
    printf 'package main\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\nimport _ "k8s.io/kubernetes/cmd/kube-controller-manager"\nimport _ "k8s.io/kubernetes/cmd/kube-scheduler"\nimport _ "k8s.io/kubectl/pkg/cmd"\nfunc main() {}\n' >tools.go
    go mod tidy >tidy.log 2>&1 || { cat tidy.log >&2; exit 12; }
    go build -o "$BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver || exit 13
    go build -o "$BIN/kubectl" k8s.io/kubernetes/cmd/kubectl || exit 14
    go build -o "$BIN/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager || exit 15
    go build -o "$BIN/kube-scheduler" k8s.io/kubernetes/cmd/kube-scheduler || exit 16
  ) || fail "k8s (exit $?: 11 download, 12 module resolution, 13 kube-apiserver, 14 kubectl, 15 kube-controller-manager, 16 kube-scheduler)"
  rm -rf "$work"
}

build_etcd() {
  local work
  work="$(mktemp -d)"
  step "etcd from go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
  (
    cd "$work"
    go mod init mg-controlplane-etcd >/dev/null 2>&1
    printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' >main.go
    go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >get.log 2>&1 || { cat get.log >&2; exit 21; }
    go mod tidy >tidy.log 2>&1 || { cat tidy.log >&2; exit 22; }
    go build -o "$BIN/etcd" . || exit 23
  ) || fail "etcd (exit $?: 21 download, 22 module resolution, 23 build)"
  rm -rf "$work"
}

build_helm() {
  step "helm from helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
  GOBIN="$BIN" go install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" || fail "helm (go install)"
}

have etcd || build_etcd
{ have kube-apiserver && have kubectl && have kube-controller-manager && have kube-scheduler; } || build_k8s
have helm || build_helm
echo "$BIN"
