#!/usr/bin/env bash
# The real controllers for the watcher tests, built from the Go module proxy
# and cached next to the cluster binaries of hack/kube-env.sh.
#
#   hack/controllers.sh build   build kube-controller-manager, Argo's
#                               workflow-controller and argoexec (cached)
#   hack/controllers.sh paths   build if needed, then print KEY=VALUE lines:
#                               KUBE_CONTROLLER_MANAGER, WORKFLOW_CONTROLLER,
#                               ARGOEXEC (paths), ARGO_VERSION
#
# kube-controller-manager is built like kube-apiserver (k8s.io/kubernetes at
# the same version, its staging modules pointed at their published releases).
# Argo pins its own k8s.io versions, so its binaries are built in a module of
# their own, hack/argo, whose go.mod/go.sum fix every version; the cache key
# is the Argo version read from there.
#
# The tests start these binaries themselves (internal/kubetest/controllers.go).
set -euo pipefail

ARGO_MODULE=github.com/argoproj/argo-workflows/v3

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf 'controllers: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# KUBE_VERSION (kube-apiserver's), TOOLS_DIR, build_go, quietly,
# install_bin, lock_builds, build_kube_command.
# shellcheck source=hack/lib/build.sh
. "$HACK_DIR/lib/build.sh"
ARGO_MOD_DIR="$HACK_DIR/argo"
ARGO_VERSION="$(awk -v m="$ARGO_MODULE" '$1 == m { print $2; exit }' "$ARGO_MOD_DIR/go.mod")"

KCM_BIN="$TOOLS_DIR/kube-controller-manager-$KUBE_VERSION/kube-controller-manager"
WORKFLOW_CONTROLLER_BIN="$TOOLS_DIR/workflow-controller-$ARGO_VERSION/workflow-controller"
ARGOEXEC_BIN="$TOOLS_DIR/argoexec-$ARGO_VERSION/argoexec"


[[ -n "$ARGO_VERSION" ]] || die "no $ARGO_MODULE requirement in $ARGO_MOD_DIR/go.mod"

# build_argo NAME...: Argo's commands (cmd/NAME) from hack/argo's module,
# with the version stamped as Argo's Makefile does (the controller names its
# default executor image after it).
#
# Not from the module cache as it is: Argo's source has a symlink,
# workflow/executor/osspecific/signal_linux.go -> signal_darwin.go, and
# module zips leave symlinks out, so argoexec does not compile for Linux
# from the module. The build uses a copy of the module (verified against
# hack/argo/go.sum when downloaded) with that file restored.
build_argo() {
	local work dir commit name pkgs=() v="$ARGO_MODULE" osspecific=workflow/executor/osspecific
	work="$(mktemp -d)"
	dir="$(build_go -C "$ARGO_MOD_DIR" mod download -json "$ARGO_MODULE@$ARGO_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
	commit="$(build_go -C "$ARGO_MOD_DIR" mod download -json "$ARGO_MODULE@$ARGO_VERSION" |
		sed -n 's/^[[:space:]]*"Hash": "\([0-9a-f]*\)",\{0,1\}$/\1/p')"
	[[ -f "$dir/$osspecific/signal_darwin.go" ]] || die "no $osspecific/signal_darwin.go in $ARGO_MODULE@$ARGO_VERSION ($dir)"
	cp -R "$dir" "$work/src"
	chmod -R u+w "$work/src"
	[[ -e "$work/src/$osspecific/signal_linux.go" ]] ||
		cp "$work/src/$osspecific/signal_darwin.go" "$work/src/$osspecific/signal_linux.go"
	mkdir "$work/mod"
	cp "$ARGO_MOD_DIR/go.mod" "$ARGO_MOD_DIR/go.sum" "$work/mod/"
	quietly "$work/go.log" build_go -C "$ARGO_MOD_DIR" mod edit -modfile="$work/mod/go.mod" "-replace=$ARGO_MODULE=$work/src"
	for name in "$@"; do pkgs+=("$ARGO_MODULE/cmd/$name"); done
	quietly "$work/go.log" build_go -C "$ARGO_MOD_DIR" build -modfile="$work/mod/go.mod" -mod=readonly -trimpath -o "$work/" \
		-ldflags="-s -w -X $v.version=$ARGO_VERSION -X $v.gitTag=$ARGO_VERSION -X $v.gitCommit=$commit -X $v.gitTreeState=clean" \
		"${pkgs[@]}"
	for name in "$@"; do
		install_bin "$work/$name" "$TOOLS_DIR/$name-$ARGO_VERSION/$name"
	done
	rm -rf "$work"
}

built() { [[ -x "$KCM_BIN" && -x "$WORKFLOW_CONTROLLER_BIN" && -x "$ARGOEXEC_BIN" ]]; }

cmd_build() {
	built && return 0
	command -v go >/dev/null || die "go is not in PATH (needed to build the controllers)"
	lock_builds
	local start=$SECONDS step
	if [[ ! -x "$KCM_BIN" ]]; then
		step=$SECONDS
		log "building kube-controller-manager $KUBE_VERSION (cached in $TOOLS_DIR; takes minutes the first time)"
		build_kube_command kube-controller-manager "$KCM_BIN"
		log "kube-controller-manager built in $((SECONDS - step))s"
	fi
	if [[ ! -x "$WORKFLOW_CONTROLLER_BIN" || ! -x "$ARGOEXEC_BIN" ]]; then
		step=$SECONDS
		log "building Argo's workflow-controller and argoexec $ARGO_VERSION (cached in $TOOLS_DIR; takes minutes the first time)"
		build_argo workflow-controller argoexec
		log "workflow-controller and argoexec built in $((SECONDS - step))s"
	fi
	log "built in $((SECONDS - start))s"
	exec 9>&-
}

cmd_paths() {
	cmd_build
	printf 'KUBE_CONTROLLER_MANAGER=%s\n' "$KCM_BIN"
	printf 'WORKFLOW_CONTROLLER=%s\n' "$WORKFLOW_CONTROLLER_BIN"
	printf 'ARGOEXEC=%s\n' "$ARGOEXEC_BIN"
	printf 'ARGO_VERSION=%s\n' "$ARGO_VERSION"
}

main() {
	case "${1:-}" in
	build) cmd_build ;;
	paths) cmd_paths ;;
	*)
		sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
		exit 2
		;;
	esac
}

# On one line: bash reads a script as it runs it, so a build that takes
# minutes must not read on into a file edited meanwhile.
main "$@"; exit
