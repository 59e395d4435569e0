# linkops — the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
BIN     := bin/linkops
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/linkops/linkops/node.Version=$(VERSION)

.PHONY: run build test lint unit

## run: start one node with embedded defaults (data in ./data, API on 127.0.0.1:8844)
run: build
	./$(BIN) agent

## build: a static binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/linkops

## test: formatting, vet, and every test with the race detector
test: lint unit

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 20m ./...
