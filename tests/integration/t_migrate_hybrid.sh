#!/usr/bin/env bash
# Hybrid live migration (the default mode) of a guest that dirties memory
# faster than pre-copy can converge on: pre-copy rounds, then the switch to
# post-copy (discard set, state, the destination runs at once), pages
# pushed and fetched on demand. The migration completes, --verify's sums
# match, heartbeats continue with no sequence number missing or repeated,
# and the guest's own verify passes on the destination. Both vCPUs run the
# dirtying workload, so they fault on missing pages at the same time. The
# pages the guest writes all the time (its heartbeat page, its stacks, the
# workload's generation counters) go in the downtime, not on first touch
# (switch_hot_pages: at least one, at most 256, and --verify covers them).
. "$(dirname "$0")/lib.sh"
need_kvm

# hybrid_once N REASON GUEST-CMDLINE MIGRATE-FLAGS...
hybrid_once()
{
	local n=$1 want=$2 reason
	port=$(free_port)
	vmm_incoming "b$n" "tcp:127.0.0.1:$port" --mem 256M --cpus 2
	dst=$VMM_PID
	vmm_start "a$n" --mem 256M --cpus 2 --append "$3"
	src=$VMM_PID
	wait_until 30 "dirty running" '(($(status_get "$T/a$n.sock" .heartbeats.count) >= 300))'
	ctl migrate --api "$T/a$n.sock" --to "tcp:127.0.0.1:$port" --verify "${@:4}" \
		>"$T/mig$n.json" || fail "migrate failed: $(cat "$T/mig$n.json")"
	[[ $(jq -r .postcopy "$T/mig$n.json") == true ]] ||
		fail "pre-copy was not given up: $(cat "$T/mig$n.json")"
	reason=$(jq -r .switch_reason "$T/mig$n.json")
	[[ $reason =~ $want ]] || fail "switch reason $reason, expected $want"
	((($(jq .memory_iteration "$T/mig$n.json")) >= 1)) || fail "no pre-copy round"
	mig_check_completed "a$n" "b$n" "$src" "$dst" "$T/mig$n.json"
	hot=$(jq .switch_hot_pages "$T/mig$n.json")
	((hot <= 256 && hot <= $(jq .switch_dirty_pages "$T/mig$n.json"))) ||
		fail "switch_hot_pages $hot: over 256 or over the dirty pages"
	echo "ok: switched after $(jq .memory_iteration "$T/mig$n.json") rounds ($reason)," \
		"$(jq .switch_dirty_pages "$T/mig$n.json") pages discarded," \
		"$hot sent in the downtime, $MIG_BEATS heartbeats, gap $((MIG_GAP_NS / 1000)) us," \
		"VMM downtime $(jq .downtime_us "$T/mig$n.json") us," \
		"$(jq .memory_postcopy_requests "$T/mig$n.json") pages requested," \
		"$(jq .wire_bytes "$T/mig$n.json") bytes"
}

# The guest dirties 64 MiB as fast as it can, and the limit (1 ms) is no
# more than the fixed cost of a stop-copy: no round can fit it, whatever the
# ratio of this host's dirty rate to its bandwidth (it used to rely on the
# guest out-dirtying loopback, which a host with cheaper write faults does
# not).
hybrid_once 1 'dirty-rate-above-bandwidth|converges-too-slowly|rounds-not-shrinking' "dirty --mib 64 --rate 2000" \
	--downtime-limit 1
((hot >= 1)) || fail "no write-hot page went in the downtime: $(cat "$T/mig1.json")"
# A slower guest, but the pre-copy time budget is spent after round 0 (and
# the 1 ms limit keeps round 0's remainder from converging first, which it
# did on a host whose round 0 of 64 MiB took 60 ms: convergence outranks a
# spent budget).
hybrid_once 2 'precopy-budget-time' "dirty --mib 64 --rate 200" --precopy-budget 1ms \
	--downtime-limit 1
