# shellcheck shell=bash
# What hack/kube-env.sh and hack/controllers.sh share to build a tool from the
# Go module proxy into the cache: sourced, never run. The caller defines
# log() and die() first.

# The Kubernetes release of kube-apiserver and kube-controller-manager: one
# version for both, or the controllers would run against another API server.
KUBE_VERSION=v1.36.3

TOOLS_DIR="${BATCHLATCH_TOOLS_DIR:-$HOME/.cache/batchlatch-tools}"

# build_go: the go command for building a tool outside this module.
# GOWORK=off so that a go.work in a parent directory cannot leak in; GOFLAGS
# is replaced because a developer's -mod=vendor would break 'go get'. The
# default build cache (GOCACHE) is kept: it makes rebuilds fast.
build_go() {
	GOWORK=off GOFLAGS=-buildvcs=false CGO_ENABLED=0 go "$@"
}

# quietly LOG CMD...: run CMD with its output in LOG, shown only if it fails.
quietly() {
	local log="$1"
	shift
	if ! "$@" >>"$log" 2>&1; then
		tail -n 40 "$log" >&2
		die "failed: $*"
	fi
}

# install_bin TMP DEST: move a freshly built binary into the cache. Building
# into a temp file and renaming means an interrupted build never leaves a
# broken binary that a later run would mistake for a cached one.
install_bin() {
	chmod 0755 "$1"
	mkdir -p "$(dirname "$2")"
	mv -f "$1" "$2.tmp.$$"
	mv -f "$2.tmp.$$" "$2"
}

# lock_builds: hold the cache's build lock until the script exits or closes
# fd 9. Test packages run in parallel and may all ask for a build: one builds
# while the others wait and then find the binaries cached, and no two builds
# share the cores (each 'go build' already uses all of them).
lock_builds() {
	mkdir -p "$TOOLS_DIR"
	exec 9>"$TOOLS_DIR/.build.lock"
	flock 9
}

# build_kube_command NAME DEST: k8s.io/kubernetes/cmd/NAME at KUBE_VERSION,
# built into DEST.
build_kube_command() {
	local name="$1" dest="$2" work gomod mod staging_version minor v=k8s.io/component-base/version replaces=()
	work="$(mktemp -d)"
	quietly "$work/go.log" build_go -C "$work" mod init scratch
	# k8s.io/kubernetes replaces its staging modules (k8s.io/api, ...) with
	# ./staging/src/...; those replaces are ignored when it is a dependency,
	# leaving requirements on v0.0.0. Point each one at its published
	# release instead (kubernetes v1.X.Y publishes them as v0.X.Y).
	gomod="$(build_go -C "$work" mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
	[[ -f "$gomod" ]] || die "could not download the go.mod of k8s.io/kubernetes@$KUBE_VERSION"
	staging_version="v0.${KUBE_VERSION#v1.}"
	while read -r mod; do
		replaces+=("-replace=$mod=$mod@$staging_version")
	done < <(sed 's/^replace[[:space:]]*//' "$gomod" |
		awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }')
	((${#replaces[@]} > 0)) || die "found no staging replaces in $gomod"
	quietly "$work/go.log" build_go -C "$work" mod edit "-require=k8s.io/kubernetes@$KUBE_VERSION" "${replaces[@]}"
	quietly "$work/go.log" build_go -C "$work" get "k8s.io/kubernetes/cmd/$name@$KUBE_VERSION"
	# The version normally comes from git (hack/lib/version.sh of
	# Kubernetes); set it so that /version reports the release (clients and
	# charts check it).
	minor="${KUBE_VERSION#v1.}"
	minor="${minor%%.*}"
	quietly "$work/go.log" build_go -C "$work" build -trimpath -o "$work/$name" \
		-ldflags="-s -w -X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
		"k8s.io/kubernetes/cmd/$name"
	install_bin "$work/$name" "$dest"
	rm -rf "$work"
}
