#!/usr/bin/env bash
# The guest's exit code is vmmctl boot's exit code; a reset ends the VM.
. "$(dirname "$0")/lib.sh"
need_kvm

for code in 0 3 42; do
	rc=0
	"$VMMCTL" boot --kernel "$GUEST_ELF" --mem 32M --append "exit $code" \
		--serial "$T/e.serial" 2>"$T/e.err" || rc=$?
	[[ $rc == "$code" ]] || fail "guest exit $code gave vmmctl exit $rc"
done
# A reset through the i8042 ends the VM cleanly (exit 0), like a reboot
# under Firecracker.
vmm_start r --mem 32M --append "heartbeat --ms 100; reset"
vmm_wait "$VMM_PID"
[[ $RC == 0 ]] || fail "guest reset: exit $RC"
grep -q "reset: via i8042" "$T/r.serial" || fail "reset workload did not run"
[[ ! -e $T/r.sock ]] || fail "control socket left behind after reset"
echo "ok: exit codes propagate, reset ends the VM"
