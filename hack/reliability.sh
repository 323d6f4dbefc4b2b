#!/usr/bin/env bash
# batchlatch's reliability suite (internal/reliability): the real binary as two
# replicas with leader election, on a real kube-apiserver + etcd and a Cloud
# Logging fake, all on 127.0.0.1, under sustained load, faults (kube-apiserver
# killed, Cloud Logging Unavailable, the leader SIGKILLed, etcd killed) and bad
# input (fuzzing, hostile requests). It prints its figures as a Markdown table
# and writes them to $TMPDIR/reliability.md (-out FILE to change).
#
#   hack/reliability.sh                  the full run: 5 min of load, a 2 min Cloud Logging outage (~20 min)
#   hack/reliability.sh -short           a smoke run (a few minutes)
#   hack/reliability.sh -load 1m -faults leader,etcd   any setting (-help lists them)
#
# Every setting is also an environment variable: RELIABILITY_LOAD=30s, ...
# Not part of CI (hack/test.sh): it runs for minutes and needs the machine to itself.
set -euo pipefail
cd "$(dirname "$0")/.."

# openssl and curl: the test cluster's certificates and readiness checks.
missing=()
for tool in openssl curl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
	echo "reliability.sh: installing ${missing[*]}" >&2
	if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
	else sudo apt-get update -qq && sudo apt-get install -y -qq "${missing[@]}" >/dev/null; fi
fi

# Build or reuse the cached etcd and kube-apiserver (minutes cold, seconds warm).
hack/kube-env.sh build

# Nothing may reach Google: a client that ever probes the metadata server
# hits a closed loopback port. The suite starts a cluster of its own.
export GCE_METADATA_HOST=127.0.0.1:1
unset BATCHLATCH_TEST_KUBECONFIG

short=() args=()
for arg in "$@"; do
	case "$arg" in
	-short | --short) short=(-short) ;;
	-help | --help | -h)
		sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
		echo
		go test -tags reliability,nomsgpack -count=1 -run '^$' ./internal/reliability -args -help 2>&1 |
			awk '/^  -/ { show = ($1 !~ /^-test\./) } show && /^ /' || true
		exit 0
		;;
	*) args+=("$arg") ;;
	esac
done
export RELIABILITY_COMMAND="hack/reliability.sh${*:+ $*}"

exec go test -tags reliability,nomsgpack -count=1 -timeout 120m -v "${short[@]}" -run '^TestReliability$' ./internal/reliability ${args[@]+-args "${args[@]}"}
