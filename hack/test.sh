#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need, builds
# (or reuses) the cluster binaries and helm, then runs every Go test,
# including the ones against a real kube-apiserver + etcd on 127.0.0.1.
#
#   hack/test.sh               everything
#   hack/test.sh ./state/...   only some packages (extra args go to 'go test')
set -euo pipefail
cd "$(dirname "$0")/.."

# openssl and curl: certificates and readiness checks of the test cluster;
# chromium (Debian's package): the status page's browser test;
# gcc: the race detector needs cgo.
missing=()
for tool in openssl curl chromium gcc; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
	echo "test.sh: installing ${missing[*]}" >&2
	if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
	else sudo apt-get update -qq && sudo apt-get install -y -qq "${missing[@]}" >/dev/null; fi
fi

# Build or reuse the cached cluster binaries and helm (minutes cold, seconds warm).
hack/kube-env.sh build
hack/controllers.sh build
if [ -x hack/helm.sh ]; then hack/helm.sh >/dev/null; fi

# No test may reach Google: a Cloud Logging client that ever probes the
# metadata server hits a closed loopback port instead.
export GCE_METADATA_HOST=127.0.0.1:1

# The build tags of every build of the binary (internal/buildtags), so that
# the tests run the code users run.
tags=nomsgpack

go vet -tags "$tags" ./...
if (($#)); then
	go test -tags "$tags" -count=1 -timeout 30m "$@"
	exit
fi
go test -tags "$tags" -count=1 -timeout 30m ./...

# The race detector, on the packages where goroutines share state without a
# cluster in between: the group commit, the state machine, the file store
# and the HTTP server. The whole suite under -race rebuilds client-go, the
# Argo module and gRPC instrumented and takes far longer than the 3 minutes
# CI can spare (docs/reliability.md has the figures).
CGO_ENABLED=1 go test -tags "$tags" -race -count=1 ./internal/groupcommit ./state ./state/filestore ./server
