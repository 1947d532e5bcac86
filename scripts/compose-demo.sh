#!/usr/bin/env bash
# compose-demo.sh runs the classic Docker + Consul + Registrator walkthrough with sdctl, and
# checks each step: three Consul servers and a client agent, `sdctl watch` in Registrator's place, service-web
# scaled to three, and a client container that resolves service-web (deploy/compose/, and
# docs/tutorial.md for the same steps by hand).
#
#   1. the three web containers are registered, with their IPs on the compose network and port
#      3000, and each one answers a request sent to the address sdctl resolved;
#   2. stopping one web container removes exactly its instance (the time it took is printed);
#   3. scaling back to three registers it again;
#   4. stopping the Consul leader: a new one is elected, and `sdctl resolve` keeps answering
#      throughout (resolves in a loop; the number of failed calls must be 0);
#   5. everything the run created is removed: containers, network, volumes, the demo images.
#
# Every image is built locally FROM scratch, nothing is pulled: sdctl:latest (make image), the
# pinned Consul server (scripts/consul-bin.sh) and examples/service-web. Each command is printed
# with its output; the script exits non-zero when a check fails. The teardown also runs on
# failure and on Ctrl-C, and a project left over by an interrupted run is removed first.
#
# Usage: scripts/compose-demo.sh [run|build|down]   (make compose-demo runs it)
#   run     the checked walkthrough (default)
#   build   only build the images, to follow docs/tutorial.md by hand
#   down    remove the project and its images
# Environment:
#   SDCTL_DEMO_PROJECT   compose project name (default sdctl-demo); the demo images are named
#                        after it (<project>/consul:<version>, <project>/service-web:latest)
#   SDCTL_DEMO_NO_BUILD  1: use the existing sdctl:latest instead of running make image
# Needs bash, docker, docker-compose (v1, or any that reads the file format 2.4), make, go, curl.
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
# The sdctl image, sdctl:latest unless SDCTL_IMAGE names another NAME:latest (`make image
# IMAGE=NAME` builds it; one named $project/sdctl is removed with the other demo images).
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

# now prints the time in seconds, with a fraction; since T prints the seconds from T to now.
now() {
	if [[ -n "${EPOCHREALTIME:-}" ]]; then
		echo "${EPOCHREALTIME/,/.}"
	else
		date +%s.%N
	fi
}
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
later() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; } # later A B: A > B

# quote prints its arguments as a shell command line, quoting only where needed.
quote() {
	local a s=""
	for a in "$@"; do
		if [[ "$a" =~ ^[-A-Za-z0-9_./:=,@%+]+$ ]]; then
			s+="$a "
		else
			s+="'${a//\'/\'\\\'\'}' "
		fi
	done
	printf '%s' "${s% }"
}

# show CMD...: prints "$ CMD", runs it, prints what it wrote; its stdout stays in $out.
out=""
show() {
	printf '\n$ %s\n' "$(quote "$@")"
	local rc=0
	out="$("$@" 2>"$tmp/stderr" | tr -d '\r')" || rc=$?
	[[ -z "$out" ]] || printf '%s\n' "$out"
	[[ ! -s "$tmp/stderr" ]] || cat "$tmp/stderr"
	((rc == 0)) || echo "(exit code $rc)"
	return $rc
}

client="${project}_client_1"
watcher="${project}_watcher_1"
# sdctl runs sdctl in the client container (the image has no shell: exec the binary).
sd=(docker exec "$client" /sdctl)
sdctl() { "${sd[@]}" "$@"; }
# With a terminal (-t), sdctl prints tables aligned, under a header; for the eye only.
sdt=(docker exec -t "$client" /sdctl)

step() { printf '\n\n== %s\n' "$*"; }
results=()
failures=0
pass() {
	echo "ok   $*"
	results+=("ok   $*")
}
fail() {
	echo "FAIL $*"
	results+=("FAIL $*")
	failures=$((failures + 1))
}
# die fails the run at once: the steps after this one depend on it.
die() {
	fail "$*"
	exit 1
}

started="$(now)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/sdctl-compose-demo.XXXXXX")"
loop_pid=""

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

# The script's own stdout and stderr: a signal can come while a function runs with its output
# redirected, and the teardown and summary must still be seen.
exec 7>&1 8>&2

finish() {
	local rc=$?
	trap - EXIT INT TERM
	exec 1>&7 2>&8
	[[ -z "$loop_pid" ]] || kill "$loop_pid" 2>/dev/null || true
	if [[ "$mode" == run ]]; then
		step "5. teardown: docker-compose down --volumes --remove-orphans, and the demo images"
		local t
		t="$(now)"
		down
		local left
		left="$(
			docker ps -aq --filter "label=com.docker.compose.project=$project"
			docker volume ls -q --filter "label=com.docker.compose.project=$project"
			docker network ls -q --filter "name=^${network}\$"
			docker image ls -q "$project/*"
		)"
		if [[ -z "$left" ]]; then
			pass "5. teardown: no container, network, volume or image of project $project left ($(since "$t")s)"
		else
			fail "5. teardown: project $project left objects behind: $(echo $left)"
		fi
		printf '\n\n== summary: project %s, %ss\n' "$project" "$(since "$started")"
		printf '%s\n' ${results[@]+"${results[@]}"}
		if ((failures > 0)); then
			echo "compose-demo: FAILED ($failures failed check(s))"
			((rc != 0)) || rc=1
		elif ((rc != 0)); then
			echo "compose-demo: FAILED (exit status $rc before the checks were done)"
		else
			echo "compose-demo: all checks passed"
		fi
	fi
	rm -rf "$tmp"
	exit "$rc"
}
trap finish EXIT
trap 'exec 1>&7 2>&8; echo; echo "compose-demo: interrupted"; exit 130' INT TERM

for tool in docker docker-compose make go curl; do
	command -v "$tool" >/dev/null || {
		echo "compose-demo: $tool is not installed" >&2
		exit 1
	}
done

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

# ip_of CONTAINER prints the container's IP on the compose network.
ip_of() { docker inspect --format "{{with index .NetworkSettings.Networks \"$network\"}}{{.IPAddress}}{{end}}" "$1"; }
# web_containers prints the names of the running web containers, sorted.
web_containers() {
	local ids
	ids="$(dc ps -q web)"
	[[ -z "$ids" ]] || docker inspect --format '{{if .State.Running}}{{.Name}}{{end}}' $ids | sed 's,^/,,' | sed '/^$/d' | sort
}
# expected_web prints IP:3000 of every running web container, sorted.
expected_web() {
	local c
	for c in $(web_containers); do echo "$(ip_of "$c"):3000"; done | sort
}
# registered prints the healthy service-web instances as IP:PORT, sorted.
registered() { { sdctl resolve service-web --all 2>/dev/null || true; } | sort; }
# leader prints the Consul leader's name (empty during an election).
leader() { sdctl cluster status --template '{{.Leader}}' 2>/dev/null || true; }

step "0. build the images (nothing is pulled) and start the project"
if [[ -n "$(docker ps -aq --filter "label=com.docker.compose.project=$project")" ]]; then
	echo "removing project $project, left over by an earlier run:"
	down
fi
t="$(now)"
build_images
echo "built in $(since "$t")s"
t="$(now)"
show "${dc[@]}" up -d --scale web=3 || die "0. docker-compose up failed"
# docker-compose reports its progress on stderr; show prints it too.
echo "started in $(since "$t")s"

step "1. three service-web instances registered, one per web container"
t="$(now)"
# The client answers once Consul has elected a leader, and has the instances once the watcher
# registered them and their HTTP checks passed.
deadline=$((SECONDS + 120))
until sdctl resolve service-web --wait 5s --min 3 >/dev/null 2>"$tmp/wait.log"; do
	if ((SECONDS > deadline)); then
		cat "$tmp/wait.log"
		dc logs --no-color --tail 20 watcher consul1 || true
		die "1. no three healthy service-web instances 120s after docker-compose up"
	fi
	sleep 1
done
echo "three healthy instances $(since "$t")s after docker-compose up"
show "${sdt[@]}" cluster status
show "${dc[@]}" ps
show docker logs "$watcher"
show "${sdt[@]}" catalog service-web
want="$(expected_web)"
echo
echo "the web containers' IPs on $network (docker inspect):"
for c in $(web_containers); do echo "  $c  $(ip_of "$c")  hostname $(docker inspect --format '{{.Config.Hostname}}' "$c")"; done
show "${sd[@]}" resolve service-web --all
got="$(sort <<<"$out")"
if [[ "$got" == "$want" && "$(wc -l <<<"$got")" == 3 ]]; then
	pass "1. service-web has exactly the three web containers: $(echo $got)"
else
	die "1. service-web instances [$(echo $got)], want the web containers [$(echo $want)]"
fi

# Fetch from the host, through the addresses sdctl resolves; round-robin visits each instance.
reach=direct
answered=()
for i in 1 2 3; do
	show "${sd[@]}" resolve --strategy round-robin http://service-web/ || die "1. resolve http://service-web/ failed"
	url="$out"
	ip="${url#http://}"
	ip="${ip%%:*}"
	fetch="$url"
	if [[ "$reach" == direct ]] && ! curl -s -m 3 -o /dev/null "$url"; then
		reach=published
		echo "(this host cannot reach the compose network directly, e.g. Docker Desktop: using the published ports)"
	fi
	owner=""
	for c in $(web_containers); do [[ "$(ip_of "$c")" == "$ip" ]] && owner="$c"; done
	if [[ -z "$owner" ]]; then
		fail "1. $url is no web container's address"
		continue
	fi
	if [[ "$reach" == published ]]; then
		fetch="http://127.0.0.1:$(docker port "$owner" 3000/tcp | sed -n 's/^0\.0\.0\.0://p' | head -1)/"
	fi
	show curl -sS -m 5 "$fetch" || true
	hostname="$(docker inspect --format '{{.Config.Hostname}}' "$owner")"
	if [[ "$out" == "service-web $hostname $ip"* ]]; then
		answered+=("$owner")
		echo "  -> answered by $owner ($ip)"
	else
		fail "1. $fetch answered '$out', want 'service-web $hostname $ip' ($owner)"
	fi
done
distinct="$(printf '%s\n' "${answered[@]}" | sort -u | wc -l)"
if ((${#answered[@]} == 3 && distinct == 3)); then
	pass "1. curl from the host ($reach): each of the three resolved addresses answered with its own container's hostname and IP"
else
	fail "1. curl from the host: ${#answered[@]} of 3 answers matched the resolved address, $distinct different containers"
fi

step "2. stop one web container: exactly its instance goes"
victim="$(web_containers | head -1)"
victim_ip="$(ip_of "$victim")"
before="$(registered)"
t="$(now)"
mark="$t"
show docker stop "$victim"
stopped="$(since "$t")"
gone=""
while [[ -z "$gone" ]]; do
	now_set="$(registered)"
	if ! grep -qx "$victim_ip:3000" <<<"$now_set"; then gone="$(since "$t")"; fi
	if [[ -z "$gone" ]] && later "$(since "$t")" 15; then break; fi
	[[ -n "$gone" ]] || sleep 0.1
done
show docker logs --since "$mark" "$watcher"
show "${sd[@]}" resolve service-web --all
want="$(grep -vx "$victim_ip:3000" <<<"$before")"
if [[ -z "$gone" ]]; then
	fail "2. $victim ($victim_ip:3000) still registered 15s after docker stop"
elif [[ "$(sort <<<"$out")" != "$want" ]]; then
	fail "2. after stopping $victim: [$(echo $out)], want [$(echo $want)]"
elif later "$gone" 10; then
	fail "2. $victim's instance went ${gone}s after docker stop, want under 10s"
else
	pass "2. $victim stopped (docker stop took ${stopped}s): its instance $victim_ip:3000 left ${gone}s after docker stop; the other two remain"
fi

step "3. scale back to three: the stopped container registers again"
t="$(now)"
mark="$t"
# --no-recreate: only start what is missing; the other containers stay as they are.
show "${dc[@]}" up -d --no-recreate --scale web=3 || fail "3. docker-compose up --scale web=3 failed"
back=""
until [[ -n "$back" ]]; do
	want="$(expected_web)"
	if [[ "$(wc -l <<<"$want")" == 3 && "$(registered)" == "$want" ]]; then back="$(since "$t")"; fi
	if [[ -z "$back" ]] && later "$(since "$t")" 30; then break; fi
	[[ -n "$back" ]] || sleep 0.2
done
show docker logs --since "$mark" "$watcher"
show "${sd[@]}" resolve service-web --all
if [[ -n "$back" ]]; then
	pass "3. scaled back to three: $(echo $(registered)) registered ${back}s after docker-compose up"
else
	fail "3. service-web [$(echo $(registered))] 30s after scaling back, want [$(echo $(expected_web))]"
fi

step "4. stop the Consul leader: a new one is elected, resolve keeps answering"
show "${sdt[@]}" cluster status || die "4. no cluster status"
old="$(leader)"
[[ -n "$old" ]] || die "4. the cluster has no leader before the test"
# The instances belong to the client agent's node (docker-host), which the stop does not touch.
show "${sd[@]}" resolve service-web --all --template '{{.ID}} on node {{.Node}}{{"\n"}}'
holders="$(sed -n 's/.* on node //p' <<<"$out" | sort -u | tr '\n' ' ')"
leader_container="$(docker inspect --format '{{.Name}}' "$(dc ps -q "$old")" | sed 's,^/,,')"

# The loop: one `sdctl resolve` (a new process, through the three addresses) every 200 ms.
: >"$tmp/resolves"
(
	while [[ ! -e "$tmp/stop-loop" ]]; do
		ts="$(now)"
		rc=0
		r="$(sdctl resolve service-web 2>&1)" || rc=$?
		if ((rc == 0)); then
			echo "$ts $(now) ok $r"
		else
			echo "$ts $(now) FAIL(exit $rc) ${r//$'\n'/ }"
		fi
		sleep 0.2
	done
) >"$tmp/resolves" &
loop_pid=$!
echo
echo "resolving service-web every 200 ms in the background (docker exec $client /sdctl resolve service-web)"
sleep 2
t="$(now)"
show docker stop "$leader_container"
elected=""
new=""
prev="$old"
echo
echo "polling the leader (sdctl cluster status --template '{{.Leader}}'):"
while [[ -z "$elected" ]]; do
	l="$(leader)"
	if [[ "$l" != "$prev" ]]; then
		echo "  +$(since "$t")s  leader: ${l:-(none: election)}"
		prev="$l"
	fi
	if [[ -n "$l" && "$l" != "$old" ]]; then
		elected="$(since "$t")"
		new="$l"
	elif later "$(since "$t")" 90; then
		break
	fi
	sleep 0.5
done
# Keep resolving for 15 s at least, and 5 s past the election.
until later "$(since "$t")" 15 && { [[ -z "$elected" ]] || later "$(since "$t")" "$(awk -v e="$elected" 'BEGIN { print e + 5 }')"; }; do
	sleep 0.2
done
touch "$tmp/stop-loop"
wait "$loop_pid" || true
loop_pid=""
calls="$(wc -l <"$tmp/resolves")"
failed="$(grep -c ' FAIL' "$tmp/resolves" || true)"
echo "$calls resolves over $(awk -v t="$t" 'NR == 1 { a = $1 } END { printf "%.1fs (from %.1fs before the stop to %.1fs after)", $2 - a, t - a, $2 - t }' "$tmp/resolves"); answers:"
awk '$3 == "ok" { n[$4]++ } END { for (a in n) printf "  %s  %d\n", a, n[a] }' "$tmp/resolves" | sort
awk -v t="$t" '$2 - $1 > max { max = $2 - $1; at = $1 - t } END { printf "slowest call: %.2fs (started %+.1fs from the stop)\n", max, at }' "$tmp/resolves"
echo "failed calls: $failed"
awk -v t="$t" '$3 != "ok" { printf "  %+.1fs %s\n", $1 - t, substr($0, index($0, $3)) }' "$tmp/resolves"
[[ -z "$elected" ]] || show "${sdt[@]}" cluster status || true
if [[ -z "$elected" ]]; then
	fail "4. no new leader 90s after stopping $old"
else
	pass "4. leader $old stopped: $new elected ${elected}s later (sdctl cluster status)"
fi
if ((failed == 0 && calls > 0)); then
	pass "4. resolve kept answering: $failed of $calls calls failed while $old was stopped and $new took over (the instances are on node $(echo $holders))"
else
	fail "4. $failed of $calls resolves failed after stopping the leader $old"
fi
