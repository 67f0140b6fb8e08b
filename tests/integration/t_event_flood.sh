#!/usr/bin/env bash
# A hostile guest floods the VMM with markers (the `flood` workload, from a
# vCPU in a tight loop) while two control clients are connected: one reads
# every event, one never reads. The VMM must stay responsive and bounded:
# every `status` during the flood answers within 1 s, the VMM's RSS grows by
# less than 64 MiB, the marker counter is exact (every marker counted even
# when its event was dropped), and status reports the events it dropped
# (rate limit and queue bound) while the reading client got at most the
# rate limit's worth.
. "$(dirname "$0")/lib.sh"
need_kvm

N=50000
vmm_start f --append "flood --markers $N --ms 60000"
pid=$VMM_PID
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
# A reader of every event, and a client that connects and never reads.
python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
while s.recv(1 << 16): pass' "$T/f.sock" &
VMM_PIDS+=($!)
python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); time.sleep(120)' "$T/f.sock" &
VMM_PIDS+=($!)
rss0=$(rss "$pid")
worst=0
deadline=$(($(now_ms) + 60000))
while :; do
	t0=$(now_ms)
	timeout 5 "$VMMCTL" status --api "$T/f.sock" >"$T/st.json" ||
		fail "status did not answer within 5 s during the flood"
	dt=$(($(now_ms) - t0))
	((dt > worst)) && worst=$dt
	grep -q "flood: done" "$T/f.serial" && break
	(($(now_ms) < deadline)) || fail "the flood did not end in 60 s"
done
# The serial line is written before the last heartbeat tick: one more status.
"$VMMCTL" status --api "$T/f.sock" >"$T/st.json"
rss1=$(rss "$pid")
got=$(jq -r '.markers.result' "$T/st.json")
[[ $got == "$N" ]] || fail "marker counter: $got of $N markers"
((worst < 1000)) || fail "status took $worst ms during the flood"
((rss1 - rss0 < 65536)) || fail "RSS grew from $rss0 to $rss1 KiB"
rate=$(jq -r '.events.dropped_rate // 0' "$T/st.json")
queue=$(jq -r '.events.dropped_queue // 0' "$T/st.json")
((rate > 0)) || fail "no event dropped by the rate limit: $(jq -c .events "$T/st.json")"
echo "ok: $N markers counted exactly, status at most $worst ms, RSS $rss0 -> $rss1 KiB," \
	"events dropped: $rate by the rate limit, $queue by the queue bound"
