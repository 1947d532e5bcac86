# sdctl — make help lists the targets.
GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE      ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS   := -s -w -X github.com/sdctl/sdctl/internal/buildinfo.Version=$(VERSION) \
             -X github.com/sdctl/sdctl/internal/buildinfo.Commit=$(COMMIT) \
             -X github.com/sdctl/sdctl/internal/buildinfo.Date=$(DATE)
TOOLS     := $(GO) -C tools tool

.PHONY: help build test test-short race lint vet proto bench fuzz demo clean consul etcd

help: ## list targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/sdctl and the example external backend
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/sdctl ./cmd/sdctl
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/sdctl-backend-memory ./examples/sdctl-backend-memory

demo: build ## register, resolve, list and deregister a service on the embedded file backend
	./scripts/demo.sh

# The Consul and etcd tests build their servers on demand too; building them first keeps a cold build
# (minutes) out of go test's timeout. Without it those tests skip, or fail in CI.
test: ## every test, with the race detector (what CI runs)
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	@./scripts/consul-bin.sh >/dev/null || echo 'make test: no consul binary, see above' >&2
	@./scripts/etcd-bin.sh >/dev/null || echo 'make test: no etcd binary, see above' >&2
	$(GO) test -race -count=1 ./...

consul: ## build (once) the Consul server pinned in tools/consul for the integration tests; prints its path
	./scripts/consul-bin.sh

test-short: ## quick tests, no subprocess-heavy ones
	$(GO) test -short ./...

lint: vet ## go vet and gofmt
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))"

vet:
	$(GO) vet ./...

proto: ## regenerate plugins/proto from registry.proto with the pinned generators
	$(GO) -C tools build -o ../$(BIN)/ github.com/bufbuild/buf/cmd/buf google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc
	cd plugins/proto && PATH="$(CURDIR)/$(BIN):$$PATH" buf generate

bench: build ## benchmarks; results go in docs/benchmarks.md
	$(GO) run ./internal/bench -sdctl $(BIN)/sdctl

fuzz: ## run each fuzz target for a short while
	$(GO) test -run '^$$' -fuzz FuzzParseHostPort -fuzztime 20s ./registry
	$(GO) test -run '^$$' -fuzz FuzzParseMeta -fuzztime 20s ./registry
	$(GO) test -run '^$$' -fuzz FuzzParseTarget -fuzztime 20s ./internal/resolve
	$(GO) test -run '^$$' -fuzz FuzzRewriteURL -fuzztime 20s ./internal/resolve
	$(GO) test -run '^$$' -fuzz FuzzParseBatch -fuzztime 20s ./commands
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 20s ./backends/file

etcd: ## build (once) the etcd server pinned in tools/etcd for the integration tests; prints its path
	./scripts/etcd-bin.sh

clean: ## remove build output
	rm -rf $(BIN) dist
