#!/usr/bin/env bash
# Pre-copy live migration over loopback while the guest dirties memory: the
# destination runs it on, heartbeats continue with no sequence number
# missing or repeated, verify passes there, and --verify hashes match
# (XXH3-128 agreed). With and without --verify the destination splices page
# data from the socket into guest RAM (channel_splice.c; --verify hashes
# each frame's pages once they are in): its spliced_bytes cover the working
# set (with the bytes that came with each frame's head: head_bytes), and
# the guest's own check of its memory on the destination passes. It
# converges, and the last round's dirty set goes once more while the guest
# runs, right before the pause (last_pass_pages).
# A destination booted with --mem-prealloc reads the data from the socket
# straight into guest RAM's mapping instead (dest_sink.c): its direct_bytes
# cover the working set and nothing is spliced. The connection's TCP
# congestion control is the host's default, or what --tcp-congestion asks
# for on both sides (reno, which every kernel has): both VMMs' statistics
# read it back from the socket.
. "$(dirname "$0")/lib.sh"
need_kvm

# migrate_once N VERIFY SOURCE-FLAGS...: one migration of a dirtying guest,
# with `migrate --verify` when VERIFY is --verify ("" without); DARGS: more
# flags for the destination; CC: --tcp-congestion CC on both sides.
migrate_once()
{
	local n=$1 verify=$2 spliced direct head cc want
	port=$(free_port)
	# shellcheck disable=SC2086 # DARGS: words
	vmm_incoming "b$n" "tcp:127.0.0.1:$port" --mem 128M --cpus 2 ${DARGS:-} \
		${CC:+--tcp-congestion "$CC"}
	dst=$VMM_PID
	vmm_start "a$n" --mem 128M --cpus 2 "${@:3}" --append "dirty --mib 16 --rate 50"
	src=$VMM_PID
	# The whole working set written once (else its last pages are still
	# zero, sent as such and not spliced, when the migration begins).
	wait_until 30 "dirty's first pass" 'grep -q "^dirty: first pass done" "$T/a$n.serial"'
	# shellcheck disable=SC2086 # verify: a word or none
	ctl migrate --api "$T/a$n.sock" --to "tcp:127.0.0.1:$port" --mode precopy $verify \
		${CC:+--tcp-congestion "$CC"} >"$T/mig$n.json" ||
		fail "migrate failed: $(cat "$T/mig$n.json")"
	cc=$(jq -r .tcp_congestion "$T/mig$n.json")
	want=${CC:-$(cat /proc/sys/net/ipv4/tcp_congestion_control)}
	[[ $cc == "$want" ]] || fail "TCP congestion control $cc, expected $want"
	cc=$(status_get "$T/b$n.sock" .migration.tcp_congestion)
	[[ $cc == "$want" ]] || fail "destination's TCP congestion control $cc, expected $want"
	spliced=$(status_get "$T/b$n.sock" .migration.spliced_bytes)
	if [[ -n $verify ]]; then
		[[ $(jq -r .verify_hash "$T/mig$n.json") == xxh3-128 ]] ||
			fail "verify hash $(jq -r .verify_hash "$T/mig$n.json"), expected xxh3-128"
	fi
	direct=$(status_get "$T/b$n.sock" .migration.direct_bytes)
	# A frame's first bytes may come with its head, written from the
	# buffer (head_bytes); the socket carries the rest of it.
	head=$(status_get "$T/b$n.sock" .migration.head_bytes)
	if [[ ${DARGS:-} == *--mem-prealloc* ]]; then
		((direct + head >= 16 << 20 && head < direct && spliced == 0)) ||
			fail "read only $direct bytes into RAM of the 16 MiB working set ($head with frame heads, $spliced spliced)"
	else
		((spliced + head >= 16 << 20 && head < spliced && direct == 0)) ||
			fail "spliced only $spliced bytes of the 16 MiB working set ($head with frame heads, $direct read into RAM)"
	fi

	mig_check_completed "a$n" "b$n" "$src" "$dst" "$T/mig$n.json"
	# 50 MiB/s converges: the last round's dirty set went once more while
	# the guest ran, before the pause (src_last_pass).
	[[ $(jq .converged "$T/mig$n.json") == true ]] ||
		fail "pre-copy at 50 MiB/s did not converge: $(jq -r .switch_reason "$T/mig$n.json")"
	(($(jq .last_pass_pages "$T/mig$n.json") > 0)) ||
		fail "no last live pass before the pause: last_pass_pages $(jq .last_pass_pages "$T/mig$n.json")"
	echo "ok: $MIG_BEATS heartbeats across the migration, gap $((MIG_GAP_NS / 1000)) us," \
		"VMM downtime $(jq .downtime_us "$T/mig$n.json") us," \
		"$(jq .memory_iteration "$T/mig$n.json") rounds, $(jq .wire_bytes "$T/mig$n.json") bytes," \
		"$spliced spliced, $direct read into RAM, $head with frame heads, $cc," \
		"last pass $(jq .last_pass_pages "$T/mig$n.json") pages, stop-copy $(jq .stop_copy_pages "$T/mig$n.json")"
}

migrate_once 1 --verify
# The dirty ring (small enough to fill) and a lazily populated source.
migrate_once 2 --verify --dirty-ring 512 --mem-mode lazy
CC=reno migrate_once 3 ""
# Into populated RAM: the socket read straight into the mapping.
DARGS=--mem-prealloc migrate_once 4 --verify
