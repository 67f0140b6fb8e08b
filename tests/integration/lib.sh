# shellcheck shell=bash
# Common helpers for integration tests: each test boots real guests with
# vmmctl on /dev/kvm. CTest passes VMMCTL, GUEST_ELF and VMM_SRC. A test
# exits 77 (CTest: skipped) only when /dev/kvm is absent, saying so.
set -euo pipefail

: "${VMMCTL:?VMMCTL must point at the vmmctl binary}"
: "${GUEST_ELF:?GUEST_ELF must point at the test guest image}"

T=$(mktemp -d /tmp/vmm-it.XXXXXX)
VMM_PIDS=()

it_cleanup()
{
	local pid
	for pid in "${VMM_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	if [[ ${IT_KEEP:-0} == 1 ]]; then
		echo "kept $T"
	else
		rm -rf "$T"
	fi
}
trap it_cleanup EXIT

fail()
{
	echo "FAIL: $*" >&2
	local f
	for f in "$T"/*.serial "$T"/*.err; do
		[[ -s $f ]] || continue
		echo "---- $f (last 20 lines)" >&2
		tail -n 20 "$f" >&2
	done
	exit 1
}

need_kvm()
{
	if [[ ! -e /dev/kvm ]]; then
		echo "SKIP: /dev/kvm is absent on this machine"
		exit 77
	fi
}

# now_ms: a monotonic-enough wall clock for deadlines in tests.
now_ms() { date +%s%3N; }

# wait_until TIMEOUT_S DESCRIPTION CONDITION: evaluate the shell
# condition (a string, re-evaluated each time) until it holds.
wait_until()
{
	local timeout=$1 what=$2 cond=$3
	local deadline=$(($(now_ms) + timeout * 1000))
	until eval "$cond"; do
		(($(now_ms) < deadline)) || fail "timed out after ${timeout}s waiting for $what"
		sleep 0.02
	done
}

# vmm_start NAME ARGS...: boot a VMM in the background with its serial
# output in $T/NAME.serial, stderr in $T/NAME.err, API socket $T/NAME.sock,
# heartbeat log $T/NAME.hb. Sets VMM_PID.
vmm_start()
{
	local name=$1
	shift
	"$VMMCTL" boot --kernel "$GUEST_ELF" --api "$T/$name.sock" \
		--serial "$T/$name.serial" --heartbeat-log "$T/$name.hb" "$@" \
		>"$T/$name.out" 2>"$T/$name.err" &
	VMM_PID=$!
	VMM_PIDS+=("$VMM_PID")
	wait_until 20 "$name control socket" \
		'[[ -S $T/'"$name"'.sock ]] || ! kill -0 $VMM_PID 2>/dev/null'
	[[ -S $T/$name.sock ]] || fail "$name: vmmctl boot exited before serving its API"
}

# vmm_wait PID: wait for a VMM (in this shell: not in $(...)); its exit
# code lands in RC.
vmm_wait()
{
	RC=0
	wait "$1" || RC=$?
}

ctl() { "$VMMCTL" "$@"; }

# status_get SOCK JQ-PATH: read one field from `vmmctl status`.
status_get()
{
	"$VMMCTL" status --api "$1" | jq -r "$2"
}

# marker_count SOCK NAME: how many markers NAME the guest has posted.
marker_count()
{
	"$VMMCTL" status --api "$1" | jq -r ".markers[\"$2\"]"
}

hb_count() { [[ -f $1 ]] && wc -l <"$1" || echo 0; }

# hb_check_continuous FILE: sequence numbers 1..N, each exactly once, in
# order; timestamps non-decreasing. Prints "N max_gap_ns".
hb_check_continuous()
{
	awk 'NR == 1 { if ($1 != 1) { print "first seq " $1 " != 1"; exit 1 } }
	     NR > 1 { if ($1 != prev + 1) { print "seq " prev " -> " $1 " at line " NR; exit 1 }
		      if ($2 < pts) { print "time goes back at line " NR; exit 1 }
		      g = $2 - pts; if (g > maxg) maxg = g }
	     { prev = $1; pts = $2 }
	     END { if (NR == 0) { print "no heartbeats"; exit 1 } print NR, maxg + 0 }' "$1"
}

# free_port: a TCP port nothing listens on now (for a migration destination).
free_port()
{
	local p
	for p in $(shuf -i 20000-60000 -n 50); do
		if ! (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	fail "no free TCP port"
}

# vmm_incoming NAME SPEC ARGS...: a destination VMM waiting on SPEC.
vmm_incoming()
{
	local name=$1 spec=$2
	shift 2
	${NETNS_EXEC:-} "$VMMCTL" boot --incoming "$spec" --api "$T/$name.sock" \
		--serial "$T/$name.serial" --heartbeat-log "$T/$name.hb" "$@" \
		>"$T/$name.out" 2>"$T/$name.err" &
	VMM_PID=$!
	VMM_PIDS+=("$VMM_PID")
	wait_until 20 "$name control socket" \
		'[[ -S $T/'"$name"'.sock ]] || ! kill -0 $VMM_PID 2>/dev/null'
	[[ -S $T/$name.sock ]] || fail "$name: vmmctl boot --incoming exited early"
}

# hb_check_merged A B: A's log then B's continue one sequence, no gap and no
# repeat; prints "N gap_ns" where gap is from A's last to B's first.
hb_check_merged()
{
	local out
	out=$(cat "$1" "$2" | awk 'NR == 1 { if ($1 != 1) { print "first seq " $1; exit 1 } }
		NR > 1 && $1 != prev + 1 { print "seq " prev " -> " $1 " at line " NR; exit 1 }
		{ prev = $1 } END { print NR }') || { echo "$out"; return 1; }
	local last first
	last=$(tail -n 1 "$1" | awk '{print $2}')
	first=$(head -n 1 "$2" | awk '{print $2}')
	echo "$out $((first - last))"
}
