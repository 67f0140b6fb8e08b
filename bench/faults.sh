#!/usr/bin/env bash
# bench/faults.sh - the ept layer's costs on this machine:
#
#  1. Second-level fault latency (guest touch -> fault thread resolves with
#     UFFDIO_ZEROPAGE -> guest continues) in --mem-mode lazy, measured by
#     the guest itself (faultlat workload: rdtsc around each first touch,
#     ring 3) and by the VMM's fault service (fault read -> page placed),
#     with the fault thread and the vCPU pinned to the same CPU and to
#     different CPUs.
#  2. Dirty-harvest cost for both back ends on a 1 GiB guest: a harvest of a
#     clean log (the fixed cost per GiB of RAM) and of a log with the dirty
#     workload running (cost per dirty page).
#
# Writes bench/out/faults.csv and bench/out/harvest.csv and prints a table.
# Usage: bench/faults.sh [PAGES]   (default 4096 faults per run)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
VMMCTL=$BUILD_DIR/vmm/vmmctl
GUEST=$BUILD_DIR/examples/guests/guest.elf
PAGES=${1:-4096}
OUT=bench/out
mkdir -p "$OUT"
[[ -x $VMMCTL && -f $GUEST ]] || { echo "faults.sh: build first (scripts/setup.sh)" >&2; exit 1; }
[[ -e /dev/kvm ]] || { echo "faults.sh: /dev/kvm is absent" >&2; exit 1; }
T=$(mktemp -d /tmp/vmm-bench.XXXXXX)
pid=
trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$T"' EXIT

wait_for() # TIMEOUT_S CONDITION
{
	local deadline=$(($(date +%s) + $1))
	until eval "$2"; do
		(($(date +%s) < deadline)) || { echo "faults.sh: timed out: $2" >&2; exit 1; }
		sleep 0.05
	done
}

# tid_of PID NAME: the thread of PID whose name is NAME.
tid_of()
{
	local t
	for t in /proc/"$1"/task/*; do
		[[ $(cat "$t/comm") == "$2" ]] && { basename "$t"; return; }
	done
	echo "faults.sh: no thread '$2' in $1" >&2
	exit 1
}

# fault_run PLACEMENT VCPU_CPU FAULT_CPU: one lazy-mode run of faultlat.
fault_run()
{
	local place=$1 vcpu_cpu=$2 fault_cpu=$3 sock=$T/f.sock
	rm -f "$T/f.serial"
	"$VMMCTL" boot --kernel "$GUEST" --mem 256M --mem-mode lazy \
		--append "heartbeat; faultlat --pages $PAGES; heartbeat" \
		--api "$sock" --serial "$T/f.serial" 2>"$T/f.err" &
	pid=$!
	wait_for 20 "[[ -S $sock ]] && grep -q '^heartbeat' $T/f.serial"
	taskset -p -c "$vcpu_cpu" "$(tid_of "$pid" vcpu0)" >/dev/null
	taskset -p -c "$fault_cpu" "$(tid_of "$pid" ept-fault)" >/dev/null
	local before
	before=$("$VMMCTL" stats --api "$sock" | jq .faults.zero.faults)
	"$VMMCTL" guest-request stop-workload --api "$sock" >/dev/null
	wait_for 120 "grep -q '^faultlat:' $T/f.serial"
	local line s
	line=$(grep '^faultlat:' "$T/f.serial")
	s=$("$VMMCTL" stats --api "$sock")
	"$VMMCTL" stop --api "$sock" >/dev/null
	wait "$pid" || true
	pid=
	# faultlat: N pages p50 X ns p99 Y ns max Z ns
	read -r _ n _ _ g50 _ _ g99 _ _ gmax _ <<<"$line"
	printf '%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$place" "$n" "$g50" "$g99" "$gmax" \
		"$(jq .faults.zero.p50_ns <<<"$s")" "$(jq .faults.zero.p99_ns <<<"$s")" \
		"$(jq .faults.zero.max_ns <<<"$s")" \
		"$(($(jq .faults.zero.faults <<<"$s") - before))" >>"$OUT/faults.csv"
}

# harvest_run BACKEND RATE: mean harvest cost over 5 one-second intervals.
harvest_run()
{
	local backend=$1 rate=$2 sock=$T/h.sock extra=()
	[[ $backend == ring ]] && extra=(--dirty-ring 65536)
	rm -f "$T/h.serial"
	"$VMMCTL" boot --kernel "$GUEST" --mem 1G "${extra[@]}" \
		--append "dirty --mib 64 --rate $rate" \
		--api "$sock" --serial "$T/h.serial" 2>"$T/h.err" &
	pid=$!
	wait_for 60 "[[ -S $sock ]] && grep -q '^dirty:' $T/h.serial"
	sleep 1 # past the first fill of the working set
	"$VMMCTL" dirty-log start --api "$sock" >/dev/null
	"$VMMCTL" dirty-log harvest --api "$sock" >/dev/null
	local i ns=0 pages=0 r
	for i in 1 2 3 4 5; do
		sleep 1
		r=$("$VMMCTL" dirty-log harvest --api "$sock")
		ns=$((ns + $(jq .harvest_ns <<<"$r")))
		pages=$((pages + $(jq .pages <<<"$r")))
	done
	"$VMMCTL" stop --api "$sock" >/dev/null
	wait "$pid" || true
	pid=
	printf '%s,%s,%s,%s\n' "$backend" "$rate" $((pages / 5)) $((ns / 5)) >>"$OUT/harvest.csv"
}

echo "placement,pages,guest_p50_ns,guest_p99_ns,guest_max_ns,vmm_p50_ns,vmm_p99_ns,vmm_max_ns,host_faults" >"$OUT/faults.csv"
fault_run same-cpu 1 1
fault_run different-cpu 0 1
echo "backend,dirty_rate_mib_s,pages_per_harvest,harvest_ns" >"$OUT/harvest.csv"
for b in bitmap ring; do
	harvest_run "$b" 0
	harvest_run "$b" 200
done

echo "== second-level fault latency, $PAGES faults per run (guest = touch to continue, vmm = fault read to page placed)"
column -s, -t "$OUT/faults.csv"
echo "== dirty harvest, 1 GiB guest (a harvest at rate 0 is the fixed cost per GiB of RAM)"
column -s, -t "$OUT/harvest.csv"
