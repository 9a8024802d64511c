#!/usr/bin/env bash
# runtimes-setup.sh — prepare the real container runtimes the e2e tests drive
# (Podman 4.3 with its CNI backend, containerd 1.6 + nerdctl v1.7.7) on a
# machine without a registry and without systemd. Idempotent: CI calls it once
# per run, a rerun only checks what is there (seconds), and the e2e tests call
# it themselves when its output is missing.
#
#   scripts/runtimes-setup.sh [all|image|podman|containerd|nerdctl|verify|env]
#
#   all (default)  image + podman + containerd + nerdctl
#   verify         run one container with each runtime in a throwaway network
#                  namespace, wired by the reference bridge + host-local
#                  plugins, and ping it: proves the runtime itself works here
#   env            print the env file (paths the tests read)
#
# Needs (Debian 12): apt-get install -y podman runc containerd busybox-static
# (+ golang >= 1.21 and network access to the Go module proxy, once, for
# nerdctl). Runs as root.
#
# Output, under $VXLAN6_RT_DIR (default /var/lib/vxlan6-rt):
#   env                      shell-sourceable KEY=VALUE: every path below
#   image/rootfs.tar         busybox-static rootfs
#   image/box.oci.tar        the same image as an OCI archive (for containerd)
#   podman/storage.conf      CONTAINERS_STORAGE_CONF: own graphroot/runroot,
#                            holding the imported image
#   podman/containers.conf   CONTAINERS_CONF for `verify`; tests write their
#                            own with their CNI dirs and the same [engine] part
#   containerd/config.toml   containerd with its own root/state/socket; NOT
#                            left running: whoever uses it starts it (the e2e
#                            tests start it inside a testbed host's netns)
# and the nerdctl binary, cached in $VXLAN6_CACHE_DIR (default
# /var/cache/vxlan6-ci) so reruns skip the ~2 min build.
#
# Traps seen on this machine (see also /work/shared/RUNTIMES.md):
# - cgroups are hybrid (v1 controllers + a cgroup2 mount): crun refuses to
#   run, runc works -> runtime = "runc", cgroup_manager = "cgroupfs".
# - root lacks CAP_SYS_RESOURCE and the hard nofile limit is 20000: Podman's
#   default ulimits (nofile 1048576) make runc fail at start; nproc must also
#   be <= 32768 because Podman lowers its own limit to that first.
# - no journald: events_logger and log_driver must be file based, or every
#   `podman run` warns / fails to log.
# - `ip netns exec NS podman ...` remounts /sys for NS, hiding the cgroup
#   mounts: runc then fails with "no cgroup mount found in mountinfo". Use
#   `nsenter --net=/var/run/netns/NS podman ...`.
# - Without a [network] section Podman searches /usr/lib/cni (Debian's old
#   plugins) BEFORE /opt/cni/bin, and reads /etc/cni/net.d, where the package
#   ships 87-podman-bridge.conflist: always set cni_plugin_dirs and
#   network_config_dir.
# - Podman 4.3 refuses a 1.1.0 CNI result; nerdctl v1.7.7 too: conflists for
#   both say cniVersion 1.0.0.
# - containerd runs the CNI plugins from nerdctl's OCI hook, which runc starts
#   from the shim, i.e. in containerd's own network namespace: to wire a
#   container on a testbed "host", containerd itself must be started inside
#   that host's namespace (nsenter --net=...), not just nerdctl.
# - `ctr images import` of Podman's oci-archive keeps the name Podman gave
#   it (localhost/...): nerdctl then finds it without any registry lookup.
# - nerdctl@latest is refused by the module proxy (replace directives); a
#   pinned version in a scratch module builds (~2 min on 2 cores).
set -euo pipefail

RT="${VXLAN6_RT_DIR:-/var/lib/vxlan6-rt}"
CACHE="${VXLAN6_CACHE_DIR:-/var/cache/vxlan6-ci}"
IMAGE="${VXLAN6_IMAGE:-localhost/vxlan6-box:latest}"
NERDCTL_VERSION="${NERDCTL_VERSION:-v1.7.7}"
CTR_NS="${VXLAN6_CTR_NAMESPACE:-vxlan6}"
# containerd's runtime state (sockets, shims) lives on tmpfs-like /run so a
# reboot cannot leave a stale socket that looks alive.
CTRD_STATE="${VXLAN6_CONTAINERD_STATE:-/run/vxlan6-containerd}"

# overlayfs cannot sit on overlayfs (e.g. when this machine is itself a
# container): fall back to the copying drivers there.
fs_type() { mkdir -p "$1" && stat -f -c %T "$1"; }
if [ "$(fs_type "$RT")" = overlayfs ]; then
	STORAGE_DRIVER="${VXLAN6_STORAGE_DRIVER:-vfs}"
	SNAPSHOTTER="${VXLAN6_SNAPSHOTTER:-native}"
else
	STORAGE_DRIVER="${VXLAN6_STORAGE_DRIVER:-overlay}"
	SNAPSHOTTER="${VXLAN6_SNAPSHOTTER:-overlayfs}"
fi

log() { printf '%s runtimes-setup: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || die "$c not found (apt-get install -y podman runc containerd busybox-static)"
	done
}

[ "$(id -u)" = 0 ] || die "must run as root"

write_if_changed() { # path; content on stdin. Keeps mtimes stable on reruns.
	local tmp
	tmp="$(mktemp "$1.XXXXXX")"
	cat >"$tmp"
	if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

podman_env() {
	export CONTAINERS_CONF="$RT/podman/containers.conf"
	export CONTAINERS_STORAGE_CONF="$RT/podman/storage.conf"
	# registries.conf is only consulted for short names; ours are qualified.
}

# --- image: busybox-static rootfs ------------------------------------------
setup_image() {
	need busybox tar
	mkdir -p "$RT/image"
	[ -s "$RT/image/rootfs.tar" ] && return 0
	local bb root
	bb="$(command -v busybox)"
	# Debian's /bin/busybox from busybox-static is static; the dynamic
	# "busybox" package would need libc in the image.
	if file -L "$bb" 2>/dev/null | grep -q dynamically; then
		die "$bb is dynamically linked: apt-get install -y busybox-static"
	fi
	root="$(mktemp -d)"
	# shellcheck disable=SC2064
	trap "rm -rf '$root'" RETURN
	mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev,root,run,var}
	chmod 1777 "$root/tmp"
	cp "$bb" "$root/bin/busybox"
	local a
	for a in $("$root/bin/busybox" --list); do
		[ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"
	done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
	echo 'root:x:0:' >"$root/etc/group"
	: >"$root/etc/hosts"
	: >"$root/etc/resolv.conf"
	tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$RT/image/rootfs.tar.tmp" .
	mv "$RT/image/rootfs.tar.tmp" "$RT/image/rootfs.tar"
	log "built busybox rootfs $RT/image/rootfs.tar"
}

# --- Podman -------------------------------------------------------------------
# The [containers]/[engine] parts the tests must copy into their own
# containers.conf; printed by `podman_engine_conf` so there is one source.
podman_engine_conf() {
	cat <<'EOF'
[containers]
# Hard nofile limit here is 20000 and root cannot raise it (no
# CAP_SYS_RESOURCE); nproc must stay <= 32768 (Podman lowers itself to that).
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
EOF
}

setup_podman() {
	need podman runc
	setup_image
	mkdir -p "$RT/podman"/{graphroot,cni-bin,net.d,tmp}
	write_if_changed "$RT/podman/storage.conf" <<EOF
[storage]
driver = "$STORAGE_DRIVER"
graphroot = "$RT/podman/graphroot"
runroot = "/run/vxlan6-podman"
EOF
	{
		podman_engine_conf
		cat <<EOF
tmp_dir = "$RT/podman/tmp"

[network]
network_backend = "cni"
cni_plugin_dirs = ["$RT/podman/cni-bin"]
network_config_dir = "$RT/podman/net.d"
EOF
	} | write_if_changed "$RT/podman/containers.conf"
	podman_env
	if ! podman image exists "$IMAGE" 2>/dev/null; then
		podman import --change 'CMD ["/bin/sh"]' "$RT/image/rootfs.tar" "$IMAGE" >/dev/null
		log "imported $IMAGE into Podman ($RT/podman/graphroot)"
	fi
	if [ ! -s "$RT/image/box.oci.tar" ]; then
		rm -f "$RT/image/box.oci.tar.tmp"
		podman save --format oci-archive -o "$RT/image/box.oci.tar.tmp" "$IMAGE" >/dev/null
		mv "$RT/image/box.oci.tar.tmp" "$RT/image/box.oci.tar"
		log "saved $IMAGE as $RT/image/box.oci.tar"
	fi
}

# --- containerd -----------------------------------------------------------------
ctrd_sock() { echo "$CTRD_STATE/containerd.sock"; }

write_containerd_config() { # state dir -> config on stdout
	cat <<EOF
version = 2
root = "$RT/containerd/root"
state = "$1"
# CRI is for Kubernetes; without it containerd needs no CNI config of its own.
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$1/containerd.sock"
[ttrpc]
  address = "$1/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
EOF
}

# start_containerd CONFIG SOCK LOG: in the current netns, backgrounded;
# prints the pid. Waits (bounded) until the socket answers.
start_containerd() {
	local cfg="$1" sock="$2" logf="$3" pid i
	containerd --config "$cfg" >"$logf" 2>&1 &
	pid=$!
	for i in $(seq 1 100); do
		if ctr -a "$sock" version >/dev/null 2>&1; then
			echo "$pid"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || { cat "$logf" >&2; die "containerd exited at start"; }
		sleep 0.1
	done
	kill "$pid" 2>/dev/null || true
	cat "$logf" >&2
	die "containerd did not answer on $sock within 10s"
}

stop_containerd() { # pid
	local pid="$1" i
	kill "$pid" 2>/dev/null || return 0
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
}

setup_containerd() {
	need containerd ctr containerd-shim-runc-v2 runc
	setup_podman # the OCI archive comes from Podman
	mkdir -p "$RT/containerd/root"
	write_containerd_config "$CTRD_STATE" | write_if_changed "$RT/containerd/config.toml"
	local marker="$RT/containerd/.imported-$(sha256sum "$RT/image/box.oci.tar" | cut -c1-16)"
	[ -f "$marker" ] && return 0
	# A containerd left from a previous run on the same root holds the bolt
	# lock; it must not be running while we import.
	if ctr -a "$(ctrd_sock)" version >/dev/null 2>&1; then
		die "a containerd already serves $(ctrd_sock); stop it first"
	fi
	mkdir -p "$CTRD_STATE"
	local pid
	pid="$(start_containerd "$RT/containerd/config.toml" "$(ctrd_sock)" "$RT/containerd/setup.log")"
	if ! ctr -a "$(ctrd_sock)" -n "$CTR_NS" images import --snapshotter "$SNAPSHOTTER" "$RT/image/box.oci.tar" >&2; then
		stop_containerd "$pid"
		die "ctr images import $RT/image/box.oci.tar failed"
	fi
	ctr -a "$(ctrd_sock)" -n "$CTR_NS" images ls -q | grep -qx "$IMAGE" || {
		ctr -a "$(ctrd_sock)" -n "$CTR_NS" images ls >&2
		stop_containerd "$pid"
		die "image $IMAGE not found in containerd after import"
	}
	stop_containerd "$pid"
	touch "$marker"
	log "imported $IMAGE into containerd (root $RT/containerd/root, namespace $CTR_NS)"
}

# --- nerdctl --------------------------------------------------------------------
nerdctl_bin() { echo "$CACHE/nerdctl-$NERDCTL_VERSION"; }

setup_nerdctl() {
	local out
	out="$(nerdctl_bin)"
	if [ -x "$out" ] && "$out" --version >/dev/null 2>&1; then return 0; fi
	need go
	mkdir -p "$CACHE/nerdctl-build-$NERDCTL_VERSION"
	log "building nerdctl $NERDCTL_VERSION from the Go module proxy (~2 min on 2 cores)"
	(
		cd "$CACHE/nerdctl-build-$NERDCTL_VERSION"
		# A scratch module: the project's go.mod must not grow nerdctl's deps.
		[ -f go.mod ] || go mod init vxlan6-nerdctl-build >/dev/null 2>&1
		GOFLAGS=-mod=mod go get "github.com/containerd/nerdctl/cmd/nerdctl@$NERDCTL_VERSION"
		CGO_ENABLED=0 go build -trimpath -o "$out.tmp" github.com/containerd/nerdctl/cmd/nerdctl
	) >&2 || die "building nerdctl $NERDCTL_VERSION failed"
	mv "$out.tmp" "$out"
	log "nerdctl at $out"
}

# nerdctl v1.7.7 creates its default network (nerdctl-bridge.conflist) in the
# conf dir on every run and refuses to start a container unless bridge,
# portmap, firewall and tuning are in its CNI_PATH, even when the container
# uses another network. vxlan6 needs none of them: link them from wherever
# they are into cni-extra/, which tests add to nerdctl's bin dir next to
# vxlan6. Debian's containernetworking-plugins has them all in /usr/lib/cni,
# but podman only pulls it in as one of two providers of
# container-network-stack (netavark is the other), so build what is missing
# (pinned to the project's plugins version) into the cache.
CNI_PLUGINS_VERSION="${CNI_PLUGINS_VERSION:-v1.10.0}"
setup_cni_extra() {
	mkdir -p "$RT/cni-extra"
	local p d found pkg
	for p in bridge portmap firewall tuning host-local loopback; do
		found=""
		for d in /usr/lib/cni /opt/cni/bin /opt/cni-ref/bin "$CACHE/cni-plugins-$CNI_PLUGINS_VERSION"; do
			if [ -x "$d/$p" ] && [ ! -d "$d/$p" ]; then found="$d/$p"; break; fi
		done
		if [ -z "$found" ]; then
			case "$p" in
			bridge | loopback) pkg=main/$p ;;
			host-local) pkg=ipam/$p ;;
			*) pkg=meta/$p ;;
			esac
			need go
			log "building CNI plugin $p $CNI_PLUGINS_VERSION (nerdctl insists on it)"
			mkdir -p "$CACHE/cni-plugins-$CNI_PLUGINS_VERSION"
			GOBIN="$CACHE/cni-plugins-$CNI_PLUGINS_VERSION" CGO_ENABLED=0 \
				go install "github.com/containernetworking/plugins/plugins/$pkg@$CNI_PLUGINS_VERSION" >&2 ||
				die "go install of CNI plugin $p failed (or: apt-get install -y containernetworking-plugins)"
			found="$CACHE/cni-plugins-$CNI_PLUGINS_VERSION/$p"
		fi
		ln -sfn "$found" "$RT/cni-extra/$p"
	done
}

# --- env file ---------------------------------------------------------------------
write_env() {
	mkdir -p "$RT"
	{
		echo "# written by scripts/runtimes-setup.sh; read by e2e tests"
		echo "VXLAN6_RT_DIR=$RT"
		echo "VXLAN6_IMAGE=$IMAGE"
		echo "VXLAN6_ROOTFS_TAR=$RT/image/rootfs.tar"
		echo "VXLAN6_OCI_ARCHIVE=$RT/image/box.oci.tar"
		if [ -f "$RT/podman/storage.conf" ]; then
			echo "VXLAN6_PODMAN_STORAGE_CONF=$RT/podman/storage.conf"
			echo "VXLAN6_PODMAN_CONTAINERS_CONF=$RT/podman/containers.conf"
		fi
		if compgen -G "$RT/containerd/.imported-*" >/dev/null; then
			echo "VXLAN6_CONTAINERD_ROOT=$RT/containerd/root"
			echo "VXLAN6_CONTAINERD_NAMESPACE=$CTR_NS"
			echo "VXLAN6_SNAPSHOTTER=$SNAPSHOTTER"
		fi
		if [ -x "$(nerdctl_bin)" ]; then
			echo "VXLAN6_NERDCTL=$(nerdctl_bin)"
			echo "VXLAN6_CNI_EXTRA=$RT/cni-extra"
		fi
	} | write_if_changed "$RT/env"
}

# The bridge's gateway address is tentative (DAD) for ~1-2 s after ADD: the
# first pings fail with "Address not available", so retry, bounded.
ping_ns() { # netns addr
	local i
	for i in $(seq 1 10); do
		ip netns exec "$1" ping -6 -c1 -W1 "$2" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	return 1
}

# --- verify: each runtime really runs a container here ------------------------------
# Reference plugins stand in for vxlan6: this checks the runtime, not vxlan6.
verify() {
	local plugins="${CNI_REF_PLUGINS:-/opt/cni-ref/bin}"
	[ -x "$plugins/bridge" ] && [ -x "$plugins/host-local" ] || die "reference bridge/host-local plugins not in $plugins (set CNI_REF_PLUGINS)"
	# Globals, not locals: the EXIT trap runs after verify has returned.
	ns="vx6rtv$$"
	work="$(mktemp -d /tmp/vx6rtv.XXXXXX)"
	ctrd_pid=""
	local rc=0
	cleanup_verify() {
		set +e
		if [ -n "${ctrd_pid:-}" ]; then
			NERDCTL_TOML="$work/nerdctl.toml" "$(nerdctl_bin)" rm -f vx6v-nerd >/dev/null 2>&1
			stop_containerd "$ctrd_pid"
		fi
		(podman_env; export CONTAINERS_CONF="$work/containers.conf"
		 nsenter --net="/var/run/netns/$ns" podman rm -f -t 0 vx6v-pod >/dev/null 2>&1)
		ip netns del "$ns" 2>/dev/null
		rm -rf "$work" "/run/vx6rtv-ctrd-$$"
	}
	# EXIT, not RETURN: die() exits and must not leave containerd running.
	[ -n "${VERIFY_KEEP:-}" ] || trap cleanup_verify EXIT
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	mkdir -p "$work/bin" "$work/net.d" "$work/ipam"
	cp "$plugins/bridge" "$plugins/host-local" "$work/bin/"
	cp -P "$RT/cni-extra/"* "$work/bin/" 2>/dev/null || true
	cat >"$work/net.d/10-vx6verify.conflist" <<EOF
{"cniVersion":"1.0.0","name":"vx6verify","plugins":[{"type":"bridge","bridge":"vx6vbr0","isGateway":true,
 "ipam":{"type":"host-local","dataDir":"$work/ipam","ranges":[[{"subnet":"fd00:99::/64"}]]}}]}
EOF
	# Podman
	podman_env
	{
		podman_engine_conf
		printf '[network]\nnetwork_backend = "cni"\ncni_plugin_dirs = ["%s"]\nnetwork_config_dir = "%s"\n' "$work/bin" "$work/net.d"
	} >"$work/containers.conf"
	local addr
	addr="$(CONTAINERS_CONF="$work/containers.conf" nsenter --net="/var/run/netns/$ns" \
		podman run -d --name vx6v-pod --network vx6verify "$IMAGE" sleep 60 >/dev/null &&
		CONTAINERS_CONF="$work/containers.conf" nsenter --net="/var/run/netns/$ns" \
			podman inspect vx6v-pod --format '{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}{{end}}')" ||
		die "podman run in netns $ns failed"
	ping_ns "$ns" "$addr" || { log "podman: container $addr unreachable"; rc=1; }
	CONTAINERS_CONF="$work/containers.conf" nsenter --net="/var/run/netns/$ns" podman rm -f -t 0 vx6v-pod >/dev/null
	log "podman: ran a container at $addr in netns $ns, pinged it, removed it"

	# containerd + nerdctl, containerd inside the netns (see the trap above).
	local st="/run/vx6rtv-ctrd-$$"
	mkdir -p "$st"
	write_containerd_config "$st" >"$work/containerd.toml"
	ctrd_pid="$(nsenter --net="/var/run/netns/$ns" bash -c "$(declare -f start_containerd die log); start_containerd '$work/containerd.toml' '$st/containerd.sock' '$work/containerd.log'")"
	cat >"$work/nerdctl.toml" <<EOF
address = "$st/containerd.sock"
namespace = "$CTR_NS"
data_root = "$work/nerdctl"
cni_path = "$work/bin"
cni_netconfpath = "$work/net.d"
cgroup_manager = "cgroupfs"
snapshotter = "$SNAPSHOTTER"
EOF
	export NERDCTL_TOML="$work/nerdctl.toml"
	"$(nerdctl_bin)" run -d --name vx6v-nerd --net vx6verify "$IMAGE" sleep 60 >/dev/null ||
		die "nerdctl run failed (containerd log: $work/containerd.log)"
	addr="$("$(nerdctl_bin)" exec vx6v-nerd ip -6 -o addr show dev eth0 scope global | awk '{print $4}' | cut -d/ -f1)"
	ping_ns "$ns" "$addr" || { log "nerdctl: container $addr unreachable"; rc=1; }
	"$(nerdctl_bin)" rm -f vx6v-nerd >/dev/null
	log "nerdctl: ran a container at $addr in netns $ns, pinged it, removed it"
	left="$(ls "$work/ipam/vx6verify" 2>/dev/null | grep -v -e lock -e last_reserved || true)"
	[ -z "$left" ] || { log "addresses still reserved after rm: $left"; rc=1; }
	return $rc
}

cmd="${1:-all}"
case "$cmd" in
all)
	setup_image
	setup_podman
	setup_containerd
	setup_nerdctl
	setup_cni_extra
	write_env
	log "ready: $RT/env"
	;;
image) setup_image; write_env ;;
podman) setup_podman; write_env ;;
containerd) setup_containerd; write_env ;;
nerdctl) setup_nerdctl; setup_cni_extra; write_env ;;
env) write_env; cat "$RT/env" ;;
verify) verify ;;
*) die "unknown command $cmd (all|image|podman|containerd|nerdctl|verify|env)" ;;
esac
