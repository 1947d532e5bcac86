#!/usr/bin/env bash
# etcd-bin.sh prints the path of an etcd server binary built from the version pinned in
# tools/etcd/go.mod, building it first when the cache does not hold it yet.
#
# The binary lives in .cache/etcd/<version>/etcd (git-ignored; set SDCTL_CACHE_DIR to move the
# .cache folder). Several callers at once (parallel test packages) are safe: the build runs under
# an exclusive flock and lands with an atomic rename, so nobody sees a half-written file.
# Build progress goes to stderr; stdout carries the path only.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
go="${GO:-go}"
tools="$root/tools/etcd"
module="go.etcd.io/etcd/server/v3"

version="$(awk -v m="$module" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$tools/go.mod")"
if [[ -z "$version" ]]; then
	echo "etcd-bin.sh: no $module requirement in $tools/go.mod" >&2
	exit 1
fi

dir="${SDCTL_CACHE_DIR:-$root/.cache}/etcd/$version"
bin="$dir/etcd"

if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$dir"
exec 9>"$dir/.lock"
if ! flock -n 9; then
	echo "etcd-bin.sh: waiting for another build of etcd $version" >&2
	flock 9
fi

# Someone else may have finished the build while we waited for the lock.
if [[ ! -x "$bin" ]]; then
	tmp="$(mktemp "$dir/etcd.tmp.XXXXXX")"
	trap 'rm -f "$tmp"' EXIT
	echo "etcd-bin.sh: building etcd $version into $bin (a few minutes on a cold Go build cache)" >&2
	start=$SECONDS
	# CGO off and these link flags match how etcd builds its release binaries (scripts/build.sh).
	CGO_ENABLED=0 "$go" -C "$tools" build -trimpath \
		-ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$version" \
		-o "$tmp" "$module" >&2
	# Capture first: grep -q quitting early would kill the binary with SIGPIPE under pipefail.
	reported="$("$tmp" --version 2>&1)" || true
	if [[ "$reported" != *"etcd Version: ${version#v}"* ]]; then
		echo "etcd-bin.sh: the built binary does not report etcd $version:" >&2
		echo "$reported" >&2
		exit 1
	fi
	chmod 0755 "$tmp"
	mv -f "$tmp" "$bin"
	trap - EXIT
	echo "etcd-bin.sh: built etcd $version in $((SECONDS - start))s" >&2
fi

echo "$bin"
