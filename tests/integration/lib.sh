# shellcheck shell=bash
# Common helpers for integration tests: each test boots real guests with
# vmmctl on /dev/kvm. CTest passes VMMCTL, GUEST_ELF and VMM_SRC. A test
# exits 77 (CTest: skipped) only when /dev/kvm is absent, saying so.
set -euo pipefail

: "${VMMCTL:?VMMCTL must point at the vmmctl binary}"
: "${GUEST_ELF:?GUEST_ELF must point at the test guest image}"

# shellcheck source=scripts/ports.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/ports.sh"

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
# condition (a string, re-evaluated each time) until it holds. It runs in
# a subshell without `set -u`: a status field that is not there yet (jq
# prints "null", which arithmetic takes for an unset variable) is a
# condition that does not hold yet, not the end of the test.
wait_until()
{
	local timeout=$1 what=$2 cond=$3
	local deadline=$(($(now_ms) + timeout * 1000))
	until (set +u; eval "$cond") 2>/dev/null; do
		(($(now_ms) < deadline)) || fail "timed out after ${timeout}s waiting for $what"
		sleep 0.02
	done
}

# vmm_start NAME ARGS...: boot a VMM in the background with its serial
# output in $T/NAME.serial, stderr in $T/NAME.err, API socket $T/NAME.sock,
# heartbeat log $T/NAME.hb, run under $NETNS_EXEC when set. Sets VMM_PID.
vmm_start()
{
	local name=$1
	shift
	vmm_boot "$name" "vmmctl boot" --kernel "$GUEST_ELF" "$@"
}

# vmm_boot NAME WHAT ARGS...: `vmmctl boot ARGS` with NAME's files, as
# vmm_start; fails naming WHAT (and its stderr) when it exits before it
# serves its API. Sets VMM_PID.
vmm_boot()
{
	local name=$1 what=$2
	shift 2
	${NETNS_EXEC:-} "$VMMCTL" boot --api "$T/$name.sock" \
		--serial "$T/$name.serial" --heartbeat-log "$T/$name.hb" "$@" \
		>"$T/$name.out" 2>"$T/$name.err" &
	VMM_PID=$!
	VMM_PIDS+=("$VMM_PID")
	wait_until 20 "$name control socket" \
		'[[ -S $T/'"$name"'.sock ]] || ! kill -0 $VMM_PID 2>/dev/null'
	[[ -S $T/$name.sock ]] ||
		fail "$name: $what exited before serving its API: $(cat "$T/$name.err")"
}

# pt_get SOCK FIELD: a field of the pt device's status.
pt_get() { status_get "$1" ".pt.$2"; }

# packets_flow SOCK WHAT: the pt device delivers 200 more packets and the
# guest's driver finds no gap in their sequence.
packets_flow()
{
	local d0
	d0=$(pt_get "$1" delivered)
	wait_until 20 "$2: packets delivered" \
		'(($(pt_get "'"$1"'" delivered) >= d0 + 200))'
	[[ $(marker_count "$1" pt-seq-error) == 0 ]] || fail "$2: packet sequence broken"
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
	port_pick || fail "no free TCP port"
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
	# The socket file comes before the migration listener (TLS files
	# are loaded in between), the first answer after it: only then may
	# a source connect without meeting "connection refused".
	wait_until 20 "$name answering" \
		'"$VMMCTL" status --api "$T/'"$name"'.sock" >/dev/null || ! kill -0 $VMM_PID'
	kill -0 "$VMM_PID" 2>/dev/null || fail "$name: vmmctl boot --incoming exited early"
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

# ---- added for the migration fault and network-namespace tests ------------

# vmm_wait_for PID TIMEOUT_S: vmm_wait, but fail if PID has not exited
# within TIMEOUT_S seconds (a hang must fail the test, not block CI).
vmm_wait_for()
{
	local pid=$1 timeout=$2
	wait_until "$timeout" "process $pid to exit" \
		"! kill -0 $pid 2>/dev/null || grep -q '^[0-9]* (.*) Z' /proc/$pid/stat 2>/dev/null"
	vmm_wait "$pid"
}

# one_line FILE ERE WHAT: FILE holds exactly one line and it matches ERE.
one_line()
{
	local n
	n=$(wc -l <"$1")
	[[ $n == 1 ]] || fail "$3: expected one line, got $n: $(cat "$1")"
	grep -Eq -- "$2" "$1" || fail "$3: '$(cat "$1")' does not match /$2/"
}

# hb_check_so_far FILE: hb_check_continuous over the lines a running VMM
# has written completely (the last one may still be half flushed).
hb_check_so_far()
{
	local snap=$T/.hb-snapshot
	cp "$1" "$snap"
	[[ -z $(tail -c 1 "$snap") ]] || sed -i '$d' "$snap"
	hb_check_continuous "$snap"
}

# Network namespaces: each test makes its own, with unique names, and the
# EXIT trap deletes them (after killing the VMMs inside) even on failure.
IT_NETNS=()

it_cleanup_netns()
{
	local pid ns
	for pid in "${VMM_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	for pid in "${VMM_PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	for ns in "${IT_NETNS[@]}"; do
		ip netns delete "$ns" 2>/dev/null ||
			echo "warning: could not delete network namespace $ns" >&2
	done
	it_cleanup
}

# netns_add NAME: a new network namespace with lo up, deleted on exit.
# Not being allowed to make one is a failure (these tests run as root).
netns_add()
{
	ip netns add "$1" || fail "ip netns add $1 failed (this test needs root)"
	IT_NETNS+=("$1")
	trap it_cleanup_netns EXIT
	trap 'exit 143' TERM
	trap 'exit 130' INT
	ip -n "$1" link set lo up || fail "netns $1: cannot bring lo up"
}

# netns_pair NS1 NS2 NET: two new namespaces joined by a veth pair,
# vmm-src (NET.1/24) in NS1 and vmm-dst (NET.2/24) in NS2. The pair is made
# inside the namespaces: no name or address of it ever exists in this one,
# and NET is never routed anywhere.
netns_pair()
{
	netns_add "$1"
	netns_add "$2"
	ip -n "$1" link add vmm-src type veth peer name vmm-dst netns "$2" ||
		fail "cannot create a veth pair between $1 and $2"
	ip -n "$1" addr add "$3.1/24" dev vmm-src
	ip -n "$2" addr add "$3.2/24" dev vmm-dst
	ip -n "$1" link set vmm-src up
	ip -n "$2" link set vmm-dst up
}

# vmm_start_ns NS NAME ARGS...: vmm_start with the VMM inside namespace NS
# (its control socket is a file, reachable from here).
vmm_start_ns()
{
	local ns=$1
	shift
	NETNS_EXEC="ip netns exec $ns" vmm_start "$@"
}

# vmm_incoming_ns NS NAME SPEC ARGS...: vmm_incoming inside namespace NS.
vmm_incoming_ns()
{
	local ns=$1
	shift
	NETNS_EXEC="ip netns exec $ns" vmm_incoming "$@"
}

# free_port_ns NS: a TCP port nothing listens on in namespace NS.
free_port_ns()
{
	port_pick ip netns exec "$1" || fail "no free TCP port in $1"
}

# tcp_send NS HOST PORT: connect from inside namespace NS, write stdin,
# close. Returns 1 if the connection could not be made; a peer that resets
# the connection while we write is not an error here.
tcp_send()
{
	local rc=0
	ip netns exec "$1" bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 99
		cat >&3 2>/dev/null; exit 0' "$2" "$3" 2>/dev/null || rc=$?
	((rc != 99))
}

# link_slow NS RATE: throttle namespace NS's loopback (token bucket, e.g.
# 400mbit), so that a dirtying guest out-runs its migration; link_fast
# removes the throttle.
link_slow()
{
	tc -n "$1" qdisc replace dev lo root tbf rate "$2" burst 256kb latency 200ms ||
		fail "tc: cannot throttle lo in $1"
}

link_fast()
{
	tc -n "$1" qdisc del dev lo root 2>/dev/null || true
}

# mig_in_precopy SOCK N: that VMM is migrating out, pre-copying, and has
# completed N rounds (a failed or cancelled earlier one does not count).
mig_in_precopy()
{
	local st
	st=$("$VMMCTL" status --api "$1" | jq -r '.migration | "\(.state) \(.memory_iteration)"')
	[[ ${st% *} == precopy ]] && ((${st#* } >= $2))
}

# mig_hold_precopy SOCK DST N: bring the pre-copy of the VMM at SOCK to
# round N or later and hold it there, mid-round, with its destination
# (pid DST) stopped; returns with DST stopped (kill -CONT or -KILL it).
#
# A round ends only when the destination has acknowledged it (SYNC), so
# while DST is stopped the source stays in its round. It does not rely on
# the guest dirtying pages in every round, which a loaded host does not
# promise: a round in which the guest did not run ends with nothing dirty,
# and the policy rightly calls that converged (stop-copy, then GO). So
# each round is held open until the guest has run on in it (its
# heartbeats advanced, the workload writing between them), and ends with
# pages to send. Each hold is far shorter than the channels' stall limit.
mig_hold_precopy()
{
	local sock=$1 dst=$2 n=$3 st it hb
	wait_until 30 "$sock: pre-copy" 'mig_in_precopy "'"$sock"'" 0'
	for (( ; ; )); do
		kill -STOP "$dst"
		st=$("$VMMCTL" status --api "$sock" | jq -r '.migration | "\(.state) \(.memory_iteration)"') ||
			fail "$sock: no status: the source VMM is gone"
		[[ ${st% *} == precopy ]] ||
			fail "$sock: pre-copy ended (${st% *}) before round $n"
		it=${st#* }
		((it < n)) || return 0
		hb=$(status_get "$sock" .heartbeats.count)
		wait_until 5 "$sock: the guest runs on in round $it" \
			'(($(status_get "'"$sock"'" .heartbeats.count) >= '"$hb"' + 20))'
		kill -CONT "$dst"
		wait_until 30 "$sock: the end of pre-copy round $it" \
			'[[ $(status_get "'"$sock"'" ".migration | .state != \"precopy\" or
			      .memory_iteration > $it") == true ]]'
	done
}

# guest_verify SOCK WHAT: the guest checks its dirty region now (mailbox
# request); fail unless it posts verify-ok.
guest_verify()
{
	local v0
	v0=$(marker_count "$1" verify-ok)
	"$VMMCTL" guest-request verify --api "$1" >/dev/null
	wait_until 30 "$2: verify" \
		'(($(marker_count "'"$1"'" verify-ok) > v0 || $(marker_count "'"$1"'" verify-fail) > 0))'
	[[ $(marker_count "$1" verify-fail) == 0 ]] || fail "$2: verify failed"
}

# dest_runs_on B DST_PID WHAT: after a completed migration, destination B
# runs the guest on (200 more heartbeats, migration state running), its RAM
# verifies, no heartbeat sequence error; then it stops and exits 0.
dest_runs_on()
{
	local name=$1 pid=$2 what=$3 c0
	c0=$(status_get "$T/$name.sock" .heartbeats.count)
	wait_until 30 "$what: heartbeats on the destination" \
		'(($(status_get "$T/$name.sock" .heartbeats.count) >= c0 + 200))'
	[[ $(status_get "$T/$name.sock" .migration.state) == running ]] ||
		fail "$what: destination state"
	guest_verify "$T/$name.sock" "$what: the destination"
	[[ $(status_get "$T/$name.sock" .heartbeats.seq_errors) == 0 ]] ||
		fail "$what: sequence errors on the destination"
	ctl stop --api "$T/$name.sock" >/dev/null
	vmm_wait_for "$pid" 15
	[[ $RC == 0 ]] || fail "$what: destination exited $RC"
}

# mig_check_completed A B SRC_PID DST_PID MIG_JSON: after `vmmctl migrate`
# from VMM A to VMM B returned: the migration completed, the source exited
# 0 and removed its socket, the destination runs the guest on (heartbeats,
# verify ok, no sequence error), stops cleanly, and the two heartbeat logs
# make one sequence. Sets MIG_BEATS and MIG_GAP_NS.
mig_check_completed()
{
	local ma=$1 mb=$2 msrc=$3 mdst=$4 mjson=$5 mout
	[[ $(jq -r .state "$mjson") == completed ]] || fail "state: $(cat "$mjson")"
	vmm_wait "$msrc"
	[[ $RC == 0 ]] || fail "source exited $RC after a completed migration"
	[[ ! -e $T/$ma.sock ]] || fail "source left its control socket"
	dest_runs_on "$mb" "$mdst" "$mb"
	mout=$(hb_check_merged "$T/$ma.hb" "$T/$mb.hb") || fail "heartbeats: $mout"
	read -r MIG_BEATS MIG_GAP_NS <<<"$mout"
}
