#!/usr/bin/env bash
# The main job, for now: boot the test guest (2 vCPUs, dirty workload with
# heartbeats), pause and resume it through the control API, ask the guest
# to verify its memory, stop it, and print the serial output and a
# heartbeat summary. Once live migration lands this becomes boot +
# live-migrate + downtime.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
VMMCTL=$BUILD_DIR/vmm/vmmctl
GUEST=$BUILD_DIR/examples/guests/guest.elf
[[ -x $VMMCTL && -f $GUEST ]] || { echo "demo: run ./scripts/setup.sh first" >&2; exit 1; }
[[ -e /dev/kvm ]] || { echo "demo: /dev/kvm is absent: cannot boot a guest here" >&2; exit 1; }

D=$(mktemp -d /tmp/vmm-demo.XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$D"' EXIT

"$VMMCTL" boot --kernel "$GUEST" --mem 256M --cpus 2 \
	--append "dirty --mib 32 --rate 50" \
	--api "$D/vm.sock" --serial "$D/serial" --heartbeat-log "$D/hb" &
pid=$!
for _ in $(seq 500); do
	[[ -S $D/vm.sock ]] && grep -q '^dirty:' "$D/serial" 2>/dev/null && break
	sleep 0.02
done
sleep 1
echo "== status after 1 s"
"$VMMCTL" status --api "$D/vm.sock" | jq -c '{state, vcpus, mem_bytes, heartbeats}'
"$VMMCTL" pause --api "$D/vm.sock" >/dev/null
echo "== paused for 300 ms"
sleep 0.3
"$VMMCTL" resume --api "$D/vm.sock" >/dev/null
echo "== resumed; asking the guest to verify its memory"
"$VMMCTL" guest-request verify --api "$D/vm.sock" >/dev/null
sleep 1
"$VMMCTL" stop --api "$D/vm.sock" >/dev/null
rc=0
wait "$pid" || rc=$?
echo "== serial output"
cat "$D/serial"
echo "== heartbeats"
awk 'NR > 1 { g = $2 - p; if (g > m) m = g; if ($1 != s + 1) bad++ }
     { s = $1; p = $2 }
     END { printf "%d heartbeats, %d sequence errors, largest gap %.1f ms (the pause)\n", NR, bad, m / 1e6 }' "$D/hb"
echo "== vmmctl boot exited $rc"
exit "$rc"
