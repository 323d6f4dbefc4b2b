#!/usr/bin/env bash
# Prints the path of a helm v3.22.0 binary, building it first if needed.
#
#   hack/helm.sh            build helm (cached) and print its path on stdout
#   "$(hack/helm.sh)" lint charts/batchlatch
#
# helm is built with 'go install' from the Go module proxy (release download
# sites are not reachable from CI) and cached outside the repo, keyed by
# version, in ${BATCHLATCH_TOOLS_DIR:-$HOME/.cache/batchlatch-tools}. The first
# build takes a few minutes; later calls only print the path. Progress and
# errors go to stderr.
set -euo pipefail

HELM_VERSION=v3.22.0

TOOLS_DIR="${BATCHLATCH_TOOLS_DIR:-$HOME/.cache/batchlatch-tools}"
HELM_DIR="$TOOLS_DIR/helm-$HELM_VERSION"
HELM_BIN="$HELM_DIR/helm"

log() { printf 'helm.sh: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# helm_ok: the cached binary runs and reports the version (a build without
# the release ldflags below reports only "v3.22").
helm_ok() {
	[[ -x "$HELM_BIN" ]] && [[ "$("$HELM_BIN" version --template '{{.Version}}' 2>/dev/null)" == "$HELM_VERSION" ]]
}

if helm_ok; then
	echo "$HELM_BIN"
	exit 0
fi

command -v go >/dev/null || die "go is not in PATH (needed to build helm)"
mkdir -p "$TOOLS_DIR"
# Test packages run in parallel and may all ask for helm: one builds while
# the others wait, then find it cached.
exec 9>"$TOOLS_DIR/.helm.lock"
flock 9
if ! helm_ok; then
	log "building helm $HELM_VERSION (cached in $HELM_DIR; takes a few minutes the first time)"
	start=$SECONDS
	# Install into a temp GOBIN and rename: an interrupted build never leaves
	# a broken binary that a later call would take for a cached one.
	work="$(mktemp -d "$TOOLS_DIR/.helm-build.XXXXXX")"
	trap 'rm -rf "$work"' EXIT
	# Outside any module (-C), with GOWORK=off and GOFLAGS replaced: a go.work
	# or a developer's -mod=vendor must not leak in. GOCACHE is kept: it makes
	# rebuilds fast.
	scratch_go() { GOWORK=off GOFLAGS=-buildvcs=false CGO_ENABLED=0 go -C "$work" "$@"; }
	# The ldflags of helm's Makefile. Without them helm reports version
	# "v3.22" and assumes Kubernetes v1.20 for .Capabilities.KubeVersion, the
	# charts' kubeVersion check and lint's deprecated-API check; the Makefile
	# derives the Kubernetes version from the client-go that helm builds with.
	gomod="$(scratch_go mod download -json "helm.sh/helm/v3@$HELM_VERSION" 2>"$work/go.log" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')" || true
	[[ -f "$gomod" ]] || {
		cat "$work/go.log" >&2
		die "could not download the go.mod of helm.sh/helm/v3@$HELM_VERSION"
	}
	k8s_minor="$(awk '$1 == "k8s.io/client-go" { print $2 }' "$gomod" | sed -n 's/^v0\.\([0-9][0-9]*\)\..*/\1/p')"
	[[ -n "$k8s_minor" ]] || die "no k8s.io/client-go v0.X requirement in $gomod"
	ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
	for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
		ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
	done
	if ! GOBIN="$work/bin" scratch_go install -trimpath -ldflags="$ldflags" \
		"helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >"$work/go.log" 2>&1; then
		tail -n 40 "$work/go.log" >&2
		die "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed"
	fi
	mkdir -p "$HELM_DIR"
	mv -f "$work/bin/helm" "$HELM_BIN.tmp.$$"
	mv -f "$HELM_BIN.tmp.$$" "$HELM_BIN"
	log "built in $((SECONDS - start))s"
fi
helm_ok || die "$HELM_BIN does not report version $HELM_VERSION"
echo "$HELM_BIN"
