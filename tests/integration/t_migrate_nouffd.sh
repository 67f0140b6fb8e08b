#!/usr/bin/env bash
# A destination that cannot use userfaultfd (simulated: VMM_TEST_NO_UFFD=1
# in its environment; the tests run as root, for whom the kernel never
# refuses): `vmmctl migrate --mode postcopy` falls back to pre-copy, prints
# one line saying why, and completes; the destination logs its reason.
. "$(dirname "$0")/lib.sh"
need_kvm

port=$(free_port)
export VMM_TEST_NO_UFFD=1
vmm_incoming b "tcp:127.0.0.1:$port" --mem 128M
dst=$VMM_PID
unset VMM_TEST_NO_UFFD
vmm_start a --mem 128M --append "dirty --mib 16 --rate 50"
src=$VMM_PID
wait_until 30 "dirty running" '(($(status_get "$T/a.sock" .heartbeats.count) >= 300))'
ctl migrate --api "$T/a.sock" --to "tcp:127.0.0.1:$port" --mode postcopy --verify \
	>"$T/mig.json" 2>"$T/mig.err" || fail "migrate failed: $(cat "$T/mig.err" "$T/mig.json")"
mig_check_completed a b "$src" "$dst" "$T/mig.json"
[[ $(jq .postcopy "$T/mig.json") == false ]] || fail "the switch went to post-copy"
[[ $(wc -l <"$T/mig.err") == 1 ]] && grep -q "mode postcopy falls back to pre-copy instead" "$T/mig.err" ||
	fail "vmmctl migrate said: $(cat "$T/mig.err")"
grep -q "post-copy refused: userfaultfd: refused (VMM_TEST_NO_UFFD=1)" "$T/b.err" ||
	fail "the destination said: $(cat "$T/b.err")"
echo "ok: post-copy refused by the destination, pre-copy completed: $(cat "$T/mig.err")"
