#!/usr/bin/env bash
# consul-bin.sh prints the path of the consul binary pinned in tools/consul/go.mod (see tool-bin.sh).
exec "$(dirname "${BASH_SOURCE[0]}")/tool-bin.sh" consul
