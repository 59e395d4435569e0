# linkops — the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
BIN     := bin/linkops
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/linkops/linkops/node.Version=$(VERSION)

.PHONY: run build build-linux test lint unit deps cluster image bench fuzz

## run: start one node with embedded defaults (data in ./data, API on 127.0.0.1:8844)
run: build
	./$(BIN) agent

## build: a static binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/linkops

## cluster: three local nodes on 127.0.0.1 (ports 8844/8854/8864), until Ctrl-C; see scripts/cluster.sh
cluster:
	./scripts/cluster.sh

## build-linux: the static linux/amd64 binary the image and the Vagrant VMs run
build-linux:
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/linkops-linux-amd64 ./cmd/linkops

## image: the container image $(IMAGE), FROM scratch, from that binary
IMAGE ?= linkops:dev
image: build-linux
	@# The build context holds only what the image needs (see deploy/Dockerfile).
	@ctx=$$(mktemp -d) && trap 'rm -rf "$$ctx"' EXIT && \
	mkdir -p "$$ctx/root/etc" "$$ctx/root/tmp" "$$ctx/owned/data" && \
	chmod 1777 "$$ctx/root/tmp" && chmod 0700 "$$ctx/owned/data" && \
	cp deploy/image/passwd deploy/image/group "$$ctx/root/etc/" && \
	cp bin/linkops-linux-amd64 "$$ctx/linkops" && \
	old=$$(docker image inspect -f '{{.Id}}' $(IMAGE) 2>/dev/null || true) && \
	docker build -t $(IMAGE) -f deploy/Dockerfile "$$ctx" && \
	if [ -n "$$old" ] && [ "$$old" != "$$(docker image inspect -f '{{.Id}}' $(IMAGE))" ]; then \
		docker rmi "$$old" >/dev/null 2>&1 || true; fi  # the image this one replaces, unless in use

## test: the tools the tests need, formatting, vet, and every test with the race detector
test: deps lint unit

## bench: measure the quality bars of SPEC §6 on this machine; writes bench/report.md and bench/report.json
bench:
	$(GO) run ./cmd/linkops-bench -out bench

## fuzz: run every fuzz target for FUZZTIME each (their seeds already run in `make test`)
FUZZTIME ?= 60s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for fn in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$fn"; \
			$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10s $$pkg; \
		done; \
	done

## deps: install the Debian packages the deployment tests use (scripts/test-deps.sh)
deps:
	./scripts/test-deps.sh

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

## unit: every test; what tests keep for review (the console's screenshots) goes to test-output/
unit:
	@mkdir -p test-output
	$(GO) test -race -count=1 -timeout 20m -artifacts -outputdir $(CURDIR)/test-output ./...
