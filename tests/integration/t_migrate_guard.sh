#!/usr/bin/env bash
# No VM lost to an operator. A post-copy migration runs through a slow relay
# (tcpproxy.py) so that it lasts; while the destination runs the guest and
# lacks pages that only the source holds:
#  1. `vmmctl stop` and `vmmctl resume` on the source, and `vmmctl stop` on
#     the destination, are refused with one line naming the state and the
#     way out (--abort --confirm); the source keeps the VM paused (it never
#     runs on both hosts). SIGTERM on the source (twice) is held, logged
#     once, and acted on when the migration completes: the source exits 0
#     as after any completed migration, the destination runs the guest on
#     and verifies it.
#  2. SIGINT on the source is held; the relay dies (post-copy paused), the
#     migration is aborted on both sides: then the held signal stops the
#     source (exit 130).
. "$(dirname "$0")/lib.sh"
need_kvm
PROXY=$(dirname "$0")/tcpproxy.py

# pair_postcopy N: source aN (dirtying) and destination bN, a post-copy
# migration through a relay at 8 MiB/s (PROXY_PID, MIG_PID), returning once
# the destination runs the guest.
pair_postcopy()
{
	local n=$1
	dport=$(free_port)
	pport=$(free_port)
	vmm_incoming "b$n" "tcp:127.0.0.1:$dport" --mem 256M
	dst=$VMM_PID
	vmm_start "a$n" --mem 256M --append "dirty --mib 64 --rate 100"
	src=$VMM_PID
	wait_until 30 "a$n dirtying" '(($(status_get "$T/a$n.sock" .heartbeats.count) >= 200))'
	python3 "$PROXY" "$pport" "$dport" --rate $((8 << 20)) >"$T/proxy$n.out" 2>&1 &
	PROXY_PID=$!
	VMM_PIDS+=("$PROXY_PID")
	wait_until 10 "relay listening" 'grep -q ready "$T/proxy$n.out"'
	timeout 150 "$VMMCTL" migrate --api "$T/a$n.sock" --to "tcp:127.0.0.1:$pport" \
		--mode postcopy --verify >"$T/mig$n.json" 2>"$T/mig$n.err" &
	MIG_PID=$!
	wait_until 30 "post-copy running on b$n" \
		'[[ $(status_get "$T/b$n.sock" .migration.state) == running ]]'
	[[ $(status_get "$T/a$n.sock" .migration.state) =~ postcopy ]] ||
		fail "a$n: not in post-copy: $(status_get "$T/a$n.sock" .migration)"
}

# refused N SOCK CMD WHAT: `vmmctl CMD` on SOCK fails with one line that
# names post-copy and the way out; the source aN is still there.
refused()
{
	local n=$1 sock=$2 cmd=$3 what=$4 rc=0
	ctl "$cmd" --api "$sock" >"$T/r.out" 2>"$T/r.err" || rc=$?
	((rc != 0)) || fail "$what: accepted during post-copy"
	one_line "$T/r.err" "postcopy.*--abort --confirm" "$what"
	kill -0 "$src" 2>/dev/null || fail "$what: the source exited"
	echo "ok: $what refused: $(cat "$T/r.err")"
}

# 1. Refused, held, then a normal end.
pair_postcopy 1
refused 1 "$T/a1.sock" stop "stop on the source"
refused 1 "$T/a1.sock" resume "resume on the source"
[[ $(status_get "$T/a1.sock" .state) == paused ]] || fail "a1: the VM runs here again"
refused 1 "$T/b1.sock" stop "stop on the destination"
kill -TERM "$src"
kill -TERM "$src"
[[ $(status_get "$T/a1.sock" .migration.state) =~ postcopy ]] ||
	fail "a1: after SIGTERM: $(status_get "$T/a1.sock" .migration.state)"
held=$(grep -c "SIGTERM held" "$T/a1.err" || true)
[[ $held == 1 ]] || fail "a1: SIGTERM held logged $held times: $(cat "$T/a1.err")"
grep -q "abort --confirm" "$T/a1.err" || fail "a1: the held line names no way out"
vmm_wait_for "$src" 120
[[ $RC == 0 ]] || fail "a1: exit $RC after a completed migration, expected 0"
vmm_wait "$MIG_PID"
[[ $(jq -r .state "$T/mig1.json") == completed ]] || fail "mig1: $(cat "$T/mig1.json")"
dest_runs_on b1 "$dst" "1. after the held SIGTERM"
echo "ok: 1. stop/resume refused, SIGTERM held once, the source exited 0 after completion"

# 2. Held, then the migration is aborted: the signal stops the source.
pair_postcopy 2
kill -INT "$src"
grep -q "SIGINT held" "$T/a2.err" || wait_until 5 "SIGINT held" 'grep -q "SIGINT held" "$T/a2.err"'
kill -KILL "$PROXY_PID"
wait_until 30 "a2 paused in post-copy" \
	'[[ $(status_get "$T/a2.sock" .migration.state) == postcopy-paused ]]'
kill -0 "$src" || fail "a2: exited on the break"
ctl migrate --api "$T/b2.sock" --abort --confirm >/dev/null 2>&1 || true
vmm_wait_for "$dst" 15
ctl migrate --api "$T/a2.sock" --abort --confirm >/dev/null 2>&1 || true
vmm_wait_for "$src" 15
[[ $RC == 130 ]] || fail "a2: exit $RC after the abort, expected 130 (the held SIGINT)"
vmm_wait "$MIG_PID"
echo "ok: 2. SIGINT held through post-copy, acted on once the migration was aborted"
