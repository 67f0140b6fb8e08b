#!/usr/bin/env bash
# The Multiboot guest under another VMM: QEMU boots guest-mb.elf with a
# file-backed RAM, the guest builds its own page tables and, finding no
# test device, prints through the UART and beats only in the heartbeat
# page; hbread follows that page through the file. Skipped (77) without
# qemu-system-x86_64 or /dev/kvm.
. "$(dirname "$0")/lib.sh"
need_kvm
: "${GUEST_MB_ELF:?GUEST_MB_ELF must point at guest-mb.elf}"
: "${HBREAD:?HBREAD must point at the hbread tool}"
QEMU=$(command -v qemu-system-x86_64) || {
	echo "SKIP: qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
	exit 77
}

cpu=$("$(dirname "$0")/../../scripts/qemu-cpu.sh" "$QEMU") ||
	fail "QEMU starts with neither -cpu host nor host,-arch-capabilities under KVM here"
ram=$T/ram
"$QEMU" -enable-kvm -cpu "$cpu" -m 64 -nodefaults -vga none -display none \
	-serial "file:$T/q.serial" -kernel "$GUEST_MB_ELF" \
	-append "heartbeat --ms 3000; exit 7" \
	-device isa-debug-exit,iobase=0xf4,iosize=4 \
	-object "memory-backend-file,id=m,size=64M,mem-path=$ram,share=on" \
	-machine memory-backend=m >"$T/q.out" 2>"$T/q.err" &
qpid=$!
VMM_PIDS+=("$qpid")
# Firmware and the emulated ring-0 boot take a few seconds here.
wait_until 15 "the guest's heartbeat workload" \
	'grep -q "heartbeat: every" "$T/q.serial" 2>/dev/null || ! kill -0 $qpid 2>/dev/null'
grep -q "heartbeat: every" "$T/q.serial" || fail "QEMU exited before the heartbeat started: $(cat "$T/q.err")"
"$HBREAD" --ms 2000 "$ram" >"$T/hb" 2>"$T/hb.err" || fail "hbread: $(cat "$T/hb.err")"
wait_until 20 "QEMU to exit" '! kill -0 $qpid 2>/dev/null'
vmm_wait "$qpid"
# isa-debug-exit: QEMU exits with (code << 1) | 1.
[[ $RC == 15 ]] || fail "QEMU exited $RC, expected 15 (guest exit 7); $(cat "$T/q.err")"

for want in "mb_boot: TSC [0-9]* kHz (.*), test device absent" \
	"mb_boot: TSC cycles from _start32" "cpu 0 up (ring 3)" \
	"heartbeat: every 1 ms for 3000 ms" "guest: exit 7"; do
	grep -q "$want" "$T/q.serial" || fail "serial output lacks '$want': $(cat "$T/q.serial")"
done

# Every line "<seq> <ns> <stall us>": seq strictly increasing, times
# non-decreasing; the guest's stall before each beat is a number.
read -r n first last < <(awk '
	NF != 3 || $1 <= s || $2 < t || $3 !~ /^[0-9]+$/ { print "bad", NR, $0; exit }
	{ if (!n++) f = $1; s = $1; t = $2 }
	END { if (n) print n, f, s }' "$T/hb")
[[ $n =~ ^[0-9]+$ ]] || fail "hbread output is not increasing: $n $first $last"
((last - first >= 100)) || fail "seq went from $first to $last only; $(cat "$T/hb.err")"
# The heartbeat workload does nothing but tick: its median stall is the
# length of one pass of its loop, far below the 1 ms between beats.
stall=$(awk '{ print $3 }' "$T/hb" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
((stall < 500)) || fail "median guest stall $stall us between beats of a ticking loop"
# The guest's TSC frequency (PIT-calibrated) against the host's clock, and
# its cadence in its own time: at most 1 kHz (fewer when a busy host
# deschedules the vCPU: one beat after a gap).
read -r khz seen rate < <(sed -n \
	's/.*TSC \([0-9]*\) kHz (\([0-9]*\) kHz by the host clock), \([0-9]*\) heartbeats.*/\1 \2 \3/p' "$T/hb.err")
((khz > 0 && seen * 100 > khz * 98 && seen * 100 < khz * 102)) ||
	fail "guest TSC $khz kHz, the host sees $seen kHz"
((rate <= 1010)) || fail "guest heartbeat rate $rate/s, above 1 kHz"
echo "ok: $(grep 'mb_boot: TSC cycles' "$T/q.serial")"
echo "ok: $(cat "$T/hb.err")"
