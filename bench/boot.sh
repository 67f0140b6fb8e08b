#!/usr/bin/env bash
# bench/boot.sh - how fast `vmmctl boot` gets a guest running, and how much
# memory the VMM takes: process start to the guest's first heartbeat, and
# peak RSS, for each case, REPS times (median, min, max).
#
# Cases (CASES, default all): guest-256M and guest-4G (our test guest,
# build/examples/guests/guest.elf, which the VMM starts in 64-bit mode on
# its own page tables), mb-256M (the same guest's Multiboot image,
# guest-mb.elf, through our Multiboot loader: the guest builds its own
# 4 KiB page tables in emulated ring 0), and mb-4G (not in the default:
# ~1 M page-table entries at ~3 us each in the emulator, seconds per boot).
# Each boot runs `heartbeat` with one vCPU. Start: bench/launch.py reads
# CLOCK_MONOTONIC and execs vmmctl in the same process. First heartbeat:
# the timestamp of the first line of the VMM's --heartbeat-log (the same
# clock, taken by the VMM when the guest's first heartbeat exit reaches
# it; the script waits for that line to appear, but the figure is the
# logged timestamp, not the poll). Peak RSS: VmHWM of /proc/PID/status 0.5 s
# after the first heartbeat (RAM is touched on demand; the boot's peak is
# over by then), then `vmmctl stop`. RssShmem there: guest RAM the VMM
# touched (its memfd). Runs go round the cases, so a slow spell of this
# shared machine does not land on one case.
#
# Output in OUT_DIR (bench/out-boot): boot.csv (one row per boot),
# boot-summary.csv, boot.md (a table), boot.png (gnuplot). Usage:
#
#   bench/boot.sh [--reps N] [--cases "C ..."]
#   e.g. bench/boot.sh --reps 3 --cases "guest-256M mb-256M"
#
# Environment: REPS (10), CASES, BUILD_DIR (build), OUT_DIR (bench/out-boot).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
BUILD_DIR=${BUILD_DIR:-build}
VMMCTL=$BUILD_DIR/vmm/vmmctl
GUESTS=$BUILD_DIR/examples/guests
REPS=${REPS:-10}
CASES=${CASES:-guest-256M guest-4G mb-256M}
OUT=${OUT_DIR:-bench/out-boot}

warn() { echo "boot.sh: $*" >&2; }
while (($#)); do
	[[ $1 == -h || $1 == --help ]] && { sed -n '/^#   bench/,/^#   e.g./s/^#/ /p' "$0"; exit 0; }
	(($# >= 2)) || { warn "'$1' needs a value"; exit 2; }
	case $1 in
	--reps) REPS=$2 ;;
	--cases) CASES=$2 ;;
	*) warn "unknown argument '$1'"; exit 2 ;;
	esac
	shift 2
done
[[ $REPS =~ ^[1-9][0-9]*$ ]] || { warn "--reps takes a positive integer"; exit 2; }
for c in $CASES; do
	[[ $c =~ ^(guest|mb)-[1-9][0-9]*[MG]$ ]] || { warn "unknown case '$c' (guest-SIZE or mb-SIZE)"; exit 2; }
done
[[ -x $VMMCTL && -f $GUESTS/guest.elf && -f $GUESTS/guest-mb.elf ]] ||
	{ warn "no $VMMCTL or guest images in $GUESTS: build first (scripts/setup.sh)"; exit 1; }
[[ -e /dev/kvm ]] || { warn "/dev/kvm is absent"; exit 1; }
for tool in gnuplot python3; do
	command -v "$tool" >/dev/null || { warn "needs $tool"; exit 1; }
done
mkdir -p "$OUT"
# One run per OUT_DIR at a time: a second would truncate the CSV.
exec 9>"$OUT/.lock"
flock -n 9 || { warn "another boot.sh writes to $OUT (set OUT_DIR)"; exit 1; }
T=$(mktemp -d /tmp/vmm-boot.XXXXXX)
PID=
cleanup()
{
	[[ -n $PID ]] && kill -KILL "$PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ms() { date +%s%3N; }

# boot_once CASE REP: one boot; appends a CSV row.
boot_once()
{
	local c=$1 img=guest.elf mem=${1#*-} start first ms=NaN hwm=NaN shm=NaN state=ok deadline
	[[ $c == mb-* ]] && img=guest-mb.elf
	rm -f "$T"/b.*
	python3 bench/launch.py "$T/b.start" -- "$VMMCTL" boot --kernel "$GUESTS/$img" --mem "$mem" \
		--cpus 1 --api "$T/b.sock" --serial "$T/b.serial" --heartbeat-log "$T/b.hb" \
		--append heartbeat </dev/null >"$T/b.out" 2>"$T/b.err" &
	PID=$!
	deadline=$(($(now_ms) + 60000))
	until [[ -s $T/b.hb ]] || ! kill -0 "$PID" 2>/dev/null || (($(now_ms) > deadline)); do
		sleep 0.01
	done
	if [[ -s $T/b.hb ]]; then
		sleep 0.5
		start=$(cat "$T/b.start")
		read -r _ first <"$T/b.hb"
		ms=$(awk -v a="$start" -v b="$first" 'BEGIN { printf "%.3f\n", (b - a) / 1e6 }')
		hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$PID/status")
		shm=$(awk '/^RssShmem:/ { print $2 }' "/proc/$PID/status")
		"$VMMCTL" stop --api "$T/b.sock" >/dev/null 2>&1 || state=stop-failed
	else
		state=no-heartbeat
		warn "$c: no heartbeat: $(tail -n 2 "$T/b.err" "$T/b.serial" 2>/dev/null)"
	fi
	deadline=$(($(now_ms) + 10000))
	while kill -0 "$PID" 2>/dev/null && (($(now_ms) < deadline)); do sleep 0.02; done
	kill -KILL "$PID" 2>/dev/null || true
	wait "$PID" 2>/dev/null || true
	PID=
	echo "$c,$2,$state,$ms,$hwm,$shm" >>"$OUT/boot.csv"
}

rev=$(git describe --always --dirty 2>/dev/null || echo unknown)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
if [[ ${REPLOT:-0} != 1 ]]; then
	echo "case,rep,state,first_heartbeat_ms,vmhwm_kib,rss_shmem_kib" >"$OUT/boot.csv"
	for ((rep = 1; rep <= REPS; rep++)); do
		for c in $CASES; do
			echo "boot.sh: [$rep/$REPS] $c" >&2
			boot_once "$c" "$rep"
		done
	done
fi

# Per case: median, min, max of the boot time and of VmHWM (ok runs only).
python3 - "$OUT" "$CASES" "$rev" "$load0" <<'EOF'
import csv, statistics, sys
out, cases, rev, load = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[4]
rows = list(csv.DictReader(open(f"{out}/boot.csv")))
def trio(vals):
    return (statistics.median(vals), min(vals), max(vals)) if vals else (float("nan"),) * 3
with open(f"{out}/boot-summary.csv", "w") as s, open(f"{out}/plot.dat", "w") as p, \
        open(f"{out}/boot.md", "w") as md:
    print("case,runs,ok,first_hb_ms_median,first_hb_ms_min,first_hb_ms_max,"
          "vmhwm_mib_median,vmhwm_mib_min,vmhwm_mib_max,rss_shmem_mib_median", file=s)
    print(f"vmmctl boot, process start to first heartbeat and peak RSS ({rev}, load before "
          f"{load}):\n", file=md)
    print("| case | boots (ok) | start to first heartbeat, ms: median (min-max) | "
          "peak RSS (VmHWM), MiB: median (min-max) | of it guest RAM (RssShmem), MiB |", file=md)
    print("|---|---|---|---|---|", file=md)
    for i, c in enumerate(cases):
        grp = [r for r in rows if r["case"] == c]
        ok = [r for r in grp if r["state"] == "ok"]
        t = trio([float(r["first_heartbeat_ms"]) for r in ok])
        h = trio([int(r["vmhwm_kib"]) / 1024 for r in ok])
        shm = statistics.median([int(r["rss_shmem_kib"]) / 1024 for r in ok]) if ok else float("nan")
        print(c, len(grp), len(ok), *(f"{v:.3f}" for v in t + h), f"{shm:.1f}", sep=",", file=s)
        print(i, c, *(f"{v:.3f}" for v in t + h), file=p)
        print(f"| {c} | {len(grp)} ({len(ok)}) | {t[0]:.1f} ({t[1]:.1f}-{t[2]:.1f}) | "
              f"{h[0]:.1f} ({h[1]:.1f}-{h[2]:.1f}) | {shm:.1f} |", file=md)
EOF
term=$(gnuplot_term 10)
gnuplot <<EOF || warn "gnuplot failed: no $OUT/boot.png"
set terminal $term size 1000,450
set output '$OUT/boot.png'
set datafile missing 'NaN'
set multiplot layout 1,2 title "vmmctl boot, $REPS boots per case (median, bars min-max); $rev"
set style fill solid 0.4
set boxwidth 0.6
set grid y
set yrange [0:*]
set xrange [-0.6:*]
set ylabel 'process start to first heartbeat (ms)'
plot '$OUT/plot.dat' using 1:3:xtic(2) with boxes notitle, '' using 1:3:4:5 with yerrorbars lc rgb 'black' pt 0 notitle
set ylabel 'peak RSS, VmHWM (MiB)'
plot '$OUT/plot.dat' using 1:6:xtic(2) with boxes notitle, '' using 1:6:7:8 with yerrorbars lc rgb 'black' pt 0 notitle
unset multiplot
EOF
cat "$OUT/boot.md"
echo "csv: $OUT/boot.csv; plot: $OUT/boot.png"
