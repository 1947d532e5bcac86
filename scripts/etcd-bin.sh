#!/usr/bin/env bash
# etcd-bin.sh prints the path of the etcd binary pinned in tools/etcd/go.mod (see tool-bin.sh).
exec "$(dirname "${BASH_SOURCE[0]}")/tool-bin.sh" etcd
