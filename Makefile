# posfleet: `make demo` runs the whole product locally, `make test` runs every test.
SHELL := /bin/bash
GO ?= go
TOOLS := $(CURDIR)/.tools/bin
INFLUXD := $(TOOLS)/influxd
INFLUXD_VERSION := v1.8.10

.PHONY: demo test influxd build vet fuzz clean generate generate-check

demo: influxd build
	@deploy/demo/run.sh

build:
	@mkdir -p bin
	$(GO) build -o bin/ ./cmd/...

# InfluxDB 1.8 with the v2 API (Flux) is the local store of the demo and the
# tests; production uses InfluxDB 2.x through the same API. Built from source
# (about 2 minutes the first time), kept in .tools/bin.
influxd: $(INFLUXD)
$(INFLUXD):
	@echo "installing influxd $(INFLUXD_VERSION) into $(TOOLS) (first time only, about 2 minutes)..."
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install github.com/influxdata/influxdb/cmd/influxd@$(INFLUXD_VERSION)

# Generated *_templ.go files are committed; under CI this fails when the
# committed ones are stale (locally it just regenerates them).
TEMPL := $(GO) run github.com/a-h/templ/cmd/templ@$$($(GO) list -m -f '{{.Version}}' github.com/a-h/templ)
generate:
	$(TEMPL) generate -path web
generate-check: generate
	@test -z "$$CI" || test -z "$$(git status --porcelain -- 'web/*_templ.go' 'web/**/*_templ.go')" || { echo "stale or uncommitted templ output:"; git status --porcelain -- 'web/*_templ.go' 'web/**/*_templ.go'; exit 1; }

vet: generate-check
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

test: influxd vet
	POSFLEET_INFLUXD=$(INFLUXD) $(GO) test -count=1 -timeout 15m ./...

# Short fuzzing of every decoder (the normal test run only replays the corpus).
FUZZ_TARGETS := FuzzDecodeHeartbeat FuzzDecodeFault FuzzDecodeFirmware FuzzDecodeTxn FuzzDecodeStatus FuzzDecodeAck FuzzContainsPAN
fuzz:
	@for f in $(FUZZ_TARGETS); do echo "== $$f"; $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime 20s . || exit 1; done

clean:
	rm -rf bin .data
