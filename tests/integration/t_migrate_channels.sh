#!/usr/bin/env bash
# Parallel channels (migrate --channels N): a dirtying guest migrates over
# 2 and 4 connections, plaintext and mutual TLS, pre-copy and hybrid (so
# that the extra channels end before the switch to post-copy): it
# completes, heartbeats continuous, --verify ok, and the statistics count
# bytes on every channel; over plaintext (with --verify, case 1, which
# hashes each frame's pages once they are in, and without, case 2) the
# destination's channels splice the page data into guest RAM
# (spliced_bytes), over TLS they cannot, and into a destination booted
# with --mem-prealloc (case 6) they read it into guest RAM's mapping
# (direct_bytes). Then an extra channel is cut mid-round 0 (the
# destination's VMM_TEST_CHAN_CUT knob): the migration fails with one line
# naming the channel and the source VM keeps running.
. "$(dirname "$0")/lib.sh"
need_kvm

mk() { "$VMM_SRC/scripts/mkcerts.sh" "$@" >/dev/null 2>&1 || fail "mkcerts.sh $*"; }
mk "$T/dst" --client dst
mk "$T/src" --ca "$T/dst" --client src

GUEST=(--mem 128M --cpus 2)

# pair N DEST-ARGS...: destination bN listening on $port ($dst), source aN
# ($src) running the dirty workload.
pair()
{
	local p=$1
	port=$(free_port)
	vmm_incoming "b$p" "tcp:127.0.0.1:$port" "${GUEST[@]}" "${@:2}"
	dst=$VMM_PID
	vmm_start "a$p" "${GUEST[@]}" --append "dirty --mib 32 --rate 50"
	src=$VMM_PID
	# The whole working set written once: the byte counts below need it.
	wait_until 30 "dirty's first pass" 'grep -q "^dirty: first pass done" "$T/a$p.serial"'
}

# migrate_once N CHANNELS MODE TRANSPORT [noverify]: one migration of a
# dirtying guest, with --verify unless noverify.
migrate_once()
{
	local n=$1 nch=$2 mode=$3 dargs=() margs=(--verify) spliced direct head
	if [[ $4 == tls ]]; then
		dargs=(--tls-dir "$T/dst" --tls-authz src)
		margs+=(--tls-dir "$T/src")
	fi
	[[ $4 != prealloc ]] || dargs=(--mem-prealloc)
	[[ ${5:-} != noverify ]] || margs=()
	pair "$n" "${dargs[@]}"
	ctl migrate --api "$T/a$n.sock" --to "tcp:localhost:$port" --mode "$mode" \
		--channels "$nch" ${margs[@]+"${margs[@]}"} >"$T/mig$n.json" ||
		fail "$n: migrate failed: $(cat "$T/mig$n.json")"
	spliced=$(status_get "$T/b$n.sock" .migration.spliced_bytes)
	direct=$(status_get "$T/b$n.sock" .migration.direct_bytes)
	head=$(status_get "$T/b$n.sock" .migration.head_bytes)
	if [[ $4 == plain ]]; then
		((spliced + head >= 24 << 20 && head < spliced)) ||
			fail "$n: spliced only $spliced bytes of the 32 MiB working set ($head with frame heads)"
	elif [[ $4 == prealloc ]]; then
		((direct + head >= 24 << 20 && head < direct && spliced == 0)) ||
			fail "$n: read $direct bytes into RAM of the 32 MiB working set ($head with frame heads, $spliced spliced)"
	else
		((spliced == 0 && direct == 0 && head == 0)) ||
			fail "$n: spliced $spliced, read $direct, $head with heads over TLS"
	fi
	mig_check_completed "a$n" "b$n" "$src" "$dst" "$T/mig$n.json"
	[[ $(jq '.channel_bytes | length' "$T/mig$n.json") == "$nch" ]] ||
		fail "$n: channel_bytes: $(jq -c .channel_bytes "$T/mig$n.json")"
	# Every extra channel carried part of round 0 (its 2 MiB chunks).
	(($(jq '[.channel_bytes[] | select(. > 1048576)] | length' "$T/mig$n.json") == nch)) ||
		fail "$n: a channel carried almost nothing: $(jq -c .channel_bytes "$T/mig$n.json")"
	echo "ok $n: $nch channels, $mode, $4: $MIG_BEATS heartbeats, gap $((MIG_GAP_NS / 1000)) us," \
		"bytes per channel $(jq -c .channel_bytes "$T/mig$n.json")," \
		"$(jq .memory_iteration "$T/mig$n.json") rounds, $spliced spliced, $direct read into RAM"
}

migrate_once 1 2 precopy plain
migrate_once 2 4 hybrid plain noverify
migrate_once 3 2 hybrid tls
migrate_once 4 4 precopy tls
# Into populated RAM (--mem-prealloc): every channel reads into the mapping.
migrate_once 6 2 precopy prealloc

# An extra channel is lost in round 0: the source fails cleanly and runs on.
VMM_TEST_CHAN_CUT=1 pair 5
rc=0
timeout 60 "$VMMCTL" migrate --api "$T/a5.sock" --to "tcp:127.0.0.1:$port" --mode precopy \
	--channels 2 >"$T/mig5.json" 2>"$T/mig5.err" || rc=$?
((rc != 0)) || fail "5: the migration survived a lost channel: $(cat "$T/mig5.json")"
one_line "$T/mig5.err" "channel 1" "5: vmmctl migrate"
[[ $(status_get "$T/a5.sock" .state) == running ]] || fail "5: the source VM is not running"
c0=$(status_get "$T/a5.sock" .heartbeats.count)
wait_until 10 "5: heartbeats on the source" '(($(status_get "$T/a5.sock" .heartbeats.count) >= c0 + 50))'
out=$(hb_check_so_far "$T/a5.hb") || fail "5: source heartbeats: $out"
guest_verify "$T/a5.sock" "5: the source"
echo "ok 5: a lost extra channel fails the migration ($(cat "$T/mig5.err")); the source runs on"
