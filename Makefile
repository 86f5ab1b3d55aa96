# MegaContext build and test entry points. `make run` starts the proxy,
# `make test` runs every test.

GO ?= go
UPSTREAM ?= http://127.0.0.1:8080
ARGS ?=

.PHONY: all build run test test-short bench vet fmt native clean

all: build

build:
	$(GO) build -o bin/megacontext .

run:
	$(GO) run . serve --upstream $(UPSTREAM) $(ARGS)

test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

test-short:
	$(GO) test -short -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./memory/...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
