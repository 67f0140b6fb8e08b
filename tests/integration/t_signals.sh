#!/usr/bin/env bash
# SIGTERM and SIGINT tear the VM down cleanly: exit 128+N, socket removed,
# heartbeat log flushed to the last heartbeat the VMM saw.
. "$(dirname "$0")/lib.sh"
need_kvm

for sig in TERM INT; do
	vmm_start "s$sig" --append heartbeat
	wait_until 30 "heartbeats" '(($(hb_count "$T/s$sig.hb") >= 20))'
	kill -s "$sig" "$VMM_PID"
	vmm_wait "$VMM_PID"
	want=$((128 + $(kill -l "$sig")))
	[[ $RC == "$want" ]] || fail "SIG$sig: exit $RC, expected $want"
	[[ ! -e $T/s$sig.sock ]] || fail "SIG$sig: socket left behind"
	out=$(hb_check_continuous "$T/s$sig.hb") || fail "SIG$sig: heartbeat log: $out"
done
echo "ok: signals"
