#!/usr/bin/env bash
# Post-copy live migration over loopback while the guest dirties memory:
# the source switches at once, the destination runs the guest while pages
# are pushed and fetched on demand; heartbeats continue with no sequence
# number missing or repeated, verify passes there, and the destination's
# faults were served (memory_postcopy_requests > 0). Each push order is
# used once: accessed (the default) pushes pages the page-table walk
# marked and fault neighbours, faults only neighbours, linear neither.
# Last, both vCPUs touch the region (CPU 1 reads what CPU 0 writes:
# `dirty --readers 1`), and the destination saw two vCPUs waiting at once.
. "$(dirname "$0")/lib.sh"
need_kvm

# push_check N ORDER: the push went in that order (mig$n.json).
push_check()
{
	local j=$T/mig$1.json near hot
	near=$(jq .push_near_pages "$j")
	hot=$(jq .push_hot_pages "$j")
	case $2 in
	accessed) ((hot > 0 && $(jq .push_walk_errno "$j") == 0)) ||
		fail "push order accessed: no page pushed as accessed: $(cat "$j")" ;;
	faults) ((hot == 0)) || fail "push order faults: $hot pages pushed as accessed" ;;
	linear) ((hot == 0 && near == 0)) ||
		fail "push order linear: $near neighbours, $hot accessed pushed first" ;;
	esac
	# Neighbours follow faults; a guest that faulted has some in the push.
	[[ $2 == linear ]] || (($(jq .memory_postcopy_requests "$j") == 0 || near > 0)) ||
		fail "push order $2: faults, but no neighbour pushed first: $(cat "$j")"
}

# migrate_once N ORDER SOURCE-FLAGS...: one post-copy migration of a
# dirtying guest, the push in ORDER.
migrate_once()
{
	local n=$1 order=$2
	shift
	port=$(free_port)
	vmm_incoming "b$n" "tcp:127.0.0.1:$port" --mem 128M --cpus 2
	dst=$VMM_PID
	vmm_start "a$n" --mem 128M --cpus 2 "${@:2}" --append "$WORKLOAD"
	src=$VMM_PID
	wait_until 30 "dirty running" '(($(status_get "$T/a$n.sock" .heartbeats.count) >= 300))'
	ctl migrate --api "$T/a$n.sock" --to "tcp:127.0.0.1:$port" --mode postcopy \
		--push-order "$order" >"$T/mig$n.json" ||
		fail "migrate failed: $(cat "$T/mig$n.json")"
	reqs=$(jq .memory_postcopy_requests "$T/mig$n.json")
	((reqs > 0)) || fail "no post-copy page requests: $(cat "$T/mig$n.json")"
	waiters=$(status_get "$T/b$n.sock" .migration.fault_max_vcpus_waiting)
	mig_check_completed "a$n" "b$n" "$src" "$dst" "$T/mig$n.json"
	push_check "$n" "$order"
	echo "ok: $MIG_BEATS heartbeats across the migration, gap $((MIG_GAP_NS / 1000)) us," \
		"VMM downtime $(jq .downtime_us "$T/mig$n.json") us," \
		"$reqs pages requested, $(jq .wire_bytes "$T/mig$n.json") bytes," \
		"push $order: $(jq .push_near_pages "$T/mig$n.json") neighbours," \
		"$(jq .push_hot_pages "$T/mig$n.json") accessed first," \
		"at most $waiters vCPUs waiting at once"
}

WORKLOAD="dirty --mib 16 --rate 50"

migrate_once 1 accessed
# A lazily populated source (holes answered as zero pages, untouched).
migrate_once 2 faults --mem-mode lazy
migrate_once 3 linear
# Two vCPUs faulting at once: retried, since it needs their faults to
# overlap in time (they do within the first milliseconds on every run so
# far; a miss is reported, not hidden).
WORKLOAD="dirty --mib 16 --rate 50 --readers 1"
for try in 4 5 6; do
	migrate_once "$try" accessed
	((waiters >= 2)) && break
	echo "note: run $try saw at most $waiters vCPU waiting at once"
done
((waiters >= 2)) || fail "two vCPUs never waited for pages at the same time"

# The pages after a requested one go with its answer (postcopy_ahead_pages)
# when the destination still lacks them. The switch lands in the guest's
# first pass over its region, which writes never-touched pages (holes,
# answered as zero pages, never pushed) in address order: each request
# brings the next three, placed before the requested page wakes the vCPU,
# so the guest writes them without a fault of its own, and most pages it
# writes there arrive unrequested.
port=$(free_port)
vmm_incoming b7 "tcp:127.0.0.1:$port" --mem 256M --cpus 1
dst=$VMM_PID
vmm_start a7 --mem 256M --cpus 1 --append "dirty --mib 128 --rate 0"
src=$VMM_PID
wait_until 30 "the first pass under way" '(($(status_get "$T/a7.sock" .heartbeats.count) >= 100))'
! grep -q "first pass done" "$T/a7.serial" || fail "the first pass was over before the switch"
ctl migrate --api "$T/a7.sock" --to "tcp:127.0.0.1:$port" --mode postcopy >"$T/mig7.json" ||
	fail "migrate failed: $(cat "$T/mig7.json")"
reqs=$(jq .memory_postcopy_requests "$T/mig7.json")
ahead=$(jq .postcopy_ahead_pages "$T/mig7.json")
wait_until 60 "the first pass on the destination" 'grep -q "first pass done" "$T/b7.serial"'
mig_check_completed a7 b7 "$src" "$dst" "$T/mig7.json"
((reqs >= 20 && ahead >= 2 * reqs)) ||
	fail "a sequential pass over holes: $reqs requests, $ahead pages ahead (want >= 2 per request)"
echo "ok: the first pass went on over there: $reqs requests brought $ahead pages ahead"
