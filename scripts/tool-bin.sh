#!/usr/bin/env bash
# tool-bin.sh TOOL prints the path of a TOOL binary (consul, etcd, golangci-lint, goreleaser)
# built from the version pinned in tools/TOOL/go.mod, building it first when the cache does not
# hold it yet.
#
# The binary lives in .cache/TOOL/<version>/TOOL (git-ignored; set SDCTL_CACHE_DIR to move the
# .cache folder). Several callers at once (parallel test packages) are safe: the build runs under
# an exclusive flock and lands with an atomic rename, so nobody sees a half-written file. Build
# progress goes to stderr; stdout carries the path only.
set -euo pipefail

tool="${1:-}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
go="${GO:-go}"
tools="$root/tools/$tool"

# Per tool: the module pinned in tools/TOOL/go.mod, the package to build, extra link flags, and
# how the built binary reports its version (argument, and text the answer must contain; "" for
# no check). {v} stands for the version without its leading "v".
case "$tool" in
consul)
	module=github.com/hashicorp/consul pkg=$module ldflags="" # static, like Consul's release binaries
	version_arg=version expect='Consul v{v}' ;;
etcd)
	# These link flags match how etcd builds its release binaries (scripts/build.sh).
	module=go.etcd.io/etcd/server/v3 pkg=$module ldflags='-X go.etcd.io/etcd/api/v3/version.GitSHA=v{v}'
	version_arg=--version expect='etcd Version: {v}' ;;
golangci-lint)
	module=github.com/golangci/golangci-lint/v2 pkg=$module/cmd/golangci-lint ldflags='-X main.version={v}'
	version_arg="" expect="" ;;
goreleaser)
	# Stamped with its version like goreleaser's own release binaries.
	module=github.com/goreleaser/goreleaser/v2 pkg=$module ldflags='-X main.version={v} -X main.builtBy=sdctl-tools'
	version_arg=--version expect='{v}' ;;
*)
	echo "usage: tool-bin.sh consul|etcd|golangci-lint|goreleaser" >&2
	exit 2 ;;
esac

version="$(awk -v m="$module" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$tools/go.mod")"
if [[ -z "$version" ]]; then
	echo "tool-bin.sh: no $module requirement in $tools/go.mod" >&2
	exit 1
fi
ldflags="${ldflags//\{v\}/${version#v}}"
expect="${expect//\{v\}/${version#v}}"

dir="${SDCTL_CACHE_DIR:-$root/.cache}/$tool/$version"
bin="$dir/$tool"

if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

if ! command -v flock >/dev/null; then
	echo "tool-bin.sh: building $tool needs flock (util-linux; on macOS: brew install flock)" >&2
	exit 1
fi
mkdir -p "$dir"
exec 9>"$dir/.lock"
if ! flock -n 9; then
	echo "tool-bin.sh: waiting for another build of $tool $version" >&2
	flock 9
fi

# Someone else may have finished the build while we waited for the lock.
if [[ ! -x "$bin" ]]; then
	tmp="$(mktemp "$dir/$tool.tmp.XXXXXX")"
	trap 'rm -f "$tmp"' EXIT
	echo "tool-bin.sh: building $tool $version into $bin (a few minutes on a cold Go build cache)" >&2
	start=$SECONDS
	# Static and stripped. The caller's GOFLAGS (say -race) and go.work do not apply: the build is
	# exactly what tools/TOOL/go.mod and go.sum pin.
	CGO_ENABLED=0 GOFLAGS=-mod=readonly GOWORK=off "$go" -C "$tools" build -trimpath \
		-ldflags "-s -w $ldflags" -o "$tmp" "$pkg" >&2
	if [[ -n "$version_arg" ]]; then
		# Capture first: grep -q quitting early would kill the binary with SIGPIPE under pipefail.
		reported="$("$tmp" "$version_arg" 2>&1)" || true
		if [[ "$reported" != *"$expect"* ]]; then
			echo "tool-bin.sh: the built binary does not report $tool $version:" >&2
			echo "$reported" >&2
			exit 1
		fi
	fi
	chmod 0755 "$tmp"
	mv -f "$tmp" "$bin"
	trap - EXIT
	echo "tool-bin.sh: built $tool $version in $((SECONDS - start))s" >&2
fi

echo "$bin"
