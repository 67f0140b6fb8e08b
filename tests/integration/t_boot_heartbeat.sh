#!/usr/bin/env bash
# Boot the test guest to its first heartbeat, then stop it through the API.
. "$(dirname "$0")/lib.sh"
need_kvm

vmm_start a --append "heartbeat"
wait_until 30 "first heartbeat" '[[ -s $T/a.hb ]]'
wait_until 10 "50 heartbeats" '(($(hb_count "$T/a.hb") >= 50))'
state=$(status_get "$T/a.sock" .state)
[[ $state == running ]] || fail "status says '$state', expected running"
[[ $(marker_count "$T/a.sock" cpu-up) == 1 ]] || fail "cpu-up marker missing"
ctl stop --api "$T/a.sock" >/dev/null
vmm_wait "$VMM_PID"
[[ $RC == 0 ]] || fail "vmmctl boot exited $RC after stop, expected 0"
[[ ! -e $T/a.sock ]] || fail "control socket left behind after stop"
read -r n gap < <(hb_check_continuous "$T/a.hb") || fail "heartbeat log: $(hb_check_continuous "$T/a.hb")"
grep -q "cpu 0 up" "$T/a.serial" || fail "serial output lacks 'cpu 0 up'"
echo "ok: $n heartbeats, largest gap $((gap / 1000)) us"
