#!/usr/bin/env bash
# Snapshot to a file and restore, on KVM: a dirtying guest is snapshotted
# (paused, then --live while it dirties 200 MiB/s), and each file restored
# eagerly and lazily: the guest's heartbeats continue from the snapshot's
# last one, its memory verifies. The source runs on meanwhile. The file
# takes only the space of non-zero memory.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snap_lib.sh"
need_kvm

vmm_start a --mem 128M --append "dirty --mib 16 --rate 50"
src=$VMM_PID
wait_until 30 "dirty running" '(($(status_get "$T/a.sock" .heartbeats.count) >= 300))'

ctl snapshot --api "$T/a.sock" --to "$T/s1.snap" >"$T/s1.json" || fail "snapshot: $(cat "$T/s1.json")"
[[ $(status_get "$T/a.sock" .state) == running ]] || fail "the source does not run after the snapshot"
[[ -z $(find "$T" -name 's1.snap.tmp.*') ]] || fail "a temporary file was left"
disk=$(jq .disk_bytes "$T/s1.json")
data=$(($(jq .data_pages "$T/s1.json") * 4096))
((data >= 16 << 20)) || fail "only $data bytes of data pages for a 16 MiB dirty region"
((disk < data + (2 << 20))) || fail "$disk bytes on disk for $data bytes of non-zero memory"
echo "ok: snapshot of 128 MiB: $disk bytes on disk, $data bytes of non-zero pages," \
	"paused $(jq .downtime_us "$T/s1.json") us"

vmm_restore e "$T/s1.snap" --mem-mode eager
[[ $(status_get "$T/e.sock" .restore.id) == $(jq -r .id "$T/s1.json") ]] || fail "restore.id is not the snapshot's"
restored_runs_on e "$VMM_PID" "$T/s1.json" "eager restore"
vmm_restore l "$T/s1.snap" --mem-mode lazy --mem 128M
restored_runs_on l "$VMM_PID" "$T/s1.json" "lazy restore"

# A paused VM is snapshotted and stays paused.
ctl pause --api "$T/a.sock" >/dev/null
ctl snapshot --api "$T/a.sock" --to "$T/s0.snap" >/dev/null || fail "snapshot of a paused VM"
[[ $(status_get "$T/a.sock" .state) == paused ]] || fail "a paused VM runs after its snapshot"
ctl resume --api "$T/a.sock" >/dev/null

# --live while the guest dirties its region fast.
ctl guest-request stop-workload --api "$T/a.sock" >/dev/null
vmm_wait_for "$src" 20
vmm_start b --mem 128M --append "dirty --mib 32 --rate 200"
wait_until 30 "dirty running" '(($(status_get "$T/b.sock" .heartbeats.count) >= 1500))'
ctl snapshot --api "$T/b.sock" --to "$T/s2.snap" --live >"$T/s2.json" || fail "live snapshot: $(cat "$T/s2.json")"
(($(jq .rounds "$T/s2.json") >= 1)) || fail "a live snapshot without rounds: $(cat "$T/s2.json")"
echo "ok: live snapshot: $(jq .rounds "$T/s2.json") rounds, $(jq .written_pages "$T/s2.json") page writes," \
	"paused $(jq .downtime_us "$T/s2.json") us of $(jq .total_us "$T/s2.json") us"
[[ $(ctl stats --api "$T/b.sock" | jq .dirty_log.active) == false ]] || fail "dirty logging left on"

vmm_restore lv "$T/s2.snap" --mem-mode lazy
restored_runs_on lv "$VMM_PID" "$T/s2.json" "lazy restore of the live snapshot"
vmm_restore ev "$T/s2.snap"
restored_runs_on ev "$VMM_PID" "$T/s2.json" "eager restore of the live snapshot"
ctl stop --api "$T/b.sock" >/dev/null
