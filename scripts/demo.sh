#!/usr/bin/env bash
# The main job: boot the test guest (2 vCPUs, dirty workload, 1 kHz
# heartbeats) on a source VMM, start a destination VMM, live-migrate the
# running guest to it over TCP (loopback), and print the downtime three
# ways: from the guest's heartbeats (first heartbeat on the destination
# minus the last on the source, CLOCK_MONOTONIC), as the guest's own clock
# saw it (the stall its first heartbeat on the destination carries) and as
# the source VMM saw it. Then the guest verifies its memory on the
# destination.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
VMMCTL=$BUILD_DIR/vmm/vmmctl
GUEST=$BUILD_DIR/examples/guests/guest.elf
[[ -x $VMMCTL && -f $GUEST ]] || { echo "demo: run ./scripts/setup.sh first" >&2; exit 1; }
[[ -e /dev/kvm ]] || { echo "demo: /dev/kvm is absent: cannot boot a guest here" >&2; exit 1; }

D=$(mktemp -d /tmp/vmm-demo.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$D"' EXIT
port=$((20000 + RANDOM % 20000))

wait_for() # what condition
{
	local i
	for ((i = 0; i < 1000; i++)); do
		eval "$2" && return 0
		sleep 0.02
	done
	echo "demo: timed out waiting for $1" >&2
	exit 1
}

echo "== destination: vmmctl boot --incoming tcp:127.0.0.1:$port"
"$VMMCTL" boot --incoming "tcp:127.0.0.1:$port" --mem 256M --cpus 2 \
	--api "$D/dst.sock" --serial "$D/dst.serial" --heartbeat-log "$D/dst.hb" &
pids+=($!)
dst=$!
echo "== source: vmmctl boot --append \"dirty --mib 32 --rate 50\""
"$VMMCTL" boot --kernel "$GUEST" --mem 256M --cpus 2 \
	--append "dirty --mib 32 --rate 50" \
	--api "$D/src.sock" --serial "$D/src.serial" --heartbeat-log "$D/src.hb" &
pids+=($!)
src=$!
wait_for "both VMMs" '[[ -S $D/src.sock && -S $D/dst.sock ]]'
wait_for "the guest's workload" 'grep -q "^dirty:" "$D/src.serial" 2>/dev/null'
sleep 1 # let the guest run and dirty memory for a while
cat "$D/src.serial"
echo "== vmmctl migrate --to tcp:127.0.0.1:$port"
"$VMMCTL" migrate --api "$D/src.sock" --to "tcp:127.0.0.1:$port" >"$D/mig.json"
wait "$src" || true
"$VMMCTL" guest-request verify --api "$D/dst.sock" >/dev/null
wait_for "the guest's verify on the destination" \
	'"$VMMCTL" status --api "$D/dst.sock" | jq -e ".markers[\"verify-ok\"] + .markers[\"verify-fail\"] >= 1" >/dev/null'
"$VMMCTL" stop --api "$D/dst.sock" >/dev/null
wait "$dst" || true
echo "== destination serial output"
cat "$D/dst.serial"
last=$(tail -n 1 "$D/src.hb")
first=$(head -n 1 "$D/dst.hb")
gaps=$(cat "$D/src.hb" "$D/dst.hb" | awk 'NR > 1 && $1 != p + 1 { bad++ } { p = $1 } END { print bad + 0 }')
echo "== migration"
jq -r '"state \(.state), \(.memory_iteration) pre-copy rounds, \(.time_elapsed) ms in all, \(.wire_bytes / 1048576 * 10 | floor / 10) MiB on the wire; the guest verifies its memory on the destination"' "$D/mig.json"
awk -v a="$last" -v b="$first" -v vmm="$(jq .downtime_us "$D/mig.json")" -v gaps="$gaps" 'BEGIN {
	split(a, x, " "); split(b, y, " ")
	printf "downtime: %.2f ms from the guest'"'"'s heartbeats (seq %d on the source, %d on the destination), %s by the guest'"'"'s own clock, %.2f ms as the source VMM saw it\n", (y[2] - x[2]) / 1e6, x[1], y[1], y[3] == "" ? "-" : sprintf("%.2f ms", y[3] / 1000), vmm / 1000
	printf "heartbeat sequence across both hosts: %s\n", gaps == 0 ? "continuous, none missing or repeated" : gaps " breaks"
}'
