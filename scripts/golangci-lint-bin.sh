#!/usr/bin/env bash
# golangci-lint-bin.sh prints the path of the golangci-lint binary pinned in tools/golangci-lint/go.mod (see tool-bin.sh).
exec "$(dirname "${BASH_SOURCE[0]}")/tool-bin.sh" golangci-lint
