#!/usr/bin/env bash
# bench/compare-qemu.sh - our VMM and QEMU side by side: the same guest
# image, the same workloads, the same downtime measurement, in one run.
#
# Both VMMs boot the Multiboot build of our test guest
# (build/examples/guests/guest-mb.elf), one vCPU, MEM of RAM, running
# `dirty --mib MIB --rate R --data D`: R MiB/s of page rewrites over a MIB
# working set, D setting how compressible the pages are (random, text,
# byte: one byte per page as QEMU's own migration-test guest writes, zero;
# examples/guests/README.md). Each run boots a source and a destination on
# loopback, waits for the guest's first pass over its working set (the
# slow first touches of this nested KVM: not measured; the guest prints
# "dirty: first pass done"), lets the rewrites run SETTLE_S, migrates, and
# records one CSV row. The configurations, alternating between the VMMs for
# every (data, rate) so that a slow spell of the machine hits both:
#
#   qemu-pre-300   QEMU pre-copy at its default downtime limit (300 ms)
#   vmm-precopy    vmmctl migrate --mode precopy --downtime-limit LIMIT
#   qemu-pre-LIM   QEMU pre-copy at our limit (LIMIT, default 10 ms)
#   vmm-hybrid     vmmctl migrate --mode hybrid --downtime-limit LIMIT
#   qemu-mfd2      QEMU multifd, 2 channels, at our limit
#   vmm-ch2        vmmctl migrate --channels 2 (only if `vmmctl migrate
#                  --help` lists --channels)
#   qemu-mfd2-zstd QEMU multifd, 2 channels, multifd-compression zstd
#   vmm-zstd       vmmctl migrate --compress zstd (only if the help lists
#                  --compress)
#   vmm-raw        vmmctl migrate --compress none (likewise): our default,
#                  auto, compresses what a sample says shrinks, trading
#                  time for bytes; this is the time without it
#   qemu-post      QEMU post-copy (postcopy-ram; migrate-start-postcopy once
#                  the first pass over RAM is over)
#   vmm-cubic      vmmctl migrate --mode hybrid --tcp-congestion cubic, the
#                  destination booted with --tcp-congestion cubic (only if
#                  the help lists it): QEMU has no such knob and takes the
#                  host's default (net.ipv4.tcp_congestion_control), as do
#                  the other vmm configurations
#
# QEMU runs with KVM (-cpu host, or host,-arch-capabilities where KVM
# refuses host's IA32_ARCH_CAPABILITIES: scripts/qemu-cpu.sh), its RAM in a tmpfs file
# (-object memory-backend-file,...,mem-path=/dev/shm/...,share=on), bandwidth
# unlimited (QEMU 7.2's default cap is 32 MiB/s), driven over QMP by
# bench/qmp_migrate.py; a pre-copy that has not converged after MIG_TIMEOUT_S
# is cancelled (state timeout: QEMU has no round limit; ours stops copying
# after --max-rounds). Downtime is measured from outside the guest for both:
# the gap between the source's last heartbeat and the destination's first
# new one (host CLOCK_MONOTONIC). For our VMM the heartbeats come from its
# --heartbeat-log (the guest's heartbeat MMIO exits); for QEMU from
# examples/tools/hbread following the guest's heartbeat page in each RAM
# file (--poll-us 100, so a beat is seen up to ~0.2 ms late on either side,
# and --pread on the destination, which must not fault pages into a
# post-copy destination's file). The guest also measures its own stall at
# the switch (the longest step of its tick loop, sent with the first beat
# after it: examples/guests/README.md), the same way under both VMMs:
# downtime_guest_ms, free of the beats' 1 ms cadence and of the reader's
# polling. Each VMM's own downtime figure is kept too
# (QEMU's query-migrate `downtime`, ours `downtime_us`). Total time: QEMU's
# `total-time`, ours `time_elapsed`. Bytes on the wire: every run's VMMs
# live in a network namespace of their own, and its loopback's rx_bytes
# from the migrate command to the end of the migration is what crossed the
# wire (TCP payload plus IP/TCP headers, the same count for both VMMs);
# each VMM's own figure is kept too (QEMU's ram.transferred, which for
# multifd counts pages uncompressed, ours `wire_bytes`).
#
# Output in OUT_DIR (bench/out-qemu): compare.csv (one row per run),
# compare-summary.csv and compare.md (medians per configuration, and the
# ratios vmm/QEMU), compare.png (gnuplot). Usage:
#
#   bench/compare-qemu.sh [--mem SIZE] [--mib N] [--rates "R ..."] [--data "D ..."]
#                         [--configs "C ..."] [--downtime-limit MS] [--reps N]
#   e.g. bench/compare-qemu.sh --mem 1G --mib 512     (the issue's 1 GiB / 512 MiB)
#        bench/compare-qemu.sh --rates 200 --data byte --reps 1    (a quick look)
#
# Defaults (also from the environment): MEM 256M, MIB 128, RATES
# "0 50 200 1000", DATA "random text byte zero", CONFIGS: all of the above
# that apply, DOWNTIME_LIMIT 10, REPS 1, SETTLE_S 1, MIG_TIMEOUT_S 20,
# MAX_ROUNDS 30, BUILD_DIR build, OUT_DIR bench/out-qemu, KEEP=1 keeps the
# scratch directory. A default run (4 data modes x 4 rates x 7 configs,
# 8-12 s each) takes ~20 minutes on our 2-core machines. Without qemu-system-x86_64 it
# says so and exits 0 (scripts/setup.sh --with-qemu installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/ports.sh
. scripts/ports.sh
# shellcheck source=bench/lib.sh
. bench/lib.sh
BUILD_DIR=${BUILD_DIR:-build}
VMMCTL=$BUILD_DIR/vmm/vmmctl
GUEST=$BUILD_DIR/examples/guests/guest-mb.elf
HBREAD=$BUILD_DIR/examples/tools/hbread
MEM=${MEM:-256M}
MIB=${MIB:-128}
RATES=${RATES:-0 50 200 1000}
DATA=${DATA:-random text byte zero}
CONFIGS=${CONFIGS:-}
DOWNTIME_LIMIT=${DOWNTIME_LIMIT:-10}
REPS=${REPS:-1}
SETTLE_S=${SETTLE_S:-1}
MIG_TIMEOUT_S=${MIG_TIMEOUT_S:-20}
MAX_ROUNDS=${MAX_ROUNDS:-30}
OUT=${OUT_DIR:-bench/out-qemu}

warn() { echo "compare-qemu.sh: $*" >&2; }
usage()
{
	sed -n '/^#   bench/,/^#        bench.*quick/s/^#/ /p' "$0" >&2
	exit "$1"
}
while (($#)); do
	[[ $1 == -h || $1 == --help ]] && usage 0
	(($# >= 2)) || { warn "'$1' needs a value"; usage 2; }
	case $1 in
	--mem) MEM=$2 ;;
	--mib) MIB=$2 ;;
	--rates) RATES=$2 ;;
	--data) DATA=$2 ;;
	--configs) CONFIGS=$2 ;;
	--downtime-limit) DOWNTIME_LIMIT=$2 ;;
	--reps) REPS=$2 ;;
	*) warn "unknown argument '$1'"; usage 2 ;;
	esac
	shift 2
done
QEMU=$(command -v qemu-system-x86_64) || {
	echo "compare-qemu.sh: SKIP: qemu-system-x86_64 is not installed (scripts/setup.sh --with-qemu installs it)"
	exit 0
}
[[ -x $VMMCTL && -f $GUEST && -x $HBREAD ]] ||
	{ warn "no $VMMCTL, $GUEST or $HBREAD: build first (scripts/setup.sh) or set BUILD_DIR"; exit 1; }
[[ -e /dev/kvm ]] || { warn "/dev/kvm is absent"; exit 1; }
QEMU_CPU=$("$(dirname "$0")/../scripts/qemu-cpu.sh" "$QEMU") ||
	{ warn "QEMU starts with neither -cpu host nor host,-arch-capabilities under KVM here"; exit 1; }
[[ $QEMU_CPU == host ]] || echo "compare-qemu.sh: QEMU runs with -cpu $QEMU_CPU (KVM refuses -cpu host's MSR 0x10a here)"
for tool in jq gnuplot python3; do
	command -v "$tool" >/dev/null || { warn "needs $tool"; exit 1; }
done
[[ $MEM =~ ^[1-9][0-9]*[MG]$ ]] || { warn "--mem takes a size like 256M or 1G"; exit 2; }
[[ $MIB =~ ^[1-9][0-9]*$ && $REPS =~ ^[1-9][0-9]*$ && $DOWNTIME_LIMIT =~ ^[1-9][0-9]*$ ]] ||
	{ warn "--mib, --reps and --downtime-limit take a positive integer"; exit 2; }
for d in $DATA; do
	[[ $d == @(random|text|byte|zero) ]] || { warn "unknown data mode '$d' (random, text, byte, zero)"; exit 2; }
done
MEM_MIB=${MEM%[MG]}
[[ $MEM == *G ]] && MEM_MIB=$((MEM_MIB * 1024))

# What our vmmctl offers (another change may add channels or compression).
mig_help=$("$VMMCTL" migrate --help 2>&1 || true)
ALL_CONFIGS="qemu-pre-300 vmm-precopy qemu-pre-$DOWNTIME_LIMIT vmm-hybrid qemu-mfd2"
grep -q -- '--channels' <<<"$mig_help" && ALL_CONFIGS+=" vmm-ch2"
ALL_CONFIGS+=" qemu-mfd2-zstd"
grep -q -- '--compress' <<<"$mig_help" && ALL_CONFIGS+=" vmm-zstd vmm-raw"
ALL_CONFIGS+=" qemu-post"
grep -q -- '--tcp-congestion' <<<"$mig_help" && ALL_CONFIGS+=" vmm-cubic"
CONFIGS=${CONFIGS:-$ALL_CONFIGS}
for c in $CONFIGS; do
	[[ " $ALL_CONFIGS " == *" $c "* ]] || { warn "unknown configuration '$c' (here: $ALL_CONFIGS)"; exit 2; }
done

mkdir -p "$OUT"
# One run per OUT_DIR at a time: a second would truncate the CSV.
exec 9>"$OUT/.lock"
flock -n 9 || { warn "another compare-qemu.sh writes to $OUT (set OUT_DIR)"; exit 1; }
T=$(mktemp -d /tmp/vmm-cmpq.XXXXXX)
SHM=/dev/shm/${T##*/}
NS=${T##*/}
NSX=(ip netns exec "$NS")
PIDS=()
cleanup()
{
	local p
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	ip netns del "$NS" 2>/dev/null || true
	rm -f "$SHM".*
	if [[ ${KEEP:-0} == 1 ]]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if ! ip netns add "$NS" || ! ip -n "$NS" link set lo up; then
	warn "cannot make the network namespace $NS (needs root)"
	exit 1
fi

now_ms() { date +%s%3N; }

# lo_bytes: bytes received so far on the namespace's loopback.
lo_bytes() { "${NSX[@]}" cat /sys/class/net/lo/statistics/rx_bytes; }

# wait_for TIMEOUT_S CONDITION: re-evaluate CONDITION until it holds (0),
# or return 1 after TIMEOUT_S.
wait_for()
{
	local deadline=$(($(now_ms) + $1 * 1000))
	until eval "$2"; do
		(($(now_ms) < deadline)) || return 1
		sleep 0.05
	done
}

# stop_pid PID: SIGTERM, wait up to 5 s, then SIGKILL; reap it.
stop_pid()
{
	[[ -n ${1:-} ]] || return 0
	kill -TERM "$1" 2>/dev/null || true
	wait_for 5 "! kill -0 $1 2>/dev/null" || kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	local p keep=()
	for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	PIDS=(${keep[@]+"${keep[@]}"})
}

# foreign: VMMs and QEMUs running that this script did not start.
foreign()
{
	local n=0 p q mine
	for p in $(pgrep -f 'vmmctl boot|qemu-system' || true); do
		mine=0
		for q in "${PIDS[@]}"; do [[ $p == "$q" ]] && mine=1; done
		((mine)) || n=$((n + 1))
	done
	echo "$n"
}

# hb_downtime SRC_LOG DST_LOG: "gap_ms jump stall_ms" - the time from the
# source's last heartbeat to the first destination heartbeat with a higher
# number, how many numbers went by unseen in between (0: none), and the
# guest's own stall sent with that beat (the logs' third column, us; NaN
# when the beat after the switch went by unseen or carries none).
hb_downtime()
{
	local -a last
	[[ -s $1 && -s $2 ]] || { echo "NaN NaN NaN"; return; }
	read -r -a last < <(tail -n 1 "$1")
	awk -v ls="${last[0]}" -v lt="${last[1]}" '$1 > ls {
		j = $1 - ls - 1
		st = (j == 0 && $3 != "") ? sprintf("%.3f", $3 / 1e3) : "NaN"
		printf "%.3f %d %s\n", ($2 - lt) / 1e6, j, st; found = 1; exit }
		END { if (!found) print "NaN NaN NaN" }' "$2"
}

# pre_gap LOG: the largest heartbeat gap in the last second of LOG (the
# machine's noise floor before the migration).
pre_gap()
{
	tail -n 1000 "$1" | awk 'NR > 1 && $2 - p > m { m = $2 - p } { p = $2 }
		END { if (NR < 2) print "NaN"; else printf "%.3f\n", m / 1e6 }'
}

COLS="vmm,config,data,rate_mib_s,rep,state,downtime_hb_ms,hb_jump,downtime_own_ms,total_time_ms,wire_bytes,wire_mib,own_wire_mib,postcopy,pre_gap_ms,warmup_ms,foreign,downtime_guest_ms"

# row FIELDS...: one CSV row.
row() { (IFS=,; echo "$*") >>"$OUT/compare.csv"; }

# qemu_start NAME ARGS...: a QEMU with RAM in $SHM.NAME, QMP at $T/NAME.qmp;
# sets PID.
qemu_start()
{
	local name=$1
	shift
	rm -f "$SHM.$name" "$T/$name".*
	"${NSX[@]}" "$QEMU" -enable-kvm -cpu "$QEMU_CPU" -m "$MEM_MIB" -nodefaults -vga none -display none \
		-serial "file:$T/$name.serial" -kernel "$GUEST" -append "$APPEND" \
		-device isa-debug-exit,iobase=0xf4,iosize=4 \
		-object "memory-backend-file,id=m,size=${MEM_MIB}M,mem-path=$SHM.$name,share=on" \
		-machine memory-backend=m -qmp "unix:$T/$name.qmp,server=on,wait=off" "$@" \
		</dev/null >"$T/$name.out" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	wait_for 20 "[[ -S $T/$name.qmp ]] || ! kill -0 $PID 2>/dev/null"
	[[ -S $T/$name.qmp ]]
}

# vmm_start NAME ARGS...: our VMM, control socket $T/NAME.sock; sets PID.
vmm_start()
{
	local name=$1
	shift
	rm -f "$T/$name".*
	"${NSX[@]}" "$VMMCTL" boot --api "$T/$name.sock" --serial "$T/$name.serial" \
		--heartbeat-log "$T/$name.hb" --mem "$MEM" --cpus 1 "$@" \
		</dev/null >"$T/$name.out" 2>"$T/$name.err" &
	PID=$!
	PIDS+=("$PID")
	wait_for 20 "[[ -S $T/$name.sock ]] || ! kill -0 $PID 2>/dev/null"
	[[ -S $T/$name.sock ]]
}

# warm NAME: wait for the guest's first pass; sets warm_ms. The fill costs
# ~45 us per page on this nested KVM (docs/kvm-host.md): allow twice that.
warm()
{
	local t0
	t0=$(now_ms)
	wait_for $((MIB * 256 * 90 / 1000000 + 30)) "grep -q 'first pass done' $T/$1.serial 2>/dev/null" ||
		{ warn "$1: the guest's first pass did not end: $(tail -n 2 "$T/$1.serial" 2>/dev/null)"; return 1; }
	warm_ms=$(($(now_ms) - t0))
	sleep "$SETTLE_S"
}

# run_qemu CONFIG DATA RATE REP
run_qemu()
{
	local cfg=$1 src dst h1 h2 port state=boot-failed args=() j=$T/qmig.json
	local gap=NaN jump=NaN stall=NaN own=NaN total=NaN bytes=NaN ownb=NaN pc=false pg=NaN warm_ms=NaN f b0
	f=$(foreign)
	case $cfg in
	qemu-pre-300) args=(--downtime-limit 300) ;;
	qemu-pre-*) args=(--downtime-limit "$DOWNTIME_LIMIT") ;;
	qemu-mfd2) args=(--downtime-limit "$DOWNTIME_LIMIT" --channels 2) ;;
	qemu-mfd2-zstd) args=(--downtime-limit "$DOWNTIME_LIMIT" --channels 2 --compress zstd) ;;
	qemu-post) args=(--downtime-limit "$DOWNTIME_LIMIT" --postcopy) ;;
	esac
	port=$(port_pick "${NSX[@]}" || echo 0)
	if qemu_start qsrc && src=$PID && qemu_start qdst -incoming defer && dst=$PID; then
		state=fill-timeout
		if warm qsrc; then
			"$HBREAD" --poll-us 100 --ms 600000 "$SHM.qsrc" >"$T/qsrc.hb" 2>"$T/qsrc.hberr" &
			h1=$!
			PIDS+=("$h1")
			"$HBREAD" --poll-us 100 --pread --ms 600000 "$SHM.qdst" >"$T/qdst.hb" 2>"$T/qdst.hberr" &
			h2=$!
			PIDS+=("$h2")
			sleep 1 # a second of the source's beats: the noise floor
			b0=$(lo_bytes)
			python3 bench/qmp_migrate.py --src "$T/qsrc.qmp" --dst "$T/qdst.qmp" \
				--uri "tcp:127.0.0.1:$port" --timeout "$MIG_TIMEOUT_S" "${args[@]}" \
				>"$j" 2>"$T/qmig.err" || true
			state=$(jq -r '.bench_state // "no-stats"' "$j" 2>/dev/null || echo no-stats)
			bytes=$(($(lo_bytes) - b0))
			[[ $state == completed ]] && sleep 1 # the destination's first beats
			stop_pid "$h1"
			stop_pid "$h2"
			if [[ $state == completed ]]; then
				read -r gap jump stall < <(hb_downtime "$T/qsrc.hb" "$T/qdst.hb")
				own=$(jq -r '.downtime // "NaN"' "$j")
				total=$(jq -r '."total-time" // "NaN"' "$j")
				ownb=$(jq -r '.ram.transferred // "NaN"' "$j")
				[[ $(jq -r '.postcopy_started_ms // empty' "$j") ]] && pc=true
			else
				warn "$cfg ${2}/${3}: $state $(tail -n 2 "$T/qmig.err" 2>/dev/null)"
			fi
			pg=$(pre_gap "$T/qsrc.hb")
		fi
	fi
	stop_pid "${dst:-}"
	stop_pid "${src:-}"
	rm -f "$SHM".*
	row qemu "$cfg" "$2" "$3" "$4" "$state" "$gap" "$jump" "$own" "$total" "$bytes" \
		"$(mib "$bytes")" "$(mib "$ownb")" "$pc" "$pg" "$warm_ms" "$f" "$stall"
}

mib() { awk -v b="$1" 'BEGIN { if (b == "NaN") print "NaN"; else printf "%.1f\n", b / 1048576 }'; }

# run_vmm CONFIG DATA RATE REP
run_vmm()
{
	local cfg=$1 src dst port state=boot-failed args=() dargs=() j=$T/vmig.json n0
	local gap=NaN jump=NaN stall=NaN own=NaN total=NaN bytes=NaN ownb=NaN pc=false pg=NaN warm_ms=NaN f b0
	f=$(foreign)
	case $cfg in
	vmm-precopy) args=(--mode precopy) ;;
	vmm-hybrid) args=(--mode hybrid) ;;
	vmm-ch2) args=(--mode hybrid --channels 2) ;;
	vmm-zstd) args=(--mode hybrid --compress zstd) ;;
	vmm-raw) args=(--mode hybrid --compress none) ;;
	vmm-cubic) args=(--mode hybrid --tcp-congestion cubic) dargs=(--tcp-congestion cubic) ;;
	esac
	port=$(port_pick "${NSX[@]}" || echo 0)
	if vmm_start vdst --incoming "tcp:127.0.0.1:$port" ${dargs[@]+"${dargs[@]}"} && dst=$PID &&
		vmm_start vsrc --kernel "$GUEST" --append "$APPEND" && src=$PID; then
		state=fill-timeout
		if warm vsrc; then
			sleep 1
			n0=$(wc -l <"$T/vsrc.hb")
			b0=$(lo_bytes)
			timeout 300 "$VMMCTL" migrate --api "$T/vsrc.sock" --to "tcp:127.0.0.1:$port" \
				--downtime-limit "$DOWNTIME_LIMIT" --max-rounds "$MAX_ROUNDS" "${args[@]}" \
				>"$T/vmig.out" 2>"$T/vmig.err" || true
			bytes=$(($(lo_bytes) - b0))
			jq -s 'last // {}' "$T/vmig.out" >"$j" 2>/dev/null || echo '{}' >"$j"
			state=$(jq -r '.state // "no-stats"' "$j")
			if [[ $state == completed ]]; then
				sleep 1
				read -r gap jump stall < <(hb_downtime "$T/vsrc.hb" "$T/vdst.hb")
				own=$(jq -r 'if .downtime_us then .downtime_us / 1000 else "NaN" end' "$j")
				total=$(jq -r '.time_elapsed // "NaN"' "$j")
				ownb=$(jq -r '.wire_bytes // "NaN"' "$j")
				pc=$(jq -r '.postcopy // false' "$j")
			else
				warn "$cfg ${2}/${3}: $state $(tail -n 2 "$T/vmig.err" 2>/dev/null)"
			fi
			pg=$(head -n "$n0" "$T/vsrc.hb" | pre_gap /dev/stdin)
		fi
	fi
	"$VMMCTL" stop --api "$T/vdst.sock" >/dev/null 2>&1 || true
	"$VMMCTL" stop --api "$T/vsrc.sock" >/dev/null 2>&1 || true
	stop_pid "${dst:-}"
	stop_pid "${src:-}"
	row vmm "$cfg" "$2" "$3" "$4" "$state" "$gap" "$jump" "$own" "$total" "$bytes" \
		"$(mib "$bytes")" "$(mib "$ownb")" "$pc" "$pg" "$warm_ms" "$f" "$stall"
}

rev=$(git describe --always --dirty 2>/dev/null || echo unknown)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(now_ms)
if [[ ${REPLOT:-0} != 1 ]]; then
	echo "$COLS" >"$OUT/compare.csv"
	for ((rep = 1; rep <= REPS; rep++)); do
		for data in $DATA; do
			for rate in $RATES; do
				APPEND="dirty --mib $MIB --rate $rate --data $data"
				for cfg in $CONFIGS; do
					echo "compare-qemu.sh: [$rep/$REPS] $cfg, $APPEND, guest $MEM ..." >&2
					if [[ $cfg == qemu-* ]]; then
						run_qemu "$cfg" "$data" "$rate" "$rep"
					else
						run_vmm "$cfg" "$data" "$rate" "$rep"
					fi
				done
			done
		done
	done
fi
secs=$((($(now_ms) - start) / 1000))
python3 bench/compare_summary.py --csv "$OUT/compare.csv" --out "$OUT" \
	--configs "$CONFIGS" --rates "$RATES" --data "$DATA" --limit "$DOWNTIME_LIMIT" \
	--title "guest $MEM, dirty --mib $MIB, 1 vCPU, loopback, 2 host cores; $rev, $(date -u +%F), $secs s, load before: $load0"
term=$(gnuplot_term 9)
ndata=$(wc -w <<<"$DATA")
xtics=$(awk '{ for (i = 1; i <= NF; i++) printf "%s\"%s\" %d", (i > 1 ? ", " : ""), $i, i - 1 }' <<<"$RATES")
gnuplot <<EOF || warn "gnuplot failed: no $OUT/compare.png"
set terminal $term size 1400,$((330 * ndata + 60))
set output '$OUT/compare.png'
set datafile missing 'NaN'
set multiplot layout $ndata,3 title "QEMU and vmm, same guest image: guest $MEM, dirty --mib $MIB, loopback, 2 host cores (medians)"
set grid
set xlabel 'dirty rate (MiB/s)'
set xtics ($xtics)
set offsets 0.2, 0.2, 0, 0
set logscale y
set key top left font ',7'
cfgs = "$CONFIGS"
do for [d in "$DATA"] {
	set ylabel 'downtime (ms), heartbeats'
	set title d.': downtime'
	plot for [c in cfgs] '$OUT/plot.dat' using (stringcolumn(1) eq d && stringcolumn(2) eq c ? \$4 : 1/0):5 with linespoints title c
	set ylabel 'total time (ms)'
	set title d.': total time'
	plot for [c in cfgs] '$OUT/plot.dat' using (stringcolumn(1) eq d && stringcolumn(2) eq c ? \$4 : 1/0):6 with linespoints title c
	set ylabel 'MiB on the wire'
	set title d.': bytes on the wire'
	plot for [c in cfgs] '$OUT/plot.dat' using (stringcolumn(1) eq d && stringcolumn(2) eq c ? \$4 : 1/0):7 with linespoints title c
}
unset multiplot
EOF
cat "$OUT/compare.md"
echo "csv: $OUT/compare.csv; plot: $OUT/compare.png"
