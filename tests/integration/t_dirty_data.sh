#!/usr/bin/env bash
# `dirty --data MODE` (random, text, byte, zero): each mode's pages verify,
# a byte flipped behind verify's back is caught in every mode, a bad mode
# word is one error line (exit 2), and text-, byte- and zero-mode guests
# migrate in hybrid mode and verify on the destination (a byte page is all
# zeros but one byte: the destination must still get that byte). The
# VMM's wire bytes show the modes differ in kind: a zero-mode region costs
# a fraction of its size.
. "$(dirname "$0")/lib.sh"
need_kvm

for m in random text byte zero; do
	rc=0
	"$VMMCTL" boot --kernel "$GUEST_ELF" --mem 64M \
		--append "dirty --mib 4 --rate 20 --data $m --ms 200; verify; corrupt --page 7; verify" \
		--serial "$T/$m.serial" 2>"$T/$m.err" || rc=$?
	[[ $rc == 3 ]] || fail "$m: dirty; verify; corrupt; verify exited $rc, expected 3"
	grep -q "^dirty: 4 MiB at 0x[0-9a-f]* rate 20 MiB/s data $m$" "$T/$m.serial" ||
		fail "$m: no dirty line naming the mode: $(cat "$T/$m.serial")"
	grep -q "^dirty: first pass done$" "$T/$m.serial" || fail "$m: no 'first pass done' line"
	grep -q "verify: ok 1024 pages" "$T/$m.serial" || fail "$m: the first verify did not pass"
	grep -q "verify: FAIL page 7 " "$T/$m.serial" || fail "$m: verify did not name page 7"
	grep -q "verify: FAIL 1 of 1024 pages wrong" "$T/$m.serial" || fail "$m: verify miscounted"
done
echo "ok: every data mode verifies and catches a flipped byte"

rc=0
"$VMMCTL" boot --kernel "$GUEST_ELF" --mem 64M --append "dirty --mib 4 --rate 0 --data bogus" \
	--serial "$T/bad.serial" 2>"$T/bad.err" || rc=$?
[[ $rc == 2 ]] || fail "--data bogus exited $rc, expected 2"
grep -q "bad value 'bogus' for --data (want one of random, text, byte, zero)" "$T/bad.serial" ||
	fail "no error line for --data bogus: $(cat "$T/bad.serial")"

# migrate_mode N MODE [MIGRATE FLAGS...]: one hybrid migration of a 16 MiB
# region in MODE; sets WIRE and ZSTD_SAVED (bytes).
migrate_mode()
{
	local n=$1 data=$2 port src dst
	shift 2
	port=$(free_port)
	vmm_incoming "b$n" "tcp:127.0.0.1:$port" --mem 128M
	dst=$VMM_PID
	vmm_start "a$n" --mem 128M --append "dirty --mib 16 --rate 20 --data $data"
	src=$VMM_PID
	wait_until 30 "$data: first pass" 'grep -q "^dirty: first pass done" "$T/a$n.serial"'
	ctl migrate --api "$T/a$n.sock" --to "tcp:127.0.0.1:$port" --mode hybrid "$@" >"$T/mig$n.json" ||
		fail "$data $*: migrate failed: $(cat "$T/mig$n.json")"
	jq -s last "$T/mig$n.json" >"$T/mig$n.last"
	mig_check_completed "a$n" "b$n" "$src" "$dst" "$T/mig$n.last"
	WIRE=$(jq .wire_bytes "$T/mig$n.last")
	ZSTD_SAVED=$(jq .compression_bytes "$T/mig$n.last")
}
migrate_mode 1 text
text=$WIRE
((ZSTD_SAVED > 8 << 20)) || fail "text, --compress auto: zstd saved only $ZSTD_SAVED bytes"
migrate_mode 4 text --compress none
((ZSTD_SAVED == 0)) || fail "text, --compress none: zstd saved $ZSTD_SAVED bytes"
((WIRE > 16 << 20)) || fail "text, --compress none: $WIRE bytes on the wire for a 16 MiB region"
raw_text=$WIRE
# zstd on every batch, even where it cannot shrink: the pages still arrive
# whole (the guest verifies them on the destination).
migrate_mode 5 random --compress zstd
echo "ok: --compress auto ($text bytes) and none ($raw_text bytes) on text, zstd forced on random"
migrate_mode 2 byte
byte=$WIRE
migrate_mode 3 zero
zero=$WIRE
((zero * 4 < 16 << 20)) || fail "zero mode: $zero bytes on the wire for a 16 MiB region"
echo "ok: text, byte and zero modes migrated and verified ($text, $byte, $zero bytes on the wire)"
