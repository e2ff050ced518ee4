#!/usr/bin/env bash
# Builds the real control-plane binaries for the e2e tests from pinned Go modules:
#   kube-apiserver, kube-controller-manager, kubectl,  (tests/e2e/k8s/go.mod)
#   and for the real node: kubelet, kube-scheduler, kube-proxy
#   etcd                                               (tests/e2e/etcd/go.mod)
# into .cache/e2e/bin. Idempotent: a binary whose stamp (hash of its module's
# go.mod + go.sum) is unchanged is not rebuilt. Set E2E_FORCE_BUILD=1 to rebuild.
# Metacontroller is not built here: the scenarios that need it take the upstream release's
# binary and CRDs from METACONTROLLER_BIN and METACONTROLLER_CRDS (see the README).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="${E2E_BIN_DIR:-$ROOT/.cache/e2e/bin}"
mkdir -p "$BIN"
export GOFLAGS="-mod=readonly"   # never rewrite go.mod/go.sum here; run `go mod tidy` by hand
export CGO_ENABLED=0

K8S_VERSION="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$HERE/k8s/go.mod")"
failed=()

# `go build -v` names each package it compiles: print a count every 200 of them (a cold
# control-plane build compiles about 2,500 on 2 cores in ~7 minutes; kubelet, kube-scheduler
# and kube-proxy add ~6 more) and pass anything else through.
progress() { # label
  local n=0 line start=$SECONDS
  while IFS= read -r line; do
    if [[ "$line" =~ ^[A-Za-z0-9_./~-]+$ ]]; then
      n=$((n + 1))
      ((n % 200 == 0)) && echo "build.sh: $1: $n packages compiled ($((SECONDS - start))s)"
    else
      echo "$line" >&2
    fi
  done
  return 0
}

stamp_of() { cat "$HERE/$1/go.mod" "$HERE/$1/go.sum" 2>/dev/null | sha256sum | cut -c1-16; }

up_to_date() { # module names...
  local mod=$1; shift
  local want; want="$(stamp_of "$mod")"
  for name in "$@"; do
    [[ -x "$BIN/$name" && "$(cat "$BIN/$name.stamp" 2>/dev/null)" == "$want" ]] || return 1
  done
}

build() { # module ldflags name=pkg...
  local mod=$1 ldflags=$2; shift 2
  local names=() pkgs=()
  for np in "$@"; do names+=("${np%%=*}"); pkgs+=("${np#*=}"); done
  if [[ -z "${E2E_FORCE_BUILD:-}" ]] && up_to_date "$mod" "${names[@]}"; then
    echo "build.sh: ${names[*]} up to date"
    return 0
  fi
  echo "build.sh: building ${names[*]} from tests/e2e/$mod ..."
  local start=$SECONDS tmp="$BIN/.tmp-$mod" i out
  rm -rf "$tmp" && mkdir -p "$tmp"
  # One `go build` for all of a module's binaries: shared packages compile once, in parallel.
  if ! (cd "$HERE/$mod" && go build -v -trimpath -ldflags "-s -w $ldflags" -o "$tmp/" "${pkgs[@]}" 2>&1 \
      | progress "${names[*]}"); then
    echo "build.sh: FAILED to build ${names[*]} (tests/e2e/$mod); module download check:" >&2
    (cd "$HERE/$mod" && go mod download -json "${pkgs[0]%%/*}" 2>&1 | grep -E '"Error"|403|404' >&2) || true
    failed+=("${names[@]}")
    rm -rf "$tmp"
    return 0
  fi
  for i in "${!pkgs[@]}"; do
    out="${pkgs[$i]##*/}"                                         # go's default binary name:
    [[ "$out" =~ ^v[0-9]+$ ]] && out="$(basename "$(dirname "${pkgs[$i]}")")"  # .../server/v3 -> server
    mv "$tmp/$out" "$BIN/${names[$i]}"
    stamp_of "$mod" > "$BIN/${names[$i]}.stamp"
  done
  rm -rf "$tmp"
  echo "build.sh: ${names[*]} finished in $((SECONDS - start))s"
}

# Version info so `kubectl version` and /version report the real release.
K8S_LDFLAGS=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  K8S_LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION")"
  K8S_LDFLAGS+=" -X $pkg.gitTreeState=clean"
done

build etcd "" etcd=go.etcd.io/etcd/server/v3
build k8s "$K8S_LDFLAGS" \
  kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
  kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
  kubectl=k8s.io/kubernetes/cmd/kubectl \
  kubelet=k8s.io/kubernetes/cmd/kubelet \
  kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
  kube-proxy=k8s.io/kubernetes/cmd/kube-proxy
if ((${#failed[@]})); then
  echo "build.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "build.sh: all binaries in $BIN"
