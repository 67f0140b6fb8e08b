#!/usr/bin/env bash
# The dirty workload writes generations of patterns; verify checks them
# all, both as the next workload and on a host request mid-run.
. "$(dirname "$0")/lib.sh"
need_kvm

rc=0
"$VMMCTL" boot --kernel "$GUEST_ELF" --mem 128M \
	--append "dirty --mib 16 --rate 100 --ms 1500; verify" \
	--serial "$T/d.serial" 2>"$T/d.err" || rc=$?
[[ $rc == 0 ]] || fail "dirty; verify exited $rc"
grep -q "verify: ok 4096 pages" "$T/d.serial" || fail "no 'verify: ok 4096 pages' line"

vmm_start a --mem 128M --append "dirty --mib 8 --rate 50"
wait_until 30 "dirty running" 'grep -q "^dirty:" "$T/a.serial"'
ctl guest-request verify --api "$T/a.sock" >/dev/null
wait_until 30 "verify-ok marker" '(($(marker_count "$T/a.sock" verify-ok) >= 1))'
[[ $(marker_count "$T/a.sock" verify-fail) == 0 ]] || fail "verify failed"
ctl stop --api "$T/a.sock" >/dev/null
vmm_wait "$VMM_PID"
[[ $RC == 0 ]] || fail "exit code $RC"
echo "ok: verify passes after dirtying"
