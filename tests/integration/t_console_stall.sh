#!/usr/bin/env bash
# A guest console whose reader stops reading blocks neither a vCPU nor the
# event loop. The guest prints as fast as it can (`spew`: 200-byte lines,
# megabytes a second) into a FIFO that this script holds open but never
# reads: once as the VMM's standard output (the console's writer thread),
# once as --serial (a file the console opens itself, non-blocking). The
# guest keeps running (heartbeats go on after the console said, once, on
# stderr that it drops output: the 64 KiB pipe and the console's 1 MiB
# ring are full), `status` answers within 1 s, and `vmmctl stop` ends the
# VMM with exit code 0 within 5 s.
. "$(dirname "$0")/lib.sh"
need_kvm

# status_quick SOCK: status, or nothing after 2 s (a VMM that stopped
# answering must fail the test, not hang it).
status_quick()
{
	timeout 2 "$VMMCTL" status --api "$1" 2>/dev/null || true
}

# beats_quick SOCK: the heartbeat count status gives, 0 when it gives none.
beats_quick()
{
	local n
	n=$(status_quick "$1" | jq -r '.heartbeats.count // 0' 2>/dev/null || true)
	echo "${n:-0}"
}

# stall_case NAME stdout|serial
stall_case()
{
	local name=$1 how=$2 fifo=$T/$1.fifo hold t0 dt beats out c0
	local args=(boot --kernel "$GUEST_ELF" --api "$T/$name.sock"
		--heartbeat-log "$T/$name.hb" --mem 64M --append "spew --lines 100000")
	mkfifo "$fifo"
	exec {hold}<>"$fifo" # a reader that never reads
	if [[ $how == stdout ]]; then
		"$VMMCTL" "${args[@]}" >"$fifo" 2>"$T/$name.err" &
	else
		"$VMMCTL" "${args[@]}" --serial "$fifo" >"$T/$name.out" 2>"$T/$name.err" &
	fi
	VMM_PID=$!
	VMM_PIDS+=("$VMM_PID")
	wait_until 20 "$name control socket" '[[ -S $T/'"$name"'.sock ]] || ! kill -0 $VMM_PID 2>/dev/null'
	[[ -S $T/$name.sock ]] || fail "$name: vmmctl boot exited before serving its API"
	wait_until 30 "$name: 500 heartbeats while the console ($how) is not read" \
		'(($(beats_quick "$T/'"$name"'.sock") >= 500))'
	wait_until 30 "$name: the console to say it drops output" \
		'grep -q "is not being read" "$T/'"$name"'.err"'
	# The pipe and the ring are full: the guest still runs.
	c0=$(beats_quick "$T/$name.sock")
	wait_until 30 "$name: 500 heartbeats more with the console full" \
		'(($(beats_quick "$T/'"$name"'.sock") >= c0 + 500))'
	t0=$(now_ms)
	out=$(status_quick "$T/$name.sock")
	dt=$(($(now_ms) - t0))
	beats=$(jq -r .heartbeats.count <<<"$out")
	[[ -n $out ]] && ((dt <= 1000)) || fail "$name: status took $dt ms: $out"
	[[ $(grep -c 'is not being read' "$T/$name.err") == 1 ]] ||
		fail "$name: expected one stall warning: $(cat "$T/$name.err")"
	t0=$(now_ms)
	timeout 5 "$VMMCTL" stop --api "$T/$name.sock" >/dev/null || fail "$name: stop failed"
	vmm_wait_for "$VMM_PID" 5
	dt=$(($(now_ms) - t0))
	[[ $RC == 0 ]] || fail "$name: exited $RC after stop"
	exec {hold}<&-
	echo "ok: console on $how not read: $beats heartbeats, status in time," \
		"stopped in $dt ms; $(grep -o '[0-9]* bytes of guest output dropped' "$T/$name.err")"
}

stall_case a stdout
stall_case b serial
