#!/usr/bin/env bash
# --mem-mode lazy: guest RAM is populated on first touch through the
# userfaultfd fault service (demand-zero). Boot, heartbeats, pause/resume,
# dirty + verify all work, and vmmctl stats shows the faults.
. "$(dirname "$0")/lib.sh"
need_kvm

vmm_start a --mem-mode lazy --mem 128M --append "dirty --mib 16 --rate 50"
wait_until 30 "dirty running" 'grep -q "^dirty:" "$T/a.serial"'
wait_until 30 "heartbeats" '(($(status_get "$T/a.sock" .heartbeats.count) >= 100))'
# 16 MiB of workload pages alone is 4096 first touches, once the guest's
# first pass over its working set is done.
wait_until 60 "4096 demand-zero faults" \
	'(($(ctl stats --api "$T/a.sock" | jq .faults.zero.faults) >= 4096))'
ctl stats --api "$T/a.sock" >"$T/stats.json"
[[ $(jq -r .faults.mem_mode "$T/stats.json") == lazy ]] || fail "stats: not lazy"
zero=$(jq -r .faults.zero.faults "$T/stats.json")
p50=$(jq -r .faults.zero.p50_ns "$T/stats.json")
p99=$(jq -r .faults.zero.p99_ns "$T/stats.json")
((p50 > 0 && p99 >= p50)) || fail "fault latency percentiles p50 $p50 p99 $p99"
[[ $(jq -r .faults.errors "$T/stats.json") == 0 ]] || fail "fault service errors"
ctl pause --api "$T/a.sock" >/dev/null
ctl resume --api "$T/a.sock" >/dev/null
ctl guest-request verify --api "$T/a.sock" >/dev/null
wait_until 30 "verify-ok" '(($(marker_count "$T/a.sock" verify-ok) >= 1))'
[[ $(marker_count "$T/a.sock" verify-fail) == 0 ]] || fail "verify failed in lazy mode"
ctl stop --api "$T/a.sock" >/dev/null
vmm_wait "$VMM_PID"
[[ $RC == 0 ]] || fail "exit code $RC"
out=$(hb_check_continuous "$T/a.hb") || fail "heartbeat log: $out"

# The eager default populates nothing through the fault service.
vmm_start b --mem 64M --append heartbeat
[[ $(ctl stats --api "$T/b.sock" | jq -r .faults.mem_mode) == eager ]] || fail "default not eager"
ctl stop --api "$T/b.sock" >/dev/null
vmm_wait "$VMM_PID"

# Both modes run the same guests: multi-vCPU and exit code in lazy mode.
rc=0
"$VMMCTL" boot --kernel "$GUEST_ELF" --mem-mode lazy --cpus 2 --mem 64M \
	--append "heartbeat --ms 200; exit 5" --serial "$T/c.serial" 2>"$T/c.err" || rc=$?
[[ $rc == 5 ]] || fail "lazy 2-vCPU guest exited $rc, expected 5"
grep -q "cpu 1 up" "$T/c.serial" || fail "cpu 1 did not come up in lazy mode"
echo "ok: lazy mode, $zero demand-zero faults, p50 ${p50} ns p99 ${p99} ns"
