#!/usr/bin/env bash
# consul-bin.sh prints the path of a Consul server binary built from the version pinned in
# tools/consul/go.mod, building it first when the cache does not hold it yet.
#
# The binary lives in .cache/consul/<version>/consul (git-ignored; set SDCTL_CACHE_DIR to move
# the .cache folder). Several callers at once (parallel test packages) are safe: the build runs
# under an exclusive flock and lands with an atomic rename, so nobody sees a half-written file.
# Build progress goes to stderr; stdout carries the path only.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
go="${GO:-go}"
tools="$root/tools/consul"

version="$(awk '$1 == "github.com/hashicorp/consul" && $2 ~ /^v/ { print $2; exit }' "$tools/go.mod")"
if [[ -z "$version" ]]; then
	echo "consul-bin.sh: no github.com/hashicorp/consul requirement in $tools/go.mod" >&2
	exit 1
fi

dir="${SDCTL_CACHE_DIR:-$root/.cache}/consul/$version"
bin="$dir/consul"

if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi

if ! command -v flock >/dev/null; then
	echo "consul-bin.sh: building consul needs flock (util-linux; on macOS: brew install flock)" >&2
	exit 1
fi
mkdir -p "$dir"
exec 9>"$dir/.lock"
if ! flock -n 9; then
	echo "consul-bin.sh: waiting for another build of consul $version" >&2
	flock 9
fi

# Someone else may have finished the build while we waited for the lock.
if [[ ! -x "$bin" ]]; then
	tmp="$(mktemp "$dir/consul.tmp.XXXXXX")"
	trap 'rm -f "$tmp"' EXIT
	echo "consul-bin.sh: building consul $version into $bin (a few minutes on a cold Go build cache)" >&2
	start=$SECONDS
	# Static, like Consul's release binaries. The caller's GOFLAGS (say -race) and go.work do
	# not apply: the build is exactly what tools/consul/go.mod and go.sum pin.
	CGO_ENABLED=0 GOFLAGS=-mod=readonly GOWORK=off "$go" -C "$tools" build -trimpath -ldflags "-s -w" \
		-o "$tmp" github.com/hashicorp/consul >&2
	# Not `| grep -q`: grep exits at the first match and, under pipefail, consul's SIGPIPE on its
	# next line would fail the check now and then.
	reported="$("$tmp" version 2>&1)" || true
	if [[ "$reported" != *"Consul $version"* ]]; then
		echo "consul-bin.sh: the built binary does not report Consul $version:" >&2
		echo "$reported" >&2
		exit 1
	fi
	chmod 0755 "$tmp"
	mv -f "$tmp" "$bin"
	trap - EXIT
	echo "consul-bin.sh: built consul $version in $((SECONDS - start))s" >&2
fi

echo "$bin"
