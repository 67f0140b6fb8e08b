#!/usr/bin/env bash
# Pre-copy live migration over loopback while the guest dirties memory: the
# destination runs it on, heartbeats continue with no sequence number
# missing or repeated, verify passes there, and --verify hashes match.
. "$(dirname "$0")/lib.sh"
need_kvm

# migrate_once N SOURCE-FLAGS...: one migration of a dirtying guest.
migrate_once()
{
	local n=$1
	port=$(free_port)
	vmm_incoming "b$n" "tcp:127.0.0.1:$port" --mem 128M --cpus 2
	dst=$VMM_PID
	vmm_start "a$n" --mem 128M --cpus 2 "${@:2}" --append "dirty --mib 16 --rate 50"
	src=$VMM_PID
	wait_until 30 "dirty running" '(($(status_get "$T/a$n.sock" .heartbeats.count) >= 300))'
	ctl migrate --api "$T/a$n.sock" --to "tcp:127.0.0.1:$port" --mode precopy --verify >"$T/mig$n.json" ||
		fail "migrate failed: $(cat "$T/mig$n.json")"
	mig_check_completed "a$n" "b$n" "$src" "$dst" "$T/mig$n.json"
	echo "ok: $MIG_BEATS heartbeats across the migration, gap $((MIG_GAP_NS / 1000)) us," \
		"VMM downtime $(jq .downtime_us "$T/mig$n.json") us," \
		"$(jq .memory_iteration "$T/mig$n.json") rounds, $(jq .wire_bytes "$T/mig$n.json") bytes"
}

migrate_once 1
# The dirty ring (small enough to fill) and a lazily populated source.
migrate_once 2 --dirty-ring 512 --mem-mode lazy
