#!/usr/bin/env bash
# Cold build times of the test binaries, as on a fresh CI machine: each run
# starts from an empty build cache, module cache and tools directory (all in
# a temp dir, removed after), and builds in hack/test.sh's order:
# hack/kube-env.sh build (etcd, kube-apiserver), then hack/controllers.sh
# build split in two (placeholders for Argo's binaries make the first run
# build only kube-controller-manager). Prints wall and CPU (user+sys) seconds
# per step. Downloads every module from the Go module proxy at each run.
#
#   hack/cold-build-times.sh [RUNS]    (default 3; about 30 minutes each on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
argo_version="$(awk '$1 == "github.com/argoproj/argo-workflows/v3" { print $2; exit }' hack/argo/go.mod)"
TIMEFORMAT='%R %U %S'

# timed LABEL CMD...: run CMD quietly, print LABEL wall and CPU seconds.
timed() {
	local label="$1" t
	shift
	t="$({ time "$@" >>"$base/build.log" 2>&1; } 2>&1)" || {
		tail -n 40 "$base/build.log" >&2
		exit 1
	}
	read -r wall user sys <<<"$t"
	printf '%-32s wall %7.1f s  cpu %7.1f s\n' "$label" "$wall" "$(echo "$user + $sys" | bc)"
}

for ((run = 1; run <= runs; run++)); do
	base="$(mktemp -d)"
	export GOCACHE="$base/gocache" GOMODCACHE="$base/gomod" BATCHLATCH_TOOLS_DIR="$base/tools"
	tools="$BATCHLATCH_TOOLS_DIR"
	echo "run $run ($(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg))"
	timed "etcd + kube-apiserver" hack/kube-env.sh build
	for b in workflow-controller argoexec; do
		mkdir -p "$tools/$b-$argo_version"
		printf '#!/bin/sh\n' >"$tools/$b-$argo_version/$b"
		chmod +x "$tools/$b-$argo_version/$b"
	done
	timed "kube-controller-manager" hack/controllers.sh build
	rm -rf "$tools/workflow-controller-$argo_version" "$tools/argoexec-$argo_version"
	timed "workflow-controller + argoexec" hack/controllers.sh build
	echo "  caches: $(du -sh "$GOMODCACHE" | cut -f1) modules, $(du -sh "$GOCACHE" | cut -f1) build (load average $(cut -d' ' -f1-3 /proc/loadavg))"
	go clean -modcache # its files are read-only
	rm -rf "$base"
done
