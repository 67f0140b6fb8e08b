#!/usr/bin/env bash
# Post-copy live migration over loopback while the guest dirties memory:
# the source switches at once, the destination runs the guest while pages
# are pushed and fetched on demand; heartbeats continue with no sequence
# number missing or repeated, verify passes there, and the destination's
# faults were served (memory_postcopy_requests > 0).
. "$(dirname "$0")/lib.sh"
need_kvm

# migrate_once N SOURCE-FLAGS...: one post-copy migration of a dirtying guest.
migrate_once()
{
	local n=$1
	port=$(free_port)
	vmm_incoming "b$n" "tcp:127.0.0.1:$port" --mem 128M --cpus 2
	dst=$VMM_PID
	vmm_start "a$n" --mem 128M --cpus 2 "${@:2}" --append "dirty --mib 16 --rate 50"
	src=$VMM_PID
	wait_until 30 "dirty running" '(($(status_get "$T/a$n.sock" .heartbeats.count) >= 300))'
	ctl migrate --api "$T/a$n.sock" --to "tcp:127.0.0.1:$port" --mode postcopy >"$T/mig$n.json" ||
		fail "migrate failed: $(cat "$T/mig$n.json")"
	[[ $(jq -r .state "$T/mig$n.json") == completed ]] || fail "state: $(cat "$T/mig$n.json")"
	reqs=$(jq .memory_postcopy_requests "$T/mig$n.json")
	((reqs > 0)) || fail "no post-copy page requests: $(cat "$T/mig$n.json")"
	vmm_wait "$src"
	[[ $RC == 0 ]] || fail "source exited $RC after a completed migration"
	[[ ! -e $T/a$n.sock ]] || fail "source left its control socket"
	# The destination runs the guest on.
	c0=$(status_get "$T/b$n.sock" .heartbeats.count)
	wait_until 30 "heartbeats on the destination" '(($(status_get "$T/b$n.sock" .heartbeats.count) >= c0 + 200))'
	[[ $(status_get "$T/b$n.sock" .migration.state) == running ]] || fail "destination state"
	ctl guest-request verify --api "$T/b$n.sock" >/dev/null
	wait_until 30 "verify-ok" '(($(marker_count "$T/b$n.sock" verify-ok) >= 1))'
	[[ $(marker_count "$T/b$n.sock" verify-fail) == 0 ]] || fail "verify failed on the destination"
	[[ $(status_get "$T/b$n.sock" .heartbeats.seq_errors) == 0 ]] || fail "sequence errors on the destination"
	ctl stop --api "$T/b$n.sock" >/dev/null
	vmm_wait "$dst"
	[[ $RC == 0 ]] || fail "destination exited $RC"
	out=$(hb_check_merged "$T/a$n.hb" "$T/b$n.hb") || fail "heartbeats: $out"
	read -r beats gap <<<"$out"
	echo "ok: $beats heartbeats across the migration, gap $((gap / 1000)) us," \
		"VMM downtime $(jq .downtime_us "$T/mig$n.json") us," \
		"$reqs pages requested, $(jq .wire_bytes "$T/mig$n.json") bytes"
}

migrate_once 1
# A lazily populated source (holes answered as zero pages, untouched).
migrate_once 2 --mem-mode lazy
