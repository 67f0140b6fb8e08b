#!/usr/bin/env bash
# bench/downtime.sh - live-migration downtime, total time and post-copy
# cost against the guest's dirty rate, per migration mode, over loopback on
# this machine.
#
# For each mode M (MODES: precopy, postcopy, hybrid) and each dirty rate R
# (MiB/s): a destination `vmmctl boot --incoming tcp:127.0.0.1:PORT`, a
# source running `dirty --mib MIB --rate R` in a MEM guest; wait until the
# guest's first fill pass over its MIB is over (the warm-up, not measured:
# first touches are what is slow on this nested KVM; the script polls the
# dirty bit of the region's last PTE, so it waits exactly as long as the
# fill takes: ~0.5 s for 256 MiB on our machines), let the rewrite loop run
# SETTLE_S, then `vmmctl migrate --mode M` and record, per run
# (downtime.csv, one row per run, a failed run included):
#
#  - state: the final `state` of the migration (completed, failed,
#    cancelled, postcopy-paused...), or what went wrong before it:
#    boot-failed, fill-timeout, timeout (migrate killed after 300 s),
#    no-stats (migrate printed no statistics).
#  - postcopy (true: the switch went to post-copy), switch_reason.
#  - downtime_hb_ms: measured from outside the guest. The guest sends a
#    heartbeat (sequence number) every ms; each VMM logs "<seq> <ns>"
#    (CLOCK_MONOTONIC, one clock for both VMMs) to its --heartbeat-log.
#    downtime = first destination heartbeat - last source heartbeat; it
#    includes up to ~1 ms of heartbeat cadence on the source side.
#  - downtime_guest_ms: measured by the guest itself: its stall at the
#    switch, sent with the destination's first heartbeat (the heartbeat
#    log's third column, examples/guests/README.md): the longest TSC step
#    between two consecutive passes of its tick loop, which the loop makes
#    every few us. Free of the heartbeats' cadence: the guest-visible
#    downtime that downtime_hb_ms bounds from above.
#  - downtime_vmm_ms: the source VMM's own figure, from the start of the
#    pause to the destination's RUNNING (`downtime_us`).
#  - From the JSON `vmmctl migrate` prints (libvirt job-stat names), the
#    source's view: total_time_ms (`time_elapsed`), wire_bytes and wire_mib,
#    rounds (`memory_iteration`), converged, precopy_bytes,
#    switch_dirty_pages, switch_hot_pages, postcopy_pushed_pages, memory_postcopy_requests,
#    postcopy_ms (destination running -> every page there).
#  - From the destination's `status` .migration once the migration is over:
#    postcopy_faults (vCPU faults that waited for a page from the source),
#    fault_wait_p50_us, fault_wait_p99_us, fault_wait_max_us.
#  - ws_mib (= MIB, the guest's working set) and wire_per_ws = wire_bytes /
#    (MIB * 2^20): how many times the working set crossed the wire. The
#    guest's other non-zero memory (its kernel, stacks, the generation
#    array) is ~0.8% of 256 MiB: a post-copy run, which sends every non-zero
#    page exactly once, shows ~1.01.
#  - progress_pct: the guest's pace during post-copy against its pace
#    before the migration, from the heartbeats: 100 * hb_rate_postcopy_hz /
#    hb_rate_before_hz, where hb_rate_postcopy_hz counts the destination's
#    heartbeats in (first, first + postcopy_ms] and hb_rate_before_hz the
#    source's in the second up to its last heartbeat before `migrate` was
#    started (~1000 Hz on a quiet machine). Empty when the run did not go
#    to post-copy or postcopy_ms is 0.
#  - hb: ok when the two heartbeat logs together count 1, 2, 3, ... with
#    nothing missing or repeated (and the migration completed), else FAIL;
#    hb_seq_jump: the destination's first number - the source's last - 1
#    (0 when the guest carried on where it stopped; -N: the destination
#    repeated N numbers, i.e. its guest resumed from memory N ms old).
#  - verify: the guest then checks every page of its region on the
#    destination (GUEST_REQ_VERIFY): ok, FAIL, timeout, or - (no migration).
#  - warmup_ms (the fill), pre_gap_ms / post_gap_ms (the largest heartbeat
#    gap in the last second before the migration / the first second on the
#    destination: the machine's noise floor), pre_stall_ms (the guest's own
#    longest stall in that last second before the migration: the floor
#    for downtime_guest_ms), foreign_vmms (VMMs this script
#    did not start that were running around the migration: two cores, so
#    such a run is skewed).
#  - src_cpu_ms, dst_cpu_ms: CPU time (user + system) of each VMM's
#    threads but its vCPUs over the migration (`vmmctl migrate`'s run):
#    what the migration costs, which other load on the machine leaves
#    alone, unlike the times above.
#
# The source's final statistics, the destination's .migration and the
# script's own figures are kept whole in bench/out/downtime-M-R-REP.json
# (members "destination" and "bench" next to the source's statistics).
# Also downtime-summary.csv (per mode and rate over the REPS runs: median
# (min-max) of the downtimes and total time, medians of the rest, and how
# many runs went to post-copy, converged, had continuous heartbeats and
# verified), downtime.png (gnuplot: downtime and total time against the
# dirty rate, one line per mode; medians, bars from min to max), and the
# tables on stdout. A default run (36 migrations of a 1 GiB guest holding
# 256 MiB) takes 2-3 minutes on our 2-core machines. Usage:
#
#   bench/downtime.sh [--mem SIZE] [--mib N] [--rates "R ..."] [--modes "M ..."]
#                     [--cpus N] [--downtime-limit MS] [--max-rounds N] [--reps N] [--tls]
#                     [--verify] [--max-bandwidth RATE] [--channels N]
#   e.g. bench/downtime.sh --mib 64 --rates "0 50" --modes hybrid --reps 1   (a quick run)
#
# The same settings can come from the environment: MEM (default 1G),
# MIB (256), RATES ("0 50 200 1000"), MODES ("precopy postcopy hybrid"),
# CPUS (1), DOWNTIME_LIMIT (10), MAX_ROUNDS (30), REPS (3: every mode and
# rate is measured that many times, round robin; one run's downtime varies
# by a few ms on two shared cores), QUIET_WAIT_S (60: before each run, wait
# that long at most for VMMs this script did not start to end), SETTLE_S
# (1), PUSH_ORDER (empty: the VMM's default; accessed, faults or linear:
# `vmmctl migrate --push-order` for postcopy and hybrid), BUILD_DIR (build: where vmm/vmmctl and examples/guests/guest.elf
# are), OUT_DIR (bench/out: where the CSV, JSON and PNG go), KEEP=1 keeps the
# scratch directory (serial output, heartbeat logs, per run), REPLOT=1
# migrates nothing: it remakes the summary, the plot and the tables from
# the CSV already in OUT_DIR (give it the same --modes, --rates, --mib).
# --channels N (CHANNELS) passes on to `vmmctl migrate` (parallel channels).
# TCP_CONGESTION=NAME passes on as `--tcp-congestion NAME` to both VMMs
# (`vmmctl migrate` and the destination's `vmmctl boot --incoming`).
# DST_ARGS: more `vmmctl boot` options for the destination, e.g.
# DST_ARGS=--mem-prealloc (its RAM populated before the migration).
# --verify and --max-bandwidth RATE (VERIFY=1, MAX_BANDWIDTH) pass on to
# `vmmctl migrate` (--verify: results in $OUT-verify, to compare its
# downtime with a plain run's).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/ports.sh
. scripts/ports.sh
BUILD_DIR=${BUILD_DIR:-build}
VMMCTL=$BUILD_DIR/vmm/vmmctl
GUEST=$BUILD_DIR/examples/guests/guest.elf
MEM=${MEM:-1G}
MIB=${MIB:-256}
RATES=${RATES:-0 50 200 1000}
MODES=${MODES:-precopy postcopy hybrid}
CPUS=${CPUS:-1}
DOWNTIME_LIMIT=${DOWNTIME_LIMIT:-10}
MAX_ROUNDS=${MAX_ROUNDS:-30}
SETTLE_S=${SETTLE_S:-1}
REPS=${REPS:-3}
QUIET_WAIT_S=${QUIET_WAIT_S:-60}
PUSH_ORDER=${PUSH_ORDER:-}
OUT=${OUT_DIR:-bench/out}

usage() # EXIT_CODE
{
	echo "usage:" >&2
	sed -n '/^#   bench/,/^#   e.g./s/^#/ /p' "$0" >&2
	exit "$1"
}
TLS=0
TLS_ARGS=()
VERIFY=${VERIFY:-0}
MAX_BANDWIDTH=${MAX_BANDWIDTH:-}
CHANNELS=${CHANNELS:-}
while (($#)); do
	[[ $1 == -h || $1 == --help ]] && usage 0
	# --tls: every migration over mutual TLS (certificates made in the
	# temporary directory), results in $OUT-tls to compare with plaintext.
	if [[ $1 == --tls ]]; then
		TLS=1
		shift
		continue
	fi
	if [[ $1 == --verify ]]; then
		VERIFY=1
		shift
		continue
	fi
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
	--max-bandwidth) MAX_BANDWIDTH=$2 ;;
	--channels) CHANNELS=$2 ;;
	*) echo "downtime.sh: unknown argument '$1'" >&2; usage 2 ;;
	esac
	shift 2
done
for mode in $MODES; do
	[[ $mode == @(precopy|postcopy|hybrid) ]] ||
		{ echo "downtime.sh: unknown mode '$mode' (precopy, postcopy, hybrid)" >&2; exit 2; }
done
[[ $MIB =~ ^[1-9][0-9]*$ && $REPS =~ ^[1-9][0-9]*$ ]] ||
	{ echo "downtime.sh: --mib and --reps take a positive integer" >&2; exit 2; }

((TLS)) && [[ -z ${OUT_DIR:-} ]] && OUT=$OUT-tls
MIG_ARGS=()
((VERIFY)) && MIG_ARGS+=(--verify) && [[ -z ${OUT_DIR:-} ]] && OUT=$OUT-verify
[[ -n $MAX_BANDWIDTH ]] && MIG_ARGS+=(--max-bandwidth "$MAX_BANDWIDTH")
[[ -n $CHANNELS ]] && MIG_ARGS+=(--channels "$CHANNELS")
[[ -n ${TCP_CONGESTION:-} ]] && MIG_ARGS+=(--tcp-congestion "$TCP_CONGESTION")
mkdir -p "$OUT"
[[ -x $VMMCTL && -f $GUEST ]] ||
	{ echo "downtime.sh: no $VMMCTL or $GUEST: build first (scripts/setup.sh) or set BUILD_DIR" >&2; exit 1; }
[[ -e /dev/kvm ]] || { echo "downtime.sh: /dev/kvm is absent" >&2; exit 1; }
for tool in jq gnuplot column; do
	command -v "$tool" >/dev/null || { echo "downtime.sh: needs $tool" >&2; exit 1; }
done
T=$(mktemp -d /tmp/vmm-bench.XXXXXX)
if ((TLS)); then
	scripts/mkcerts.sh "$T/certs" >/dev/null 2>&1 || { echo "downtime.sh: mkcerts.sh failed" >&2; exit 1; }
	TLS_ARGS=(--tls-dir "$T/certs")
fi
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

warn() { echo "downtime.sh: $*" >&2; }

# tails FILE...: the last lines of the VMMs' output, after a failure.
tails()
{
	local f
	for f in "$@"; do
		[[ -s $f ]] || continue
		echo "---- ${f##*/} (last 5 lines)" >&2
		tail -n 5 "$f" >&2
	done
}

now_ms() { date +%s%3N; }

# wait_for TIMEOUT_S WHAT CONDITION [POLL_S]: re-evaluate CONDITION until it
# holds (0), or say so and return 1 after TIMEOUT_S.
wait_for()
{
	local deadline=$(($(now_ms) + $1 * 1000))
	until eval "$3"; do
		if (($(now_ms) >= deadline)); then
			warn "timed out after $1 s waiting for $2"
			return 1
		fi
		sleep "${4:-0.05}"
	done
}

# vmm_cpu_ms PID [total]: CPU time (user + system, ms) of a VMM's threads
# but its vCPUs (the event loop, where migration runs, and its helpers), so
# far. With "total" (the destination, whose vCPUs live on): the process's
# total, which keeps the time of threads that have ended (the destination's
# channel threads), less the vCPU threads'.
vmm_cpu_ms()
{
	local t sum=0 tick sign=1
	tick=$(getconf CLK_TCK)
	if [[ ${2:-} == total ]]; then
		sum=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' /proc/"$1"/stat 2>/dev/null || echo 0)
		sign=-1
	fi
	for t in /proc/"$1"/task/*; do
		[[ $(cat "$t/comm" 2>/dev/null) == vcpu* ]] && ((sign > 0)) && continue
		[[ $(cat "$t/comm" 2>/dev/null) == vcpu* ]] || ((sign > 0)) || continue
		sum=$((sum + sign * $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "$t/stat" 2>/dev/null || echo 0)))
	done
	echo $((sum * 1000 / tick))
}

# free_port: a TCP port nothing listens on now.
free_port()
{
	port_pick || echo 0
}

# boot NAME ARGS...: a VMM with its files under $T/NAME.*; sets PID. Returns
# 1 when it does not serve its control socket.
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
	wait_for 20 "$name control socket" "[[ -S $T/$name.sock ]] || ! kill -0 $PID 2>/dev/null" || true
	[[ -S $T/$name.sock ]] && return 0
	warn "$name: vmmctl boot exited before serving its API"
	tails "$T/$name.err" "$T/$name.serial"
	return 1
}

# reap PID TIMEOUT_S: wait for a VMM to exit by itself, else kill it.
reap()
{
	[[ -n $1 ]] || return 0
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
	e=$("$VMMCTL" translate --api "$1" --cpu 0 "$2" 2>/dev/null | jq -r '.walk[-1].entry // "0"') || return 1
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

# hb_rate FILE START_NS END_NS: heartbeats per second logged in FILE with
# START < time <= END (the guest's pace: 1000 when it runs freely).
hb_rate()
{
	awk -v s="$2" -v e="$3" '$2 > s && $2 <= e { n++ }
		END { if (e <= s) print "NaN"; else printf "%.1f\n", n * 1e9 / (e - s) }' "$1"
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
	warn "other VMMs are running; waiting up to $QUIET_WAIT_S s for them to end"
	while (($(foreign_vmms) > 0 && $(now_ms) < deadline)); do sleep 1; done
}

# hb_merged SRC DST: the two logs continue one sequence 1, 2, ... with no
# number missing or repeated. Prints "ok|FAIL downtime_ns jump stall_us":
# downtime = the first destination heartbeat's time - the last source
# heartbeat's; jump = the first destination number - the last source number
# - 1 (0 when the guest carried on where it was; -N: the destination
# repeated N numbers, its guest resumed from older memory); stall = the
# guest's own stall sent with the destination's first heartbeat (NaN from
# a guest that sends none).
hb_merged()
{
	local ok=ok last first
	[[ -s $1 && -s $2 ]] || { echo "FAIL NaN NaN NaN"; return; }
	cat "$1" "$2" | awk 'NR == 1 && $1 != 1 { exit 1 }
		NR > 1 && $1 != prev + 1 { exit 1 } { prev = $1 }' || ok=FAIL
	read -r -a last < <(tail -n 1 "$1")
	read -r -a first < <(head -n 1 "$2")
	echo "$ok $((first[1] - last[1])) $((first[0] - last[0] - 1)) ${first[2]:-NaN}"
}

# The CSV's columns, in order (the row is built from them by name, below).
COLS=(mode rate_mib_s rep state postcopy switch_reason downtime_hb_ms downtime_guest_ms downtime_vmm_ms
	total_time_ms wire_bytes wire_mib ws_mib wire_per_ws rounds converged precopy_bytes
	switch_dirty_pages switch_hot_pages postcopy_pushed_pages push_order push_near_pages push_hot_pages
	push_walk_us memory_postcopy_requests postcopy_ms
	postcopy_faults fault_wait_p50_us fault_wait_p99_us fault_wait_max_us progress_pct
	hb_rate_before_hz hb_rate_postcopy_hz hb hb_seq_jump verify warmup_ms pre_gap_ms post_gap_ms pre_stall_ms
	foreign_vmms src_cpu_ms dst_cpu_ms)

# One row from the run's JSON (the source's statistics, .destination and
# .bench). Missing figures are NaN (a failed run), missing words -;
# progress_pct is empty when there was no post-copy window.
# shellcheck disable=SC2016 # jq's $variables
row_jq='
	def r3: (. * 1000 | round) / 1000;
	def n(x): if x == null then "NaN" else x end;
	def n(x; scale): if x == null then "NaN" else (x * scale | r3) end;
	def w(x): if x == null then "-" else x end;
	. as $j | .bench as $b | (.destination // {}) as $d
	| {mode: $b.mode, rate_mib_s: $b.rate, rep: $b.rep, state: w($j.state),
	   postcopy: w($j.postcopy), switch_reason: w($j.switch_reason),
	   downtime_hb_ms: n($b.downtime_hb_ms), downtime_guest_ms: n($b.downtime_guest_ms),
	   downtime_vmm_ms: n($j.downtime_us; 1e-3),
	   total_time_ms: n($j.time_elapsed), wire_bytes: n($j.wire_bytes),
	   wire_mib: n($j.wire_bytes; 1 / 1048576), ws_mib: $b.ws_mib,
	   wire_per_ws: n($j.wire_bytes; 1 / ($b.ws_mib * 1048576)),
	   rounds: n($j.memory_iteration), converged: w($j.converged),
	   precopy_bytes: n($j.precopy_bytes), switch_dirty_pages: n($j.switch_dirty_pages),
	   switch_hot_pages: n($j.switch_hot_pages),
	   postcopy_pushed_pages: n($j.postcopy_pushed_pages), push_order: w($b.push_order),
	   push_near_pages: n($j.push_near_pages), push_hot_pages: n($j.push_hot_pages),
	   push_walk_us: n($j.push_walk_us),
	   memory_postcopy_requests: n($j.memory_postcopy_requests), postcopy_ms: n($j.postcopy_ms),
	   postcopy_faults: n($d.postcopy_faults), fault_wait_p50_us: n($d.fault_wait_p50_us),
	   fault_wait_p99_us: n($d.fault_wait_p99_us), fault_wait_max_us: n($d.fault_wait_max_us),
	   progress_pct: $b.progress_pct, hb_rate_before_hz: $b.hb_rate_before_hz,
	   hb_rate_postcopy_hz: $b.hb_rate_postcopy_hz, hb: $b.hb, hb_seq_jump: $b.hb_seq_jump, verify: $b.verify,
	   warmup_ms: $b.warmup_ms, pre_gap_ms: $b.pre_gap_ms, post_gap_ms: $b.post_gap_ms,
	   pre_stall_ms: n($b.pre_stall_ms),
	   foreign_vmms: $b.foreign_vmms, src_cpu_ms: n($b.src_cpu_ms), dst_cpu_ms: n($b.dst_cpu_ms)}
	| [.[($cols | split(" "))[]] | if . == null then "NaN" else tostring end] | join(",")'

# prepare: boot both VMMs, warm the guest up, let it settle (run's locals).
# Returns 1, having set state, when the run cannot go on to the migration.
prepare()
{
	port=$(free_port)
	# shellcheck disable=SC2086 # DST_ARGS: words for the destination
	boot "${D##*/}" --incoming "tcp:127.0.0.1:$port" ${TLS_ARGS[@]+"${TLS_ARGS[@]}"} ${DST_ARGS:-} \
		${TCP_CONGESTION:+--tcp-congestion "$TCP_CONGESTION"} || { state=boot-failed; return 1; }
	dst=$PID
	boot "${S##*/}" --kernel "$GUEST" --append "dirty --mib $MIB --rate $rate" ||
		{ state=boot-failed; return 1; }
	src=$PID
	# Warm-up. The fill writes the region's pages once, in address order,
	# before any rewrite; the guest maps them with 4 KiB pages, so the CPU
	# sets the dirty bit of the region's last PTE exactly when the fill is
	# over. Poll it with `translate` (it pauses the VM for a moment, which
	# only matters here, before the measurement). The timeout allows
	# docs/kvm-host.md's ~45 us per first-touched page, twice over.
	local t0 base last
	t0=$(now_ms)
	wait_for 20 "the dirty workload" "grep -q '^dirty:' $S.serial" || { state=fill-timeout; return 1; }
	base=$(awk '/^dirty:/ { print $5; exit }' "$S.serial") # dirty: N MiB at 0x... rate
	last=$(printf '0x%x' $((base + MIB * 1048576 - 4096)))
	wait_for $((MIB * 256 * 90 / 1000000 + 30)) "the fill of $MIB MiB" \
		"pte_dirty $S.sock $last" 0.2 || { state=fill-timeout; return 1; }
	fill_ms=$(($(now_ms) - t0))
	sleep "$SETTLE_S" # let the rewrite loop reach its pace
}

# run MODE RATE REP: one migration; appends a row to the CSV, whatever
# happens to it.
run()
{
	local mode=$1 rate=$2 rep=$3 json=$OUT/downtime-$1-$2-$3.json
	local S=$T/src-$1-$2-$3 D=$T/dst-$1-$2-$3 # scratch files of this run
	local port src='' dst='' rc=0 state='' fill_ms=NaN n0=0 foreign verify=-
	local src_cpu=NaN dst_cpu=NaN
	foreign=$(foreign_vmms)
	if prepare; then
		n0=$(wc -l <"$S.hb")
		foreign=$(foreign_vmms)
		local push_args=() cpu_s cpu_d
		[[ -n $PUSH_ORDER && $mode != precopy ]] && push_args=(--push-order "$PUSH_ORDER")
		cpu_s=$(vmm_cpu_ms "$src") cpu_d=$(vmm_cpu_ms "$dst" total)
		# In the background, so that a signal to this script acts at once.
		timeout 300 "$VMMCTL" migrate --api "$S.sock" --to "tcp:127.0.0.1:$port" \
			--mode "$mode" --downtime-limit "$DOWNTIME_LIMIT" --max-rounds "$MAX_ROUNDS" \
			${push_args[@]+"${push_args[@]}"} ${TLS_ARGS[@]+"${TLS_ARGS[@]}"} \
			${MIG_ARGS[@]+"${MIG_ARGS[@]}"} >"$S.mig" 2>"$S.mig-err" &
		local mig=$!
		PIDS+=("$mig")
		wait "$mig" || rc=$?
		forget "$mig"
		# Both VMMs' CPU time (but their vCPUs') over the migration: a
		# figure the other load on two shared cores leaves alone, unlike
		# the total time.
		src_cpu=$(($(vmm_cpu_ms "$src") - cpu_s)) dst_cpu=$(($(vmm_cpu_ms "$dst" total) - cpu_d))
		# The last JSON object printed is the final statistics.
		jq -s 'last // {}' "$S.mig" >"$S.mig.json" 2>/dev/null || echo '{}' >"$S.mig.json"
		state=$(jq -r '.state // empty' "$S.mig.json")
		if [[ -z $state ]]; then
			state=no-stats
			((rc != 124)) || state=timeout
		fi
		# The destination's view (its fault service), now that it is over.
		"$VMMCTL" status --api "$D.sock" 2>/dev/null | jq '.migration // {}' >"$D.mig.json" 2>/dev/null ||
			echo '{}' >"$D.mig.json"
		if ((rc == 0)) && [[ $state == completed ]]; then
			reap "$src" 30 # the source VMM exits once the destination runs
			# The guest checks its whole region on the destination.
			local v0
			v0=$(verify_markers "$D.sock")
			if "$VMMCTL" guest-request verify --api "$D.sock" >/dev/null 2>&1; then
				verify=timeout
				if wait_for 60 "verify on the destination" \
					"! kill -0 $dst 2>/dev/null || [[ \$(verify_markers $D.sock) != '$v0' ]]"; then
					verify=FAIL
					[[ $(verify_markers "$D.sock") == "$((${v0% *} + 1)) ${v0#* }" ]] && verify=ok
				fi
			else
				verify=FAIL
			fi
			"$VMMCTL" stop --api "$D.sock" >/dev/null 2>&1 || true
		else
			warn "$mode at $rate MiB/s: migrate exited $rc, state $state: $(tail -n 3 "$S.mig-err")"
			tails "$S.err" "$D.err"
			"$VMMCTL" stop --api "$S.sock" >/dev/null 2>&1 || true
		fi
	else
		warn "$mode at $rate MiB/s, run $rep: $state"
	fi
	local f
	f=$(foreign_vmms)
	foreign=$((foreign > f ? foreign : f))
	reap "$src" 10
	reap "$dst" 10
	touch "$S.hb" "$D.hb"
	[[ -s $S.mig.json ]] || echo '{}' >"$S.mig.json"
	[[ -s $D.mig.json ]] || echo '{}' >"$D.mig.json"
	# The machine's noise, for reading the downtime: the largest gap between
	# heartbeats in the last second before the migration (the guest alone,
	# the same on every run when the machine is quiet), and in the first
	# second on the destination (the guest's first touches of its pages
	# there, and what is left of the switch-over).
	local pre_gap post_gap pre_stall
	pre_gap=$(head -n "$n0" "$S.hb" | tail -n 1000 | max_gap_ms)
	pre_stall=$(head -n "$n0" "$S.hb" | tail -n 1000 |
		awk '$3 != "" { n++; if ($3 + 0 > m) m = $3 + 0 } END { if (n) printf "%.3f\n", m / 1e3; else print "NaN" }')
	post_gap=$(head -n 1000 "$D.hb" | max_gap_ms)
	local hb ok dt_ns jump stall_us
	hb=$(hb_merged "$S.hb" "$D.hb")
	read -r ok dt_ns jump stall_us <<<"$hb"
	[[ $rc == 0 && $state == completed ]] || ok=FAIL
	# The guest's pace: the second before `migrate`, and the post-copy
	# window on the destination.
	local pc pc_ms before='' during='' progress=''
	pc=$(jq -r '.postcopy // false' "$S.mig.json")
	pc_ms=$(jq -r '.postcopy_ms // 0' "$S.mig.json")
	if ((n0 > 0)); then
		local t_end
		t_end=$(sed -n "${n0}p" "$S.hb" | awk '{ print $2 }')
		before=$(hb_rate "$S.hb" $((t_end - 1000000000)) "$t_end")
	fi
	if [[ $pc == true && $pc_ms =~ ^[0-9]+$ ]] && ((pc_ms > 0)) && [[ -s $D.hb ]]; then
		local t_first
		t_first=$(head -n 1 "$D.hb" | awk '{ print $2 }')
		during=$(hb_rate "$D.hb" "$t_first" $((t_first + pc_ms * 1000000)))
		progress=$(awk -v a="$during" -v b="$before" \
			'BEGIN { if (b + 0 > 0 && a != "NaN") printf "%.1f\n", 100 * a / b; else print "NaN" }')
	fi
	jq -n --slurpfile s "$S.mig.json" --slurpfile d "$D.mig.json" \
		--arg mode "$mode" --arg rate "$rate" --arg rep "$rep" --arg state "$state" \
		--arg ok "$ok" --arg jump "$jump" --arg verify "$verify" --arg dt "$dt_ns" --arg stall "$stall_us" --arg fill "$fill_ms" \
		--arg pre "$pre_gap" --arg post "$post_gap" --arg prestall "$pre_stall" --arg foreign "$foreign" \
		--arg before "$before" --arg during "$during" --arg progress "$progress" \
		--arg push "${PUSH_ORDER:-default}" --argjson ws "$MIB" \
		--arg scpu "$src_cpu" --arg dcpu "$dst_cpu" '
		def num: if . == "NaN" or . == "" then null else tonumber end;
		($s[0] // {}) + {state: $state, destination: ($d[0] // {}),
		 bench: {mode: $mode, rate: $rate, rep: $rep, ws_mib: $ws, push_order: (if $mode == "precopy" then null else $push end),
		         downtime_hb_ms: (if $dt == "NaN" then null else ($dt | tonumber / 1e6 * 1000 | round / 1000) end),
		         downtime_guest_ms: ($stall | num | if . == null then null else . / 1000 end),
		         hb: $ok, hb_seq_jump: ($jump | num), verify: $verify, warmup_ms: ($fill | num), pre_gap_ms: ($pre | num), pre_stall_ms: ($prestall | num),
		         post_gap_ms: ($post | num), foreign_vmms: ($foreign | num),
		         hb_rate_before_hz: ($before | num), hb_rate_postcopy_hz: ($during | num),
		         src_cpu_ms: ($scpu | num), dst_cpu_ms: ($dcpu | num),
		         progress_pct: (if $progress == "" then "" else ($progress | num // "NaN") end)}}' >"$json"
	jq -r --arg cols "${COLS[*]}" "$row_jq" "$json" >>"$OUT/downtime.csv"
}

# Two cores: anything else running skews every figure. Say so.
others=$(pgrep -a -f 'vmmctl boot' || true)
[[ -z $others ]] || warn "WARNING: other VMMs are running; figures will be skewed:
$others"
rev=$(git describe --always --dirty 2>/dev/null || echo unknown)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(now_ms)
if [[ ${REPLOT:-0} == 1 ]]; then
	[[ -s $OUT/downtime.csv ]] || { warn "REPLOT=1: no $OUT/downtime.csv"; exit 1; }
	rev="$rev (replot of $OUT/downtime.csv)"
else
	(IFS=,; echo "${COLS[*]}") >"$OUT/downtime.csv"
	# Repetitions go round the whole list, so that a slow spell of the
	# machine does not land on one mode or rate only.
	for ((rep = 1; rep <= REPS; rep++)); do
		for mode in $MODES; do
			for rate in $RATES; do
				echo "downtime.sh: [$rep/$REPS] $mode, dirty --mib $MIB --rate $rate, guest $MEM ..." >&2
				wait_quiet
				run "$mode" "$rate" "$rep"
			done
		done
	done
fi
secs=$((($(now_ms) - start) / 1000))

# Per mode and rate over the repetitions: the median (min-max) of the
# downtimes and the total time, medians of the rest (all over the completed
# runs only: a failed run's figures are zeros), counts. Also the
# plot's data, one file per mode: position, rate, then median min max of
# downtime_hb, downtime_vmm, total, downtime_guest.
# shellcheck disable=SC2016 # jq's $variables
summary='
	def num: if . == null or . == "NaN" or . == "" or . == "-" then null else tonumber end;
	def vals(k): map(.[k] | num | select(. != null));
	def med: sort | if length == 0 then null
		elif length % 2 == 1 then .[length / 2 | floor]
		else (.[length / 2 - 1] + .[length / 2]) / 2 end;
	def trio(k): vals(k) | [med, min, max];
	def nan: if . == null then "NaN" else (. * 1000 | round) / 1000 end;
	def r(d): if . == null then "-" else (. * d | round) / d end;
	def show(t): if t[0] == null then "-" elif t[1] == t[2] then "\(t[0] | r(10))"
		else "\(t[0] | r(10)) (\(t[1] | r(10))-\(t[2] | r(10)))" end;
	def count(k; v): map(select(.[k] == v)) | length;
	split("\n") | map(select(length > 0) | split(",")) | .[0] as $h
	| [.[1:][] | [$h, .] | transpose | map({(.[0]): .[1]}) | add] as $rows
	| ($rates | split(" ") | map(select(length > 0))) as $order
	| ($modes | split(" ") | map(select(length > 0)))[] as $m
	| $order | to_entries[] | .key as $pos | .value as $r
	| [$rows[] | select(.mode == $m and .rate_mib_s == $r)] | select(length > 0)
	| . as $grp | length as $n | (map(select(.state == "completed")) | length) as $done
	| (map(select(.state == "completed")) | if length > 0 then . else [{}] end) as $all
	| $all
	| if $what == "table" then
		[$m, $r, $n, "\($done)/\($n)", show(trio("downtime_hb_ms")), show(trio("downtime_guest_ms")),
		 show(trio("downtime_vmm_ms")),
		 show(trio("total_time_ms")), (vals("wire_mib") | med | r(1)),
		 (vals("rounds") | med | r(10)), "\(count("postcopy"; "true"))/\($n)",
		 (group_by(.switch_reason) | map("\(.[0].switch_reason // "-")" +
		     (if length < $n then ":\(length)" else "" end)) | join("+")),
		 (vals("postcopy_faults") | med | r(1)), (vals("fault_wait_p50_us") | med | r(1)),
		 (vals("fault_wait_p99_us") | med | r(1)), (vals("progress_pct") | med | r(10)),
		 "\(count("converged"; "true"))/\($n)", "\($grp | count("hb"; "ok"))/\($n)",
		 "\($grp | count("verify"; "ok"))/\($n)", (vals("pre_stall_ms") | med | r(100))] | map(tostring) | join(",")
	  else
		[$m, $pos, $r, (trio("downtime_hb_ms")[], trio("downtime_vmm_ms")[],
		 trio("total_time_ms")[], trio("downtime_guest_ms")[] | nan)] | map(tostring) | join(" ")
	  end'
jq -Rrs --arg rates "$RATES" --arg modes "$MODES" --arg what plot "$summary" "$OUT/downtime.csv" >"$T/plot.dat"
for mode in $MODES; do
	awk -v m="$mode" '$1 == m { $1 = ""; print }' "$T/plot.dat" >"$T/plot-$mode.dat"
done
{
	echo "mode,rate_mib_s,runs,completed,downtime_hb_ms,downtime_guest_ms,downtime_vmm_ms,total_time_ms,wire_mib,rounds,postcopy,switch_reason,pc_faults,wait_p50_us,wait_p99_us,progress_pct,converged,hb,verify,pre_stall_ms"
	jq -Rrs --arg rates "$RATES" --arg modes "$MODES" --arg what table "$summary" "$OUT/downtime.csv"
} >"$OUT/downtime-summary.csv"
term=png
gnuplot -e 'set terminal' 2>/dev/null | grep -qw pngcairo && term="pngcairo font ',10'"
gnuplot <<EOF || warn "gnuplot failed: no $OUT/downtime.png (no completed run?)"
set terminal $term size 1200,600
set output '$OUT/downtime.png'
set datafile missing 'NaN'
set multiplot layout 1,2 title "live migration over loopback: guest $MEM, dirty --mib $MIB, 2 host cores, downtime limit $DOWNTIME_LIMIT ms, max $MAX_ROUNDS rounds"
set xlabel 'guest dirty rate (MiB/s)'
set grid
set key below maxrows 4 width -8
set logscale y
set offsets 0.3, 0.3, 0, 0
set ylabel 'downtime (ms)'
set title 'downtime (median of the runs, bars: min-max)'
set arrow 1 from graph 0, first $DOWNTIME_LIMIT to graph 1, first $DOWNTIME_LIMIT nohead dt 2 lc rgb 'gray40'
plot for [i=1:words("$MODES")] '$T/plot-'.word("$MODES", i).'.dat' using 1:3:4:5:xtic(2) with yerrorlines lw 2 pt 7 lc i title word("$MODES", i).': heartbeats (outside the guest)', \
     for [i=1:words("$MODES")] '$T/plot-'.word("$MODES", i).'.dat' using 1:12 with linespoints lw 1 dt 3 pt 4 lc i title word("$MODES", i).': stall seen by the guest (median)', \
     for [i=1:words("$MODES")] '$T/plot-'.word("$MODES", i).'.dat' using 1:6 with linespoints lw 1 dt 2 pt 6 lc i title word("$MODES", i).': VMM pause -> resume (median)', \
     1/0 with lines dt 2 lc rgb 'gray40' title 'downtime limit'
unset arrow 1
set key inside top left width 0
set ylabel 'total migration time (ms)'
set title 'total time (median, bars: min-max)'
plot for [i=1:words("$MODES")] '$T/plot-'.word("$MODES", i).'.dat' using 1:9:10:11:xtic(2) with yerrorlines lw 2 pt 7 lc i title word("$MODES", i)
unset multiplot
EOF

echo "== live migration over loopback: guest $MEM, $CPUS vCPU, dirty --mib $MIB, modes $MODES, downtime limit $DOWNTIME_LIMIT ms, max $MAX_ROUNDS rounds"
echo "   $rev, $(date -u +%F), $secs s, load average before: $load0"
echo "-- every run (all columns: $OUT/downtime.csv)"
jq -Rr 'split(",")' "$OUT/downtime.csv" | jq -rs '
	.[0] as $h | ($h | to_entries | map({(.value): .key}) | add) as $i
	| ["mode", "rate_mib_s", "rep", "state", "postcopy", "switch_reason", "downtime_hb_ms",
	   "downtime_guest_ms", "downtime_vmm_ms", "total_time_ms", "wire_mib", "rounds", "postcopy_ms",
	   "postcopy_faults", "fault_wait_p50_us", "fault_wait_p99_us", "progress_pct", "hb",
	   "hb_seq_jump", "verify", "foreign_vmms"] as $show
	| .[] | [.[$i[$show[]]] | if . == "" then "-" else . end] | join(",")' |
	column -s, -t
echo "-- per mode and rate over $REPS run(s), figures of the completed runs: downtimes and total time"
echo "   median (min-max), the rest medians; postcopy, converged, hb and verify: runs that were"
column -s, -t "$OUT/downtime-summary.csv"
echo "plot: $OUT/downtime.png; per run: $OUT/downtime-MODE-RATE-REP.json"
