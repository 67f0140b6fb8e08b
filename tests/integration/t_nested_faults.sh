#!/usr/bin/env bash
# Nested faults end to end: the guest's pagefault workload touches unmapped
# virtual pages; its ring-0 #PF handler maps each to a never-touched
# guest-physical page; the retried access faults at the second level and
# the VMM resolves it (lazy mode). Both counts and the data are checked.
. "$(dirname "$0")/lib.sh"
need_kvm

N=64
vmm_start a --mem-mode lazy --mem 64M --append "heartbeat; pagefault --pages $N; heartbeat"
wait_until 30 "first workload" '(($(status_get "$T/a.sock" .heartbeats.count) >= 50))'
before=$(ctl stats --api "$T/a.sock" | jq -r .faults.zero.faults)
ctl guest-request stop-workload --api "$T/a.sock" >/dev/null
wait_until 60 "pf-count marker" '(($(marker_count "$T/a.sock" pf-count) >= 1))'
guest=$(status_get "$T/a.sock" '.markers["pf-count"]')
after=$(ctl stats --api "$T/a.sock" | jq -r .faults.zero.faults)
grep -q "pagefault: $N pages" "$T/a.serial" || fail "pagefault workload did not report $N pages"
ctl stop --api "$T/a.sock" >/dev/null
vmm_wait "$VMM_PID"
[[ $RC == 0 ]] || fail "guest exited $RC (3 would mean a data mismatch)"
gfaults=$(grep -o "pagefault: $N pages, [0-9]* guest faults" "$T/a.serial" | awk '{print $4}')
[[ $gfaults == "$N" ]] || fail "guest-level faults: $gfaults, expected $N"
host=$((after - before))
# Each data page, plus the few page-table pages the #PF handler takes from
# the same never-touched pool, is one host-level fault.
((host >= N && host <= N + 8)) || fail "host-level faults during pagefault: $host, expected $N..$((N + 8))"
echo "ok: $gfaults guest-level faults, $host host-level faults, data verified"
