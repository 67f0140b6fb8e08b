#!/usr/bin/env bash
# bench/pt_quiesce.sh - the passthrough device's quiesce handshake: how long
# the guest driver takes from the QUIESCE request to its ACK, against the
# packet rate, and how that compares with the migration's downtime.
#
# For each RATE (packets/s) and REPS repetitions, over loopback: a
# destination and a source `vmmctl boot --device pt,rate=RATE` (128 MiB,
# 1 vCPU), the source's guest running `pt-driver` (poll mode, ring of 64),
# a pre-copy migration once packets flow. Per run (pt_quiesce.csv):
#
#  - quiesce_us: request -> ACK as the device measured it (the driver
#    stops posting, disables the queue, consumes what arrived, acks).
#  - downtime_us: the source VMM's pause -> destination RUNNING. The
#    quiesce happens before the pause, while the guest runs: it is not in
#    the downtime, but packets stop flowing from the request until the
#    destination's driver has re-registered, so it is also shown as
#    quiesce_share = quiesce / (quiesce + downtime).
#  - delivered: packets the destination's device had delivered by the end.
#  - seq_ok: the destination's driver ended with "seq 1..N continuous".
#
# Usage: bench/pt_quiesce.sh [OUTDIR]   (RATES="500 2000 10000 50000" REPS=5)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$SRC/build}
# shellcheck source=scripts/ports.sh
. "$SRC/scripts/ports.sh"
V=$BUILD/vmm/vmmctl
G=$BUILD/examples/guests/guest.elf
OUT=${1:-$SRC/bench/out}
RATES=${RATES:-500 2000 10000 50000}
REPS=${REPS:-5}
W=$(mktemp -d /tmp/ptq.XXXXXX)
trap 'pkill -f "$W/" 2>/dev/null || true; rm -rf "$W"' EXIT
mkdir -p "$OUT"
CSV=$OUT/pt_quiesce.csv
echo "rate_pps,rep,state,quiesce_us,downtime_us,quiesce_share,delivered,seq_ok" >"$CSV"

[[ -x $V && -f $G ]] || { echo "build first: $V, $G" >&2; exit 2; }
[[ -e /dev/kvm ]] || { echo "no /dev/kvm" >&2; exit 2; }

wait_for() { # SECONDS CONDITION
	local end=$((SECONDS + $1))
	until eval "$2"; do
		((SECONDS < end)) || return 1
		sleep 0.05
	done
}

run_one() { # RATE REP
	local rate=$1 rep=$2 port d=$W/$1.$2 q dt st delivered ok
	port=$(port_pick) || return 1
	mkdir -p "$d"
	"$V" boot --incoming "tcp:127.0.0.1:$port" --mem 128M --device "pt,rate=$rate" \
		--api "$d/b.sock" --serial "$d/b.serial" >"$d/b.out" 2>&1 &
	"$V" boot --kernel "$G" --mem 128M --device "pt,rate=$rate" --api "$d/a.sock" \
		--serial "$d/a.serial" --append "pt-driver" >"$d/a.out" 2>&1 &
	wait_for 20 "[[ -S $d/a.sock && -S $d/b.sock ]]" || return 1
	wait_for 20 "(( \$(\"$V\" status --api $d/a.sock | jq '.pt.delivered') >= 100 ))" || return 1
	"$V" migrate --api "$d/a.sock" --to "tcp:127.0.0.1:$port" --mode precopy \
		>"$d/mig.json" 2>"$d/mig.err" || true
	st=$(jq -r '.state // "no-stats"' "$d/mig.json" 2>/dev/null || echo no-stats)
	q=$(jq -r '.quiesce_us // 0' "$d/mig.json" 2>/dev/null || echo 0)
	dt=$(jq -r '.downtime_us // 0' "$d/mig.json" 2>/dev/null || echo 0)
	delivered=-
	ok=-
	if [[ $st == completed ]]; then
		wait_for 10 "grep -q 'pt-driver: resumed' $d/b.serial" || true
		delivered=$("$V" status --api "$d/b.sock" | jq -r '.pt.delivered // "-"')
		"$V" guest-request stop-workload --api "$d/b.sock" >/dev/null || true
		wait_for 10 "grep -q 'pt-driver: ok' $d/b.serial" && ok=yes || ok=no
		grep -q 'pt-driver: FAIL' "$d/b.serial" && ok=no
		"$V" stop --api "$d/b.sock" >/dev/null 2>&1 || true
	fi
	"$V" stop --api "$d/a.sock" >/dev/null 2>&1 || true
	"$V" stop --api "$d/b.sock" >/dev/null 2>&1 || true
	wait
	echo "$rate,$rep,$st,$q,$dt,$(awk -v q="$q" -v d="$dt" 'BEGIN{printf "%.3f", (q+d) ? q/(q+d) : 0}'),$delivered,$ok" >>"$CSV"
}

for rate in $RATES; do
	for rep in $(seq 1 "$REPS"); do
		run_one "$rate" "$rep" || echo "$rate,$rep,boot-failed,0,0,0,-,-" >>"$CSV"
	done
done

# The table: medians per rate.
python3 - "$CSV" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(f"{'rate pps':>9} {'runs':>5} {'ok':>3} {'quiesce us p50':>15} {'max':>7} {'downtime us p50':>16} {'share p50':>10}")
for rate in dict.fromkeys(r['rate_pps'] for r in rows):
    rs = [r for r in rows if r['rate_pps'] == rate]
    ok = [r for r in rs if r['state'] == 'completed' and r['seq_ok'] == 'yes']
    q = [int(r['quiesce_us']) for r in ok] or [0]
    d = [int(r['downtime_us']) for r in ok] or [0]
    s = [float(r['quiesce_share']) for r in ok] or [0]
    print(f"{rate:>9} {len(rs):>5} {len(ok):>3} {statistics.median(q):>15.0f} {max(q):>7} {statistics.median(d):>16.0f} {statistics.median(s):>10.2f}")
EOF
echo "figures: $CSV"
