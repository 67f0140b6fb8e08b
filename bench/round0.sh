#!/usr/bin/env bash
# bench/round0.sh - pre-copy's speed (round 0 is most of it at low dirty
# rates), builds side by side in one run: for each repetition, each build
# in turn runs bench/downtime.sh (--modes precopy --reps 1) over the same
# rates, so that every build sees the same machine noise (two shared
# cores). One CSV of every run (OUT_DIR/round0.csv: build, rate, rep,
# state, total_time_ms, wire_bytes, gbps = wire bytes / total time,
# downtime_hb_ms, rounds, verify, src_cpu_ms and dst_cpu_ms: each VMM's
# CPU time but its vCPUs' over the migration, the figure that the other
# load on the machine leaves alone), a summary per build and rate (medians,
# min-max: OUT_DIR/round0-summary.csv and stdout) and a plot of GB/s
# against the dirty rate (OUT_DIR/round0.png, gnuplot). Usage:
#
#   bench/round0.sh [--mib N] [--rates "R ..."] [--reps N] [--channels "N ..."]
#                   [--congestion "ALGO ..."] [--tls] [--mode MODE]
#                   NAME=BUILD_DIR ...
#   e.g. bench/round0.sh --mib 512 --rates "0 200" --reps 3 before=/tmp/old after=build
#        bench/round0.sh --mib 512 --channels "1 2 4" ch=build
#
# --mode: precopy (the default), hybrid or postcopy (downtime.sh --modes):
# the same alternation for a downtime comparison; the CSV then also has
# downtime_vmm_ms, postcopy_faults and downtime_guest_ms (the guest's own
# stall at the switch, bench/downtime.sh).
# --channels: each build runs once per count in turn (`migrate --channels
# N`), named NAME-chN in the results; --congestion: each build runs once
# per TCP congestion control in turn (`migrate --tcp-congestion ALGO`;
# "system": the host's default, no flag), named NAME-ALGO; --tls: every
# migration over mutual TLS (downtime.sh --tls).
#
# Each BUILD_DIR holds vmm/vmmctl and examples/guests/guest.elf. MEM (1G)
# and QUIET_WAIT_S (10) pass on to downtime.sh; OUT_DIR: bench/out-round0.
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=512 RATES="0" REPS=3 BUILDS=() CHANS="" CCS="" TLSARG=() MODE=precopy
while (($#)); do
	case $1 in
	--mib) MIB=$2; shift 2 ;;
	--rates) RATES=$2; shift 2 ;;
	--reps) REPS=$2; shift 2 ;;
	--channels) CHANS=$2; shift 2 ;;
	--congestion) CCS=$2; shift 2 ;;
	--tls) TLSARG=(--tls); shift ;;
	--mode) MODE=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*=*) BUILDS+=("$1"); shift ;;
	*) echo "round0.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
((${#BUILDS[@]})) || { echo "round0.sh: give at least one NAME=BUILD_DIR" >&2; exit 2; }
# Every build once per channel count and congestion control: NAME=DIR
# becomes NAME[-chN][-ALGO]=DIR:N:ALGO (empty: the default).
all=()
for b in "${BUILDS[@]}"; do
	for n in ${CHANS:-_}; do
		for cc in ${CCS:-_}; do
			name=${b%%=*} nn="" ca=""
			[[ $n != _ ]] && name+="-ch$n" nn=$n
			[[ $cc != _ ]] && name+="-$cc"
			[[ $cc != _ && $cc != system ]] && ca=$cc
			all+=("$name=${b#*=}:$nn:$ca")
		done
	done
done
BUILDS=("${all[@]}")
OUT=${OUT_DIR:-bench/out-round0}
mkdir -p "$OUT/runs"
CSV=$OUT/round0.csv
echo "build,rate_mib_s,rep,state,total_time_ms,wire_bytes,gbps,downtime_hb_ms,rounds,verify,src_cpu_ms,dst_cpu_ms,downtime_vmm_ms,postcopy_faults,mode,downtime_guest_ms" >"$CSV"
for ((rep = 1; rep <= REPS; rep++)); do
	for b in "${BUILDS[@]}"; do
		name=${b%%=*} dir=${b#*=} out=$OUT/runs/$name-$rep
		cc=${dir##*:} dir=${dir%:*}
		nch=${dir##*:} dir=${dir%:*}
		echo "round0.sh: [$rep/$REPS] $name ($dir)" >&2
		BUILD_DIR=$dir OUT_DIR=$out QUIET_WAIT_S=${QUIET_WAIT_S:-10} MEM=${MEM:-1G} CHANNELS=$nch TCP_CONGESTION=$cc \
			bench/downtime.sh --modes "$MODE" --mib "$MIB" --rates "$RATES" --reps 1 \
			${TLSARG[@]+"${TLSARG[@]}"} >"$out.log" 2>&1 ||
			echo "round0.sh: downtime.sh failed for $name (see $out.log)" >&2
		[[ -f $out/downtime.csv ]] || continue
		awk -F, -v b="$name" -v rep="$rep" '
			NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
			{ t = $c["total_time_ms"]; w = $c["wire_bytes"]
			  g = (t > 0 && w == w + 0) ? sprintf("%.3f", w / t / 1e6) : "NaN"
			  print b "," $c["rate_mib_s"] "," rep "," $c["state"] "," t "," w "," g "," \
				$c["downtime_hb_ms"] "," $c["rounds"] "," $c["verify"] "," \
				(c["src_cpu_ms"] ? $c["src_cpu_ms"] : "NaN") "," (c["dst_cpu_ms"] ? $c["dst_cpu_ms"] : "NaN") "," \
				$c["downtime_vmm_ms"] "," $c["postcopy_faults"] "," $c["mode"] "," \
				(c["downtime_guest_ms"] ? $c["downtime_guest_ms"] : "NaN") }' \
			"$out/downtime.csv" >>"$CSV"
	done
done
# Summary: median (min-max) per build and rate, completed runs only.
SUM=$OUT/round0-summary.csv
echo "build,rate_mib_s,runs,completed,total_time_ms_median,total_time_ms_min,total_time_ms_max,gbps_median,gbps_min,gbps_max,downtime_hb_ms_median,src_cpu_ms_median,dst_cpu_ms_median,downtime_hb_ms_min,downtime_hb_ms_max,downtime_vmm_ms_median,postcopy_faults_median,downtime_guest_ms_median,downtime_guest_ms_min,downtime_guest_ms_max" >"$SUM"
med() { sort -g | awk '{ v[NR] = $1 } END { if (!NR) print "NaN"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -F, -v b="$1" -v r="$2" -v k="$3" 'NR > 1 && $1 == b && $2 == r && $4 == "completed" { print $k }' "$CSV"; }
for b in "${BUILDS[@]}"; do
	name=${b%%=*}
	for r in $RATES; do
		runs=$(awk -F, -v b="$name" -v r="$r" 'NR > 1 && $1 == b && $2 == r' "$CSV" | wc -l)
		ok=$(col "$name" "$r" 5 | wc -l)
		echo "$name,$r,$runs,$ok,$(col "$name" "$r" 5 | med),$(col "$name" "$r" 5 | sort -g | head -1),$(col "$name" "$r" 5 | sort -g | tail -1),$(col "$name" "$r" 7 | med),$(col "$name" "$r" 7 | sort -g | head -1),$(col "$name" "$r" 7 | sort -g | tail -1),$(col "$name" "$r" 8 | med),$(col "$name" "$r" 11 | med),$(col "$name" "$r" 12 | med),$(col "$name" "$r" 8 | sort -g | head -1),$(col "$name" "$r" 8 | sort -g | tail -1),$(col "$name" "$r" 13 | med),$(col "$name" "$r" 14 | med),$(col "$name" "$r" 16 | med),$(col "$name" "$r" 16 | sort -g | head -1),$(col "$name" "$r" 16 | sort -g | tail -1)" >>"$SUM"
	done
done
echo "== $MODE of $MIB MiB over loopback, $REPS run(s) per build and rate, builds alternating; $(git rev-parse --short HEAD), $(date -u +%F)"
column -s, -t "$SUM"
echo "every run: $CSV"
if command -v gnuplot >/dev/null; then
	plot=""
	for b in "${BUILDS[@]}"; do
		name=${b%%=*}
		awk -F, -v b="$name" 'NR > 1 && $1 == b { print $2, $8, $9, $10 }' "$SUM" >"$OUT/round0-$name.dat"
		plot+="${plot:+, }'$OUT/round0-$name.dat' using 1:2:3:4 with yerrorlines title '$name'"
	done
	gnuplot -e "set terminal png size 800,500; set output '$OUT/round0.png'; set xlabel 'guest dirty rate (MiB/s)'; set ylabel 'GB/s end to end (wire bytes / total time)'; set key top right; set offsets 50, 50, 0, 0; plot $plot" 2>/dev/null &&
		echo "plot: $OUT/round0.png"
fi
