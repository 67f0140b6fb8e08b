#!/usr/bin/env bash
# Bandwidth caps through vmmctl: a pre-copy of a 64 MiB working set under
# --max-bandwidth 50M moves at the cap (pre-copy wire bytes over pre-copy
# time within 10%); a cap raised live with `vmmctl migrate-set` takes
# effect (the rate ends well above the first cap, which the statistics
# show replaced); migrate-set with no migration under way is refused.
. "$(dirname "$0")/lib.sh"
need_kvm

# migrate_capped N CAP [LIVE-CAP]: migrate A$N to B$N under --max-bandwidth
# CAP (MiB/s), with migrate-set to LIVE-CAP 0.5 s in; prints the pre-copy
# rate in MiB/s (two decimals).
migrate_capped()
{
	local n=$1 cap=$2 live=${3:-} port src dst mig
	port=$(free_port)
	vmm_incoming "b$n" "tcp:127.0.0.1:$port" --mem 128M
	dst=$VMM_PID
	vmm_start "a$n" --mem 128M --append "dirty --mib 64 --rate 0"
	src=$VMM_PID
	wait_until 30 "the first pass" 'grep -q "^dirty: first pass done" "$T/a$n.serial"'
	ctl migrate --api "$T/a$n.sock" --to "tcp:127.0.0.1:$port" --mode precopy \
		--max-bandwidth "${cap}M" >"$T/mig$n.json" 2>"$T/mig$n.err" &
	mig=$!
	if [[ -n $live ]]; then
		sleep 0.5
		ctl migrate-set --api "$T/a$n.sock" --max-bandwidth "${live}MiB/s" >"$T/set$n.json" ||
			fail "migrate-set: $(cat "$T/set$n.json")"
		[[ $(jq .max_bandwidth "$T/set$n.json") == $((live << 20)) ]] ||
			fail "migrate-set answered $(cat "$T/set$n.json")"
	fi
	wait "$mig" || fail "migrate failed: $(cat "$T/mig$n.err" "$T/mig$n.json")"
	mig_check_completed "a$n" "b$n" "$src" "$dst" "$T/mig$n.json"
	[[ $(jq .max_bandwidth "$T/mig$n.json") == $(((${live:-$cap}) << 20)) ]] ||
		fail "cap in force: $(jq .max_bandwidth "$T/mig$n.json")"
	jq -r '"\(.precopy_bytes * 1000 / .precopy_ms / 1048576 * 100 | floor / 100)"' "$T/mig$n.json"
}

rate=$(migrate_capped 1 50)
echo "ok: --max-bandwidth 50M: pre-copy at $rate MiB/s" \
	"($(jq .precopy_bytes "$T/mig1.json") bytes in $(jq .precopy_ms "$T/mig1.json") ms)"
awk -v r="$rate" 'BEGIN { exit !(r > 45 && r < 55) }' || fail "rate $rate MiB/s, cap 50"

rate=$(migrate_capped 2 25 100)
echo "ok: 25M, then migrate-set 100MiB/s after 0.5 s: pre-copy at $rate MiB/s"
awk -v r="$rate" 'BEGIN { exit !(r > 40) }' || fail "rate $rate MiB/s after the cap went to 100"

vmm_start idle --mem 64M --append heartbeat
out=$(ctl migrate-set --api "$T/idle.sock" --max-bandwidth 10M 2>&1) &&
	fail "migrate-set without a migration succeeded: $out"
grep -q "no outgoing migration in progress" <<<"$out" || fail "migrate-set said: $out"
echo "ok: migrate-set without a migration: refused"
