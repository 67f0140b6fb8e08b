#!/usr/bin/env bash
# A Multiboot guest of ours (examples/guests/mbtest) boots under vmmctl: the
# loader's command line, fw_cfg's NB_CPUS, APs started with INIT/SIPI, and
# isa-debug-exit's status (code << 1) | 1; without --device debug-exit the
# port is not there and the guest halts until it is stopped. Then, in each
# migration mode, the guest is migrated while it waits for serial input
# (its APs halted in real mode): the destination, fed from a file only
# once the guest runs there (post-copy: from a pipe once the migration
# completed), echoes the line and exits with the status.
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

printf 'ping over the wire\n' >"$T/in.txt"
# feed_after FILE: the input line once FILE exists (on a pipe).
feed_after()
{
	while [[ ! -e $1 ]]; do sleep 0.05; done
	cat "$T/in.txt"
}
for mode in precopy postcopy hybrid; do
	port=$(free_port)
	if [[ $mode == postcopy ]]; then
		# Post-copy: the guest runs at GO, before every page arrived.
		# Input there at once would let it echo and exit while pages are
		# still pushed, which ends the migration as a lost peer: feed it
		# once the migration has completed.
		feed_after "$T/go$mode" | "$VMMCTL" boot --incoming "tcp:127.0.0.1:$port" \
			--api "$T/d$mode.sock" --mem 32M --cpus 2 --device debug-exit \
			--serial-in - --serial "$T/d$mode.serial" 2>"$T/d$mode.err" &
	else
		"$VMMCTL" boot --incoming "tcp:127.0.0.1:$port" --api "$T/d$mode.sock" \
			--mem 32M --cpus 2 --device debug-exit --serial-in "$T/in.txt" \
			--serial "$T/d$mode.serial" </dev/null 2>"$T/d$mode.err" &
	fi
	dst=$!
	VMM_PIDS+=("$dst")
	"$VMMCTL" boot --kernel "$MBTEST_ELF" --api "$T/s$mode.sock" --mem 32M \
		--cpus 2 --device debug-exit --append echo \
		--serial "$T/s$mode.serial" </dev/null 2>"$T/s$mode.err" &
	src=$!
	VMM_PIDS+=("$src")
	# shellcheck disable=SC2016 # wait_until evaluates it
	wait_until 30 "$mode: mbtest waiting for input" \
		'grep -qx "mbtest: echo" "$T/s$mode.serial" 2>/dev/null'
	wait_until 20 "$mode: destination socket" '[[ -S $T/d$mode.sock ]]'
	ctl migrate --api "$T/s$mode.sock" --to "tcp:127.0.0.1:$port" \
		--mode "$mode" >"$T/m$mode.json" ||
		fail "$mode: migrate failed: $(cat "$T/m$mode.json")"
	[[ $(jq -r .state "$T/m$mode.json") == completed ]] ||
		fail "$mode: $(cat "$T/m$mode.json")"
	touch "$T/go$mode"
	vmm_wait_for "$src" 15
	[[ $RC == 0 ]] || fail "$mode: the source exited $RC after migrating"
	vmm_wait_for "$dst" 30
	[[ $RC == 1 ]] || fail "$mode: the destination exited $RC, not 1"
	grep -qx "ping over the wire" "$T/d$mode.serial" ||
		fail "$mode: the destination did not echo its input"
	grep -q "mbtest" "$T/d$mode.serial" &&
		fail "$mode: the guest started again on the destination"
	echo "ok: $mode: migrated while waiting for input; the destination" \
		"echoed it and exited 1"
done
echo "ok: Multiboot guest boots, starts its APs and exits through 0xf4"
