#!/usr/bin/env bash
# Post-copy recovery. The migration runs through a relay (tcpproxy.py) that
# slows the main connection down so that post-copy lasts; then:
#  1. the relay is killed mid post-copy: both sides pause (the source keeps
#     the VM paused and whole, the destination runs it, faults on missing
#     pages wait), `vmmctl migrate --resume --to` reconnects directly, the
#     migration completes and the guest verifies on the destination;
#  2. the relay flips one bit of the main stream: the destination detects
#     the corrupt frame, both sides pause, --resume completes it;
#  3. a cut, then an abort: refused without --confirm; confirmed on the
#     destination, it stops saying what was lost; confirmed on the source,
#     the VM stays paused there whole and `vmmctl resume` runs it on;
#  4. a cut, then --resume to a destination that lies (fakedest.py): its
#     list of pages lacking is one run of 2^32-1 pages, a run past guest
#     RAM, two overlapping runs - each one error line, and the source is
#     postcopy-paused again with the VM paused whole;
#  5. the same pair: `migrate --recover --listen` is refused unless paused
#     (and on the source); on the paused destination it moves the resume
#     to a new port (the old one closes), and --resume --to there completes.
. "$(dirname "$0")/lib.sh"
need_kvm
PROXY=$(dirname "$0")/tcpproxy.py

# MIG_TLS=1 (ctest it.t_migrate_recover_tls): the same break and --resume
# over mutual TLS; the reconnection proves it is the same source through
# the first session (docs/protocol.md). Only case 1 then.
DARGS=()
MARGS=()
if [[ ${MIG_TLS:-0} == 1 ]]; then
	"$VMM_SRC/scripts/mkcerts.sh" "$T/certs" >/dev/null 2>&1 || fail "mkcerts.sh failed"
	DARGS=(--tls-dir "$T/certs")
	MARGS=(--tls-dir "$T/certs")
fi

# proxy_start LISTEN TARGET ARGS...: sets PROXY_PID.
proxy_start()
{
	python3 "$PROXY" "$@" >"$T/proxy.out" 2>&1 &
	PROXY_PID=$!
	VMM_PIDS+=("$PROXY_PID")
	wait_until 10 "relay listening" 'grep -q ready "$T/proxy.out"'
}

# start_pair N: source aN (dirtying) and destination bN, migration started in
# post-copy through a slow relay; returns once post-copy is under way.
start_pair()
{
	local n=$1
	shift
	dport=$(free_port)
	pport=$(free_port)
	vmm_incoming "b$n" "tcp:127.0.0.1:$dport" --mem 256M --cpus 2 "${DARGS[@]}"
	dst=$VMM_PID
	vmm_start "a$n" --mem 256M --cpus 2 --append "dirty --mib 64 --rate 100"
	src=$VMM_PID
	wait_until 30 "dirty running" '(($(status_get "$T/a$n.sock" .heartbeats.count) >= 300))'
	proxy_start "$pport" "$dport" --rate $((8 << 20)) "$@"
	timeout 120 "$VMMCTL" migrate --api "$T/a$n.sock" --to "tcp:127.0.0.1:$pport" \
		--mode postcopy --verify "${MARGS[@]}" >"$T/mig$n.json" 2>"$T/mig$n.err" &
	mig=$!
	wait_until 30 "post-copy running on b$n" \
		'[[ $(status_get "$T/b$n.sock" .migration.state) =~ running|postcopy-paused ]]'
}

# both_paused N: the source keeps the VM paused, the destination runs it.
both_paused()
{
	local n=$1
	wait_until 30 "source a$n paused in post-copy" \
		'[[ $(status_get "$T/a$n.sock" .migration.state) == postcopy-paused ]]'
	wait_until 30 "destination b$n paused in post-copy" \
		'[[ $(status_get "$T/b$n.sock" .migration.state) == postcopy-paused ]]'
	[[ $(status_get "$T/a$n.sock" .state) == paused ]] || fail "a$n: the VM is not paused"
	kill -0 "$dst" || fail "b$n: the destination exited"
	vmm_wait "$mig"
	[[ $RC == 1 ]] || fail "migrate exit $RC on a pause: $(cat "$T/mig$n.err")"
	one_line "$T/mig$n.err" "paused" "vmmctl migrate on a pause"
}

# resume_direct N: resume straight to the destination; check the outcome.
resume_direct()
{
	local n=$1
	ctl migrate --api "$T/a$n.sock" --resume --to "tcp:127.0.0.1:$dport" \
		>"$T/res$n.json" || fail "resume failed: $(cat "$T/res$n.json")"
	(($(jq .postcopy_breaks "$T/res$n.json") >= 1)) || fail "no break counted"
	mig_check_completed "a$n" "b$n" "$src" "$dst" "$T/res$n.json"
	echo "ok: $n. resumed after $(jq .postcopy_breaks "$T/res$n.json") break(s):" \
		"$MIG_BEATS heartbeats, $(jq .postcopy_lacking_pages "$T/res$n.json") pages resent"
}

# 1. The relay dies mid post-copy.
start_pair 1
wait_until 30 "pages arriving" '(($(status_get "$T/a1.sock" .migration.postcopy_pushed_pages) > 1000))'
kill -KILL "$PROXY_PID"
both_paused 1
resume_direct 1
if [[ ${MIG_TLS:-0} == 1 ]]; then
	[[ $(jq -r .tls "$T/res1.json") == true ]] || fail "the resumed migration is not over TLS"
	exit 0
fi

# 2. One flipped bit in the main stream (well past the state sections).
start_pair 2 --corrupt-at $((3 << 20))
both_paused 2
[[ $(status_get "$T/b2.sock" .migration.errmsg) =~ crc\ mismatch ]] ||
	fail "b2 does not name the corrupt frame: $(status_get "$T/b2.sock" .migration.errmsg)"
kill -KILL "$PROXY_PID"
resume_direct 2

# 3. A cut, then abort on both sides.
start_pair 3
wait_until 30 "pages arriving" '(($(status_get "$T/a3.sock" .migration.postcopy_pushed_pages) > 1000))'
kill -KILL "$PROXY_PID"
both_paused 3
rc=0
ctl migrate --api "$T/b3.sock" --abort >"$T/ab.out" 2>"$T/ab.err" || rc=$?
((rc != 0)) || fail "abort without --confirm was accepted"
one_line "$T/ab.err" "confirm" "abort without --confirm"
ctl migrate --api "$T/b3.sock" --abort --confirm >"$T/ab.out" 2>"$T/ab.err" || true
vmm_wait_for "$dst" 15
((RC != 0)) || fail "b3 exited 0 after an abort"
grep -q "pages .* had not arrived" "$T/b3.err" || fail "b3 does not say what was lost: $(cat "$T/b3.err")"
ctl migrate --api "$T/a3.sock" --abort --confirm >"$T/ab3.json" 2>"$T/ab3.err" || true
wait_until 10 "a3 gave up" '[[ $(status_get "$T/a3.sock" .migration.state) == failed ]]'
[[ $(status_get "$T/a3.sock" .migration.errmsg) =~ lacked.*lost ]] ||
	fail "a3 does not say what was lost: $(status_get "$T/a3.sock" .migration.errmsg)"
[[ $(status_get "$T/a3.sock" .state) == paused ]] || fail "a3 is not paused after the abort"
ctl resume --api "$T/a3.sock" >/dev/null
guest_verify "$T/a3.sock" "3. the source after an abort"
echo "ok: 3. abort refused without --confirm, then confirmed on both sides; the source runs on"

# 4. --resume to a destination that lies about the pages it lacks.
FAKE=$(dirname "$0")/fakedest.py
start_pair 4
rc=0
ctl migrate --api "$T/b4.sock" --recover --listen "tcp:127.0.0.1:$(free_port)" \
	>"$T/rc4.out" 2>"$T/rc4.err" || rc=$?
((rc != 0)) || fail "b4: --recover --listen accepted while post-copy runs"
one_line "$T/rc4.err" "only while post-copy is paused" "--recover --listen while running"
wait_until 30 "pages arriving" '(($(status_get "$T/a4.sock" .migration.postcopy_pushed_pages) > 1000))'
kill -KILL "$PROXY_PID"
both_paused 4
for lie in huge outside overlap; do
	fport=$(free_port)
	python3 "$FAKE" "$fport" --script "lacking-$lie" >"$T/fake.out" 2>&1 &
	VMM_PIDS+=("$!")
	wait_until 10 "fake destination listening" 'grep -q ready "$T/fake.out"'
	rc=0
	ctl migrate --api "$T/a4.sock" --resume --to "tcp:127.0.0.1:$fport" \
		>"$T/lie.json" 2>"$T/lie.err" || rc=$?
	((rc != 0)) || fail "4. $lie: the resume to a lying destination succeeded"
	# The fake says so after its send returned, which may be after the
	# source has already refused what it read: wait for the line.
	wait_until 10 "4. $lie: the fake's DISCARD" 'grep -q "sent DISCARD" "$T/fake.out"'
	wait_until 10 "a4 paused again" \
		'[[ $(status_get "$T/a4.sock" .migration.state) == postcopy-paused ]]'
	msg=$(status_get "$T/a4.sock" .migration.errmsg)
	[[ $msg =~ DISCARD\ run.*outside\ guest\ RAM\ or\ out\ of\ order ]] ||
		fail "4. $lie: a4 does not name the bad run: $msg"
	[[ $msg != *$'\n'* ]] || fail "4. $lie: more than one line: $msg"
	[[ $(status_get "$T/a4.sock" .state) == paused ]] || fail "4. $lie: a4 is not paused"
	echo "ok: 4. $lie: $msg"
done

# 5. The destination listens for the resume on a new port.
rc=0
ctl migrate --api "$T/a4.sock" --recover --listen "tcp:127.0.0.1:$(free_port)" \
	>"$T/rc5.out" 2>"$T/rc5.err" || rc=$?
((rc != 0)) || fail "a4: --recover --listen accepted on the source"
one_line "$T/rc5.err" "no incoming migration here" "--recover --listen on the source"
nport=$(free_port)
ctl migrate --api "$T/b4.sock" --recover --listen "tcp:127.0.0.1:$nport" >"$T/rc5.json" ||
	fail "b4: --recover --listen refused: $(cat "$T/rc5.json")"
[[ $(jq -r .listen "$T/rc5.json") == "tcp:127.0.0.1:$nport" ]] || fail "b4: $(cat "$T/rc5.json")"
wait_until 10 "b4's old port closed" '! (exec 3<>"/dev/tcp/127.0.0.1/$dport") 2>/dev/null'
dport=$nport
resume_direct 4
echo "ok: 5. recovered on a new port"
