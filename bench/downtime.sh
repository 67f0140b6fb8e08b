#!/usr/bin/env bash
# bench/downtime.sh - live-migration downtime and total time against the
# guest's dirty rate, over loopback on this machine.
#
# For each mode (MODES; only precopy exists so far) and each dirty rate R
# (MiB/s): a destination `vmmctl boot --incoming tcp:127.0.0.1:PORT`, a
# source running `dirty --mib MIB --rate R` in a MEM guest; wait until the
# guest's first fill pass over its MIB is over (the warm-up, not measured:
# first touches are what is slow on this nested KVM; the script polls the
# dirty bit of the region's last PTE, so it waits exactly as long as the
# fill takes: ~1 s for 512 MiB on our machines), let the rewrite loop run
# SETTLE_S, then `vmmctl migrate` and record, per run (downtime.csv):
#
#  - downtime_hb_ms: measured from outside the guest. The guest sends a
#    heartbeat (sequence number) every ms; each VMM logs "<seq> <ns>"
#    (CLOCK_MONOTONIC, one clock for both VMMs) to its --heartbeat-log.
#    downtime = first destination heartbeat - last source heartbeat; it
#    includes up to ~1 ms of heartbeat cadence on the source side.
#  - downtime_vmm_ms: the source VMM's own figure, from the start of the
#    pause to the destination's RUNNING (`downtime_us`).
#  - total_time_ms (`time_elapsed`), wire_mib (`wire_bytes`), rounds
#    (`memory_iteration`), converged: from the JSON `vmmctl migrate` prints
#    (libvirt job-stat names), kept whole in bench/out/downtime-MODE-R-REP.json.
#  - hb: ok when the two heartbeat logs together count 1, 2, 3, ... with
#    nothing missing or repeated (and the migration completed), else FAIL.
#  - verify: the guest then checks every page of its region on the
#    destination (GUEST_REQ_VERIFY): ok, FAIL, or - (no migration).
#  - warmup_ms (the fill), pre_gap_ms / post_gap_ms (the largest heartbeat
#    gap in the last second before the migration / the first second on the
#    destination: the machine's noise floor), foreign_vmms (VMMs this script
#    did not start that were running around the migration: two cores, so
#    such a run is skewed).
#
# Also downtime-summary.csv (median and min-max per mode and rate over the
# REPS runs), downtime.png (gnuplot: the medians, bars from min to max),
# and both tables on stdout. A default run takes about a minute (12
# migrations of a 1 GiB guest). Usage:
#
#   bench/downtime.sh [--mem SIZE] [--mib N] [--rates "R ..."] [--modes "M ..."]
#                     [--cpus N] [--downtime-limit MS] [--max-rounds N] [--reps N]
#   e.g. bench/downtime.sh --mib 64 --rates "0 50" --reps 1   (a quick run)
#
# The same settings can come from the environment: MEM (default 1G),
# MIB (512), RATES ("0 50 200 1000"), MODES ("precopy"), CPUS (1),
# DOWNTIME_LIMIT (10), MAX_ROUNDS (30), REPS (3: every rate is measured
# that many times, round robin; one run's downtime varies by a few ms on
# two shared cores), QUIET_WAIT_S (60: before each run, wait that long at
# most for VMMs this script did not start to end), SETTLE_S (1), KEEP=1
# keeps the scratch directory (serial output, heartbeat logs, per run).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
VMMCTL=$BUILD_DIR/vmm/vmmctl
GUEST=$BUILD_DIR/examples/guests/guest.elf
MEM=${MEM:-1G}
MIB=${MIB:-512}
RATES=${RATES:-0 50 200 1000}
MODES=${MODES:-precopy} # later: "precopy hybrid postcopy"
CPUS=${CPUS:-1}
DOWNTIME_LIMIT=${DOWNTIME_LIMIT:-10}
MAX_ROUNDS=${MAX_ROUNDS:-30}
SETTLE_S=${SETTLE_S:-1}
REPS=${REPS:-3}
QUIET_WAIT_S=${QUIET_WAIT_S:-60}
OUT=bench/out

usage() # EXIT_CODE
{
	echo "usage:" >&2
	sed -n '/^#   bench/,/^#   e.g./s/^#/ /p' "$0" >&2
	exit "$1"
}
while (($#)); do
	[[ $1 == -h || $1 == --help ]] && usage 0
	(($# >= 2)) || { echo "downtime.sh: '$1' needs a value" >&2; usage 2; }
	case $1 in
	--mem) MEM=$2 ;;
	--mib) MIB=$2 ;;
	--rates) RATES=$2 ;;
	--modes) MODES=$2 ;;
	--cpus) CPUS=$2 ;;
	--downtime-limit) DOWNTIME_LIMIT=$2 ;;
	--max-rounds) MAX_ROUNDS=$2 ;;
	--reps) REPS=$2 ;;
	*) echo "downtime.sh: unknown argument '$1'" >&2; usage 2 ;;
	esac
	shift 2
done

mkdir -p "$OUT"
[[ -x $VMMCTL && -f $GUEST ]] || { echo "downtime.sh: build first (scripts/setup.sh)" >&2; exit 1; }
[[ -e /dev/kvm ]] || { echo "downtime.sh: /dev/kvm is absent" >&2; exit 1; }
for tool in jq gnuplot column; do
	command -v "$tool" >/dev/null || { echo "downtime.sh: needs $tool" >&2; exit 1; }
done
T=$(mktemp -d /tmp/vmm-bench.XXXXXX)
PIDS=()
cleanup()
{
	local p
	for p in "${PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
	done
	if [[ ${KEEP:-0} == 1 ]]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die()
{
	echo "downtime.sh: $*" >&2
	local f
	for f in "$T"/*.serial "$T"/*.err; do
		[[ -s $f ]] || continue
		echo "---- $f (last 10 lines)" >&2
		tail -n 10 "$f" >&2
	done
	exit 1
}

now_ms() { date +%s%3N; }

wait_for() # TIMEOUT_S WHAT CONDITION [POLL_S]: re-evaluate CONDITION
{
	local deadline=$(($(now_ms) + $1 * 1000))
	until eval "$3"; do
		(($(now_ms) < deadline)) || die "timed out after $1 s waiting for $2"
		sleep "${4:-0.05}"
	done
}

# free_port: a TCP port nothing listens on now.
free_port()
{
	local p
	for p in $(shuf -i 20000-60000 -n 50); do
		if ! (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free TCP port"
}

# boot NAME ARGS...: a VMM with its files under $T/NAME.*; sets PID.
boot()
{
	local name=$1
	shift
	rm -f "$T/$name".*
	"$VMMCTL" boot --api "$T/$name.sock" --serial "$T/$name.serial" \
		--heartbeat-log "$T/$name.hb" --mem "$MEM" --cpus "$CPUS" "$@" \
		</dev/null >"$T/$name.out" 2>"$T/$name.err" &
	PID=$!
	PIDS+=("$PID")
	wait_for 20 "$name control socket" "[[ -S $T/$name.sock ]] || ! kill -0 $PID 2>/dev/null"
	[[ -S $T/$name.sock ]] || die "$name: vmmctl boot exited before serving its API"
}

# reap PID TIMEOUT_S: wait for a VMM to exit by itself, else kill it.
reap()
{
	local deadline=$(($(now_ms) + $2 * 1000))
	while kill -0 "$1" 2>/dev/null && (($(now_ms) < deadline)); do sleep 0.05; done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	forget "$1"
}

# forget PID: a reaped child; its number may be reused from now on.
forget()
{
	local p keep=()
	for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

# pte_dirty SOCK GVA: the guest's own PTE for GVA has its dirty bit set.
pte_dirty()
{
	local e
	e=$("$VMMCTL" translate --api "$1" --cpu 0 "$2" | jq -r '.walk[-1].entry // "0"')
	(((e & 0x40) != 0))
}

# verify_markers SOCK: "OK FAIL", the guest's verify-ok and -fail counts.
verify_markers()
{
	"$VMMCTL" status --api "$1" 2>/dev/null |
		jq -r '"\(.markers["verify-ok"]) \(.markers["verify-fail"])"' || echo "gone"
}

# max_gap_ms: the largest gap between consecutive heartbeats on stdin.
max_gap_ms()
{
	awk 'NR > 1 && $2 - p > m { m = $2 - p } { p = $2 }
		END { if (NR < 2) print "NaN"; else printf "%.3f\n", m / 1e6 }'
}

# foreign_vmms: how many VMMs run on this machine that this script did not
# start (two cores: any of them skews the figures).
foreign_vmms()
{
	local n=0 p q mine
	for p in $(pgrep -f 'vmmctl boot' || true); do
		mine=0
		for q in "${PIDS[@]}"; do [[ $p == "$q" ]] && mine=1; done
		((mine)) || n=$((n + 1))
	done
	echo "$n"
}

# wait_quiet: give VMMs that others run on this machine up to QUIET_WAIT_S
# to go away before a run (the run records how many it saw anyway).
wait_quiet()
{
	local deadline=$(($(now_ms) + QUIET_WAIT_S * 1000))
	(($(foreign_vmms) == 0)) && return
	echo "downtime.sh: other VMMs are running; waiting up to $QUIET_WAIT_S s for them to end" >&2
	while (($(foreign_vmms) > 0 && $(now_ms) < deadline)); do sleep 1; done
}

# hb_merged SRC DST: the two logs continue one sequence 1, 2, ... with no
# number missing or repeated. Prints "ok|FAIL downtime_ns" (the first
# destination heartbeat's time - the last source heartbeat's).
hb_merged()
{
	local ok=ok last first
	[[ -s $1 && -s $2 ]] || { echo "FAIL NaN"; return; }
	cat "$1" "$2" | awk 'NR == 1 && $1 != 1 { exit 1 }
		NR > 1 && $1 != prev + 1 { exit 1 } { prev = $1 }' || ok=FAIL
	last=$(tail -n 1 "$1" | awk '{ print $2 }')
	first=$(head -n 1 "$2" | awk '{ print $2 }')
	echo "$ok $((first - last))"
}

# run MODE RATE REP: one migration; appends a row to the CSV.
run()
{
	local mode=$1 rate=$2 port src dst base last t0 rc=0 json=$OUT/downtime-$1-$2-$3.json
	local S=$T/src-$1-$2-$3 D=$T/dst-$1-$2-$3 # scratch files of this run
	port=$(free_port)
	boot "${D##*/}" --incoming "tcp:127.0.0.1:$port"
	dst=$PID
	boot "${S##*/}" --kernel "$GUEST" --append "dirty --mib $MIB --rate $rate"
	src=$PID
	# Warm-up. The fill writes the region's pages once, in address order,
	# before any rewrite; the guest maps them with 4 KiB pages, so the CPU
	# sets the dirty bit of the region's last PTE exactly when the fill is
	# over. Poll it with `translate` (it pauses the VM for a moment, which
	# only matters here, before the measurement). The timeout allows
	# kvm-notes.md's ~45 us per first-touched page, twice over.
	t0=$(now_ms)
	wait_for 20 "the dirty workload" "grep -q '^dirty:' $S.serial"
	base=$(awk '/^dirty:/ { print $5; exit }' "$S.serial") # dirty: N MiB at 0x... rate
	last=$(printf '0x%x' $((base + MIB * 1048576 - 4096)))
	wait_for $((MIB * 256 * 90 / 1000000 + 30)) "the fill of $MIB MiB" \
		"pte_dirty $S.sock $last" 0.2
	local fill_ms=$(($(now_ms) - t0))
	sleep "$SETTLE_S" # let the rewrite loop reach its pace
	local n0 foreign
	n0=$(wc -l <"$S.hb")
	foreign=$(foreign_vmms)
	# In the background, so that a signal to this script acts at once.
	timeout 300 "$VMMCTL" migrate --api "$S.sock" --to "tcp:127.0.0.1:$port" \
		--mode "$mode" --downtime-limit "$DOWNTIME_LIMIT" --max-rounds "$MAX_ROUNDS" \
		>"$S.mig" 2>"$S.mig-err" &
	local mig=$!
	PIDS+=("$mig")
	wait "$mig" || rc=$?
	forget "$mig"
	# The last JSON object printed is the final statistics.
	jq -s 'last // {}' "$S.mig" >"$json" 2>/dev/null || echo '{}' >"$json"
	local verify=-
	if ((rc == 0)) && [[ $(jq -r .state "$json") == completed ]]; then
		reap "$src" 30 # the source VMM exits once the destination runs
		# The guest checks its whole region on the destination.
		local v0
		v0=$(verify_markers "$D.sock")
		"$VMMCTL" guest-request verify --api "$D.sock" >/dev/null
		wait_for 60 "verify on the destination" \
			"! kill -0 $dst 2>/dev/null || [[ \$(verify_markers $D.sock) != '$v0' ]]"
		verify=FAIL
		[[ $(verify_markers "$D.sock") == "$((${v0% *} + 1)) ${v0#* }" ]] && verify=ok
		"$VMMCTL" stop --api "$D.sock" >/dev/null 2>&1 || true
	else
		echo "downtime.sh: $mode at $rate MiB/s: migrate exited $rc: $(cat "$S.mig-err")" >&2
		"$VMMCTL" stop --api "$S.sock" >/dev/null 2>&1 || true
	fi
	foreign=$((foreign > $(foreign_vmms) ? foreign : $(foreign_vmms)))
	reap "$src" 10
	reap "$dst" 10
	# The machine's noise, for reading the downtime: the largest gap between
	# heartbeats in the last second before the migration (the guest alone,
	# the same on every run when the machine is quiet), and in the first
	# second on the destination (the guest's first touches of its pages
	# there, and what is left of the switch-over).
	local pre_gap post_gap
	pre_gap=$(head -n "$n0" "$S.hb" | tail -n 1000 | max_gap_ms)
	post_gap=$(head -n 1000 "$D.hb" 2>/dev/null | max_gap_ms)
	local hb ok dt_ns
	hb=$(hb_merged "$S.hb" "$D.hb")
	read -r ok dt_ns <<<"$hb"
	((rc == 0)) || ok=FAIL
	jq -r --arg mode "$mode" --arg rate "$rate" --arg rep "$3" --arg ok "$ok" --arg verify "$verify" \
		--arg dt "$dt_ns" --arg fill "$fill_ms" --arg pre "$pre_gap" --arg post "$post_gap" \
		--arg foreign "$foreign" '
		def r3: (. * 1000 | round) / 1000;
		def f(k; scale): if .[k] == null then "NaN" else (.[k] * scale | r3) end;
		[$mode, $rate, $rep,
		 (if $dt == "NaN" then "NaN" else ($dt | tonumber / 1e6 | r3) end),
		 f("downtime_us"; 1e-3), f("time_elapsed"; 1), f("wire_bytes"; 1 / 1048576),
		 f("memory_iteration"; 1), (if .converged == null then "NaN" else .converged end),
		 $ok, $verify, $fill, $pre, $post, $foreign] | @csv' "$json" |
		tr -d '"' >>"$OUT/downtime.csv"
}

# Two cores: anything else running skews every figure. Say so.
others=$(pgrep -a -f 'vmmctl boot' || true)
[[ -z $others ]] || echo "downtime.sh: WARNING: other VMMs are running; figures will be skewed:
$others" >&2
rev=$(git describe --always --dirty 2>/dev/null || echo unknown)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(now_ms)
echo "mode,rate_mib_s,rep,downtime_hb_ms,downtime_vmm_ms,total_time_ms,wire_mib,rounds,converged,hb,verify,warmup_ms,pre_gap_ms,post_gap_ms,foreign_vmms" >"$OUT/downtime.csv"
# Repetitions go round the whole list, so that a slow spell of the machine
# does not land on one rate only.
for ((rep = 1; rep <= REPS; rep++)); do
	for mode in $MODES; do
		for rate in $RATES; do
			echo "downtime.sh: [$rep/$REPS] $mode, dirty --mib $MIB --rate $rate, guest $MEM ..." >&2
			wait_quiet
			run "$mode" "$rate" "$rep"
		done
	done
done
secs=$((($(now_ms) - start) / 1000))

# Per mode and rate over the repetitions: the median (min-max) of the
# figures, converged and ok counts. Also the plot's data, one file per mode:
# position, rate, then median min max of downtime_hb, downtime_vmm, total.
# shellcheck disable=SC2016 # jq's $variables
summary='
	def num: if . == "NaN" then null else tonumber end;
	def med: map(select(. != null)) | sort |
		if length == 0 then null
		elif length % 2 == 1 then .[length / 2 | floor]
		else (.[length / 2 - 1] + .[length / 2]) / 2 end;
	def trio(k): map(.[k] | num) | [med, (map(select(. != null)) | min), (map(select(. != null)) | max)];
	def nan: if . == null then "NaN" else (. * 1000 | round) / 1000 end;
	def show(t): if t[0] == null then "-" elif t[1] == t[2] then "\(t[0] | nan)"
		else "\(t[0] | nan) (\(t[1] | nan)-\(t[2] | nan))" end;
	[split("\n")[1:][] | select(length > 0) | split(",") |
	 {mode: .[0], rate: .[1], hb_ms: .[3], vmm_ms: .[4], total_ms: .[5], wire: .[6],
	  rounds: .[7], conv: .[8], hb: .[9], verify: .[10]}] as $rows
	| ($rates | split(" ") | map(select(length > 0))) as $order
	| ($modes | split(" ") | map(select(length > 0)))[] as $m
	| $order | to_entries[] | .key as $pos | .value as $r
	| [$rows[] | select(.mode == $m and .rate == $r)] | select(length > 0)
	| {m: $m, pos: $pos, r: $r, n: length, hb: trio("hb_ms"), vmm: trio("vmm_ms"),
	   total: trio("total_ms"), wire: trio("wire"), rounds: trio("rounds"),
	   conv: (map(select(.conv == "true")) | length),
	   hbok: (map(select(.hb == "ok")) | length), vok: (map(select(.verify == "ok")) | length)}
	| if $what == "table" then
		[.m, .r, .n, show(.hb), show(.vmm), show(.total), show(.wire), show(.rounds),
		 "\(.conv)/\(.n)", "\(.hbok)/\(.n)", "\(.vok)/\(.n)"] | join(",")
	  else
		[.m, .pos, .r, (.hb[], .vmm[], .total[] | nan)] | map(tostring) | join(" ")
	  end'
jq -Rrs --arg rates "$RATES" --arg modes "$MODES" --arg what plot "$summary" "$OUT/downtime.csv" >"$T/plot.dat"
for mode in $MODES; do
	awk -v m="$mode" '$1 == m { $1 = ""; print }' "$T/plot.dat" >"$T/plot-$mode.dat"
done
{
	echo "mode,rate_mib_s,runs,downtime_hb_ms,downtime_vmm_ms,total_time_ms,wire_mib,rounds,converged,hb,verify"
	jq -Rrs --arg rates "$RATES" --arg modes "$MODES" --arg what table "$summary" "$OUT/downtime.csv"
} >"$OUT/downtime-summary.csv"
term=png
gnuplot -e 'set terminal' 2>/dev/null | grep -qw pngcairo && term="pngcairo font ',10'"
gnuplot <<EOF
set terminal $term size 1100,450
set output '$OUT/downtime.png'
set datafile missing 'NaN'
set multiplot layout 1,2 title "live migration over loopback: guest $MEM, dirty --mib $MIB, 2 host cores, downtime limit $DOWNTIME_LIMIT ms"
set xlabel 'guest dirty rate (MiB/s)'
set grid
set key top left
set logscale y
set offsets 0.3, 0.3, 0, 0
set ylabel 'downtime (ms)'
set title 'downtime (median of the runs, bars: min-max)'
set arrow 1 from graph 0, first $DOWNTIME_LIMIT to graph 1, first $DOWNTIME_LIMIT nohead dt 2 lc rgb 'gray40'
plot for [m in "$MODES"] '$T/plot-'.m.'.dat' using 1:3:4:5:xtic(2) with yerrorlines lw 2 pt 7 title m.': heartbeats (outside the guest)', \
     for [m in "$MODES"] '$T/plot-'.m.'.dat' using 1:6 with linespoints lw 1 dt 2 pt 6 title m.': VMM pause -> resume (median)', \
     1/0 with lines dt 2 lc rgb 'gray40' title 'downtime limit'
unset arrow 1
set ylabel 'total migration time (ms)'
set title 'total time (median, bars: min-max)'
plot for [m in "$MODES"] '$T/plot-'.m.'.dat' using 1:9:10:11:xtic(2) with yerrorlines lw 2 pt 7 title m
unset multiplot
EOF

echo "== live migration over loopback: guest $MEM, $CPUS vCPU, dirty --mib $MIB, downtime limit $DOWNTIME_LIMIT ms, max $MAX_ROUNDS rounds"
echo "   $rev, $(date -u +%F), $secs s, load average before: $load0"
echo "-- every run"
column -s, -t "$OUT/downtime.csv"
echo "-- median (min-max) over $REPS run(s); converged, hb and verify: runs that were"
column -s, -t "$OUT/downtime-summary.csv"
echo "plot: $OUT/downtime.png; final statistics: $OUT/downtime-MODE-RATE-REP.json"
