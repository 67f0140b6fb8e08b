#!/usr/bin/env bash
# Live update in place (docs/migration.md "Live update"): `vmmctl migrate
# --to unix:PATH` hands the guest-RAM memfd to a VMM started with `boot
# --incoming unix:PATH` on this host; only the machine state crosses.
#
#  1. A running guest that dirties its memory and receives packets by DMA
#     (--device pt) moves to the new process: mode local, no page sent,
#     the driver quiesced and resumed with its packet sequence unbroken,
#     heartbeats one continuous sequence, the guest's verify ok on the new
#     process, the old process exits 0. The socket file was mode 0600, and
#     a stranger's connection before the source's was dropped.
#  2. A second live update of the same guest (new process -> newer one).
#  3. A guest dirtying 64 MiB at 200 MiB/s with its CPU: its memory
#     verifies on the new process.
#  4. Refused before the handover, the guest runs on in the old process:
#     a destination with another --mem; one that dies after the source
#     paused and before READY (VMM_TEST_LOCAL_CRASH=1); TLS on unix:,
#     another mode, --verify, a missing socket, an existing file.
. "$(dirname "$0")/lib.sh"
need_kvm

GUEST="dirty --mib 16 --rate 0 --ms 1; pt-driver"
DEV=(--device pt,rate=2000)

# beats_on SOCK WHAT: 100 more heartbeats.
beats_on()
{
	local c0
	c0=$(status_get "$1" .heartbeats.count)
	wait_until 30 "$2: heartbeats" \
		'(($(status_get "'"$1"'" .heartbeats.count) >= c0 + 100))'
}

# live_update FROM TO WHAT [pt]: migrate FROM's VM to the VMM on $T/TO.live;
# check the result's figures. Sets JSON.
live_update()
{
	JSON=$T/$3.json
	ctl migrate --api "$T/$1.sock" --to "unix:$T/$2.live" >"$JSON" ||
		fail "$3: migrate failed: $(cat "$JSON")"
	[[ $(jq -r .state "$JSON") == completed ]] || fail "$3: $(cat "$JSON")"
	[[ $(jq -r .mode "$JSON") == local ]] || fail "$3: mode $(jq -r .mode "$JSON")"
	[[ $(jq .memory_processed "$JSON") == 0 ]] || fail "$3: pages were sent"
	[[ ${4:-} != pt ]] || (($(jq .quiesce_us "$JSON") > 0)) || fail "$3: no quiesce"
	[[ ! -e $T/$2.live ]] || fail "$3: the socket file is still there"
}

# 1. a -> b.
vmm_incoming b "unix:$T/b.live" --mem 1G "${DEV[@]}"
dst=$VMM_PID
[[ $(stat -c %a "$T/b.live") == 600 ]] || fail "socket file mode $(stat -c %a "$T/b.live")"
vmm_start a --mem 1G "${DEV[@]}" --append "$GUEST"
src=$VMM_PID
wait_until 20 "a: driver enabled" '[[ $(pt_get "$T/a.sock" enabled) == true ]]'
packets_flow "$T/a.sock" a
# A stranger: not a live-update header; dropped, b listens on.
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.send(b"GET / HTTP/1.0\r\n\r\n"); s.close()' "$T/b.live"
wait_until 10 "b: stranger dropped" 'grep -q "not a live-update source" "$T/b.err"'
live_update a b "1" pt
echo "ok: 1 GiB live update: downtime $(jq .downtime_us "$JSON") us (pause $(jq .pause_us "$JSON"), state $(jq .stop_copy_us "$JSON"), READY $(jq .ready_wait_us "$JSON"), GO->RUNNING $(jq .go_wait_us "$JSON")), quiesce $(jq .quiesce_us "$JSON") us"
vmm_wait_for "$src" 15
[[ $RC == 0 ]] || fail "1: the old process exited $RC"
[[ ! -e $T/a.sock ]] || fail "1: the old process left its control socket"
wait_until 20 "b: driver resumed" '(($(marker_count "$T/b.sock" pt-resumed) >= 1))'
packets_flow "$T/b.sock" b
beats_on "$T/b.sock" b
guest_verify "$T/b.sock" "b"
out=$(hb_check_merged "$T/a.hb" "$T/b.hb") || fail "1: heartbeats: $out"
echo "ok: heartbeats a -> b continuous: $out (beats, gap ns)"

# 2. b -> c: the new process is updated in turn.
vmm_incoming c "unix:$T/c.live" --mem 1G "${DEV[@]}"
dst2=$VMM_PID
live_update b c "2" pt
vmm_wait_for "$dst" 15
[[ $RC == 0 ]] || fail "2: b exited $RC"
wait_until 20 "c: driver resumed" '(($(marker_count "$T/c.sock" pt-resumed) >= 2))'
packets_flow "$T/c.sock" c
guest_verify "$T/c.sock" "c"
cat "$T/a.hb" "$T/b.hb" >"$T/ab.hb"
out=$(hb_check_merged "$T/ab.hb" "$T/c.hb") || fail "2: heartbeats: $out"
echo "ok: second live update, downtime $(jq .downtime_us "$JSON") us; heartbeats $out"

# 3. A CPU-dirtying guest, 2 vCPUs.
vmm_incoming e "unix:$T/e.live" --mem 512M --cpus 2
dst3=$VMM_PID
vmm_start d --mem 512M --cpus 2 --append "dirty --mib 64 --rate 200"
src3=$VMM_PID
wait_until 20 "d: dirtying" 'grep -q "dirty: 64 MiB" "$T/d.serial"'
beats_on "$T/d.sock" d
live_update d e "3"
vmm_wait_for "$src3" 15
[[ $RC == 0 ]] || fail "3: d exited $RC"
guest_verify "$T/e.sock" "e"
out=$(hb_check_merged "$T/d.hb" "$T/e.hb") || fail "3: heartbeats: $out"
ctl stop --api "$T/e.sock" >/dev/null
vmm_wait_for "$dst3" 15
echo "ok: dirtying guest, downtime $(jq .downtime_us "$JSON") us; heartbeats $out"

# refused N WHAT ERE DEST-ARGS...: a live update from c that fails before
# the handover; c runs on (heartbeats, packets, verify).
refused()
{
	local n=$1 what=$2 ere=$3
	shift 3
	RC=0
	timeout 60 "$VMMCTL" migrate --api "$T/c.sock" --to "unix:$T/r$n.live" \
		>"$T/r$n.json" 2>"$T/r$n.merr" || RC=$?
	[[ $RC == 1 ]] || fail "$n: migrate exit $RC: $(cat "$T/r$n.merr")"
	one_line "$T/r$n.merr" "^vmmctl migrate: failed: .*$ere" "$n: vmmctl migrate"
	[[ $(status_get "$T/c.sock" .state) == running ]] || fail "$n: c not running"
	[[ $(status_get "$T/c.sock" .migration.state) == failed ]] || fail "$n: c status"
	beats_on "$T/c.sock" "$n: c"
	packets_flow "$T/c.sock" "$n: c"
	guest_verify "$T/c.sock" "$n: c"
	echo "ok: $what refused, the guest runs on: $(cat "$T/r$n.merr")"
}

# 4a. Another --mem: refused at HELLO, the destination exits with one line.
vmm_incoming r1 "unix:$T/r1.live" --mem 512M "${DEV[@]}"
rpid=$VMM_PID
refused 1 "--mem 512M" "guest RAM handed over is 1024 MiB, this VM has 512 MiB \(--mem\)"
vmm_wait_for "$rpid" 15
[[ $RC != 0 ]] || fail "4a: the refusing destination exited 0"
grep -q "guest RAM handed over is 1024 MiB" "$T/r1.err" || fail "4a: destination's line"

# 4b. The destination dies after the source paused, before READY.
VMM_TEST_LOCAL_CRASH=1 vmm_incoming r2 "unix:$T/r2.live" --mem 1G "${DEV[@]}"
rpid=$VMM_PID
refused 2 "a destination dying before READY" "(connection closed by peer|connection reset by peer)"
vmm_wait_for "$rpid" 15
[[ $RC == 9 ]] || fail "4b: the crashing destination exited $RC"
# It died after the pause: the source had stopped the guest and resumed it.
(($(status_get "$T/c.sock" .migration.pause_us) > 0)) || fail "4b: the source never paused"
(($(marker_count "$T/c.sock" pt-resumed) >= 3)) || fail "4b: the driver did not resume on c"

# 4c. No TLS on a local socket: one line, nothing started.
RC=0
"$VMMCTL" migrate --api "$T/c.sock" --to "unix:$T/none.live" --tls-dir /nonexistent \
	>/dev/null 2>"$T/r3.merr" || RC=$?
[[ $RC != 0 ]] || fail "4c: TLS on unix: accepted"
one_line "$T/r3.merr" "no TLS or --insecure" "4c"
RC=0
"$VMMCTL" boot --incoming "unix:$T/none.live" --tls-dir /nonexistent 2>"$T/r4.merr" || RC=$?
[[ $RC != 0 ]] || fail "4c: boot accepted TLS on unix:"
one_line "$T/r4.merr" "no --tls-dir" "4c boot"
echo "ok: TLS on unix: refused on both sides"
# bad_mig ERE ARGS...: migrate from c refused at once with one line.
bad_mig()
{
	local ere=$1
	shift
	RC=0
	"$VMMCTL" migrate --api "$T/c.sock" "$@" >/dev/null 2>"$T/bm.err" || RC=$?
	[[ $RC == 1 ]] || fail "migrate $*: exit $RC"
	one_line "$T/bm.err" "$ere" "migrate $*"
}
bad_mig "mode precopy does not apply" --to "unix:$T/none.live" --mode precopy
bad_mig "no --verify" --to "unix:$T/none.live" --verify
bad_mig "mode local \(live update\) needs a unix:PATH address" --to tcp:127.0.0.1:1 --mode local
bad_mig "cannot connect to unix:$T/none.live: No such file or directory" --to "unix:$T/none.live"
: >"$T/taken.live"
RC=0
"$VMMCTL" boot --incoming "unix:$T/taken.live" 2>"$T/bt.err" || RC=$?
[[ $RC != 0 ]] || fail "boot --incoming on an existing file"
one_line "$T/bt.err" "the file exists: remove it or pick another path" "boot on an existing file"
[[ $(status_get "$T/c.sock" .state) == running ]] || fail "c not running after the refusals"
echo "ok: modes, --verify, a missing socket and an existing file refused with one line"

# The guest is whole after all that: its workload ends, exit 0.
ctl guest-request stop-workload --api "$T/c.sock" >/dev/null
wait_until 20 "c: pt-driver summary" 'grep -q "pt-driver: ok" "$T/c.serial"'
grep -Eq "pt-driver: ok ([0-9]+) packets, seq 1\.\.\1 continuous" "$T/c.serial" ||
	fail "pt-driver: $(grep pt-driver: "$T/c.serial")"
vmm_wait_for "$dst2" 20
[[ $RC == 0 ]] || fail "c exited $RC"
echo "ok: $(grep "pt-driver: ok" "$T/c.serial")"
