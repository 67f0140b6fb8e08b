#!/usr/bin/env bash
# The guest's exit code is vmmctl boot's exit code.
. "$(dirname "$0")/lib.sh"
need_kvm

for code in 0 3 42; do
	rc=0
	"$VMMCTL" boot --kernel "$GUEST_ELF" --mem 32M --append "exit $code" \
		--serial "$T/e.serial" 2>"$T/e.err" || rc=$?
	[[ $rc == "$code" ]] || fail "guest exit $code gave vmmctl exit $rc"
done
echo "ok: exit codes propagate"
