# shellcheck shell=bash
# Helpers for the snapshot tests (t_snapshot*.sh), after lib.sh.

# vmm_restore NAME FILE ARGS...: a VMM started from snapshot FILE, its
# files named as vmm_start's. Sets VMM_PID.
vmm_restore()
{
	local name=$1 file=$2
	shift 2
	vmm_boot "$name" "vmmctl boot --restore" --restore "$file" "$@"
}

# hb_check_from FILE FIRST: heartbeats FIRST, FIRST+1, ... each once, in
# order (the last line may be half written). Prints the count.
hb_check_from()
{
	local snap=$T/.hb-from
	cp "$1" "$snap"
	[[ -z $(tail -c 1 "$snap") ]] || sed -i '$d' "$snap"
	awk -v first="$2" 'NR == 1 && $1 != first { print "first seq " $1 " != " first; exit 1 }
	     NR > 1 && $1 != prev + 1 { print "seq " prev " -> " $1 " at line " NR; exit 1 }
	     { prev = $1 } END { if (NR == 0) { print "no heartbeats"; exit 1 } print NR }' "$snap"
}

# restored_runs_on NAME PID SNAP_JSON WHAT: a VM restored from the snapshot
# whose reply is SNAP_JSON runs on: its heartbeats continue the snapshot's
# sequence, its RAM verifies, no sequence error; then it stops, exit 0.
restored_runs_on()
{
	local name=$1 pid=$2 json=$3 what=$4 seq out
	seq=$(jq .heartbeat_seq "$json")
	wait_until 30 "$what: heartbeats after the restore" \
		'(($(hb_count "$T/'"$name"'.hb") >= 200))'
	out=$(hb_check_from "$T/$name.hb" $((seq + 1))) || fail "$what: heartbeats: $out"
	guest_verify "$T/$name.sock" "$what"
	[[ $(status_get "$T/$name.sock" .heartbeats.seq_errors) == 0 ]] ||
		fail "$what: heartbeat sequence errors"
	ctl stop --api "$T/$name.sock" >/dev/null
	vmm_wait_for "$pid" 15
	[[ $RC == 0 ]] || fail "$what: exited $RC"
	echo "ok: $what: $out heartbeats from $((seq + 1)), verify ok"
}
