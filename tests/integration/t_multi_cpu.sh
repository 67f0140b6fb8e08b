#!/usr/bin/env bash
# 1, 2 and 4 vCPUs all reach ring 3 and report in; the guest exits 0.
. "$(dirname "$0")/lib.sh"
need_kvm

for n in 1 2 4; do
	rc=0
	"$VMMCTL" boot --kernel "$GUEST_ELF" --cpus "$n" --mem 64M \
		--append "heartbeat --ms 300" --serial "$T/c$n.serial" \
		2>"$T/c$n.err" || rc=$?
	[[ $rc == 0 ]] || fail "--cpus $n: exit code $rc"
	for ((i = 0; i < n; i++)); do
		grep -q "cpu $i up" "$T/c$n.serial" || fail "--cpus $n: cpu $i never came up"
	done
	[[ $(grep -c "cpu [0-9]* up" "$T/c$n.serial") == "$n" ]] || fail "--cpus $n: wrong number of cpus up"
done
echo "ok: 1, 2 and 4 vCPUs"
