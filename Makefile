# peercache — common tasks. `make test` is what CI runs (.ci/run).
GO        ?= go
PKGS      ?= ./...
TESTFLAGS ?= -race -count=1 -timeout 14m

.PHONY: run cluster test deps vet fmt-check unit build clean image-offline e2e

## run: one node on the embedded in-memory store (HTTP :8080, gossip :7946)
run:
	$(GO) run ./cmd/cachenode --name node1

## build: the cachenode binary in ./bin
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/cachenode ./cmd/cachenode

## deps: install what tests need (redis-server via apt-get when missing)
deps:
	./scripts/deps.sh

## vet / fmt-check: static checks
vet:
	$(GO) vet $(PKGS)
	$(GO) vet -tags e2e ./e2e/...

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

## unit: the Go test suite with the race detector; the RESP suite runs a
## second time with its connections served by an event loop
## (--resp-event-loops, resp/eventloop.go)
unit:
	$(GO) test $(TESTFLAGS) $(PKGS)
	PEERCACHE_TEST_RESP_EVENT_LOOPS=1 $(GO) test $(TESTFLAGS) ./resp/

## test: everything CI runs
test: deps fmt-check vet unit

## image-offline: peercache/cachenode:latest FROM scratch, out of a static
## cachenode and this machine's redis-server (no registry needed)
image-offline: deps
	./scripts/image-offline.sh

## e2e: the end-to-end fault suite in Docker (builds the offline image, runs
## docker-compose.yml under a project of its own, tears it down, also when
## interrupted or timed out: scripts/e2e.sh)
E2EFLAGS ?= -count=1 -v -timeout 20m
e2e: deps
	GO=$(GO) ./scripts/e2e.sh $(E2EFLAGS)

clean:
	rm -rf bin
