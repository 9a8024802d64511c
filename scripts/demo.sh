#!/usr/bin/env bash
# demo.sh — vxlan6 across three "hosts" on one machine, in one command.
#
#   make demo                  (as root; = make build + scripts/demo.sh)
#   KEEP=1 make demo           leave it running afterwards, to poke at it
#   DUAL=1 make demo           dual-stack pods (IPv4 too) over the IPv6 underlay
#   HOSTS=4 CONTAINERS=3 make demo
#
# Brings up HOSTS (3) hosts as network namespaces on an IPv6-only underlay
# (scripts/testbed.sh), starts CONTAINERS (2) containers on each with cnitool
# and the vxlan6 plugin, pings every container from every other one, and
# prints who is who plus a reachability matrix. Exits non-zero if any pair is
# unreachable or a host tunnels from another address than the one its
# operator named. Tears everything down unless KEEP=1.
set -Eeuo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
TESTBED="$SCRIPT_DIR/testbed.sh"

# The lab's hosts are namespaces on this machine: the machine's own env file
# (/etc/vxlan6/vxlan6d.env after make install or the .deb) names its etcd,
# TLS files and VTEP, none of them the lab's. No vxlan6d started here reads
# it; flags and VXLAN6D_* variables still apply.
export VXLAN6D_ENV_FILE="${VXLAN6D_ENV_FILE:-/dev/null}"

KEEP="${KEEP:-0}"
DUAL="${DUAL:-0}"
HOSTS="${HOSTS:-3}"
CONTAINERS="${CONTAINERS:-2}"
BIN="${BIN:-$REPO/bin}"
export PREFIX="${PREFIX:-vx6demo}"
export STATE_DIR="${STATE_DIR:-/tmp/vxlan6-testbed-$PREFIX}"
START=$SECONDS

say() { printf '%s\n' "$*"; }
die() { printf 'demo: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: the demo creates network namespaces (sudo make demo)"
[[ "$CONTAINERS" =~ ^[1-9]$ ]] || die "CONTAINERS=$CONTAINERS: want 1..9"

# --- what it needs --------------------------------------------------------------
if [ ! -x "$BIN/vxlan6" ] || [ ! -x "$BIN/vxlan6d" ] || [ ! -x "$BIN/vxlan6d-etcd" ]; then
	say "building bin/vxlan6, bin/vxlan6d and bin/vxlan6d-etcd ..."
	make -C "$REPO" build >/dev/null
fi
if [ -z "${CNITOOL:-}" ]; then
	CNITOOL="$(command -v cnitool 2>/dev/null || true)"
	[ -n "$CNITOOL" ] || CNITOOL="$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin/cnitool"
	if [ ! -x "$CNITOOL" ]; then
		say "installing cnitool (go install github.com/containernetworking/cni/cnitool@v1.3.0) ..."
		go install github.com/containernetworking/cni/cnitool@v1.3.0
	fi
fi
export CNITOOL BIN
if [ -e "$STATE_DIR/testbed.env" ]; then
	die "a demo is still up ($STATE_DIR, maybe from KEEP=1): scripts/testbed.sh down --prefix $PREFIX"
fi

# --- up, and down again whatever happens (unless KEEP=1) ----------------------------
finish() {
	local rc=$?
	trap - EXIT INT TERM
	if [ "$KEEP" = 1 ] && [ -e "$STATE_DIR/testbed.env" ]; then
		poke_help
	else
		"$TESTBED" down -q
	fi
	exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

dual_opt=()
[ "$DUAL" = 1 ] && dual_opt=(--dual-stack)
say "== bringing up $HOSTS hosts on an IPv6-only underlay (2001:db8:1::/64)"
"$TESTBED" up -q -n "$HOSTS" "${dual_opt[@]}"

# add-container prints "NETNS IPV6 [IPV4]"; kept in a flat list.
declare -a C_NAME C_HOST C_NS C_V6 C_V4
say "== starting $CONTAINERS containers per host (cnitool add, vxlan6 plugin)"
for i in $(seq 1 "$HOSTS"); do
	for j in $(seq 1 "$CONTAINERS"); do
		out="$("$TESTBED" add-container "h$i" "c$j" -q)"
		read -r ns v6 v4 <<<"$out"
		C_NAME+=("h$i/c$j") C_HOST+=("h$i") C_NS+=("$ns") C_V6+=("$v6") C_V4+=("${v4:-}")
	done
done
N=${#C_NAME[@]}

# --- ping every container from every other ------------------------------------------
# One background job per source; a pair gets a few tries (bounded) because a
# brand-new address may still be settling. Results in files, read below.
say "== pinging every container from every other ($((N * (N - 1))) pairs$([ "$DUAL" = 1 ] && echo ' per family'))"
PINGS="$STATE_DIR/pings"
mkdir -p "$PINGS"
ping_pair() { # netns family addr -> exit status
	local k
	for k in 1 2 3 4 5 6; do
		ip netns exec "$1" ping "-$2" -c1 -W1 "$3" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}
for s in $(seq 0 $((N - 1))); do
	(
		for d in $(seq 0 $((N - 1))); do
			[ "$s" = "$d" ] && continue
			r=ok
			ping_pair "${C_NS[$s]}" 6 "${C_V6[$d]}" || r=FAIL
			if [ "$DUAL" = 1 ]; then
				r4=ok
				ping_pair "${C_NS[$s]}" 4 "${C_V4[$d]}" || r4=FAIL
				r="$r/$r4"
			fi
			echo "$r" >"$PINGS/$s-$d"
		done
	) &
done
wait

# --- the report ---------------------------------------------------------------------------
key() { sed -n "s/^$2=//p" "$STATE_DIR/$1/subnet.env" | head -1; }
say ""
say "vxlan6 demo — $HOSTS hosts, IPv6-only underlay 2001:db8:1::/64, pod network $(key h1 VXLAN6_NETWORK_V6)$([ "$DUAL" = 1 ] && echo " + $(key h1 VXLAN6_NETWORK_V4)"), overlay MTU $(key h1 VXLAN6_MTU)"
say ""
printf '%-4s  %-33s  %-16s  %-39s  %s\n' HOST "UPLINK ADDRESSES" VTEP "CHOSEN BY" "POD SUBNET"
bad_vtep=0
for i in $(seq 1 "$HOSTS"); do
	h="h$i"
	mode="$(cat "$STATE_DIR/$h/vtep-mode")"
	want="$(cat "$STATE_DIR/$h/vtep-want")"
	vtep="$(key "$h" VXLAN6_VTEP)"
	case "$mode" in
	public) by="operator: --public-ipv6" ;;
	iface) by="operator: --iface <address>" ;;
	annotation) by="operator: node annotation" ;;
	*) by="autodetected (default route)" ;;
	esac
	if [ -n "$want" ]; then
		if [ "$want" = "$vtep" ]; then by="$by (honoured)"; else by="$by WANTED $want"; bad_vtep=1; fi
	fi
	subnet="$(key "$h" VXLAN6_SUBNET_V6)"
	[ "$DUAL" = 1 ] && subnet="$subnet, $(key "$h" VXLAN6_SUBNET_V4)"
	uplink="$(ip -n "$PREFIX-$h" -6 -o addr show dev eth0 scope global | awk '{sub("/.*","",$4); print $4}' | sort | paste -sd, | sed 's/,/, /g')"
	printf '%-4s  %-33s  %-16s  %-39s  %s\n' "$h" "$uplink" "$vtep" "$by" "$subnet"
done
say "(named VTEPs are each host's SECOND address: not the lowest, which autodetection picks,"
say " and not the one the kernel lists first: only the operator's choice selects it)"
say ""
printf '%-10s %-22s %s\n' CONTAINER "IPV6" "$([ "$DUAL" = 1 ] && echo IPV4)"
for c in $(seq 0 $((N - 1))); do
	printf '%-10s %-22s %s\n' "${C_NAME[$c]}" "${C_V6[$c]}" "${C_V4[$c]}"
done
say ""
say "reachability: ping from row to column$([ "$DUAL" = 1 ] && echo ' (IPv6/IPv4)')"
w=6
[ "$DUAL" = 1 ] && w=8
printf '%-8s' ""
for d in $(seq 0 $((N - 1))); do printf " %-${w}s" "${C_NAME[$d]}"; done
printf '\n'
fails=0
pairs=0
for s in $(seq 0 $((N - 1))); do
	printf '%-8s' "${C_NAME[$s]}"
	for d in $(seq 0 $((N - 1))); do
		if [ "$s" = "$d" ]; then printf " %-${w}s" "-"; continue; fi
		r="$(cat "$PINGS/$s-$d" 2>/dev/null || echo FAIL)"
		pairs=$((pairs + 1))
		case "$r" in *FAIL*) fails=$((fails + 1)) ;; esac
		printf " %-${w}s" "$r"
	done
	printf '\n'
done
say ""
# What an operator runs on a host: this node, and every peer's lease against
# the kernel's entries, with a probe through the overlay.
say "vxlan6d status --probe on h1:"
ip netns exec "$PREFIX-h1" "$BIN/vxlan6d" status --probe --probe-count 3 --subnet-file "$STATE_DIR/h1/subnet.env" \
	--etcd-endpoints "unix://$STATE_DIR/etcd.sock" || say "(status reports a problem)"
say ""
if [ "$fails" = 0 ] && [ "$bad_vtep" = 0 ]; then
	say "OK: all $pairs pairs reachable across $HOSTS hosts; every named VTEP honoured ($((SECONDS - START)) s)"
	rc=0
else
	[ "$fails" = 0 ] || say "FAILED: $fails of $pairs pairs unreachable (daemon logs: $STATE_DIR/h*/vxlan6d.log)"
	[ "$bad_vtep" = 0 ] || say "FAILED: a host tunnels from another address than its operator named"
	rc=1
fi

poke_help() {
	cat <<EOF

The testbed is still up (KEEP=1). Poke at it:
  ip netns exec $PREFIX-h1-c1 ping -6 -c3 ${C_V6[$((N - 1))]:-fd10:244:0:1::2}    # a container on h1 -> one on h$HOSTS
  ip -n $PREFIX-h1 -d link show vxlan6.1          # the VXLAN device; 'local' is the VTEP
  /usr/sbin/bridge -n $PREFIX-h1 fdb show dev vxlan6.1   # one fdb entry per peer VTEP
  ip -n $PREFIX-h1 -6 neigh show dev vxlan6.1; ip -n $PREFIX-h1 -6 route
  $BIN/vxlan6d leases --env-file /dev/null --etcd-endpoints unix://$STATE_DIR/etcd.sock
  cat $STATE_DIR/h1/subnet.env; tail -f $STATE_DIR/h1/vxlan6d.log
  $TESTBED status --prefix $PREFIX
  $TESTBED add-container h2 c9 --prefix $PREFIX   # another container
Tear it down:
  $TESTBED down --prefix $PREFIX
EOF
}
exit "$rc"
