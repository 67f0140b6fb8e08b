#!/usr/bin/env bash
# bench/restore.sh - snapshot and restore (docs/snapshot.md) on this host:
#
#  1. A guest of MEM (1 GiB) whose dirty region of MIB (256 MiB) is its
#     working set is snapshotted (paused); the file's size on disk is set
#     against its non-zero memory.
#  2. Restores of that file, REPS times each: eager, lazy, lazy with the
#     recorded working set placed before the guest runs (ws-before) and
#     racing it (ws-race). Each run (bench/restore_run.py) times, from the
#     `vmmctl boot --restore` command: the VMM's restore (file opened ->
#     vCPUs running, its own clock), the first heartbeat of the restored
#     guest, the guest having read its whole working set once (a verify
#     asked for as soon as the control socket answers), and the faults it
#     took until then. The working set is recorded by one lazy restore
#     with --record-ws and stored with vmmctl snapshot --ws.
#  3. --live snapshot downtime while the guest dirties its region at each
#     of RATES MiB/s (and the paused snapshot's, for comparison).
#
# Writes bench/out-restore/{restore,size,live}.csv, restore.png and tables.
# Usage: bench/restore.sh   (MEM=1G MIB=256 REPS=3 RATES="0 50 200")
set -euo pipefail
case ${1-} in
'') ;;
-h | --help)
	sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
*)
	echo "restore.sh: takes no arguments (set MEM, MIB, REPS, RATES in the environment; see --help): '$1'" >&2
	exit 2
	;;
esac
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
VMMCTL=$BUILD_DIR/vmm/vmmctl
GUEST=$BUILD_DIR/examples/guests/guest.elf
MEM=${MEM:-1G}
MIB=${MIB:-256}
REPS=${REPS:-3}
RATES=${RATES:-0 50 200}
OUT=bench/out-restore
mkdir -p "$OUT"
for tool in jq gnuplot column python3; do
	command -v "$tool" >/dev/null || { echo "restore.sh: needs $tool" >&2; exit 1; }
done
[[ -x $VMMCTL && -f $GUEST ]] || { echo "restore.sh: build first" >&2; exit 1; }
[[ -e /dev/kvm ]] || { echo "restore.sh: /dev/kvm is absent" >&2; exit 1; }
T=$(mktemp -d /tmp/vmm-bench.XXXXXX)
pid=
trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$T"' EXIT
load0=$(cut -d' ' -f1-3 /proc/loadavg)

wait_for() # TIMEOUT_S CONDITION
{
	local deadline=$(($(date +%s) + $1))
	until eval "$2"; do
		(($(date +%s) < deadline)) || { echo "restore.sh: timed out: $2" >&2; exit 1; }
		sleep 0.05
	done
}

# source RATE: a guest with its region written once and verified.
source_vm()
{
	rm -f "$T/src.sock" "$T/src.serial"
	"$VMMCTL" boot --kernel "$GUEST" --mem "$MEM" --api "$T/src.sock" --serial "$T/src.serial" \
		--append "dirty --mib $MIB --rate $1" 2>"$T/src.err" &
	pid=$!
	wait_for 60 "[[ -S $T/src.sock ]] && grep -q '^dirty: $MIB MiB' $T/src.serial"
	# The first pass is over once a verify checks every page of the region.
	local want=$((MIB * 256))
	until grep -q "verify: ok $want pages" "$T/src.serial"; do
		"$VMMCTL" guest-request verify --api "$T/src.sock" >/dev/null
		sleep 0.5
	done
}

source_stop()
{
	"$VMMCTL" stop --api "$T/src.sock" >/dev/null
	wait "$pid" || true
	pid=
}

# 1. the snapshot
source_vm 0
"$VMMCTL" snapshot --api "$T/src.sock" --to "$T/s.snap" >"$T/paused.json"
source_stop
echo "mem,data_pages,nonzero_mib,file_mib,disk_mib,paused_snapshot_ms" >"$OUT/size.csv"
jq -r --arg mem "$MEM" '[$mem, .data_pages, (.data_pages / 256 | floor),
	(.file_bytes / 1048576 | floor), (.disk_bytes / 1048576 * 10 | floor / 10),
	(.downtime_us / 1000 | floor)] | map(tostring) | join(",")' "$T/paused.json" >>"$OUT/size.csv"

# 2. restores
echo "mode,rep,restore_ms,first_hb_ms,ws_touched_ms,faults,demand_pages,set_pages,loader_ms" >"$OUT/restore.csv"
run() # MODE REP ARGS...
{
	local mode=$1 rep=$2
	shift 2
	python3 bench/restore_run.py "$VMMCTL" "$T/s.snap" "$T" "$mode" "$@" >"$T/$mode-$rep.json"
	jq -r --arg m "$mode" --arg r "$rep" '[$m, $r, (.restore_us / 1000), (.first_hb_ms * 10 | floor / 10),
		(.ws_touched_ms * 10 | floor / 10), .faults, (.restore.demand_pages // 0),
		(.restore.set_placed // .restore.set_pages // 0), (.restore.loader_ms // 0)]
		| map(tostring) | join(",")' "$T/$mode-$rep.json" >>"$OUT/restore.csv"
}
for rep in $(seq "$REPS"); do
	run eager "$rep" --mem-mode eager
	run lazy "$rep" --mem-mode lazy
done
run record 1 --mem-mode lazy --record-ws 10000
ws_pages=$(jq .ws.pages "$T/record-1.json")
for rep in $(seq "$REPS"); do
	run ws-before "$rep" --mem-mode lazy
	run ws-race "$rep" --mem-mode lazy --ws-mode race
done

# 3. --live snapshot downtime against the dirty rate
echo "rate_mib_s,live,downtime_ms,total_ms,rounds,written_pages" >"$OUT/live.csv"
for rate in $RATES; do
	source_vm "$rate"
	for live in paused live; do
		flag=()
		[[ $live == live ]] && flag=(--live)
		"$VMMCTL" snapshot --api "$T/src.sock" --to "$T/l.snap" "${flag[@]}" >"$T/l.json"
		jq -r --arg r "$rate" --arg l "$live" '[$r, $l, (.downtime_us / 100 | floor / 10),
			(.total_us / 100 | floor / 10), .rounds, .written_pages] | map(tostring) | join(",")' \
			"$T/l.json" >>"$OUT/live.csv"
	done
	source_stop
done

# Medians per mode.
echo "mode,runs,restore_ms,first_hb_ms,ws_touched_ms,faults" >"$OUT/restore-summary.csv"
for mode in eager lazy record ws-before ws-race; do
	awk -F, -v m="$mode" '
		function med(col,   n, i, j, t, a) { n = 0
			for (i = 1; i <= cnt; i++) a[++n] = v[i, col]
			for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
			return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
		$1 == m { cnt++; for (c = 3; c <= 6; c++) v[cnt, c] = $c }
		END { if (cnt) printf "%s,%d,%.2f,%.1f,%.1f,%d\n", m, cnt, med(3), med(4), med(5), med(6) }' \
		"$OUT/restore.csv" >>"$OUT/restore-summary.csv"
done

term=png
gnuplot -e 'set terminal' 2>/dev/null | grep -qw pngcairo && term="pngcairo font ',10'"
tail -n +2 "$OUT/restore-summary.csv" | tr , ' ' >"$T/sum.dat"
grep ',live,' "$OUT/live.csv" | tr , ' ' >"$T/live.dat"
gnuplot <<EOF || echo "restore.sh: gnuplot failed" >&2
set terminal $term size 1200,500
set output '$OUT/restore.png'
set multiplot layout 1,2 title "restore of a $MEM guest with a $MIB MiB working set (medians of $REPS runs)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel 'ms from vmmctl boot --restore'
set logscale y
set grid y
set key top left
set title 'first heartbeat and working set touched once'
plot '$T/sum.dat' using 4:xtic(1) title 'first heartbeat', '' using 5 title 'working set read once'
unset logscale y
set style data linespoints
set xlabel 'guest dirty rate (MiB/s)'
set ylabel 'ms'
set title '--live snapshot: VM paused'
plot '$T/live.dat' using 1:3 lw 2 pt 7 title 'downtime (--live)'
unset multiplot
EOF

echo "== snapshot and restore: guest $MEM, working set $MIB MiB ($ws_pages pages recorded), $(git rev-parse --short HEAD), $(date -u +%F), load before: $load0"
echo "-- snapshot size (paused snapshot)"
column -s, -t "$OUT/size.csv"
echo "-- restores, every run"
column -s, -t "$OUT/restore.csv"
echo "-- restores, medians"
column -s, -t "$OUT/restore-summary.csv"
echo "-- snapshot downtime against the dirty rate"
column -s, -t "$OUT/live.csv"
echo "plot: $OUT/restore.png"
