#!/usr/bin/env bash
# A real etcd + kube-apiserver on 127.0.0.1 for the project's tests.
#
#   hack/kube-env.sh build                 build etcd and kube-apiserver (cached)
#   hack/kube-env.sh start DIR             start both, write DIR/kubeconfig and DIR/env
#   hack/kube-env.sh stop DIR              stop the processes recorded in DIR/env
#   hack/kube-env.sh stop-apiserver DIR    stop only kube-apiserver (outage tests)
#   hack/kube-env.sh start-apiserver DIR   restart it on the same port with the same certs
#   hack/kube-env.sh kill-apiserver DIR    SIGKILL kube-apiserver (a crash; start-apiserver brings it back)
#   hack/kube-env.sh stop-etcd DIR [--kill]  stop only etcd, keeping its data (--kill: SIGKILL)
#   hack/kube-env.sh start-etcd DIR        restart etcd on the same ports with its data
#
# The binaries are built from the Go module proxy (release download sites are
# not reachable from CI) and cached outside the repo, keyed by version, in
# ${BATCHLATCH_TOOLS_DIR:-$HOME/.cache/batchlatch-tools}.
#
# DIR/env holds KUBECONFIG, APISERVER_URL, ADMIN_TOKEN, CA_FILE, the PIDs...
# as KEY=VALUE lines: 'set -a; . DIR/env; set +a' exports them.
#
# Everything listens on 127.0.0.1 only. There are no controllers: deleted
# namespaces stay Terminating and pods never run.
#
# If KUBE_ENV_OWNER_PID is set when starting, a watchdog stops the servers
# once that process is gone (so a crashed test binary leaves nothing behind);
# with KUBE_ENV_REMOVE_DIR=1 it also removes DIR.
set -euo pipefail

ETCD_VERSION=v3.6.16

log() { printf 'kube-env: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# KUBE_VERSION, TOOLS_DIR, build_go, quietly, install_bin, lock_builds,
# build_kube_command.
# shellcheck source=hack/lib/build.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/build.sh"

ETCD_BIN="$TOOLS_DIR/etcd-$ETCD_VERSION/etcd"
APISERVER_BIN="$TOOLS_DIR/kube-apiserver-$KUBE_VERSION/kube-apiserver"
CURRENT_ETCD_BIN="$ETCD_BIN" CURRENT_APISERVER_BIN="$APISERVER_BIN"

READY_TIMEOUT=60 # seconds to wait for etcd / kube-apiserver to become ready
STOP_TIMEOUT=5   # seconds between TERM and KILL

# ---------------------------------------------------------------- build

need_go() {
	command -v go >/dev/null || die "go is not in PATH (needed to build etcd and kube-apiserver)"
}

build_etcd() {
	local work
	work="$(mktemp -d)"
	quietly "$work/go.log" build_go -C "$work" mod init scratch
	quietly "$work/go.log" build_go -C "$work" get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
	# The etcd binary's main package is the root of the server module
	# (server/main.go, a wrapper of etcdmain.Main).
	quietly "$work/go.log" build_go -C "$work" build -trimpath -ldflags='-s -w' \
		-o "$work/etcd" go.etcd.io/etcd/server/v3
	install_bin "$work/etcd" "$ETCD_BIN"
	rm -rf "$work"
}

cmd_build() {
	[[ -x "$ETCD_BIN" && -x "$APISERVER_BIN" ]] && return 0
	need_go
	lock_builds
	local start=$SECONDS
	# Sequential on purpose: each 'go build' already uses every core.
	if [[ ! -x "$ETCD_BIN" ]]; then
		log "building etcd $ETCD_VERSION (cached in $TOOLS_DIR)"
		build_etcd
	fi
	if [[ ! -x "$APISERVER_BIN" ]]; then
		log "building kube-apiserver $KUBE_VERSION (cached in $TOOLS_DIR; takes a few minutes the first time)"
		build_kube_command kube-apiserver "$APISERVER_BIN"
	fi
	log "built in $((SECONDS - start))s"
	exec 9>&-
}

# ---------------------------------------------------------------- helpers

need_tools() {
	local missing=() t
	for t in openssl curl; do
		command -v "$t" >/dev/null || missing+=("$t")
	done
	((${#missing[@]} == 0)) || die "missing ${missing[*]}: install with 'apt-get install -y ${missing[*]}'"
}

# random_port: a port below 32768 (the kernel hands out ephemeral ports from
# 32768 up, so these don't collide with outgoing connections) that nothing is
# listening on right now. Another process may still grab it before we bind:
# callers retry on bind failure.
random_port() {
	local port
	while :; do
		port=$((10000 + RANDOM % 22768))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
}

alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

# ours PID BIN: PID is still a process of BIN (not a recycled PID).
ours() {
	alive "$1" || return 1
	[[ -e "/proc/$1/exe" ]] || return 0 # no /proc: trust the PID
	local exe
	exe="$(readlink "/proc/$1/exe" 2>/dev/null)" || return 1
	# " (deleted)": the binary was rebuilt while it ran.
	[[ "${exe% (deleted)}" == "$(readlink -f "$2")" ]]
}

# stop_watchdog: the watchdog is a subshell of this script (check that the
# PID was not recycled).
stop_watchdog() {
	alive "$WATCHDOG_PID" || return 0
	if [[ -e "/proc/$WATCHDOG_PID/cmdline" ]]; then
		tr '\0' ' ' <"/proc/$WATCHDOG_PID/cmdline" | grep -qF "kube-env.sh" || return 0
	fi
	kill "$WATCHDOG_PID" 2>/dev/null || true
}

# stop_pid PID BIN: TERM PID if it is still ours, then KILL it if it has
# not exited after STOP_TIMEOUT.
stop_pid() {
	local pid="$1" i
	ours "$pid" "$2" && kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
		alive "$pid" || return 0
		sleep 0.1
	done
	log "pid $pid did not exit after TERM; sending KILL"
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		alive "$pid" || return 0
		sleep 0.1
	done
}

# stop_servers: kube-apiserver first: etcd waits for its clients to go.
stop_servers() {
	stop_pid "$APISERVER_PID" "$APISERVER_BIN"
	stop_pid "$ETCD_PID" "$ETCD_BIN"
}

curl_local() {
	# --noproxy: never send loopback traffic through a configured proxy.
	curl --silent --show-error --noproxy '*' --max-time 2 "$@"
}

show_logs() {
	local f
	for f in "$DIR"/*.log; do
		[[ -f "$f" ]] || continue
		log "---- tail of $f"
		tail -n 30 "$f" >&2
	done
}

# load_env: read DIR/env (written by write_env) if it exists. It records
# which binaries were started, which matters if the versions changed since.
load_env() {
	ETCD_PID='' APISERVER_PID='' WATCHDOG_PID='' APISERVER_PORT='' ETCD_URL='' ETCD_PEER_URL=''
	if [[ -f "$DIR/env" ]]; then
		# shellcheck disable=SC1091
		source "$DIR/env"
	fi
}

# write_env: DIR/env, shell-sourceable, replaced atomically.
write_env() {
	{
		printf 'KUBECONFIG=%q\n' "$DIR/kubeconfig"
		printf 'APISERVER_URL=%q\n' "https://127.0.0.1:$APISERVER_PORT"
		printf 'APISERVER_PORT=%q\n' "$APISERVER_PORT"
		printf 'APISERVER_PID=%q\n' "$APISERVER_PID"
		printf 'APISERVER_BIN=%q\n' "$APISERVER_BIN"
		printf 'ADMIN_TOKEN=%q\n' "$ADMIN_TOKEN"
		printf 'CA_FILE=%q\n' "$DIR/pki/ca.crt"
		printf 'ETCD_URL=%q\n' "$ETCD_URL"
		printf 'ETCD_PEER_URL=%q\n' "$ETCD_PEER_URL"
		printf 'ETCD_PID=%q\n' "$ETCD_PID"
		printf 'ETCD_BIN=%q\n' "$ETCD_BIN"
		printf 'WATCHDOG_PID=%q\n' "$WATCHDOG_PID"
	} >"$DIR/env.tmp"
	mv -f "$DIR/env.tmp" "$DIR/env"
}

# ---------------------------------------------------------------- pki

# make_pki: CA, serving cert for 127.0.0.1/localhost, service-account key
# pair and the admin token. Kept across restarts so clients stay valid.
make_pki() {
	local pki="$DIR/pki"
	mkdir -p "$pki"
	chmod 0700 "$pki"
	if [[ ! -f "$pki/ca.crt" ]]; then
		openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
			-subj "/CN=batchlatch-test-ca" \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign" \
			-keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
	fi
	if [[ ! -f "$pki/apiserver.crt" ]]; then
		openssl req -new -newkey rsa:2048 -nodes -sha256 \
			-subj "/CN=kube-apiserver" \
			-keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
		# Go clients verify the SAN, not the CN.
		openssl x509 -req -sha256 -days 3650 -in "$pki/apiserver.csr" \
			-CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
			-extfile <(printf '%s\n' \
				'subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc' \
				'basicConstraints=CA:FALSE' \
				'keyUsage=critical,digitalSignature,keyEncipherment' \
				'extendedKeyUsage=serverAuth') \
			-out "$pki/apiserver.crt" 2>/dev/null
		rm -f "$pki/apiserver.csr"
	fi
	if [[ ! -f "$pki/sa.key" ]]; then
		# Signs the tokens of the TokenRequest API.
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
		openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
	fi
	if [[ ! -f "$pki/tokens.csv" ]]; then
		# token,user,uid,"groups": system:masters bypasses RBAC.
		printf '%s,admin,admin,"system:masters"\n' "$(openssl rand -hex 32)" >"$pki/tokens.csv"
	fi
	ADMIN_TOKEN="$(cut -d, -f1 "$pki/tokens.csv")"
}

write_kubeconfig() {
	local ca
	ca="$(openssl base64 -A <"$DIR/pki/ca.crt")"
	cat >"$DIR/kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: batchlatch-test
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $ca
users:
- name: admin
  user:
    token: $ADMIN_TOKEN
contexts:
- name: batchlatch-test
  context:
    cluster: batchlatch-test
    user: admin
current-context: batchlatch-test
EOF
	chmod 0600 "$DIR/kubeconfig.tmp"
	mv -f "$DIR/kubeconfig.tmp" "$DIR/kubeconfig"
}

# ---------------------------------------------------------------- etcd

# launch_etcd CLIENT_PORT PEER_PORT [keep]: start etcd and wait for /health.
# Returns 2 if it could not bind its ports (caller retries with others).
# With keep, etcd restarts on the data it has (start-etcd).
launch_etcd() {
	local client="$1" peer="$2" keep="${3:-}" i from
	local url="http://127.0.0.1:$client" peer_url="http://127.0.0.1:$peer"
	from=$(($(wc -l <"$DIR/etcd.log") + 1))
	# Fresh data: a test cluster is not meant to outlive 'stop'.
	[[ "$keep" == keep ]] || rm -rf "$DIR/etcd"
	# env -i: etcd reads every ETCD_* variable as a flag.
	# Benchmarks rewrite a ConfigMap of up to 1 MiB thousands of times: compact
	# every minute and allow 8 GiB, or etcd stops at its default 2 GiB quota.
	env -i "$ETCD_BIN" \
		--name=batchlatch \
		--data-dir="$DIR/etcd" \
		--listen-client-urls="$url" --advertise-client-urls="$url" \
		--listen-peer-urls="$peer_url" --initial-advertise-peer-urls="$peer_url" \
		--initial-cluster="batchlatch=$peer_url" \
		--unsafe-no-fsync \
		--quota-backend-bytes=8589934592 \
		--auto-compaction-mode=periodic --auto-compaction-retention=1m \
		--log-level=warn \
		</dev/null >>"$DIR/etcd.log" 2>&1 &
	ETCD_PID=$!
	for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
		if ! alive "$ETCD_PID"; then
			wait "$ETCD_PID" 2>/dev/null || true
			ETCD_PID=''
			tail -n "+$from" "$DIR/etcd.log" | grep -q 'address already in use' && return 2
			return 1
		fi
		if curl_local "$url/health" 2>/dev/null | grep -q '"health":"true"'; then
			ETCD_URL="$url" ETCD_PEER_URL="$peer_url"
			return 0
		fi
		sleep 0.1
	done
	stop_pid "$ETCD_PID" "$ETCD_BIN"
	ETCD_PID=''
	return 1
}

start_etcd() {
	local attempt rc
	for attempt in 1 2 3 4 5; do
		rc=0
		launch_etcd "$(random_port)" "$(random_port)" || rc=$?
		((rc == 0)) && return 0
		((rc == 2)) || break
		log "etcd: port taken, retrying ($attempt)"
	done
	return 1
}

# ---------------------------------------------------------------- kube-apiserver

# launch_apiserver PORT: start kube-apiserver and wait for /readyz.
# Returns 2 if it could not bind the port.
launch_apiserver() {
	local port="$1" pki="$DIR/pki" i from
	from=$(($(wc -l <"$DIR/apiserver.log") + 1))
	echo "==== kube-env.sh: starting kube-apiserver on port $port" >>"$DIR/apiserver.log"
	"$APISERVER_BIN" \
		--bind-address=127.0.0.1 \
		--advertise-address=127.0.0.1 \
		--secure-port="$port" \
		--cert-dir="$pki" \
		--tls-cert-file="$pki/apiserver.crt" \
		--tls-private-key-file="$pki/apiserver.key" \
		--etcd-servers="$ETCD_URL" \
		--etcd-compaction-interval=1m \
		--token-auth-file="$pki/tokens.csv" \
		--service-account-key-file="$pki/sa.pub" \
		--service-account-signing-key-file="$pki/sa.key" \
		--service-account-issuer=https://kubernetes.default.svc \
		--authorization-mode=RBAC \
		--service-cluster-ip-range=10.0.0.0/24 \
		--disable-admission-plugins=ServiceAccount \
		--profiling=false \
		</dev/null >>"$DIR/apiserver.log" 2>&1 &
	APISERVER_PID=$!
	for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
		if ! alive "$APISERVER_PID"; then
			wait "$APISERVER_PID" 2>/dev/null || true
			APISERVER_PID=''
			tail -n "+$from" "$DIR/apiserver.log" | grep -q 'address already in use' && return 2
			return 1
		fi
		if [[ "$(curl_local --cacert "$pki/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN" \
			"https://127.0.0.1:$port/readyz" 2>/dev/null)" == ok ]]; then
			APISERVER_PORT="$port"
			return 0
		fi
		sleep 0.1
	done
	stop_pid "$APISERVER_PID" "$APISERVER_BIN"
	APISERVER_PID=''
	return 1
}

# start_apiserver [PORT]: on PORT (a restart must keep its address), or on a
# random port, retried if it turns out to be taken.
start_apiserver() {
	local fixed="${1:-}" attempt rc
	for attempt in 1 2 3 4 5; do
		rc=0
		launch_apiserver "${fixed:-$(random_port)}" || rc=$?
		((rc == 0)) && return 0
		[[ -z "$fixed" && $rc == 2 ]] || break
		log "kube-apiserver: port taken, retrying ($attempt)"
	done
	return 1
}

# ---------------------------------------------------------------- watchdog

# start_watchdog: stop the servers once KUBE_ENV_OWNER_PID has exited, so a
# test binary that crashes or times out does not leak them (and remove DIR
# too if KUBE_ENV_REMOVE_DIR=1: the owner's temp dir). It exits when DIR/env
# is gone (a normal stop), and runs 'stop' so that it reads the current PIDs
# (start-apiserver changes them).
start_watchdog() {
	WATCHDOG_PID=''
	[[ -n "${KUBE_ENV_OWNER_PID:-}" ]] || return 0
	local owner="$KUBE_ENV_OWNER_PID" self="$0" remove="${KUBE_ENV_REMOVE_DIR:-}"
	(
		trap '' HUP INT
		while [[ -f "$DIR/env" ]]; do
			if ! alive "$owner"; then
				"$BASH" "$self" stop "$DIR" --from-watchdog
				[[ "$remove" == 1 ]] && rm -rf "$DIR"
				break
			fi
			sleep 1
		done
	) </dev/null >>"$DIR/watchdog.log" 2>&1 &
	WATCHDOG_PID=$!
}

# ---------------------------------------------------------------- commands

cmd_start() {
	need_tools
	load_env
	if ours "$ETCD_PID" "$ETCD_BIN" && ours "$APISERVER_PID" "$APISERVER_BIN"; then
		log "already running ($DIR/env)"
		return 0
	fi
	# Leftovers of a half-started or half-stopped environment.
	stop_watchdog
	stop_servers
	ETCD_BIN="$CURRENT_ETCD_BIN" APISERVER_BIN="$CURRENT_APISERVER_BIN"
	cmd_build
	: >"$DIR/etcd.log"
	: >"$DIR/apiserver.log"
	make_pki
	APISERVER_PID='' ETCD_PID='' APISERVER_PORT=''
	if ! start_etcd; then
		show_logs
		die "etcd did not start"
	fi
	if ! start_apiserver; then
		stop_pid "$ETCD_PID" "$ETCD_BIN"
		show_logs
		die "kube-apiserver did not become ready within ${READY_TIMEOUT}s"
	fi
	write_kubeconfig
	write_env
	start_watchdog # it exits when DIR/env is gone: start it once that exists
	write_env
	log "ready: https://127.0.0.1:$APISERVER_PORT (KUBECONFIG=$DIR/kubeconfig)"
}

cmd_stop() {
	load_env
	[[ -f "$DIR/env" ]] || return 0
	# The watchdog runs 'stop' itself when its owner is gone.
	[[ "${1:-}" == --from-watchdog ]] || stop_watchdog
	stop_servers
	rm -f "$DIR/env"
}

cmd_stop_apiserver() {
	load_env
	[[ -f "$DIR/env" ]] || die "$DIR/env not found: nothing started there"
	stop_pid "$APISERVER_PID" "$APISERVER_BIN"
	APISERVER_PID=''
	write_env
}

cmd_start_apiserver() {
	need_tools
	load_env
	[[ -f "$DIR/env" && -n "$APISERVER_PORT" ]] || die "$DIR/env not found: run 'start' first"
	if ours "$APISERVER_PID" "$APISERVER_BIN"; then
		log "kube-apiserver already running"
		return 0
	fi
	ours "$ETCD_PID" "$ETCD_BIN" || die "etcd (pid ${ETCD_PID:-none}) is not running"
	make_pki # reads ADMIN_TOKEN; the files exist already
	if ! start_apiserver "$APISERVER_PORT"; then
		write_env
		show_logs
		die "kube-apiserver did not become ready on port $APISERVER_PORT"
	fi
	write_env
}

cmd_kill_apiserver() {
	load_env
	[[ -f "$DIR/env" ]] || die "$DIR/env not found: nothing started there"
	if ours "$APISERVER_PID" "$APISERVER_BIN"; then
		kill -KILL "$APISERVER_PID" 2>/dev/null || true
		local i
		for ((i = 0; i < 50; i++)); do
			alive "$APISERVER_PID" || break
			sleep 0.1
		done
	fi
	APISERVER_PID=''
	write_env
}

# stop-etcd DIR [--kill]: kube-apiserver keeps running (its requests fail
# until etcd is back); the data stays for start-etcd.
cmd_stop_etcd() {
	load_env
	[[ -f "$DIR/env" ]] || die "$DIR/env not found: nothing started there"
	if [[ "${1:-}" == --kill ]] && ours "$ETCD_PID" "$ETCD_BIN"; then
		kill -KILL "$ETCD_PID" 2>/dev/null || true
		local i
		for ((i = 0; i < 50; i++)); do
			alive "$ETCD_PID" || break
			sleep 0.1
		done
	else
		stop_pid "$ETCD_PID" "$ETCD_BIN"
	fi
	ETCD_PID=''
	write_env
}

cmd_start_etcd() {
	load_env
	[[ -f "$DIR/env" && -n "$ETCD_URL" ]] || die "$DIR/env not found: run 'start' first"
	[[ -n "$ETCD_PEER_URL" ]] || die "$DIR/env has no ETCD_PEER_URL: the cluster was started by an older kube-env.sh"
	if ours "$ETCD_PID" "$ETCD_BIN"; then
		log "etcd already running"
		return 0
	fi
	if ! launch_etcd "${ETCD_URL##*:}" "${ETCD_PEER_URL##*:}" keep; then
		write_env
		show_logs
		die "etcd did not become healthy on $ETCD_URL"
	fi
	write_env
}

usage() {
	sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

main() {
	local cmd="${1:-}"
	case "$cmd" in
	build)
		cmd_build
		return
		;;
	start | stop | stop-apiserver | start-apiserver | kill-apiserver | stop-etcd | start-etcd) ;;
	*) usage ;;
	esac
	[[ -n "${2:-}" ]] || usage
	mkdir -p "$2"
	DIR="$(cd "$2" && pwd)"
	case "$cmd" in
	start) cmd_start ;;
	stop) cmd_stop "${3:-}" ;;
	stop-apiserver) cmd_stop_apiserver ;;
	start-apiserver) cmd_start_apiserver ;;
	kill-apiserver) cmd_kill_apiserver ;;
	stop-etcd) cmd_stop_etcd "${3:-}" ;;
	start-etcd) cmd_start_etcd ;;
	esac
}

# On one line: bash reads a script as it runs it, so a build that takes
# minutes must not read on into a file edited meanwhile.
main "$@"; exit
