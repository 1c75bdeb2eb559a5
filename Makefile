# posfleet: `make demo` runs the whole product locally, `make test` runs every test.
SHELL := /bin/bash
GO ?= go
TOOLS := $(CURDIR)/.tools/bin
INFLUXD := $(TOOLS)/influxd
INFLUXD_VERSION := v1.8.10

.PHONY: demo test influxd build vet fuzz clean generate generate-check deploy-check

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
FUZZ_TARGETS := FuzzDecodeHeartbeat FuzzDecodeFault FuzzDecodeFirmware FuzzDecodeTxn FuzzDecodeStatus FuzzDecodeAck FuzzContainsPAN FuzzContainsCardData FuzzDecodeCardScan
fuzz:
	@for f in $(FUZZ_TARGETS); do echo "== $$f"; $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime 20s . || exit 1; done
	@echo "== FuzzEncoderMatchesLineprotocol"; $(GO) test -run '^$$' -fuzz '^FuzzEncoderMatchesLineprotocol$$' -fuzztime 20s ./influxdb

clean:
	rm -rf bin .data

# End-to-end benchmark (cmd/posbench): InfluxDB's own ceiling, posfleet serve
# and Mosquitto + Telegraf on one InfluxDB, alternating, repeated; about 5
# minutes. Results in cmd/posbench/results. Longer or other runs through
# BENCH_FLAGS, e.g. make bench BENCH_FLAGS="-reps 3 -duration 60s" or
# make bench BENCH_FLAGS="-scenario connections".
TELEGRAF := $(TOOLS)/telegraf
TELEGRAF_VERSION := v1.37.2
TELEGRAF_TAGS := custom,inputs.mqtt_consumer,outputs.influxdb_v2,parsers.json_v2
BENCH_FLAGS ?=

.PHONY: bench telegraf mosquitto

bench: influxd telegraf mosquitto
	$(GO) run ./cmd/posbench -telegraf $(TELEGRAF) $(BENCH_FLAGS)

# Telegraf with only the plugins the benchmark uses. Should the checksum
# database not know a module of those plugins, the install is retried with
# it turned off, for this one command only.
telegraf: $(TELEGRAF)
$(TELEGRAF):
	@echo "installing telegraf $(TELEGRAF_VERSION) into $(TOOLS) (first time only, about a minute)..."
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install -tags "$(TELEGRAF_TAGS)" github.com/influxdata/telegraf/cmd/telegraf@$(TELEGRAF_VERSION) || \
	  GOSUMDB=off GOBIN=$(TOOLS) $(GO) install -tags "$(TELEGRAF_TAGS)" github.com/influxdata/telegraf/cmd/telegraf@$(TELEGRAF_VERSION)

# Mosquitto from the distribution; posbench runs its own instance on a
# loopback port, never the system service.
mosquitto:
	@command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto || { \
	  echo "installing mosquitto (apt-get)..."; \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y mosquitto; else sudo apt-get install -y mosquitto; fi; }

# The deployment files, validated offline (no container engine or cluster
# runs here; see deploy/README.md for what is and is not checked). Not part
# of `make test`: the checker's modules (Kubernetes API types, compose-go)
# are fetched from the Go module proxy the first time.
DEPLOY_TMP := $(CURDIR)/.tools/deploy-check
deploy-check:
	@mkdir -p $(DEPLOY_TMP)
	@echo "== binary as deploy/Dockerfile builds it (static, CGO off)"
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(DEPLOY_TMP)/ ./cmd/posfleet ./cmd/posterm
	cd deploy/check && $(GO) run . -static $(DEPLOY_TMP)/posfleet -static $(DEPLOY_TMP)/posterm
	@echo "== Kubernetes manifests (strict decoding into the API types, references)"
	@if command -v kubectl >/dev/null; then \
	  kubectl kustomize deploy/kubernetes > $(DEPLOY_TMP)/kubernetes.yaml && echo "kubectl kustomize: ok"; \
	  cd deploy/check && $(GO) run . -k8s $(DEPLOY_TMP)/kubernetes.yaml; \
	else \
	  echo "kubectl not installed: kustomization not rendered; checking the manifest files"; \
	  cd deploy/check && $(GO) run . -k8s ../kubernetes; \
	fi
	@echo "== compose file (compose-go, the loader of docker compose config)"
	cd deploy/check && $(GO) run . -compose ../compose.yaml
	@if docker compose version >/dev/null 2>&1; then docker compose -f deploy/compose.yaml config --quiet && echo "docker compose config: ok"; \
	  else echo "docker compose: not installed here, skipped (compose-go above is its loader)"; fi
	@echo "== Grafana dashboard"
	cd deploy/check && $(GO) run . -grafana ../grafana/posfleet-dashboard.json
	@echo "== systemd unit"
	@if command -v systemd-analyze >/dev/null; then \
	  sed 's#^ExecStart=/usr/local/bin/posfleet#ExecStart=$(DEPLOY_TMP)/posfleet#' deploy/systemd/posfleet.service > $(DEPLOY_TMP)/posfleet.service; \
	  out=$$(systemd-analyze verify $(DEPLOY_TMP)/posfleet.service 2>&1); \
	  if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; echo "systemd-analyze verify: ok"; \
	  systemd-analyze security --offline=true $(DEPLOY_TMP)/posfleet.service | tail -1; \
	else echo "systemd-analyze not installed: unit not checked"; fi
