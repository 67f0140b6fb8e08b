#!/usr/bin/env bash
# bench/liveupdate.sh - live update in place (docs/migration.md "Live
# update"): `vmmctl migrate --to unix:PATH` to a new VMM process on this
# host, guest RAM handed over as a memfd; and what --mem-prealloc buys.
#
# 1. liveupdate.csv, one row per run: a guest of MEM (1G, 16G) running
#    `dirty --mib 256 --rate 100` (256 MiB touched and rewritten at
#    100 MiB/s; the rest of RAM never touched) is live-updated RUNS times
#    per size, round robin, after its first fill pass; with PREALLOC=1 in
#    the `variant` column the destination also has --mem-prealloc (RAM
#    populated before the source pauses; only at PREALLOC_MEMS: 1G 4G, as
#    16 GiB populated would take 16 GiB of this 24 GiB host). Per run:
#    - downtime_hb_us: the guest's view, first heartbeat of the new
#      process - last of the old (CLOCK_MONOTONIC, both VMMs' --heartbeat-
#      log); includes up to 1 ms of the guest's heartbeat cadence.
#    - downtime_vmm_us: the source VMM's pause -> the destination's
#      RUNNING (`downtime_us`), with its parts pause_us, stop_copy_us
#      (state taken and queued), ready_wait_us (sent, restored, READY
#      back), go_wait_us (GO -> RUNNING: the vCPU threads started).
#    - total_us: `time_elapsed_us`, migrate accepted -> completed (connect,
#      memfd, HELLO, the adoption, the switch); migrate_wall_ms: the whole
#      `vmmctl migrate` command as a user sees it.
#    - hb: ok when the two heartbeat logs make one sequence 1, 2, 3...;
#      verify: the guest's check of its 256 MiB on the new process.
#    - load1 (/proc/loadavg) and foreign_vmms (VMMs this script did not
#      start) when migrate began: two shared cores, so a busy host shows.
# 2. prealloc.csv: the guest's first touch of 16384 never-touched pages
#    (the faultlat workload: rdtsc around each first write, ring 3) in a
#    1 GiB guest booted without and with --mem-prealloc, RUNS each; and the
#    populate time at boot for 1G and 4G.
#
# liveupdate-summary.csv and the tables on stdout: medians (min-max) per
# size and variant; liveupdate.png: the medians against the RAM size.
# Usage: bench/liveupdate.sh [RUNS]  (default 7; env BUILD_DIR, OUT_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
OUT=${OUT_DIR:-bench/out-liveupdate}
RUNS=${1:-7}
MEMS=${MEMS:-"1G 16G"}
PREALLOC_MEMS=${PREALLOC_MEMS:-"1G 4G"}
VMMCTL=$BUILD_DIR/vmm/vmmctl
GUEST=$BUILD_DIR/examples/guests/guest.elf
[[ -x $VMMCTL && -f $GUEST ]] || { echo "liveupdate.sh: build first" >&2; exit 1; }
[[ -e /dev/kvm ]] || { echo "liveupdate.sh: /dev/kvm is absent" >&2; exit 1; }
for tool in jq gnuplot column python3; do
	command -v "$tool" >/dev/null || { echo "liveupdate.sh: needs $tool" >&2; exit 1; }
done
mkdir -p "$OUT"
T=$(mktemp -d /tmp/vmm-bench.XXXXXX)
PIDS=()
cleanup()
{
	local p
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT

wait_for() # TIMEOUT_S CONDITION
{
	local deadline=$(($(date +%s) + $1))
	until eval "$2"; do
		(($(date +%s) < deadline)) || { echo "liveupdate.sh: timed out: $2" >&2; return 1; }
		sleep 0.05
	done
}

boot() # NAME ARGS...: a VMM in the background; PID in BOOT_PID
{
	local name=$1
	shift
	"$VMMCTL" boot --api "$T/$name.sock" --serial "$T/$name.serial" \
		--heartbeat-log "$T/$name.hb" "$@" >"$T/$name.out" 2>"$T/$name.err" &
	BOOT_PID=$!
	PIDS+=("$BOOT_PID")
	wait_for 60 "[[ -S $T/$name.sock ]] || ! kill -0 $BOOT_PID 2>/dev/null"
	[[ -S $T/$name.sock ]]
}

# hb_gap A B: "ok gap_us" when A's then B's heartbeats make one sequence.
hb_gap()
{
	[[ -s $2 ]] || { echo "FAIL 0"; return; }
	cat "$1" "$2" | awk 'NR > 1 && $1 != prev + 1 { bad = 1 } { prev = $1 } END { exit bad }' &&
		echo "ok $((($(head -n 1 "$2" | cut -d' ' -f2) - $(tail -n 1 "$1" | cut -d' ' -f2)) / 1000))" ||
		echo "FAIL 0"
}

# lu_run MEM VARIANT: one live update; appends a row.
lu_run()
{
	local mem=$1 variant=$2 extra=() src dst t0 t1 j hb verify=FAIL load foreign
	[[ $variant == prealloc ]] && extra=(--mem-prealloc)
	rm -f "$T"/{a,b}.* "$T/b.live"
	boot b --incoming "unix:$T/b.live" --mem "$mem" "${extra[@]}" || { echo "$mem,$variant,boot-failed" >>"$OUT/liveupdate.csv"; return; }
	dst=$BOOT_PID
	boot a --kernel "$GUEST" --mem "$mem" --append "dirty --mib 256 --rate 100" || return
	src=$BOOT_PID
	wait_for 60 "grep -q '^dirty: 256 MiB' $T/a.serial"
	sleep 1.5 # the first fill pass (~0.5 s), then the rewrite loop
	load=$(cut -d' ' -f1 /proc/loadavg)
	foreign=$(($(pgrep -c -f 'vmmctl boot' || true) - 2))
	t0=$(date +%s%N)
	"$VMMCTL" migrate --api "$T/a.sock" --to "unix:$T/b.live" >"$T/m.json" 2>"$T/m.err" || true
	t1=$(date +%s%N)
	j=$T/m.json
	wait "$src" 2>/dev/null || true
	# The new process's heartbeat log may not hold its first line yet
	# when migrate returns (an empty file read as 0 made a gap of minus
	# the monotonic clock): wait for two lines.
	wait_for 10 "[[ \$(wc -l <'$T/b.hb' 2>/dev/null || echo 0) -ge 2 ]]" || true
	read -r hb gap <<<"$(hb_gap "$T/a.hb" "$T/b.hb")"
	"$VMMCTL" guest-request verify --api "$T/b.sock" >/dev/null 2>&1 || true
	wait_for 30 "grep -q '^verify:' $T/b.serial" && grep -q '^verify: ok' "$T/b.serial" && verify=ok
	"$VMMCTL" stop --api "$T/b.sock" >/dev/null 2>&1 || true
	wait "$dst" 2>/dev/null || true
	echo "$mem,$variant,$(jq -r .state "$j" 2>/dev/null || echo no-stats),$gap,$(jq -r '[.downtime_us,.pause_us,.stop_copy_us,.ready_wait_us,.go_wait_us,.time_elapsed_us,.memory_processed]|@csv' "$j" 2>/dev/null || echo ",,,,,,"),$(((t1 - t0) / 1000000)),$hb,$verify,$load,$foreign" >>"$OUT/liveupdate.csv"
}

# fl_run VARIANT: one faultlat run in a 1 GiB guest; appends a row.
fl_run()
{
	local variant=$1 extra=() line
	[[ $variant == prealloc ]] && extra=(--mem-prealloc)
	rm -f "$T"/f.*
	boot f --kernel "$GUEST" --mem 1G "${extra[@]}" --append "faultlat --pages 16384" || return
	wait_for 120 "grep -q '^faultlat:' $T/f.serial"
	line=$(grep '^faultlat:' "$T/f.serial")
	wait "$BOOT_PID" 2>/dev/null || true
	# faultlat: N pages p50 X ns p99 Y ns max Z ns
	read -r _ n _ _ p50 _ _ p99 _ _ pmax _ <<<"$line"
	echo "faultlat,$variant,$n,$p50,$p99,$pmax," >>"$OUT/prealloc.csv"
}

pop_run() # MEM: the populate time at boot
{
	local ms
	rm -f "$T"/p.*
	boot p --kernel "$GUEST" --mem "$1" --mem-prealloc --append "heartbeat" || return
	ms=$(grep -o 'populated in [0-9]* ms' "$T/p.err" | grep -o '[0-9]*' | head -n 1)
	"$VMMCTL" stop --api "$T/p.sock" >/dev/null 2>&1 || true
	wait "$BOOT_PID" 2>/dev/null || true
	echo "populate,$1,,,,,$ms" >>"$OUT/prealloc.csv"
}

if [[ ${REPLOT:-0} != 1 ]]; then
	echo "mem,variant,state,downtime_hb_us,downtime_vmm_us,pause_us,stop_copy_us,ready_wait_us,go_wait_us,total_us,memory_processed,migrate_wall_ms,hb,verify,load1,foreign_vmms" >"$OUT/liveupdate.csv"
	echo "what,variant,pages,p50_ns,p99_ns,max_ns,populate_ms" >"$OUT/prealloc.csv"
	for ((r = 1; r <= RUNS; r++)); do
		for m in $MEMS; do lu_run "$m" plain; done
		for m in $PREALLOC_MEMS; do lu_run "$m" prealloc; done
		fl_run plain
		fl_run prealloc
		echo "liveupdate.sh: round $r/$RUNS done" >&2
	done
	for m in $PREALLOC_MEMS; do pop_run "$m"; done
fi

# Medians (min-max) per size and variant.
python3 - "$OUT" <<'PY'
import csv, statistics, sys
out = sys.argv[1]
rows = list(csv.DictReader(open(f"{out}/liveupdate.csv")))
keys = []
for r in rows:
    k = (r["mem"], r["variant"])
    if k not in keys:
        keys.append(k)
cols = ["downtime_hb_us", "downtime_vmm_us", "pause_us", "stop_copy_us",
        "ready_wait_us", "go_wait_us", "total_us", "migrate_wall_ms"]
def gib(m):
    return float(m[:-1]) / (1024 if m[-1] == "M" else 1)
with open(f"{out}/liveupdate-summary.csv", "w") as f:
    w = csv.writer(f)
    w.writerow(["mem", "gib", "variant", "runs", "completed", "hb_ok", "verify_ok"] +
               [c + s for c in cols for s in ("_med", "_min", "_max")])
    for mem, var in keys:
        rs = [r for r in rows if (r["mem"], r["variant"]) == (mem, var)]
        ok = [r for r in rs if r["state"] == "completed"]
        line = [mem, gib(mem), var, len(rs), len(ok),
                sum(r["hb"] == "ok" for r in rs), sum(r["verify"] == "ok" for r in rs)]
        for c in cols:
            v = [float(r[c]) for r in ok if r[c] not in ("", None)]
            line += [round(statistics.median(v)), round(min(v)), round(max(v))] if v else ["", "", ""]
        w.writerow(line)
p = list(csv.DictReader(open(f"{out}/prealloc.csv")))
with open(f"{out}/prealloc-summary.csv", "w") as f:
    w = csv.writer(f)
    w.writerow(["what", "variant", "runs", "p50_ns_med", "p99_ns_med", "max_ns_med", "populate_ms"])
    for var in ("plain", "prealloc"):
        rs = [r for r in p if r["what"] == "faultlat" and r["variant"] == var]
        if rs:
            w.writerow(["first touch", var, len(rs)] +
                       [round(statistics.median(float(r[c]) for r in rs)) for c in ("p50_ns", "p99_ns", "max_ns")] + [""])
    for r in p:
        if r["what"] == "populate":
            w.writerow(["populate at boot", r["variant"], 1, "", "", "", r["populate_ms"]])
PY

echo "== live update (medians, min-max over the runs; us unless _ms)"
python3 - "$OUT" <<'PY' | column -s, -t
import csv, sys
for r in csv.DictReader(open(f"{sys.argv[1]}/liveupdate-summary.csv")):
    f = lambda c: f"{r[c+'_med']} ({r[c+'_min']}-{r[c+'_max']})"
    print(",".join([r["mem"], r["variant"], f"{r['completed']}/{r['runs']} done",
                    f"hb {r['hb_ok']} ok", f"verify {r['verify_ok']} ok",
                    "gap " + f("downtime_hb_us"), "vmm " + f("downtime_vmm_us"),
                    "pause " + r["pause_us_med"], "state " + r["stop_copy_us_med"],
                    "ready " + r["ready_wait_us_med"], "go " + r["go_wait_us_med"],
                    "total " + f("total_us"), "wall_ms " + r["migrate_wall_ms_med"]]))
PY
echo "== --mem-prealloc: first touch of 16384 pages in the guest (ns, medians), populate time"
column -s, -t "$OUT/prealloc-summary.csv"

term=png
gnuplot -e 'set terminal' 2>/dev/null | grep -qw pngcairo && term="pngcairo font ',10'"
gnuplot <<EOF || echo "liveupdate.sh: gnuplot failed" >&2
set terminal $term size 900,500
set output '$OUT/liveupdate.png'
set datafile separator ','
set key bottom right
set xrange [0.8:20]
set logscale xy 2
set xlabel 'guest RAM (GiB)'
set ylabel 'milliseconds (median; bars: min-max)'
set title "live update in place (memfd handed over), 2 shared host cores, load1 $(cut -d, -f15 "$OUT/liveupdate.csv" | tail -n +2 | sort -n | sed -n '1p;$p' | paste -sd-)"
plot '$OUT/liveupdate-summary.csv' using (strcol(3) eq "plain" ? \$2 : 1/0):(\$8/1e3):(\$9/1e3):(\$10/1e3) every ::1 with yerrorlines title 'downtime (heartbeat gap)', \
     '' using (strcol(3) eq "plain" ? \$2 : 1/0):(\$11/1e3):(\$12/1e3):(\$13/1e3) every ::1 with yerrorlines title 'downtime (VMM: pause -> RUNNING)', \
     '' using (strcol(3) eq "plain" ? \$2 : 1/0):(\$26/1e3):(\$27/1e3):(\$28/1e3) every ::1 with yerrorlines title 'total (migrate -> completed)', \
     '' using (strcol(3) eq "prealloc" ? \$2 : 1/0):(\$26/1e3):(\$27/1e3):(\$28/1e3) every ::1 with yerrorlines title 'total, destination --mem-prealloc (populates first)'
EOF
echo "wrote $OUT/liveupdate.csv, liveupdate-summary.csv, prealloc.csv, prealloc-summary.csv, liveupdate.png"
