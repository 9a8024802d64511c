# vxlan6 — build, test, bench, demo. Run as root for test/demo/bench: they
# create network namespaces.
GO       ?= go
GOBIN    := $(shell $(GO) env GOPATH)/bin
PREFIX   ?= /opt/cni/bin
SBINDIR  ?= /usr/local/sbin
UNITDIR  ?= /etc/systemd/system
# make install/uninstall take the binaries from here (make build's output).
BIN      ?= bin
# The units and the env file name these paths; install rewrites the
# daemon's path to $(SBINDIR).
ENVFILE  := /etc/vxlan6/vxlan6d.env
UNITS    := vxlan6d.service vxlan6-etcd.service
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
# The whole suite; packages run in parallel (-p 2 on this 2-core class of machine).
TEST_TIMEOUT ?= 45m

.PHONY: all build deps runtimes test lint fuzz unit bench demo install uninstall dist clean

all: build

build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/vxlan6 ./plugins/vxlan6
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/vxlan6d ./overlay/cmd/vxlan6d
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/vxlan6d-etcd ./overlay/cmd/vxlan6d-etcd

# Every test: formatting, vet and staticcheck first, then all packages (the
# kernel- and runtime-touching ones need root and skip without it).
test: deps runtimes build lint fuzz
	PATH="$(GOBIN):$$PATH" $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if [ -x "$(GOBIN)/staticcheck" ]; then $(GOBIN)/staticcheck ./...; else echo "staticcheck not installed: go install honnef.co/go/tools/cmd/staticcheck@v0.8.2"; exit 1; fi

# Native Go fuzz targets of every parser of outside input (subnet file, lease
# record, network config, node annotations, the plugin's config/CNI_ARGS/
# runtimeConfig), each for FUZZTIME; the seed corpora are in testdata/fuzz.
# FUZZTIME is a count, not a duration: Go 1.26's coordinator can fail a
# duration-bounded run with a bare "context deadline exceeded" when the
# deadline races a busy worker (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 2000x
FUZZ_TARGETS := subnetfile:FuzzParse overlay/lease:FuzzParseLease overlay/lease:FuzzParseConfig \
	overlay/lease:FuzzParseNode plugins/vxlan6:FuzzLoadConf plugins/vxlan6:FuzzParseCNIArgs
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t#*:} in ./$${t%%:*} for $(FUZZTIME)"; \
		$(GO) test -count=1 -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) ./$${t%%:*}; \
	done

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

# Release artifacts in dist/: vxlan6_<version>_linux_amd64.tar.gz, the .deb
# and SHA256SUMS (internal/dist; the version comes from git: the latest tag,
# else 0.0.0~git<date>.<hash>).
dist:
	$(GO) run ./tools/dist -out dist

# DESTDIR-aware; uninstall removes exactly what install put there, except an
# env file that was edited since (it holds the host's settings).
install: build
	install -D -m 0755 $(BIN)/vxlan6 $(DESTDIR)$(PREFIX)/vxlan6
	install -D -m 0755 $(BIN)/vxlan6d $(DESTDIR)$(SBINDIR)/vxlan6d
	install -D -m 0755 $(BIN)/vxlan6d-etcd $(DESTDIR)$(SBINDIR)/vxlan6d-etcd
	install -d -m 0755 $(DESTDIR)$(UNITDIR)
	for u in $(UNITS); do \
		sed 's|/usr/sbin/vxlan6d|$(SBINDIR)/vxlan6d|g' conf.d/$$u > $(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	@if [ -e $(DESTDIR)$(ENVFILE) ]; then echo "kept the existing $(DESTDIR)$(ENVFILE)"; \
	else install -D -m 0600 conf.d/vxlan6d.env $(DESTDIR)$(ENVFILE); fi
	@[ -n "$(DESTDIR)" ] || echo "now: edit $(ENVFILE), systemctl daemon-reload, systemctl enable --now vxlan6d (docs/install.md)"

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/vxlan6 $(DESTDIR)$(SBINDIR)/vxlan6d $(DESTDIR)$(SBINDIR)/vxlan6d-etcd
	for u in $(UNITS); do rm -f $(DESTDIR)$(UNITDIR)/$$u; done
	@if cmp -s conf.d/vxlan6d.env $(DESTDIR)$(ENVFILE); then rm -f $(DESTDIR)$(ENVFILE); \
		rmdir $(DESTDIR)$(dir $(ENVFILE)) 2>/dev/null || true; \
	elif [ -e $(DESTDIR)$(ENVFILE) ]; then echo "kept $(DESTDIR)$(ENVFILE): edited since install (remove it by hand)"; fi

clean:
	rm -rf bin dist
