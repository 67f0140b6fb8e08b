#!/usr/bin/env bash
# A Multiboot guest of ours (examples/guests/mbtest) boots under vmmctl: the
# loader's command line, fw_cfg's NB_CPUS, APs started with INIT/SIPI, and
# isa-debug-exit's status (code << 1) | 1; without --device debug-exit the
# port is not there and the guest halts until it is stopped.
. "$(dirname "$0")/lib.sh"
need_kvm
[[ -n ${MBTEST_ELF:-} ]] || fail "MBTEST_ELF must name the mbtest guest"

for cpus in 1 3; do
	rc=0
	timeout 60 "$VMMCTL" boot --kernel "$MBTEST_ELF" --mem 32M \
		--cpus "$cpus" --device debug-exit --append "hello mb" \
		--serial "$T/m$cpus.serial" </dev/null 2>"$T/m$cpus.err" || rc=$?
	[[ $rc == 1 ]] || fail "$cpus cpus: exit $rc, not 1 (debug-exit code 0):" \
		"$(cat "$T/m$cpus.err" "$T/m$cpus.serial")"
	grep -qx "mbtest: cmdline $MBTEST_ELF hello mb" "$T/m$cpus.serial" ||
		fail "command line not '<kernel> hello mb'"
	grep -qx "mbtest: fw_cfg NB_CPUS $cpus" "$T/m$cpus.serial" ||
		fail "fw_cfg NB_CPUS is not $cpus"
	grep -qx "mbtest: cpus up $cpus" "$T/m$cpus.serial" ||
		fail "not every AP came up after INIT/SIPI"
done

# No debug-exit device: the write goes nowhere, the guest halts.
vmm_start h --kernel "$MBTEST_ELF" --mem 32M
# shellcheck disable=SC2016 # wait_until evaluates it
wait_until 30 "mbtest without debug-exit" \
	'grep -qx "mbtest: cpus up 1" "$T/h.serial" 2>/dev/null'
kill -0 "$VMM_PID" || fail "the VMM ended without a debug-exit device"
kill -TERM "$VMM_PID"
vmm_wait "$VMM_PID"
[[ $RC == $((128 + 15)) ]] || fail "stopped by SIGTERM: exit $RC"
echo "ok: Multiboot guest boots, starts its APs and exits through 0xf4"
