#!/usr/bin/env bash
# Pause stops heartbeats; resume continues them with no sequence gap.
. "$(dirname "$0")/lib.sh"
need_kvm

vmm_start a --append "heartbeat"
wait_until 30 "100 heartbeats" '(($(status_get "$T/a.sock" .heartbeats.count) >= 100))'
ctl pause --api "$T/a.sock" >/dev/null
[[ $(status_get "$T/a.sock" .state) == paused ]] || fail "not paused"
c1=$(status_get "$T/a.sock" .heartbeats.count)
sleep 0.5 # a stretch of paused time to observe; not synchronisation
c2=$(status_get "$T/a.sock" .heartbeats.count)
[[ $c1 == "$c2" ]] || fail "heartbeats went on while paused: $c1 -> $c2"
if ctl pause --api "$T/a.sock" 2>"$T/pause2.err"; then
	fail "pausing a paused VM succeeded"
fi
grep -q "already paused" "$T/pause2.err" || fail "second pause: $(cat "$T/pause2.err")"
ctl resume --api "$T/a.sock" >/dev/null
wait_until 30 "heartbeats after resume" '(($(status_get "$T/a.sock" .heartbeats.count) >= c2 + 100))'
[[ $(status_get "$T/a.sock" .heartbeats.seq_errors) == 0 ]] || fail "sequence errors"
ctl stop --api "$T/a.sock" >/dev/null
vmm_wait "$VMM_PID"
[[ $RC == 0 ]] || fail "exit code $RC"
out=$(hb_check_continuous "$T/a.hb") || fail "heartbeat log: $out"
read -r n gap <<<"$out"
((gap >= 450000000)) || fail "largest heartbeat gap $gap ns: the pause did not stop the guest"
# The beat that ended that gap carries the guest's own stall (third
# column, us): the pause as the guest saw it, within the gap, and no more
# than the beats' 1 ms cadence (plus a few ms of loop and rounding) short
# of it.
read -r lgap stall < <(awk 'NR > 1 && $2 - p > m { m = $2 - p; s = $3 }
	{ p = $2 } END { print m, (s == "" ? -1 : s) }' "$T/a.hb")
((stall >= 0)) || fail "the beat after the pause has no stall column"
((stall * 1000 <= lgap + 100000)) || fail "guest stall $stall us > heartbeat gap $lgap ns"
((stall * 1000 >= lgap - 5000000)) || fail "guest stall $stall us, heartbeat gap $lgap ns"
echo "ok: $n heartbeats, no gap in sequence, pause gap $((gap / 1000000)) ms, guest stall $((stall / 1000)) ms"
