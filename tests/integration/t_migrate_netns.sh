#!/usr/bin/env bash
# Live migration between two "hosts": network namespaces joined by a veth
# pair, the source VMM in one, the destination in the other, the migration
# over the pair's test-owned addresses (10.77.N.1 -> 10.77.N.2). The guest
# dirties memory throughout; the destination runs it on, heartbeats continue
# with no sequence number missing or repeated, verify passes there, the
# --verify hashes match, and the bytes went over the veth link.
# Then the link goes dead in the middle of another migration (a host that
# vanishes: no FIN, no RST, just silence): the source gives up, its guest
# runs on whole, and the destination discards the half-received VM and
# exits rather than wait forever.
# The namespaces are made and deleted (even on failure) by this test.
. "$(dirname "$0")/lib.sh"
need_kvm

NS1=vmmsrc$$
NS2=vmmdst$$
NET=10.77.$(($$ % 250)) # inside the namespaces only: never routed anywhere
netns_pair "$NS1" "$NS2" "$NET"

# tx_bytes NS DEV: bytes sent on that interface.
tx_bytes() { ip -n "$1" -j -s link show dev "$2" | jq '.[0].stats64.tx.bytes'; }

port=$(free_port_ns "$NS2")
vmm_incoming_ns "$NS2" b "tcp:$NET.2:$port" --mem 128M --cpus 2 --insecure
dst=$VMM_PID
vmm_start_ns "$NS1" a --mem 128M --cpus 2 --append "dirty --mib 16 --rate 50"
src=$VMM_PID
wait_until 30 "dirty running" '(($(status_get "$T/a.sock" .heartbeats.count) >= 300))'
wait_until 10 "destination listening" '[[ $(status_get "$T/b.sock" .migration.state) == listening ]]'
# The destination listens in NS2 only: nothing answers on that port in NS1.
ip netns exec "$NS1" bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$port" 2>/dev/null &&
	fail "port $port answers in $NS1: the destination is not isolated in $NS2"
tx0=$(tx_bytes "$NS1" vmm-src)

rc=0
timeout 60 "$VMMCTL" migrate --api "$T/a.sock" --to "tcp:$NET.2:$port" --verify --insecure \
	>"$T/mig.json" 2>"$T/mig.err" || rc=$?
[[ $rc == 0 ]] || fail "migrate exit $rc: $(cat "$T/mig.err")"
[[ $(jq -r .state "$T/mig.json") == completed ]] || fail "state: $(cat "$T/mig.json")"
vmm_wait_for "$src" 15
[[ $RC == 0 ]] || fail "source exited $RC after a completed migration"
[[ ! -e $T/a.sock ]] || fail "source left its control socket"

# The migration's statistics make sense, and its bytes crossed the link.
jq -e '.memory_iteration >= 1 and .memory_normal > 0 and .wire_bytes > 0
	and .memory_remaining == 0 and .downtime_us > 0
	and .memory_processed >= .memory_normal_bytes' "$T/mig.json" >/dev/null ||
	fail "implausible statistics: $(cat "$T/mig.json")"
wire=$(jq .wire_bytes "$T/mig.json")
tx=$(($(tx_bytes "$NS1" vmm-src) - tx0))
((tx >= wire)) || fail "only $tx bytes left $NS1 over vmm-src, the source wrote $wire"

# The destination runs the guest on.
dest_runs_on b "$dst" "$NET.2"
out=$(hb_check_merged "$T/a.hb" "$T/b.hb") || fail "heartbeats: $out"
read -r n gap <<<"$out"
echo "ok: $NET.1 -> $NET.2: $n heartbeats across the migration, gap $((gap / 1000)) us," \
	"VMM downtime $(jq .downtime_us "$T/mig.json") us," \
	"$(jq .memory_iteration "$T/mig.json") rounds, $wire bytes ($tx on the link)"

# 2. The link dies mid-round. tbf on the source's end keeps the migration
# from converging (the guest dirties 32 MiB faster than 50 MB/s), so that
# it is surely pre-copying when the link goes down.
tc -n "$NS1" qdisc replace dev vmm-src root tbf rate 400mbit burst 256kb latency 200ms ||
	fail "tc: cannot throttle vmm-src"
port=$(free_port_ns "$NS2")
vmm_incoming_ns "$NS2" d "tcp:$NET.2:$port" --mem 128M --cpus 2 --insecure
dst=$VMM_PID
vmm_start_ns "$NS1" c --mem 128M --cpus 2 --append "dirty --mib 32 --rate 400"
src=$VMM_PID
wait_until 30 "dirty running" '(($(status_get "$T/c.sock" .heartbeats.count) >= 300))'
wait_until 10 "destination listening" '[[ $(status_get "$T/d.sock" .migration.state) == listening ]]'
timeout 60 "$VMMCTL" migrate --api "$T/c.sock" --to "tcp:$NET.2:$port" --insecure \
	--mode precopy --downtime-limit 1 --max-rounds 100000 >"$T/mig2.json" 2>"$T/mig2.err" &
mig=$!
wait_until 30 "pre-copy round 2" 'mig_in_precopy "$T/c.sock" 2'
ip -n "$NS2" link set vmm-dst down
t0=$(now_ms)

# The source notices the silence, says so in one line, and runs on.
vmm_wait_for "$mig" 40
[[ $RC == 1 ]] || fail "link down: vmm migrate exit $RC: $(cat "$T/mig2.err")"
one_line "$T/mig2.err" "^vmmctl migrate: failed: tcp:$NET.2:$port: no progress for [0-9]+ s" \
	"link down: vmmctl migrate"
t_src=$(($(now_ms) - t0))
[[ $(status_get "$T/c.sock" .state) == running ]] || fail "link down: the source VM is not running"
[[ $(status_get "$T/c.sock" .migration.state) == failed ]] || fail "link down: source migration state"
c0=$(status_get "$T/c.sock" .heartbeats.count)
wait_until 10 "heartbeats on the source" '(($(status_get "$T/c.sock" .heartbeats.count) >= c0 + 100))'
[[ $(status_get "$T/c.sock" .heartbeats.seq_errors) == 0 ]] || fail "link down: sequence errors on the source"
out=$(hb_check_so_far "$T/c.hb") || fail "link down: source heartbeat log: $out"
guest_verify "$T/c.sock" "link down: the source"
echo "ok: link down: the source gave up after $t_src ms and runs on: $(cat "$T/mig2.err")"

# The destination must not wait forever for a source that is gone: it
# gives up too (one line), and the half-received VM never ran.
deadline=$(($(now_ms) + 30000))
while kill -0 "$dst" 2>/dev/null && ! grep -q '^[0-9]* (.*) Z' "/proc/$dst/stat" 2>/dev/null; do
	(($(now_ms) < deadline)) ||
		fail "link down: 30 s after the link died the destination still waits for the vanished" \
			"source (migration state $(status_get "$T/d.sock" .migration.state))"
	sleep 0.1
done
vmm_wait "$dst"
[[ $RC == 1 ]] || fail "link down: destination exit $RC"
one_line "$T/d.err" "incoming migration failed: .*(no progress|stalled|gone|timed out)" "link down: the destination"
[[ ! -s $T/d.hb && ! -s $T/d.serial ]] || fail "link down: the half-received VM ran on the destination"
echo "ok: link down: the destination gave up after $(($(now_ms) - t0)) ms: $(cat "$T/d.err")"
ctl stop --api "$T/c.sock" >/dev/null
vmm_wait_for "$src" 15
[[ $RC == 0 ]] || fail "link down: source exited $RC"
