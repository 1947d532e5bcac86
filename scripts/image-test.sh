#!/usr/bin/env bash
# image-test.sh builds sdctl's container image (make image) and checks it as a user would run it:
# `version` and the default --help work, the bundled backends start, the image runs as the
# non-root user 65532, and a service registered by one container resolves from another through
# a named volume holding the file backend's registry. The containers run without a network; nothing is pulled. The volume
# and the containers are removed at the end, whatever happened.
#
# Usage: scripts/image-test.sh (make image-test). SDCTL_IMAGE_TEST_NO_BUILD=1 tests the existing
# sdctl:latest without building it first. IMAGE=NAME builds and tests NAME:latest instead (as
# `make image IMAGE=NAME` names it).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [[ -z "${SDCTL_IMAGE_TEST_NO_BUILD:-}" ]]; then
	make --no-print-directory image IMAGE="${IMAGE:-sdctl}"
fi
image="$(docker image inspect --format '{{.Id}}' "${IMAGE:-sdctl}:latest")"

suffix="$$-$RANDOM"
volume="sdctl-image-test-$suffix"
container="sdctl-image-test-$suffix"
data=/home/sdctl/.local/share
cleanup() {
	docker rm -f "$container" >/dev/null 2>&1 || true
	docker volume rm -f "$volume" >/dev/null 2>&1 || true
}
trap cleanup EXIT

failures=0
pass() { echo "ok   $1"; }
fail() {
	echo "FAIL $1" >&2
	failures=$((failures + 1))
}
run() { docker run --rm --network none "$@"; }

# The image's configuration.
user="$(docker image inspect --format '{{.Config.User}}' "$image")"
[[ "$user" == 65532:65532 ]] && pass "runs as user $user" || fail "image user is '$user', want 65532:65532"
entrypoint="$(docker image inspect --format '{{json .Config.Entrypoint}} {{json .Config.Cmd}}' "$image")"
[[ "$entrypoint" == '["/sdctl"] ["--help"]' ]] && pass "entrypoint and cmd: $entrypoint" ||
	fail "entrypoint and cmd are $entrypoint"
for label in version revision source; do
	value="$(docker image inspect --format "{{index .Config.Labels \"org.opencontainers.image.$label\"}}" "$image")"
	[[ -n "$value" ]] && pass "label org.opencontainers.image.$label=$value" ||
		fail "no org.opencontainers.image.$label label"
done

# version, and --help when run bare.
if out="$(run "$image" version)" && [[ "$out" == "sdctl "* ]]; then
	pass "version: ${out%%$'\n'*}"
else
	fail "sdctl version: $out"
fi
if out="$(run "$image")" && [[ "$out" == *"Usage:"* ]]; then
	pass "no arguments prints the help"
else
	fail "sdctl with no arguments: $out"
fi

# The bundled backends ship beside /sdctl and start (backend list starts each one to ask its
# version).
if out="$(run "$image" backend list --template '{{.Name}} {{.Kind}} {{.Status}} {{.Path}}
')"; then
	for name in consul etcd; do
		if [[ "$out" == *"$name bundled ok /sdctl-backend-$name"* ]]; then
			pass "backend list: $name bundled ok"
		else
			fail "backend list does not show $name as a working bundled backend: $out"
		fi
	done
else
	fail "sdctl backend list: $out"
fi

# `sdctl watch` runs the sdctl-watch beside /sdctl: only the Docker client there refuses this
# address, with exit code 2.
code=0; out="$(run "$image" watch --docker-host 'tcp://a b' 2>&1)" || code=$?
if [[ $code -eq 2 && "$out" == *"docker: parse"* ]]; then
	pass "watch runs /sdctl-watch"
else
	fail "sdctl watch --docker-host 'tcp://a b': exit $code: $out"
fi

# The file backend through a named volume: Docker fills a new named volume with the image's
# directory (owned by 65532), so the non-root user can write to it.
docker volume create "$volume" >/dev/null
if out="$(run -v "$volume:$data" "$image" catalog)" && [[ -z "$out" ]]; then
	pass "catalog of an empty registry prints nothing"
else
	fail "catalog of an empty registry: '$out'"
fi
if out="$(run -v "$volume:$data" "$image" register web 127.0.0.1:1)" && [[ "$out" == web-127.0.0.1-1 ]]; then
	pass "register web 127.0.0.1:1 -> $out"
else
	fail "register web 127.0.0.1:1: '$out'"
fi
if out="$(run -v "$volume:$data" "$image" resolve web)" && [[ "$out" == 127.0.0.1:1 ]]; then
	pass "resolve web from another container -> $out"
else
	fail "resolve web from another container: '$out'"
fi

# Who wrote the registry, from the volume's files as the engine sees them.
docker create --name "$container" -v "$volume:$data" "$image" >/dev/null
owners="$(docker cp "$container:$data" - | tar --numeric-owner -tvf - | awk '$NF ~ /registry\.json$/ { print $2 }')"
[[ "$owners" == 65532/65532 ]] && pass "registry.json written by 65532/65532 (not root)" ||
	fail "registry.json owned by '$owners', want 65532/65532"
tmpmode="$(docker cp "$container:/tmp" - | tar -tvf - | awk '$NF == "tmp/" { print $1 }')"
[[ "$tmpmode" == drwxrwxrwt ]] && pass "/tmp is $tmpmode" || fail "/tmp is '$tmpmode', want drwxrwxrwt"
certs="$(docker cp "$container:/etc/ssl/certs/ca-certificates.crt" - | tar -xOf - | grep -c 'BEGIN CERTIFICATE' || true)"
((certs > 0)) && pass "$certs CA certificates" || fail "no CA certificates in /etc/ssl/certs/ca-certificates.crt"

if ((failures > 0)); then
	echo "image-test: $failures check(s) failed" >&2
	exit 1
fi
echo "image-test: all checks passed"
