# vxlan6 — build, test, bench, demo. Run as root for test/demo/bench: they
# create network namespaces.
GO       ?= go
GOBIN    := $(shell $(GO) env GOPATH)/bin
PREFIX   ?= /opt/cni/bin
SBINDIR  ?= /usr/local/sbin
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
# The whole suite; packages run in parallel (-p 2 on this 2-core class of machine).
TEST_TIMEOUT ?= 45m

.PHONY: all build deps runtimes test lint unit bench demo install clean

all: build

build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/vxlan6 ./plugins/vxlan6
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/vxlan6d ./overlay/cmd/vxlan6d

# Every test: formatting, vet and staticcheck first, then all packages (the
# kernel- and runtime-touching ones need root and skip without it).
test: deps runtimes build lint
	PATH="$(GOBIN):$$PATH" $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if [ -x "$(GOBIN)/staticcheck" ]; then $(GOBIN)/staticcheck ./...; else echo "staticcheck not installed: go install honnef.co/go/tools/cmd/staticcheck@v0.8.2"; exit 1; fi

# Installs missing apt packages and Go tools (root; quick when present).
deps:
	@bash .ci/deps.sh

# Container runtime pieces for the end-to-end tests: busybox image, Podman and
# containerd configs, nerdctl built once and cached.
runtimes:
	@bash scripts/runtimes-setup.sh

# Pure-logic tests only (no root needed).
unit:
	$(GO) test -count=1 -short ./...

# Benchmarks print figures against a baseline measured in the same run.
bench: deps build
	PATH="$(GOBIN):$$PATH" $(GO) test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 30m ./bench/...

demo: deps build
	PATH="$(GOBIN):$$PATH" bash scripts/demo.sh

install: build
	install -D -m 0755 bin/vxlan6 $(DESTDIR)$(PREFIX)/vxlan6
	install -D -m 0755 bin/vxlan6d $(DESTDIR)$(SBINDIR)/vxlan6d

clean:
	rm -rf bin
