#!/usr/bin/env bash
# golangci-lint-bin.sh prints the path of a golangci-lint binary built from the version pinned in
# tools/golangci-lint/go.mod, building it first when the cache does not hold it yet.
#
# The binary lives in .cache/golangci-lint/<version>/golangci-lint (git-ignored; SDCTL_CACHE_DIR
# moves the .cache folder). Concurrent callers are safe: the build runs under an exclusive flock
# and lands with an atomic rename. Build progress goes to stderr; stdout carries the path only.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
go="${GO:-go}"
tools="$root/tools/golangci-lint"
module="github.com/golangci/golangci-lint/v2"

version="$(awk -v m="$module" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$tools/go.mod")"
if [[ -z "$version" ]]; then
	echo "golangci-lint-bin.sh: no $module requirement in $tools/go.mod" >&2
	exit 1
fi

dir="${SDCTL_CACHE_DIR:-$root/.cache}/golangci-lint/$version"
bin="$dir/golangci-lint"
if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$dir"
exec 9>"$dir/.lock"
if ! flock -n 9; then
	echo "golangci-lint-bin.sh: waiting for another build of golangci-lint $version" >&2
	flock 9
fi
if [[ ! -x "$bin" ]]; then
	tmp="$(mktemp "$dir/golangci-lint.tmp.XXXXXX")"
	trap 'rm -f "$tmp"' EXIT
	echo "golangci-lint-bin.sh: building golangci-lint $version into $bin (a few minutes on a cold Go build cache)" >&2
	start=$SECONDS
	CGO_ENABLED=0 GOFLAGS=-mod=readonly GOWORK=off "$go" -C "$tools" build -trimpath \
		-ldflags "-s -w -X main.version=${version#v}" -o "$tmp" "$module/cmd/golangci-lint" >&2
	chmod 0755 "$tmp"
	mv -f "$tmp" "$bin"
	trap - EXIT
	echo "golangci-lint-bin.sh: built golangci-lint $version in $((SECONDS - start))s" >&2
fi
echo "$bin"
