#!/usr/bin/env bash
# Walks through sdctl's main job on the embedded file backend: register two instances of a
# service, resolve them (also through a URL), list the catalog, check the "cluster", and
# deregister. Each command is printed before it runs.
#
# It runs on a registry of its own in a temporary directory (removed on exit), on the file
# backend whatever the user's config file or environment says, so it never touches the user's
# registry or round-robin state.
set -euo pipefail
cd "$(dirname "$0")/.."
sdctl=${SDCTL:-./bin/sdctl}

demo="$(mktemp -d "${TMPDIR:-/tmp}/sdctl-demo.XXXXXX")"
trap 'rm -rf "$demo"' EXIT
export SDCTL_BACKEND=file SDCTL_FILE_PATH="$demo/registry.json" XDG_STATE_HOME="$demo/state" XDG_CONFIG_HOME="$demo/config"
unset SDCTL_CONFIG
cd "$demo" # no ./sdctl.yaml of the user's applies
sdctl="$(cd "$OLDPWD" && realpath "$sdctl")"
printf 'demo registry: %s (removed at the end)\n' "$SDCTL_FILE_PATH"

run() {
  printf '\n$ sdctl %s\n' "$*"
  "$sdctl" "$@"
}

run version
run register web 127.0.0.1:3000 --tag v1 --meta team=web
run register web 127.0.0.1:3001 --tag v2
run resolve web
run resolve web --strategy round-robin
run resolve web --strategy round-robin
run resolve 'http://web/api/users?page=2'
run resolve web --all -o json
printf '\n$ sdctl resolve web --all -o json | sdctl register -f - --tag demo   # what sdctl prints reads back\n'
"$sdctl" resolve web --all -o json | "$sdctl" register -f - --tag demo
run catalog
run catalog web
run cluster status
run backend list
run deregister web 127.0.0.1:3000
run deregister web-127.0.0.1-3001
printf '\n$ sdctl resolve web   # nothing left: exit code 3\n'
"$sdctl" resolve web || echo "exit code $?"
