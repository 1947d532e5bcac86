#!/usr/bin/env bash
# goreleaser-bin.sh prints the path of a goreleaser binary built from the version pinned in
# tools/goreleaser/go.mod, building it first when the cache does not hold it yet.
#
# The binary lives in .cache/goreleaser/<version>/goreleaser (git-ignored; set SDCTL_CACHE_DIR to
# move the .cache folder). Several callers at once are safe: the build runs under an exclusive
# flock and lands with an atomic rename, so nobody sees a half-written file.
# Build progress goes to stderr; stdout carries the path only.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
go="${GO:-go}"
tools="$root/tools/goreleaser"
module="github.com/goreleaser/goreleaser/v2"

version="$(awk -v m="$module" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$tools/go.mod")"
if [[ -z "$version" ]]; then
	echo "goreleaser-bin.sh: no $module requirement in $tools/go.mod" >&2
	exit 1
fi

dir="${SDCTL_CACHE_DIR:-$root/.cache}/goreleaser/$version"
bin="$dir/goreleaser"

if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

if ! command -v flock >/dev/null; then
	echo "goreleaser-bin.sh: building goreleaser needs flock (util-linux; on macOS: brew install flock)" >&2
	exit 1
fi
mkdir -p "$dir"
exec 9>"$dir/.lock"
if ! flock -n 9; then
	echo "goreleaser-bin.sh: waiting for another build of goreleaser $version" >&2
	flock 9
fi

# Someone else may have finished the build while we waited for the lock.
if [[ ! -x "$bin" ]]; then
	tmp="$(mktemp "$dir/goreleaser.tmp.XXXXXX")"
	trap 'rm -f "$tmp"' EXIT
	echo "goreleaser-bin.sh: building goreleaser $version into $bin (a few minutes on a cold Go build cache)" >&2
	start=$SECONDS
	# Static, stamped with its version like goreleaser's own release binaries. The caller's
	# GOFLAGS and go.work do not apply: the build is exactly what tools/goreleaser/go.mod and
	# go.sum pin.
	CGO_ENABLED=0 GOFLAGS=-mod=readonly GOWORK=off "$go" -C "$tools" build -trimpath \
		-ldflags "-s -w -X main.version=${version#v} -X main.builtBy=sdctl-tools" \
		-o "$tmp" "$module" >&2
	reported="$("$tmp" --version 2>&1)" || true
	if [[ "$reported" != *"${version#v}"* ]]; then
		echo "goreleaser-bin.sh: the built binary does not report goreleaser $version:" >&2
		echo "$reported" >&2
		exit 1
	fi
	chmod 0755 "$tmp"
	mv -f "$tmp" "$bin"
	trap - EXIT
	echo "goreleaser-bin.sh: built goreleaser $version in $((SECONDS - start))s" >&2
fi

echo "$bin"
