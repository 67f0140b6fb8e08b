#!/usr/bin/env bash
# The interrupt-driven guest (`--timer lapic|tscdeadline|pit`) migrated in
# every mode. CPU 0 takes a 1 kHz tick and beats from it; CPU 1 sits in
# `hlt` waiting for its own timer and sends CPU 0 an IPI per wake-up. After
# each migration: the beats (one per tick) continue on the destination with
# no number missing or repeated; the ticks lost across the gap are no more
# than its length explains; the guest's TSC step across the gap equals the
# gap the host timed between the two beats around it (within 1 ms), and
# kvmclock's step equals the TSC's (the guest checks: timer-check); TSC,
# kvmclock and the tick count never go back (the guest watches at every
# tick()); every IPI sent is received, and CPU 1 wakes on the destination
# (timer-check waits for new IPIs there). Latency is tolerated, loss never.
. "$(dirname "$0")/lib.sh"
need_kvm

TOL_US=1000	  # guest TSC step vs host-timed gap
SLACK_TICKS=12	  # 1 ms tick + the slow injection tail (docs/kvm-host.md)

# timer_once KIND MODE: boot, migrate in MODE, check.
timer_once()
{
	local kind=$1 mode=$2 n="$1-$2" port src dst wl flags=() out gap_us
	local line2 g_us first down_us lost step_us kc_us sent recv
	wl="dirty --mib 16 --rate 50"
	[[ $mode == hybrid ]] && wl="dirty --mib 32 --rate 2000" && flags=(--downtime-limit 1)
	port=$(free_port)
	vmm_incoming "b$n" "tcp:127.0.0.1:$port" --mem 128M --cpus 2
	dst=$VMM_PID
	vmm_start "a$n" --mem 128M --cpus 2 --append "--timer $kind; $wl; verify; timer-check"
	src=$VMM_PID
	wait_until 30 "$n: ticks" '(($(status_get "$T/a$n.sock" .heartbeats.count) >= 300))'
	ctl migrate --api "$T/a$n.sock" --to "tcp:127.0.0.1:$port" --mode "$mode" \
		"${flags[@]}" >"$T/mig$n.json" || fail "$n: migrate: $(cat "$T/mig$n.json")"
	[[ $(jq -r .state "$T/mig$n.json") == completed ]] || fail "$n: $(cat "$T/mig$n.json")"
	vmm_wait_for "$src" 15
	[[ $RC == 0 ]] || fail "$n: source exited $RC"
	local c0
	c0=$(status_get "$T/b$n.sock" .heartbeats.count)
	wait_until 30 "$n: ticks on the destination" \
		'(($(status_get "$T/b$n.sock" .heartbeats.count) >= c0 + 300))'
	ctl guest-request stop-workload --api "$T/b$n.sock" >/dev/null
	vmm_wait_for "$dst" 30
	[[ $RC == 0 ]] || fail "$n: destination exited $RC: $(grep 'timer:' "$T/b$n.serial")"
	out=$(hb_check_merged "$T/a$n.hb" "$T/b$n.hb") || fail "$n: beats: $out"
	gap_us=$((${out#* } / 1000))
	first=$(head -n 1 "$T/b$n.hb" | awk '{print $1}')
	g_us=$(grep 'long gaps' "$T/b$n.serial" | tr ' ' '\n' | awk -F: -v t="$first" '$1 == t {print $2}')
	line2=$(grep 'largest step TSC' "$T/b$n.serial") || fail "$n: no timer report"
	read -r step_us kc_us sent recv <<<"$(sed -n 's/.*TSC \([0-9]*\) us kvmclock \([0-9]*\) us, IPIs sent \([0-9]*\) received \([0-9]*\),.*/\1 \2 \3 \4/p' <<<"$line2")"
	down_us=$(jq .downtime_us "$T/mig$n.json")
	[[ -n $g_us ]] || fail "$n: no long gap at tick $first (the destination's first beat): $(grep 'long gaps' "$T/b$n.serial")"
	((g_us - gap_us <= TOL_US && gap_us - g_us <= TOL_US)) ||
		fail "$n: guest TSC step $g_us us across the gap, host timed $gap_us us"
	lost=$(((g_us + 500) / 1000 - 1))
	((lost <= down_us / 1000 + SLACK_TICKS)) ||
		fail "$n: $lost ticks lost across a downtime of $down_us us"
	((sent == recv && sent > 0)) || fail "$n: IPIs sent $sent received $recv"
	echo "ok: $n: downtime $down_us us, gap host $gap_us us guest TSC $g_us us," \
		"ticks lost across it $lost, largest step TSC $step_us us kvmclock $kc_us us," \
		"IPIs $sent/$recv; $(grep -o 'ticks [0-9]* in [0-9]* us (lost -*[0-9]*)' "$T/b$n.serial")"
}

for kind in ${TIMER_KINDS:-lapic tscdeadline pit}; do
	for mode in precopy postcopy hybrid; do
		timer_once "$kind" "$mode"
	done
done
