#!/usr/bin/env bash
# testbed.sh — a multi-host vxlan6 lab on one machine, in network namespaces.
#
#   scripts/testbed.sh up     [-n N] [--dual-stack] [--prefix P] [--state-dir D]
#                             [--lease-ttl 30s] [--bin DIR] [--vtep-modes LIST]
#   scripts/testbed.sh down   [--prefix P] [--state-dir D]
#   scripts/testbed.sh status [--prefix P] [--state-dir D]
#   scripts/testbed.sh add-host [--vtep-mode M]      start one more host
#   scripts/testbed.sh remove-host HOST              kill its daemon, delete it
#   scripts/testbed.sh stop-daemon HOST | start-daemon HOST
#   scripts/testbed.sh stop-etcd | start-etcd
#   scripts/testbed.sh add-container HOST NAME       prints: NETNS IPV6 [IPV4]
#   scripts/testbed.sh del-container HOST NAME
#   scripts/testbed.sh vtep HOST                     prints the VTEP in use
#
# Every command except `up` finds the testbed by --prefix / --state-dir (or
# the PREFIX / STATE_DIR environment variables), so several testbeds with
# different prefixes can run side by side.
#
# Topology (all of it inside namespaces this script creates), the same as
# the Go tests' (internal/testbed/topology, built here by its command
# internal/testbed/cmd/topo, compiled into the state dir at `up`):
#
#   netns P-sw:  bridge br0 = the IPv6-only underlay "switch", with the router
#                address 2001:db8:1::1/64 (every host's default route)
#   netns P-hI:  host I. Uplink eth0 (veth pI to the switch) with TWO global
#                addresses, like real hosts often have (I in hex):
#                  2001:db8:1::I1/64  the lowest, which autodetection picks;
#                                     added last, so the kernel lists it first
#                  2001:db8:1::I2/64  the one operators name as VTEP
#                So a named ::I2 is neither "the first listed address" (the
#                flannel bug) nor what autodetection would have picked: a
#                host whose VTEP is ::I2 got it only because it was named.
#                vxlan6d runs here with its own subnet file; the
#                vxlan6 plugin's node bridge and the pods' veths land here.
#   etcd:        `vxlan6d etcd` on the unix socket STATE/etcd.sock, which every
#                namespace reaches (it is a file, not an address).
#
# VTEP choice per host, cycling through --vtep-modes (default
# public,iface,auto,annotation):
#   public      --public-ipv6 2001:db8:1::I2
#   iface       --iface 2001:db8:1::I2          (an address, not a name)
#   auto        nothing: the daemon picks (default-route interface)
#   annotation  `vxlan6d annotate hI vxlan6.io/public-ipv6=2001:db8:1::I2`
#               before the daemon starts
#
# State dir (default /tmp/vxlan6-testbed-P): testbed.env (what `down` needs), topo,
# etcd.{pid,log}, etcd.sock, and per host hI/: vxlan6d.{pid,log}, subnet.env,
# ipam/ (the plugin's dataDir), net.d/ (a cniVersion 1.1.0 conflist named
# "vxlan6"), vtep-mode, vtep-want.
#
# `up` cleans everything up again when it fails or is interrupted (trap on
# EXIT/INT/TERM/ERR); `down` is idempotent and also removes leftovers of a
# half-built testbed with the same prefix.
set -Eeuo pipefail
[ -z "${TESTBED_TRACE:-}" ] || { PS4='+ ${EPOCHREALTIME} '; set -x; }

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"

# The lab's hosts are namespaces on this machine: the machine's own env file
# (/etc/vxlan6/vxlan6d.env after make install or the .deb) names its etcd,
# TLS files and VTEP, none of them the lab's. No vxlan6d started here reads
# it; flags and VXLAN6D_* variables still apply.
export VXLAN6D_ENV_FILE="${VXLAN6D_ENV_FILE:-/dev/null}"

PREFIX="${PREFIX:-vx6}"
STATE_DIR="${STATE_DIR:-}"
HOSTS=3
DUAL=0
LEASE_TTL="${LEASE_TTL:-30s}"
BIN="${BIN:-$REPO/bin}"
VTEP_MODES="${VTEP_MODES:-public,iface,auto,annotation}"
ANNOTATION=vxlan6.io/public-ipv6
BRIDGE=vx6br0
QUIET="${QUIET:-0}"

log() { [ "$QUIET" = 1 ] || printf '%s testbed[%s]: %s\n' "$(date +%T)" "$PREFIX" "$*" >&2; }
die() { printf '%s testbed[%s]: ERROR: %s\n' "$(date +%T)" "$PREFIX" "$*" >&2; exit 1; }

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

# --- options -------------------------------------------------------------------
ARGS=()
VTEP_MODES_CLI=""
parse_opts() {
	while [ $# -gt 0 ]; do
		case "$1" in
		-n | --hosts | --prefix | --state-dir | --lease-ttl | --bin | --vtep-modes | --vtep-mode)
			[ $# -ge 2 ] || die "$1 needs a value" ;;
		esac
		case "$1" in
		-n | --hosts) HOSTS="$2"; shift 2 ;;
		--dual-stack) DUAL=1; shift ;;
		--prefix) PREFIX="$2"; shift 2 ;;
		--state-dir) STATE_DIR="$2"; shift 2 ;;
		--lease-ttl) LEASE_TTL="$2"; shift 2 ;;
		--bin) BIN="$2"; shift 2 ;;
		--vtep-modes | --vtep-mode) VTEP_MODES="$2"; VTEP_MODES_CLI="$2"; shift 2 ;;
		-q | --quiet) QUIET=1; shift ;;
		-h | --help) usage 0 ;;
		--*) die "unknown option $1" ;;
		*) ARGS+=("$1"); shift ;;
		esac
	done
	[[ "$PREFIX" =~ ^[a-z][a-z0-9]{0,7}$ ]] || die "--prefix '$PREFIX': want 1-8 lowercase letters/digits, starting with a letter"
	[[ "$HOSTS" =~ ^[1-9][0-9]?$ ]] || die "--hosts '$HOSTS': want 1..99"
	STATE_DIR="${STATE_DIR:-/tmp/vxlan6-testbed-$PREFIX}"
	ETCD_SOCK="$STATE_DIR/etcd.sock"
	ETCD_EP="unix://$ETCD_SOCK"
	TOPO="$STATE_DIR/topo"
}

load_state() {
	[ -f "$STATE_DIR/testbed.env" ] || die "no testbed at $STATE_DIR (run '$0 up --prefix $PREFIX' first)"
	# shellcheck disable=SC1091
	. "$STATE_DIR/testbed.env"
}

save_state() {
	cat >"$STATE_DIR/testbed.env" <<EOF
PREFIX=$PREFIX
DUAL=$DUAL
LEASE_TTL=$LEASE_TTL
BIN=$BIN
CNITOOL=$CNITOOL
VTEP_MODES=$VTEP_MODES
NEXT_HOST=$NEXT_HOST
EOF
}

# --- helpers -------------------------------------------------------------------
sw_ns() { echo "$PREFIX-sw"; }
host_ns() { echo "$PREFIX-$1"; } # $1 = hI
host_dir() { echo "$STATE_DIR/$1"; }
addr2() { "$TOPO" addr "$1" 2; } # $1 = I

vxlan6d() { "$BIN/vxlan6d" "$@" --etcd-endpoints "$ETCD_EP"; }

# Only kill what we started: the pid must still run the program we expect.
# term_pidfile sends SIGTERM and prints the pid; wait_gone waits for all of
# them together (a daemon takes ~2 s to stop; in series that adds up).
term_pidfile() { # pidfile expected-cmd-substring
	local f="$1" pid
	[ -f "$f" ] || return 0
	pid="$(cat "$f")"
	rm -f "$f"
	[ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2" || return 0
	kill -TERM "$pid" 2>/dev/null && echo "$pid"
	return 0
}

wait_gone() { # pid... : bounded (10 s), then SIGKILL
	local i pid left
	for i in $(seq 1 100); do
		left=""
		for pid in "$@"; do kill -0 "$pid" 2>/dev/null && left="$left $pid"; done
		[ -n "$left" ] || return 0
		sleep 0.1
	done
	# shellcheck disable=SC2086
	kill -KILL $left 2>/dev/null || true
}

kill_pidfile() { # pidfile expected-cmd-substring
	local pid
	pid="$(term_pidfile "$1" "$2")"
	[ -z "$pid" ] || wait_gone "$pid"
}

ns_exists() { [ -e "/var/run/netns/$1" ]; }

find_cnitool() {
	if [ -n "${CNITOOL:-}" ] && [ -x "$CNITOOL" ]; then return; fi
	CNITOOL="$(command -v cnitool 2>/dev/null || true)"
	[ -n "$CNITOOL" ] || CNITOOL="$HOME/go/bin/cnitool"
	[ -x "$CNITOOL" ] || CNITOOL=""
}

# --- etcd ----------------------------------------------------------------------
start_etcd() {
	rm -f "$ETCD_SOCK"
	# setsid: a Ctrl-C in the terminal must reach only this script (whose
	# trap tears down in order), and with KEEP the processes outlive it.
	setsid "$BIN/vxlan6d" etcd --data-dir "$STATE_DIR/etcd" --listen-client-urls "$ETCD_EP" \
		>>"$STATE_DIR/etcd.log" 2>&1 </dev/null &
	echo $! >"$STATE_DIR/etcd.pid"
	local i
	for i in $(seq 1 100); do
		[ -S "$ETCD_SOCK" ] && return 0
		kill -0 "$(cat "$STATE_DIR/etcd.pid")" 2>/dev/null || { tail -20 "$STATE_DIR/etcd.log" >&2; die "embedded etcd exited at start"; }
		sleep 0.1
	done
	die "embedded etcd did not create $ETCD_SOCK within 10s (log: $STATE_DIR/etcd.log)"
}

stop_etcd() { kill_pidfile "$STATE_DIR/etcd.pid" "vxlan6d etcd"; }

put_config() {
	local cfg="$STATE_DIR/network.json" i
	if [ "$DUAL" = 1 ]; then "$TOPO" config --dual >"$cfg"; else "$TOPO" config >"$cfg"; fi
	# The socket exists a moment before etcd serves on it: retry, bounded.
	for i in $(seq 1 20); do
		vxlan6d config put "$cfg" >/dev/null 2>"$STATE_DIR/config-put.err" && return 0
		sleep 0.25
	done
	cat "$STATE_DIR/config-put.err" >&2
	die "vxlan6d config put $cfg failed"
}

# --- switch and hosts (the topology is internal/testbed/topology's) -------------------
build_topo() { # the topology command, once per testbed
	(cd "$REPO" && "${GO:-go}" build -o "$TOPO" ./internal/testbed/cmd/topo) ||
		die "cannot build the topology command (internal/testbed/cmd/topo): Go is needed"
}

make_switch() { "$TOPO" switch "$(sw_ns)"; }

# make_host I MODE: the namespace, its uplink and addresses, its daemon.
make_host() {
	local i="$1" mode="$2" h="h$1" ns dir
	ns="$(host_ns "$h")"
	dir="$(host_dir "$h")"
	ns_exists "$ns" && die "netns $ns already exists (another testbed with prefix $PREFIX? '$0 down --prefix $PREFIX')"
	mkdir -p "$dir/ipam" "$dir/net.d"
	# --reverse: ::I1 is added last, so the kernel lists it first.
	"$TOPO" host "$(sw_ns)" "$ns" "$i" --reverse
	echo "$mode" >"$dir/vtep-mode"
	case "$mode" in
	public | iface | annotation) addr2 "$i" >"$dir/vtep-want" ;;
	auto) : >"$dir/vtep-want" ;;
	*) die "vtep mode '$mode': want public, iface, auto or annotation" ;;
	esac
	if [ "$mode" = annotation ]; then
		vxlan6d annotate "$h" "$ANNOTATION=$(addr2 "$i")" >/dev/null
	fi
	write_conflist "$h"
	start_daemon "$h"
}

write_conflist() {
	local h="$1" dir
	dir="$(host_dir "$h")"
	cat >"$dir/net.d/10-vxlan6.conflist" <<EOF
{
  "cniVersion": "1.1.0",
  "name": "vxlan6",
  "plugins": [
    {
      "type": "vxlan6",
      "subnetFile": "$dir/subnet.env",
      "dataDir": "$dir/ipam",
      "bridge": "$BRIDGE"
    }
  ]
}
EOF
}

daemon_flags() { # hI -> the VTEP flags of its mode
	local h="$1" i="${1#h}"
	case "$(cat "$(host_dir "$h")/vtep-mode")" in
	public) echo "--public-ipv6 $(addr2 "$i")" ;;
	iface) echo "--iface $(addr2 "$i")" ;;
	*) echo "" ;;
	esac
}

start_daemon() {
	local h="$1" dir ns
	dir="$(host_dir "$h")"
	ns="$(host_ns "$h")"
	ns_exists "$ns" || die "no host $h (netns $ns)"
	if [ -f "$dir/vxlan6d.pid" ] && kill -0 "$(cat "$dir/vxlan6d.pid")" 2>/dev/null; then
		die "vxlan6d on $h already runs (pid $(cat "$dir/vxlan6d.pid"))"
	fi
	# shellcheck disable=SC2046
	setsid ip netns exec "$ns" "$BIN/vxlan6d" run \
		--etcd-endpoints "$ETCD_EP" --node-name "$h" --subnet-file "$dir/subnet.env" --lease-file "$dir/lease.json" \
		--lease-ttl "$LEASE_TTL" $(daemon_flags "$h") \
		>>"$dir/vxlan6d.log" 2>&1 </dev/null &
	echo $! >"$dir/vxlan6d.pid"
}

stop_daemon() { kill_pidfile "$(host_dir "$1")/vxlan6d.pid" "vxlan6d run"; }

wait_subnet_file() { # hI...
	local h i dir
	for h in "$@"; do
		dir="$(host_dir "$h")"
		for i in $(seq 1 150); do
			grep -q '^VXLAN6_VTEP=' "$dir/subnet.env" 2>/dev/null && break
			if ! kill -0 "$(cat "$dir/vxlan6d.pid" 2>/dev/null || echo 0)" 2>/dev/null; then
				tail -20 "$dir/vxlan6d.log" >&2
				die "vxlan6d on $h exited (log: $dir/vxlan6d.log)"
			fi
			sleep 0.1
		done
		grep -q '^VXLAN6_VTEP=' "$dir/subnet.env" 2>/dev/null ||
			{ tail -20 "$dir/vxlan6d.log" >&2; die "no subnet file from vxlan6d on $h within 15s ($dir/subnet.env)"; }
	done
}

subnet_key() { # hI KEY
	sed -n "s/^$2=//p" "$(host_dir "$1")/subnet.env" 2>/dev/null | head -1
}

hosts() { # the live hosts, in order
	local d
	for d in "$STATE_DIR"/h*/; do
		[ -d "$d" ] || continue
		d="$(basename "$d")"
		ns_exists "$(host_ns "$d")" && echo "$d"
	done | sort -V
}

check_vteps() { # every host whose VTEP was named uses exactly that address
	local h want got
	for h in "$@"; do
		want="$(cat "$(host_dir "$h")/vtep-want")"
		got="$(subnet_key "$h" VXLAN6_VTEP)"
		[ -z "$want" ] || [ "$want" = "$got" ] ||
			die "$h: VTEP is $got, but the operator named $want ($(cat "$(host_dir "$h")/vtep-mode"))"
	done
}

# --- containers (cnitool) ------------------------------------------------------
container_ns() { echo "$PREFIX-$1-$2"; }

add_container() {
	local h="$1" c="$2" cns dir
	[[ "$c" =~ ^[a-z0-9]{1,12}$ ]] || die "container name '$c': want 1-12 lowercase letters/digits"
	cns="$(container_ns "$h" "$c")"
	dir="$(host_dir "$h")"
	[ -n "$CNITOOL" ] || die "cnitool not found: go install github.com/containernetworking/cni/cnitool@v1.3.0"
	ns_exists "$(host_ns "$h")" || die "no host $h"
	ns_exists "$cns" && die "container $c on $h already exists"
	ip netns add "$cns"
	ip -n "$cns" link set lo up
	if ! ip netns exec "$(host_ns "$h")" env CNI_PATH="$BIN" NETCONFPATH="$dir/net.d" \
		"$CNITOOL" add vxlan6 "/var/run/netns/$cns" >"$dir/cni-$c.json" 2>"$dir/cni-$c.err"; then
		ip netns del "$cns" 2>/dev/null || true
		cat "$dir/cni-$c.err" "$dir/cni-$c.json" >&2
		die "cnitool add for container $c on $h failed"
	fi
	local a6 a4
	a6="$(ip -n "$cns" -6 -o addr show dev eth0 scope global | awk '{print $4}' | cut -d/ -f1 | head -1)"
	a4="$(ip -n "$cns" -4 -o addr show dev eth0 scope global | awk '{print $4}' | cut -d/ -f1 | head -1)"
	echo "$cns $a6${a4:+ $a4}"
}

del_container() {
	local h="$1" c="$2" cns dir
	cns="$(container_ns "$h" "$c")"
	dir="$(host_dir "$h")"
	if ns_exists "$cns" && ns_exists "$(host_ns "$h")" && [ -n "$CNITOOL" ]; then
		ip netns exec "$(host_ns "$h")" env CNI_PATH="$BIN" NETCONFPATH="$dir/net.d" \
			"$CNITOOL" del vxlan6 "/var/run/netns/$cns" >/dev/null 2>&1 ||
			log "cnitool del for $c on $h failed (continuing)"
	fi
	ip netns del "$cns" 2>/dev/null || true
	rm -f "$dir/cni-$c.json" "$dir/cni-$c.err"
}

containers_of() { # hI -> container names
	ip netns list | awk '{print $1}' | sed -n "s/^$PREFIX-$1-\([a-z0-9]*\)\$/\1/p" | sort -V
}

# --- down ------------------------------------------------------------------------
remove_host() { # hI... : containers first (DEL needs the host), daemons together
	local h c pid pids=""
	for h in "$@"; do
		for c in $(containers_of "$h"); do del_container "$h" "$c"; done
		pids="$pids $(term_pidfile "$(host_dir "$h")/vxlan6d.pid" "vxlan6d run")"
	done
	# shellcheck disable=SC2086
	wait_gone $pids
	for h in "$@"; do
		# Anything else we started in there (a runtime, a ping) goes with it.
		for pid in $(ip netns pids "$(host_ns "$h")" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
		# Deleting the host's netns deletes its uplink veth, switch end too.
		ip netns del "$(host_ns "$h")" 2>/dev/null || true
	done
}

down() {
	set +e
	local ns pid
	# shellcheck disable=SC1091
	[ -f "$STATE_DIR/testbed.env" ] && . "$STATE_DIR/testbed.env"
	find_cnitool
	# shellcheck disable=SC2046
	remove_host $(ls -d "$STATE_DIR"/h*/ 2>/dev/null | xargs -r -n1 basename)
	# Namespaces of a half-built testbed whose state was lost.
	for ns in $(ip netns list | awk '{print $1}' | grep -E "^$PREFIX-(sw|h[0-9]+(-[a-z0-9]+)?)\$"); do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	stop_etcd
	case "$STATE_DIR" in
	/tmp/vxlan6-testbed-*) rm -rf "$STATE_DIR" ;;
	*) [ -f "$STATE_DIR/testbed.env" ] && rm -rf "$STATE_DIR" ;;
	esac
	set -e
}

# --- status ------------------------------------------------------------------------
status() {
	local h mode want got chosen
	printf '%-4s %-11s %-20s %-4s %-22s %-16s %s\n' HOST MODE VTEP "OP?" "IPV6 SUBNET" "IPV4 SUBNET" DAEMON
	for h in $(hosts); do
		mode="$(cat "$(host_dir "$h")/vtep-mode")"
		want="$(cat "$(host_dir "$h")/vtep-want")"
		got="$(subnet_key "$h" VXLAN6_VTEP)"
		if [ -z "$want" ]; then chosen=auto; elif [ "$want" = "$got" ]; then chosen=yes; else chosen="NO(want $want)"; fi
		local alive=down
		kill -0 "$(cat "$(host_dir "$h")/vxlan6d.pid" 2>/dev/null || echo 0)" 2>/dev/null && alive="pid $(cat "$(host_dir "$h")/vxlan6d.pid")"
		printf '%-4s %-11s %-20s %-4s %-22s %-16s %s\n' "$h" "$mode" "${got:--}" "$chosen" \
			"$(subnet_key "$h" VXLAN6_SUBNET_V6)" "$(subnet_key "$h" VXLAN6_SUBNET_V4)" "$alive"
	done
}

# --- up ----------------------------------------------------------------------------
UP_DONE=0
up_cleanup() {
	local rc=$?
	trap - EXIT INT TERM ERR
	if [ "$UP_DONE" != 1 ]; then
		printf '%s testbed[%s]: up failed or interrupted: tearing down\n' "$(date +%T)" "$PREFIX" >&2
		down
		[ "$rc" = 0 ] && rc=1
	fi
	exit "$rc"
}

mode_of() { # I -> the I-th entry of VTEP_MODES, cycling
	local -a m
	IFS=, read -r -a m <<<"$VTEP_MODES"
	echo "${m[$((($1 - 1) % ${#m[@]}))]}"
}

up() {
	[ "$(id -u)" = 0 ] || die "must run as root (creates network namespaces)"
	# vxlan6d-etcd: what `vxlan6d etcd` runs.
	for b in vxlan6 vxlan6d vxlan6d-etcd; do
		[ -x "$BIN/$b" ] || die "$BIN/$b missing: run 'make build' (or pass --bin DIR)"
	done
	command -v ip >/dev/null || die "iproute2 (ip) not found"
	find_cnitool
	if [ -e "$STATE_DIR/testbed.env" ] || ns_exists "$(sw_ns)"; then
		die "a testbed with prefix $PREFIX exists ($STATE_DIR); '$0 down --prefix $PREFIX' first, or pick another --prefix"
	fi
	# set -e already turns a failed command into an exit (and so into the
	# EXIT trap); the ERR trap says so explicitly, keeping the status.
	trap up_cleanup EXIT
	trap 'exit $?' ERR
	trap 'exit 130' INT
	trap 'exit 143' TERM
	mkdir -p "$STATE_DIR"
	NEXT_HOST=1
	save_state
	build_topo
	log "underlay switch $(sw_ns), etcd on $ETCD_SOCK"
	make_switch
	start_etcd
	put_config
	local i hs=()
	for i in $(seq 1 "$HOSTS"); do
		make_host "$i" "$(mode_of "$i")"
		hs+=("h$i")
		NEXT_HOST=$((i + 1))
		save_state
	done
	wait_subnet_file "${hs[@]}"
	check_vteps "${hs[@]}"
	UP_DONE=1
	trap - EXIT INT TERM ERR
	log "up: ${#hs[@]} hosts$([ "$DUAL" = 1 ] && echo ', dual-stack'), state in $STATE_DIR"
	[ "$QUIET" = 1 ] || status >&2
}

add_host() {
	load_state
	find_cnitool
	local i="$NEXT_HOST" mode
	mode="${VTEP_MODES_CLI:-$(mode_of "$i")}"
	# Same rule as up: a failed add leaves no half host behind.
	trap 'rc=$?; trap - EXIT; [ $rc = 0 ] || { remove_host "h'"$i"'"; rm -rf "$STATE_DIR/h'"$i"'"; }; exit $rc' EXIT
	trap 'exit $?' ERR
	trap 'exit 130' INT
	trap 'exit 143' TERM
	make_host "$i" "$mode"
	NEXT_HOST=$((i + 1))
	save_state
	wait_subnet_file "h$i"
	check_vteps "h$i"
	trap - EXIT INT TERM ERR
	echo "h$i"
}

# --- main --------------------------------------------------------------------------
[ $# -ge 1 ] || usage
CMD="$1"
shift
parse_opts "$@"
set -- ${ARGS[@]+"${ARGS[@]}"}
CNITOOL="${CNITOOL:-}"
case "$CMD" in
up) up ;;
down) down; log "down" ;;
status) load_state; status ;;
add-host) [ $# = 0 ] || usage; add_host ;;
remove-host) [ $# = 1 ] || usage; load_state; find_cnitool; remove_host "$1"; rm -rf "${STATE_DIR:?}/$1" ;;
stop-daemon) [ $# = 1 ] || usage; load_state; stop_daemon "$1" ;;
start-daemon) [ $# = 1 ] || usage; load_state; start_daemon "$1"; wait_subnet_file "$1" ;;
stop-etcd) load_state; stop_etcd ;;
start-etcd) load_state; start_etcd ;;
add-container) [ $# = 2 ] || usage; load_state; find_cnitool; add_container "$1" "$2" ;;
del-container) [ $# = 2 ] || usage; load_state; find_cnitool; del_container "$1" "$2" ;;
vtep) [ $# = 1 ] || usage; load_state; subnet_key "$1" VXLAN6_VTEP ;;
*) echo "testbed.sh: unknown command '$CMD'" >&2; usage >&2 ;;
esac
