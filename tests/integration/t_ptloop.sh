#!/usr/bin/env bash
# A guest whose page tables point back at themselves (`ptloop`: a recursive
# PML4 slot, and 255 PML4 slots under a table whose 512 entries all point at
# itself), then dirtying memory, migrated in post-copy with push order
# accessed: after GO the source walks those tables from CR3 to order its
# push. Following every link is some 10^10 reads; the walk must read each
# table once, within its budget. While the migration runs, `status` on the
# source answers within 1 s every time it is asked; the migration completes
# (within 60 s), the heartbeats of both sides make one sequence, the
# destination's RAM verifies, and the walk took under a second.
. "$(dirname "$0")/lib.sh"
need_kvm

port=$(free_port)
vmm_incoming b "tcp:127.0.0.1:$port" --mem 128M
dst=$VMM_PID
vmm_start a --mem 128M --append "ptloop --ms 0; dirty --mib 16 --rate 50"
src=$VMM_PID
wait_until 30 "dirty running" \
	'grep -q "^dirty: " "$T/a.serial" && (($(status_get "$T/a.sock" .heartbeats.count) >= 300))'
grep -q '^ptloop: PML4 at .* 255 slots from 256' "$T/a.serial" ||
	fail "ptloop did not install its tables"

timeout 60 "$VMMCTL" migrate --api "$T/a.sock" --to "tcp:127.0.0.1:$port" \
	--mode postcopy --push-order accessed >"$T/mig.json" 2>"$T/mig.err" &
mig=$!

# Ask the source for its status until the migration ends: each answer
# within 1 s (a loop thread stuck in the walk answers never: `timeout 5`).
probes=0
worst=0
while kill -0 "$mig" 2>/dev/null; do
	t0=$(now_ms)
	rc=0
	timeout 5 "$VMMCTL" status --api "$T/a.sock" >"$T/status.json" 2>&1 || rc=$?
	dt=$(($(now_ms) - t0))
	# The source exits once the migration completed: no socket, no answer.
	kill -0 "$src" 2>/dev/null && [[ -S $T/a.sock ]] || break
	((rc == 0)) || fail "status on the source failed (rc $rc after $dt ms): $(cat "$T/status.json")"
	((dt <= 1000)) || fail "status on the source took $dt ms during the migration"
	probes=$((probes + 1))
	((dt > worst)) && worst=$dt
	sleep 0.05
done
rc=0
wait "$mig" || rc=$?
((rc == 0)) || fail "migrate exited $rc (124: not done in 60 s): $(cat "$T/mig.json" "$T/mig.err")"
walk_us=$(jq .push_walk_us "$T/mig.json")
((walk_us < 1000000)) || fail "the page-table walk took $walk_us us"
[[ $(jq .push_walk_errno "$T/mig.json") == 0 ]] || fail "walk failed: $(cat "$T/mig.json")"
# The walk ran on its own thread and reported what it met: the loops.
(($(jq .push_walk_tables "$T/mig.json") > 0 && $(jq .push_walk_revisits "$T/mig.json") > 0)) ||
	fail "no walk report: $(jq -c 'with_entries(select(.key | startswith("push_walk")))' "$T/mig.json")"
[[ $(jq -r .push_walk_stop "$T/mig.json") =~ ^(done|table-budget|time-budget)$ ]] ||
	fail "walk stop reason: $(jq -r .push_walk_stop "$T/mig.json")"
mig_check_completed a b "$src" "$dst" "$T/mig.json"
echo "ok: status answered $probes times during the migration, slowest $worst ms;" \
	"walk $walk_us us ($(jq .push_walk_tables "$T/mig.json") tables, $(jq .push_walk_revisits "$T/mig.json") revisits, $(jq .push_walk_cycles "$T/mig.json") cycles, stop $(jq -r .push_walk_stop "$T/mig.json")), $(jq .push_hot_pages "$T/mig.json") pages pushed as accessed;" \
	"$MIG_BEATS heartbeats, gap $((MIG_GAP_NS / 1000)) us"
