#!/usr/bin/env bash
# Migration over TLS that must not happen, each ending in one clear line on
# each side while the source VM runs on (it answers status, its guest keeps
# heartbeating and verifies): a plaintext source to a TLS destination and
# the reverse; a source certificate of another CA; a destination name that
# is not the one asked for (--tls-hostname); a source identity not in
# --tls-authz; a key that does not match its certificate; a missing
# --tls-dir file. A destination refuses to listen in plaintext on a
# non-loopback address without --insecure, and does with it. (Expired and
# not-yet-valid certificates: unit/test_tls.)
. "$(dirname "$0")/lib.sh"
need_kvm

mk() { "$VMM_SRC/scripts/mkcerts.sh" "$@" >/dev/null 2>&1 || fail "mkcerts.sh $*"; }
mk "$T/dst" --client dst
mk "$T/src" --ca "$T/dst" --client src
mk "$T/other" --client src # a CA of its own
mk "$T/badkey" --ca "$T/dst" --client src
cp "$T/other/key.pem" "$T/badkey/key.pem"

vmm_start a --mem 64M --cpus 1 --append "dirty --mib 8 --rate 20"
src=$VMM_PID
wait_until 30 "dirty running" '(($(status_get "$T/a.sock" .heartbeats.count) >= 100))'

# source_runs WHAT: the source VM answers, runs, heartbeats and verifies.
source_runs()
{
	local c0
	[[ $(status_get "$T/a.sock" .state) == running ]] || fail "$1: the source VM is not running"
	c0=$(status_get "$T/a.sock" .heartbeats.count)
	wait_until 10 "$1: heartbeats on the source" \
		'(($(status_get "$T/a.sock" .heartbeats.count) >= c0 + 50))'
	guest_verify "$T/a.sock" "$1: the source"
}

# refused N SRC_ERE DST_ERE DEST_ARGS -- MIGRATE_ARGS: a fresh destination
# bN, a migration that fails with one line matching SRC_ERE; the
# destination exits 1 with one line matching DST_ERE (none: "-").
refused()
{
	local n=$1 sere=$2 dere=$3 dargs=() rc=0
	shift 3
	while [[ $1 != -- ]]; do dargs+=("$1"); shift; done
	shift
	port=$(free_port)
	vmm_incoming "b$n" "tcp:127.0.0.1:$port" --mem 64M --cpus 1 "${dargs[@]}"
	dst=$VMM_PID
	timeout 30 "$VMMCTL" migrate --api "$T/a.sock" --to "tcp:localhost:$port" "$@" \
		>"$T/m$n.json" 2>"$T/m$n.err" || rc=$?
	((rc != 0)) || fail "$n: the migration was not refused"
	one_line "$T/m$n.err" "$sere" "$n: vmmctl migrate"
	if [[ $dere != - ]]; then
		# A connection that fails TLS is not the destination's source:
		# it says why in one line and keeps waiting for its source.
		wait_until 10 "$n: the destination's line" '[[ -s $T/b$n.err ]]'
		one_line "$T/b$n.err" "$dere" "$n: the destination"
		kill -0 "$dst" || fail "$n: the destination exited"
		[[ $(status_get "$T/b$n.sock" .migration.state) == listening ]] ||
			fail "$n: the destination no longer listens"
		[[ ! -s $T/b$n.hb ]] || fail "$n: a VM ran on the destination"
		kill "$dst"
		vmm_wait_for "$dst" 10
	else
		kill -0 "$dst" || fail "$n: the destination exited"
		kill "$dst"
		vmm_wait_for "$dst" 10
	fi
	source_runs "$n"
	echo "ok: $n: $(cat "$T/m$n.err") | $([[ $dere != - ]] && cat "$T/b$n.err" || echo "destination untouched")"
}

refused plain-to-tls "the peer speaks TLS.*--tls-dir" "not speaking TLS.*--tls-dir" \
	--tls-dir "$T/dst" --
refused tls-to-plain "not speaking TLS" "the peer speaks TLS.*ClientHello.*--tls-dir" \
	-- --tls-dir "$T/src"
refused other-ca "not signed by the CA in $T/other/ca.pem" "alert 'unknown CA'" \
	--tls-dir "$T/dst" -- --tls-dir "$T/other"
refused hostname "wrong\.example" "alert|closed|refused|TLS" \
	--tls-dir "$T/dst" -- --tls-dir "$T/src" --tls-hostname wrong.example
# TLS 1.3: the client's handshake is over before the server has judged its
# certificate, so the source may already be writing when the destination
# refuses it. The destination lingers (its FIN after the alert, then it
# reads until the source's EOF) so that no reset throws the alert away:
# the source must name the refusal, never "connection reset by peer".
refused authz "refused the TLS session: alert .*does not accept our certificate or identity" \
	"not in --tls-authz" \
	--tls-dir "$T/dst" --tls-authz someone-else -- --tls-dir "$T/src"
refused badkey "key.pem" - \
	--tls-dir "$T/dst" -- --tls-dir "$T/badkey"
refused missing "nowhere" - \
	--tls-dir "$T/dst" -- --tls-dir "$T/nowhere"

# A destination's own files are checked when it starts.
rc=0
"$VMMCTL" boot --incoming "tcp:127.0.0.1:$(free_port)" --mem 64M --tls-dir "$T/badkey" \
	--api "$T/k.sock" 2>"$T/k.err" || rc=$?
((rc == 1)) || fail "a destination with a mismatched key started (exit $rc)"
one_line "$T/k.err" "key.pem" "destination with a mismatched key"
echo "ok: destination's own key: $(cat "$T/k.err")"

# Plaintext off loopback: refused, unless --insecure.
port=$(free_port)
rc=0
"$VMMCTL" boot --incoming "tcp:0.0.0.0:$port" --mem 64M --api "$T/p.sock" 2>"$T/p.err" || rc=$?
((rc == 1)) || fail "plaintext on 0.0.0.0 was not refused (exit $rc)"
one_line "$T/p.err" "refusing a plaintext migration on tcp:0.0.0.0:$port.*--tls-dir.*--insecure" \
	"plaintext off loopback"
echo "ok: $(cat "$T/p.err")"
vmm_incoming p2 "tcp:0.0.0.0:$port" --mem 64M --insecure
pdst=$VMM_PID
wait_until 10 "--insecure listening" '[[ $(status_get "$T/p2.sock" .migration.state) == listening ]]'
kill "$pdst"
vmm_wait_for "$pdst" 10
echo "ok: --insecure listens on tcp:0.0.0.0:$port"
ctl stop --api "$T/a.sock" >/dev/null
vmm_wait_for "$src" 15
