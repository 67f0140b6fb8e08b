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

# verify must catch a page that is wrong: a byte flipped behind its back.
rc=0
"$VMMCTL" boot --kernel "$GUEST_ELF" --mem 64M \
	--append "dirty --mib 4 --rate 10 --ms 200; corrupt --page 7; verify" \
	--serial "$T/c.serial" 2>"$T/c.err" || rc=$?
[[ $rc == 3 ]] || fail "verify of a corrupted page exited $rc, expected 3"
grep -q "verify: FAIL page 7 " "$T/c.serial" || fail "verify did not name page 7"
grep -q "verify: FAIL 1 of 1024 pages wrong" "$T/c.serial" || fail "verify miscounted"

vmm_start a --mem 128M --append "dirty --mib 8 --rate 50"
wait_until 30 "dirty running" 'grep -q "^dirty:" "$T/a.serial"'
ctl guest-request verify --api "$T/a.sock" >/dev/null
wait_until 30 "verify-ok marker" '(($(marker_count "$T/a.sock" verify-ok) >= 1))'
[[ $(marker_count "$T/a.sock" verify-fail) == 0 ]] || fail "verify failed"
ctl stop --api "$T/a.sock" >/dev/null
vmm_wait "$VMM_PID"
[[ $RC == 0 ]] || fail "exit code $RC"
echo "ok: verify passes after dirtying"
