#!/usr/bin/env bash
# Working set first: a lazy restore with --record-ws records the pages the
# guest touches first (here: a verify of its 32 MiB region, asked for at
# once; the loader waits for the window, so each is a fault); `vmmctl
# snapshot --ws` stores them in the snapshot as its loading set; a later
# lazy restore places that set before the guest runs and takes fewer
# faults than that restore without it (asserted), its memory verifying and
# its heartbeats continuing from the snapshot's.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snap_lib.sh"
need_kvm

vmm_start a --mem 256M --append "dirty --mib 32 --rate 0"
wait_until 30 "dirty running" '(($(status_get "$T/a.sock" .heartbeats.count) >= 300))'
ctl snapshot --api "$T/a.sock" --to "$T/s.snap" >"$T/s.json" || fail "snapshot: $(cat "$T/s.json")"
ctl snapshot --api "$T/a.sock" --to "$T/other.snap" >/dev/null || fail "second snapshot"
ctl stop --api "$T/a.sock" >/dev/null

# restore_verify NAME ARGS...: a lazy restore, a verify asked for at once;
# FAULTS: the faults it took until the verify passed.
restore_verify()
{
	local name=$1
	shift
	vmm_restore "$name" "$T/s.snap" --mem-mode lazy "$@"
	guest_verify "$T/$name.sock" "$name"
	FAULTS=$(ctl stats --api "$T/$name.sock" | jq .faults.fetch.faults)
	DEMAND=$(status_get "$T/$name.sock" .restore.demand_pages)
}

# Without a loading set.
restore_verify plain
pid=$VMM_PID
plain_faults=$FAULTS plain_demand=$DEMAND
restored_runs_on plain "$pid" "$T/s.json" "lazy restore, no loading set"

# Record, store, and the loading set is in the file.
restore_verify rec --record-ws 10000
pid=$VMM_PID
# While it records, the loader waits: every page the verify reads is a
# fault. This is the baseline the loading set is asserted against (the
# plain restore's count depends on its race with the loader).
rec_faults=$FAULTS
[[ $(status_get "$T/rec.sock" .restore.recording) == true ]] ||
	fail "the verify outlasted the 10 s recording window"
if ctl snapshot --api "$T/rec.sock" --ws "$T/s.snap" >/dev/null 2>"$T/early.err"; then
	fail "a working set was stored while still recording"
fi
one_line "$T/early.err" 'still being recorded' "store while recording"
wait_until 30 "the recording window" \
	'[[ $(status_get "$T/rec.sock" .restore.recording) == false ]]'
# Only into the snapshot this VM came from.
if ctl snapshot --api "$T/rec.sock" --ws "$T/other.snap" >/dev/null 2>"$T/other.err"; then
	fail "a working set was stored into another snapshot"
fi
one_line "$T/other.err" 'other.snap is not the one this VM was restored from' "another snapshot"
ctl snapshot --api "$T/rec.sock" --ws "$T/s.snap" >"$T/ws.json" || fail "storing the working set: $(cat "$T/ws.json")"
ws=$(jq .pages "$T/ws.json")
((ws >= 8192)) || fail "a working set of $ws pages for a 32 MiB verify"
restored_runs_on rec "$pid" "$T/s.json" "lazy restore recording its working set"

restore_verify ws
pid=$VMM_PID
set_pages=$(status_get "$T/ws.sock" .restore.set_pages)
((set_pages == ws)) || fail "the restore placed $set_pages of the $ws pages of its loading set"
((rec_faults >= ws && FAULTS < rec_faults)) ||
	fail "with the loading set $FAULTS faults, without $rec_faults: not fewer"
echo "ok: faults to the first verify: $rec_faults without a loading set on demand only," \
	"$plain_faults ($plain_demand pages read on demand) with the loader racing the guest," \
	"$FAULTS with its $ws pages placed first in $(status_get "$T/ws.sock" .restore.set_us) us"
restored_runs_on ws "$pid" "$T/s.json" "lazy restore with the loading set"
# The loading set racing the guest: the loader places it first.
restore_verify race --ws-mode race
pid=$VMM_PID
wait_until 20 "the racing loading set" \
	'(($(status_get "$T/race.sock" .restore.set_placed) + $(status_get "$T/race.sock" .restore.demand_pages) >= ws))'
echo "ok: racing the guest: $FAULTS faults to the first verify," \
	"$(status_get "$T/race.sock" .restore.set_placed) pages placed by the loader first"
restored_runs_on race "$pid" "$T/s.json" "lazy restore racing its loading set"
# The eager restore of a file with a loading set is the same VM.
vmm_restore e "$T/s.snap"
restored_runs_on e "$VMM_PID" "$T/s.json" "eager restore of the file with a loading set"
