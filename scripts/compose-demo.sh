#!/usr/bin/env bash
# compose-demo.sh runs the classic Docker + Consul + Registrator walkthrough with sdctl: three
# Consul servers and a client agent, `sdctl watch` in Registrator's place, service-web scaled to
# three, and a client container that resolves service-web (deploy/compose/; docs/tutorial.md goes
# through the same steps by hand). Every image is built locally FROM scratch, nothing is pulled:
# sdctl:latest (make image), the pinned Consul server (scripts/consul-bin.sh) and
# examples/service-web.
#
# The checks of the walkthrough (registration, a stopped container leaving, scaling back, the
# Consul leader stopped while resolve keeps answering, the teardown) are TestComposeDemo in
# internal/e2e, which uses this script to build the images and to remove them.
#
# Usage: scripts/compose-demo.sh [run|build|down]   (make compose-demo runs it)
#   run     build, start the project, show what sdctl sees, and leave it running (default)
#   build   only build the images, to follow docs/tutorial.md by hand
#   down    remove the project and its images
# Environment:
#   SDCTL_DEMO_PROJECT   compose project name (default sdctl-demo); the demo images are named
#                        after it (<project>/consul:<version>, <project>/service-web:latest)
#   SDCTL_IMAGE          the sdctl image, NAME:latest (default sdctl:latest)
#   SDCTL_DEMO_NO_BUILD  1: use the existing sdctl image instead of running make image
# Needs bash, docker, docker-compose (v1, or any that reads the file format 2.4), make and go.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

mode="${1:-run}"
case "$mode" in
run | build | down) ;;
*)
	echo "usage: scripts/compose-demo.sh [run|build|down]" >&2
	exit 2
	;;
esac

project="${SDCTL_DEMO_PROJECT:-sdctl-demo}"
if [[ ! "$project" =~ ^[a-z0-9][a-z0-9-]*$ ]]; then
	echo "compose-demo: SDCTL_DEMO_PROJECT=$project: want lower-case letters, digits and dashes" >&2
	exit 2
fi
# The compose file names the demo images and scopes the watcher with it.
export COMPOSE_PROJECT_NAME="$project"
export SDCTL_IMAGE="${SDCTL_IMAGE:-sdctl:latest}"
if [[ "$SDCTL_IMAGE" != *:latest ]]; then
	echo "compose-demo: SDCTL_IMAGE=$SDCTL_IMAGE: want NAME:latest" >&2
	exit 2
fi
compose_file="deploy/compose/docker-compose.yml"
network="${project}_default"
web_image="$project/service-web:latest"
consul_image="" # set by build_images, from the version scripts/consul-bin.sh builds
dc=(docker-compose -p "$project" -f "$compose_file")
dc() { "${dc[@]}" "$@"; }

for tool in docker docker-compose make go; do
	command -v "$tool" >/dev/null || {
		echo "compose-demo: $tool is not installed" >&2
		exit 1
	}
done
tmp="$(mktemp -d "${TMPDIR:-/tmp}/sdctl-compose-demo.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# images_rm removes the demo images: every tag under $project/ (sdctl:latest, and the same image
# under other names, stays).
images_rm() {
	local img
	for img in $(docker image ls --format '{{.Repository}}:{{.Tag}}' "$project/*" 2>/dev/null); do
		docker image rm "$img" >/dev/null 2>&1 || true
	done
}

# down removes the project's containers, network and volumes, and the demo images.
down() {
	if [[ -n "$(docker ps -aq --filter "label=com.docker.compose.project=$project")$(docker network ls -q --filter "name=^${network}\$")" ]]; then
		dc down --volumes --remove-orphans --timeout 5 2>&1 | sed 's/^/    /' || true
	fi
	images_rm
}

image_line() { printf '%-38s %s  %s\n' "$1" "$(docker image inspect --format '{{.Id}}' "$1" | cut -c8-19)" "$2"; }

build_images() {
	local bin version stage="$tmp/stage"
	bin="$(./scripts/consul-bin.sh)"
	version="$(basename "$(dirname "$bin")")"
	consul_image="$project/consul:${version#v}"
	if ! grep -q "/consul:${version#v}\$" "$compose_file"; then
		echo "compose-demo: scripts/consul-bin.sh builds Consul $version; $compose_file names another version" >&2
		exit 1
	fi
	if [[ "${SDCTL_DEMO_NO_BUILD:-}" != 1 ]]; then
		# A private build context: another `make image` may be running (bin/image/).
		make --no-print-directory image IMAGE_CONTEXT="$stage/sdctl" IMAGE="${SDCTL_IMAGE%:latest}" >"$tmp/make.log" 2>&1 || {
			cat "$tmp/make.log"
			echo "compose-demo: make image failed" >&2
			exit 1
		}
	fi
	docker image inspect "$SDCTL_IMAGE" >/dev/null
	image_line "$SDCTL_IMAGE" "make image"

	# Consul: the binary, an empty data dir and a 1777 /tmp.
	mkdir -p "$stage/consul/data" "$stage/consul/rootfs/tmp"
	chmod 1777 "$stage/consul/rootfs/tmp"
	cp "$bin" "$stage/consul/consul"
	cp deploy/compose/consul/Dockerfile "$stage/consul/"
	docker build -q --build-arg VERSION="${version#v}" -t "$consul_image" "$stage/consul" >/dev/null 2>"$tmp/build.log" || {
		cat "$tmp/build.log"
		exit 1
	}
	image_line "$consul_image" "${bin#"$root"/}"

	# service-web: a static binary on scratch (examples/service-web/Dockerfile).
	mkdir -p "$stage/web"
	CGO_ENABLED=0 GOOS=linux go build -trimpath -o "$stage/web/service-web" ./examples/service-web
	cp examples/service-web/Dockerfile "$stage/web/"
	docker build -q -t "$web_image" "$stage/web" >/dev/null 2>"$tmp/build.log" || {
		cat "$tmp/build.log"
		exit 1
	}
	image_line "$web_image" examples/service-web
	rm -rf "$stage"
}

# show CMD...: prints "$ CMD" and runs it.
show() {
	printf '\n$ %s\n' "$*"
	"$@"
}

case "$mode" in
build)
	build_images
	exit 0
	;;
down)
	down
	exit 0
	;;
esac

if [[ -n "$(docker ps -aq --filter "label=com.docker.compose.project=$project")" ]]; then
	echo "removing project $project, left over by an earlier run:"
	down
fi
build_images
show "${dc[@]}" up -d --scale web=3
client="${project}_client_1"
echo
echo "waiting for three healthy service-web instances (Consul elects a leader, the watcher"
echo "registers the containers, their health checks pass)"
show docker exec "$client" /sdctl resolve service-web --wait 2m --min 3 --all
show docker exec -t "$client" /sdctl cluster status
show docker exec -t "$client" /sdctl catalog service-web
show docker exec "$client" /sdctl resolve --strategy round-robin http://service-web/
show docker logs "${project}_watcher_1"
down_cmd="scripts/compose-demo.sh down"
[[ "$project" == sdctl-demo ]] || down_cmd="SDCTL_DEMO_PROJECT=$project $down_cmd"
cat <<EOF

The demo is running (project $project). Try:
  docker stop ${project}_web_1      # its instance leaves service-web
  docker-compose -p $project -f $compose_file up -d --no-recreate --scale web=3
  docker exec $client /sdctl resolve service-web --all
  docker exec $client /sdctl cluster status
Remove it with: $down_cmd
EOF
