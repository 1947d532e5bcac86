#!/usr/bin/env bash
# goreleaser-bin.sh prints the path of the goreleaser binary pinned in tools/goreleaser/go.mod (see tool-bin.sh).
exec "$(dirname "${BASH_SOURCE[0]}")/tool-bin.sh" goreleaser
