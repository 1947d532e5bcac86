# sdctl — make help lists the targets.
GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE      ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS   := -s -w -X github.com/sdctl/sdctl/internal/buildinfo.Version=$(VERSION) \
             -X github.com/sdctl/sdctl/internal/buildinfo.Commit=$(COMMIT) \
             -X github.com/sdctl/sdctl/internal/buildinfo.Date=$(DATE)
TOOLS     := $(GO) -C tools/proto tool

.PHONY: help build test test-short race lint vet proto bench fuzz demo clean consul etcd
.PHONY: image image-rootfs image-test release-check snapshot docs

help: ## list targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# ./cmd/... is sdctl and the backends that ship beside it (sdctl-backend-consul, -etcd): sdctl
# finds them in its own directory, so they are always built and installed together.
build: ## build bin/sdctl, its bundled backends bin/sdctl-backend-{consul,etcd} and the example external backend
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/sdctl-backend-memory ./examples/sdctl-backend-memory

demo: build ## register, resolve, list and deregister a service on the embedded file backend
	./scripts/demo.sh

.PHONY: compose-demo
compose-demo: ## 3 Consul servers, sdctl watch and service-web x3 in docker-compose: the classic walkthrough (checked by TestComposeDemo)
	./scripts/compose-demo.sh

# The Consul and etcd tests build their servers on demand too; building them first keeps a cold build
# (minutes) out of go test's timeout. Without it those tests skip, or fail in CI.
test: ## every test, with the race detector (what CI runs)
	./scripts/check-tracked.sh
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	$(GOLANGCI_LINT) run ./...
	$(GORELEASER) check
	@./scripts/consul-bin.sh >/dev/null || echo 'make test: no consul binary, see above' >&2
	@./scripts/etcd-bin.sh >/dev/null || echo 'make test: no etcd binary, see above' >&2
	$(GO) test -race -count=1 -timeout 45m ./...

consul: ## build (once) the Consul server pinned in tools/consul for the integration tests; prints its path
	./scripts/consul-bin.sh

test-short: ## quick tests, no subprocess-heavy ones
	$(GO) test -short ./...

GOLANGCI_LINT = "$$(./scripts/golangci-lint-bin.sh)"

lint: vet ## go vet, gofmt and golangci-lint (the linters listed in .golangci.yml)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	$(GOLANGCI_LINT) run ./...

vet:
	$(GO) vet ./...

proto: ## regenerate plugins/proto from registry.proto with the pinned generators
	$(GO) -C tools/proto build -o $(abspath $(BIN))/ github.com/bufbuild/buf/cmd/buf google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto
	cd plugins/proto && PATH="$(abspath $(BIN)):$$PATH" buf generate

bench: build ## benchmarks; results go in docs/benchmarks.md
	$(GO) run ./tools/bench -sdctl $(BIN)/sdctl

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

# The container image (Dockerfile): static linux binaries (sdctl and its bundled backends) and a
# staged rootfs on `FROM scratch`,
# so building it pulls nothing. CA_CERTS is the host's CA bundle copied into the image.
IMAGE_CONTEXT ?= $(BIN)/image
IMAGE         ?= sdctl
CA_CERTS      ?= /etc/ssl/certs/ca-certificates.crt

image: ## build the container image sdctl:$(VERSION) and sdctl:latest (IMAGE=name to rename; pulls nothing)
	rm -rf $(IMAGE_CONTEXT)
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(IMAGE_CONTEXT)/ ./cmd/...
	$(MAKE) --no-print-directory image-rootfs IMAGE_CONTEXT=$(IMAGE_CONTEXT)
	cp Dockerfile .dockerignore $(IMAGE_CONTEXT)/
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(COMMIT) \
		-t $(IMAGE):$(VERSION) -t $(IMAGE):latest $(IMAGE_CONTEXT)

# Stages the files the Dockerfile copies besides the binaries into $(IMAGE_CONTEXT): rootfs.tar
# (CA certificates, passwd and group with the user sdctl 65532, a 1777 tmp; owned by root) and
# home/sdctl/. The root file system goes in as a tar archive because goreleaser copies the
# Docker context's extra files through the umask, which would turn tmp/ into 1755: then the
# non-root user could not create a backend's socket there.
image-rootfs:
	rm -rf $(IMAGE_CONTEXT)/rootfs $(IMAGE_CONTEXT)/rootfs.tar $(IMAGE_CONTEXT)/home
	mkdir -p $(IMAGE_CONTEXT)/rootfs/etc/ssl/certs $(IMAGE_CONTEXT)/rootfs/tmp \
		$(IMAGE_CONTEXT)/home/sdctl/.local/share $(IMAGE_CONTEXT)/home/sdctl/.local/state
	cp $(CA_CERTS) $(IMAGE_CONTEXT)/rootfs/etc/ssl/certs/ca-certificates.crt
	chmod 0644 $(IMAGE_CONTEXT)/rootfs/etc/ssl/certs/ca-certificates.crt
	printf 'root:x:0:0:root:/root:/sbin/nologin\nsdctl:x:65532:65532:sdctl:/home/sdctl:/sbin/nologin\n' >$(IMAGE_CONTEXT)/rootfs/etc/passwd
	printf 'root:x:0:\nsdctl:x:65532:\n' >$(IMAGE_CONTEXT)/rootfs/etc/group
	chmod 0644 $(IMAGE_CONTEXT)/rootfs/etc/passwd $(IMAGE_CONTEXT)/rootfs/etc/group
	chmod 1777 $(IMAGE_CONTEXT)/rootfs/tmp
	tar --numeric-owner --owner=0 --group=0 -C $(IMAGE_CONTEXT)/rootfs -cf $(IMAGE_CONTEXT)/rootfs.tar . 2>/dev/null || \
		tar --numeric-owner --uid 0 --gid 0 -C $(IMAGE_CONTEXT)/rootfs -cf $(IMAGE_CONTEXT)/rootfs.tar .
	rm -rf $(IMAGE_CONTEXT)/rootfs
	chmod -R u=rwX,go=rX $(IMAGE_CONTEXT)/home

image-test: ## build the image, then run it: version, register and resolve through a volume, non-root user
	./scripts/image-test.sh

GORELEASER = "$$(./scripts/goreleaser-bin.sh)"

release-check: ## validate .goreleaser.yml with the goreleaser pinned in tools/goreleaser
	$(GORELEASER) check

snapshot: ## a local release in dist/: archives for every platform, checksums, image sdctl:SNAPSHOT (no publishing)
	$(GORELEASER) release --snapshot --clean --skip=publish

docs: ## regenerate the command reference in docs/cli and the man pages in docs/man
	$(GO) run ./tools/docgen -md docs/cli -man docs/man
