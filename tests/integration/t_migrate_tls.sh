#!/usr/bin/env bash
# Live migration over mutual TLS between two network namespaces (veth,
# 10.77.N.1 -> 10.77.N.2), hybrid so that the urgent connection and the
# post-copy stream run over TLS too: it completes, heartbeats continuous,
# verify ok, statistics say TLS. A packet capture on the veth (tcpdump)
# holds no guest bytes: the dirty workload fills its pages with a known
# pattern (examples/guests/user/pattern.h), and the same migration in
# plaintext (--insecure) is captured too: its capture must contain pattern
# bytes, the TLS one none.
. "$(dirname "$0")/lib.sh"
need_kvm
command -v tcpdump >/dev/null || fail "tcpdump is missing (scripts/setup.sh installs it)"

NS1=vmmtls1$$
NS2=vmmtls2$$
NET=10.78.$(($$ % 250))
netns_pair "$NS1" "$NS2" "$NET"

# One CA; the destination's certificate names its address, the source's
# identity is "src" (what --tls-authz admits).
"$VMM_SRC/scripts/mkcerts.sh" "$T/dst" --hosts "$NET.2" --client dst >/dev/null 2>&1 ||
	fail "mkcerts.sh failed"
"$VMM_SRC/scripts/mkcerts.sh" "$T/src" --ca "$T/dst" --hosts "$NET.1" --client src >/dev/null 2>&1 ||
	fail "mkcerts.sh (source) failed"

# needles FILE: how many of 128 pattern fragments (16 bytes: words 1-2 of
# dirty pages 0, 64, 128, ... at generation 1, little-endian) FILE holds.
needles()
{
	python3 - "$1" <<'PY'
import struct, sys
M = (1 << 64) - 1
STEP = 0x9e3779b97f4a7c15
def mix(x):
    x = (x + STEP) & M
    x = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & M
    x = ((x ^ (x >> 27)) * 0x94d049bb133111eb) & M
    return x ^ (x >> 31)
data = open(sys.argv[1], 'rb').read()
n = 0
for page in range(0, 128 * 64, 64):
    seed = mix(page << 32 | 1)
    frag = struct.pack('<QQ', seed ^ (STEP & M), seed ^ ((2 * STEP) & M))
    n += frag in data
print(n)
PY
}

# capture N MODE: migrate aN -> bN (MODE tls or plain) while tcpdump
# records the veth; the capture is $T/capN.pcap.
capture()
{
	local n=$1 mode=$2 dargs margs tcpd
	if [[ $mode == tls ]]; then
		dargs=(--tls-dir "$T/dst" --tls-authz src)
		margs=(--tls-dir "$T/src")
	else
		dargs=(--insecure)
		margs=(--insecure)
	fi
	port=$(free_port_ns "$NS2")
	vmm_incoming_ns "$NS2" "b$n" "tcp:$NET.2:$port" --mem 128M --cpus 2 "${dargs[@]}"
	dst=$VMM_PID
	vmm_start_ns "$NS1" "a$n" --mem 128M --cpus 2 --append "dirty --mib 32 --rate 2"
	src=$VMM_PID
	wait_until 30 "dirty running" '(($(status_get "$T/a'"$n"'.sock" .heartbeats.count) >= 300))'
	ip netns exec "$NS2" tcpdump -i vmm-dst -s 0 -U -n -w "$T/cap$n.pcap" "tcp port $port" \
		2>"$T/tcpdump$n.out" &
	tcpd=$!
	VMM_PIDS+=("$tcpd")
	wait_until 10 "tcpdump listening" 'grep -q "listening on" "$T/tcpdump'"$n"'.out"'
	timeout 90 "$VMMCTL" migrate --api "$T/a$n.sock" --to "tcp:$NET.2:$port" --verify \
		--downtime-limit 1 --precopy-budget 1ms "${margs[@]}" >"$T/mig$n.json" 2>"$T/mig$n.err" ||
		fail "$mode: migrate failed: $(cat "$T/mig$n.err")"
	mig_check_completed "a$n" "b$n" "$src" "$dst" "$T/mig$n.json"
	kill -INT "$tcpd"
	vmm_wait_for "$tcpd" 10
	[[ $(jq -r .postcopy "$T/mig$n.json") == true ]] ||
		fail "$mode: did not switch to post-copy: $(cat "$T/mig$n.json")"
	[[ $(jq -r .tls "$T/mig$n.json") == "$([[ $mode == tls ]] && echo true || echo false)" ]] ||
		fail "$mode: statistics say tls=$(jq -r .tls "$T/mig$n.json")"
}

capture 1 tls
jq -e '.tls_cipher | test("^TLS_AES_(128|256)_GCM")' "$T/mig1.json" >/dev/null ||
	fail "cipher: $(jq -c '{tls_cipher,ktls_send,ktls_recv}' "$T/mig1.json")"
grep -q "^migration: TLS from CN=src" "$T/b1.err" ||
	fail "the destination did not log its TLS peer: $(cat "$T/b1.err")"
tls_found=$(needles "$T/cap1.pcap")
tls_size=$(stat -c %s "$T/cap1.pcap")
echo "ok: TLS: $MIG_BEATS heartbeats, gap $((MIG_GAP_NS / 1000)) us, $(jq -c '{tls_cipher,ktls_send,ktls_recv,memory_postcopy_requests,wire_bytes}' "$T/mig1.json")"

capture 2 plain
plain_found=$(needles "$T/cap2.pcap")
((plain_found > 0)) ||
	fail "the plaintext capture holds none of the pattern fragments: the check cannot tell"
((tls_found == 0)) || fail "the TLS capture holds $tls_found guest pattern fragments in the clear"
echo "ok: capture: plaintext $plain_found/128 pattern fragments in $(stat -c %s "$T/cap2.pcap") bytes," \
	"TLS 0/128 in $tls_size bytes"
