#!/usr/bin/env bash
# The passthrough-style DMA device (--device pt) and its quiesce handshake
# (docs/pt-quiesce.md), end to end on KVM. The guest's pt-driver receives
# numbered packets by DMA and checks that they are continuous.
#
#  1-3. Pre-copy, hybrid and post-copy migrations while packets
#       flow: the driver quiesces on the source (nothing pinned at the
#       switch), resumes on the destination, the packet sequence goes on
#       with no gap or duplicate (queued packets travel in the device
#       state), --verify sums match, heartbeats are continuous.
#  4.   A driver that never acknowledges: the migration fails after
#       --quiesce-timeout naming the device, the source runs on and the
#       device still delivers.
#  5.   A driver that acknowledges but keeps its buffers posted: the switch
#       is refused naming the pinned buffer; the source runs on.
. "$(dirname "$0")/lib.sh"
need_kvm

GUEST="dirty --mib 16 --rate 0 --ms 1; pt-driver"

# driver_ok NAME: stop the driver; its summary says 1..N continuous.
driver_ok()
{
	local line
	ctl guest-request stop-workload --api "$T/$1.sock" >/dev/null
	PT_SERIAL=$T/$1.serial
	wait_until 20 "$1: pt-driver summary" 'grep -q "pt-driver: ok" "$PT_SERIAL"'
	line=$(grep "pt-driver: ok" "$PT_SERIAL")
	[[ $line =~ ok\ ([0-9]+)\ packets,\ seq\ 1\.\.([0-9]+)\ continuous ]] ||
		fail "$1: $line"
	[[ ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" ]] || fail "$1: $line"
	PT_LINE=$line
}

# migrate_ok N MODE FLAGS...: a migration while packets flow.
migrate_ok()
{
	local n=$1 mode=$2 port
	shift 2
	port=$(free_port)
	vmm_incoming "b$n" "tcp:127.0.0.1:$port" --mem 128M --device pt,rate=2000
	dst=$VMM_PID
	vmm_start "a$n" --mem 128M --device pt,rate=2000 --append "$GUEST"
	src=$VMM_PID
	wait_until 20 "a$n: driver enabled" '[[ $(pt_get "$T/a$n.sock" enabled) == true ]]'
	packets_flow "$T/a$n.sock" "a$n"
	ctl migrate --api "$T/a$n.sock" --to "tcp:127.0.0.1:$port" --verify \
		--mode "$mode" "$@" >"$T/mig$n.json" ||
		fail "$n: migrate failed: $(cat "$T/mig$n.json")"
	(($(jq .quiesce_us "$T/mig$n.json") > 0)) || fail "$n: no quiesce: $(cat "$T/mig$n.json")"
	[[ $mode != postcopy ]] || [[ $(jq -r .postcopy "$T/mig$n.json") == true ]] ||
		fail "$n: not a post-copy migration"
	wait_until 20 "b$n: driver resumed" '(($(marker_count "$T/b$n.sock" pt-resumed) >= 1))'
	packets_flow "$T/b$n.sock" "b$n"
	# Marker counts travel with the test device's state.
	[[ $(marker_count "$T/b$n.sock" pt-quiesced) == 1 ]] || fail "$n: quiesced count"
	[[ $(pt_get "$T/b$n.sock" pinned) -gt 0 ]] || fail "$n: no buffer posted on b$n"
	driver_ok "b$n"
	# The driver's workload is over: the guest exits 0 after it.
	vmm_wait "$dst"
	[[ $RC == 0 ]] || fail "$n: destination exited $RC"
	vmm_wait "$src"
	[[ $RC == 0 ]] || fail "$n: source exited $RC"
	out=$(hb_check_merged "$T/a$n.hb" "$T/b$n.hb") || fail "$n: heartbeats: $out"
	echo "ok: $mode with packets flowing: quiesce $(jq .quiesce_us "$T/mig$n.json") us," \
		"VMM downtime $(jq .downtime_us "$T/mig$n.json") us; $PT_LINE"
}

migrate_ok 1 precopy
# Hybrid, the default: this guest dirties little, so pre-copy converges.
migrate_ok 2 hybrid
# The quiesce in front of the switch to post-copy; the destination's
# driver re-registers while pages are still being fetched.
migrate_ok 3 postcopy

# refused N BUG ERE: the driver misbehaves; migrate fails naming why, the
# source runs on and its device delivers.
refused()
{
	local n=$1 bug=$2 ere=$3 port
	port=$(free_port)
	vmm_incoming "b$n" "tcp:127.0.0.1:$port" --mem 128M --device pt
	dst=$VMM_PID
	vmm_start "a$n" --mem 128M --device pt --append "pt-driver --bug $bug"
	src=$VMM_PID
	wait_until 20 "a$n: driver enabled" '[[ $(pt_get "$T/a$n.sock" enabled) == true ]]'
	packets_flow "$T/a$n.sock" "a$n"
	RC=0
	timeout 60 "$VMMCTL" migrate --api "$T/a$n.sock" --to "tcp:127.0.0.1:$port" \
		--quiesce-timeout 300ms >"$T/mig$n.json" 2>"$T/mig$n.err" || RC=$?
	[[ $RC == 1 ]] || fail "$n: migrate exit $RC: $(cat "$T/mig$n.err")"
	one_line "$T/mig$n.err" "^vmmctl migrate: failed: device pt0: .*$ere" "$n: vmmctl migrate"
	[[ $(status_get "$T/a$n.sock" .state) == running ]] || fail "$n: source VM not running"
	[[ $(status_get "$T/a$n.sock" .migration.state) == failed ]] || fail "$n: source status"
	packets_flow "$T/a$n.sock" "a$n after the refusal"
	ctl stop --api "$T/a$n.sock" >/dev/null
	vmm_wait "$src"
	vmm_wait_for "$dst" 15
	echo "ok: bug $bug refused: $(cat "$T/mig$n.err")"
}

refused 4 1 "did not acknowledge the quiesce request within 300 ms"
refused 5 2 "buffer [0-9]+ at gpa 0x[0-9a-f]+ \([0-9]+ bytes\) is still pinned"
