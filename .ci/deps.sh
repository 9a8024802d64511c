#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks for vxlan6's tests, demo and
# benchmarks: apt packages, Go tools, container runtime pieces. Idempotent and
# quick when everything is present; `make deps` (and so `make test` and
# `make demo`) runs it. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
# CI may start without HOME; Go derives GOPATH and its caches from it.
export HOME="${HOME:-/root}"
export PATH="/usr/local/go/bin:$PATH"
export PATH="$(go env GOPATH)/bin:$PATH"

echo "== apt packages"
pkgs=(make iproute2 iputils-ping iperf3 iptables nftables procps psmisc kmod util-linux
      podman runc containerd busybox-static containernetworking-plugins
      systemd git radvd curl)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "== go tools"
gobin="$(go env GOPATH)/bin"
need() { [ -x "$gobin/$1" ] || go install "$2"; }
need cnitool     github.com/containernetworking/cni/cnitool@v1.3.0
need staticcheck honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Reference CNI plugins for the tests, in a directory of their own (never on
# PATH: their `bridge` would shadow iproute2's); a stale one in GOPATH/bin goes.
refbin=/opt/cni-ref/bin
needref() { [ -x "$refbin/$1" ] || GOBIN="$refbin" go install "$2"; }
needref bridge      github.com/containernetworking/plugins/plugins/main/bridge@v1.10.0
needref host-local  github.com/containernetworking/plugins/plugins/ipam/host-local@v1.10.0
needref portmap     github.com/containernetworking/plugins/plugins/meta/portmap@v1.10.0
needref bandwidth   github.com/containernetworking/plugins/plugins/meta/bandwidth@v1.10.0
needref tuning      github.com/containernetworking/plugins/plugins/meta/tuning@v1.10.0
rm -f "$gobin/bridge"
