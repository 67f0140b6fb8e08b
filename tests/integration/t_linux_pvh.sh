#!/usr/bin/env bash
# A stock Debian kernel (scripts/fetch-linux.sh) boots through its PVH entry
# with 2 vCPUs and 256 MiB: its own early console says `Linux version`,
# echoes our command line exactly (with a distinctive token), prints an
# e820 map whose usable ranges are our RAM layout (RAM below 640 KiB and
# from 1 MiB to --mem, the MMIO hole reserved), and finds 2 CPUs in the
# MADT. On this nested KVM the kernel then stops after `Memory: ...` (KVM
# cannot emulate `lock cmpxchg16b` in ring 0; docs/linux.md): the test
# waits for that line, and accepts either a running kernel or that stop.
. "$(dirname "$0")/linux_lib.sh"
need_kvm
need_linux

TOKEN="vmmtest.token=pvh-$$-$RANDOM"
CMDLINE="earlyprintk=serial,ttyS0 console=ttyS0 $TOKEN"
start=$(now_ms)
linux_start k "$VMLINUX" --mem 256M --cpus 2 --append "$CMDLINE"
pid=$VMM_PID
wait_until 120 "Linux version" 'grep -q "Linux version" "$T/k.serial" || ! kill -0 $pid 2>/dev/null'
grep -q "^\[ *[0-9.]*\] Linux version 6\." "$T/k.serial" || fail "no 'Linux version' line"
echo "ok: Linux version after $(($(now_ms) - start)) ms"
wait_until 120 "Memory: or the end of the VMM" \
	'grep -q "^\[ *[0-9.]*\] Memory: " "$T/k.serial" || ! kill -0 $pid 2>/dev/null'

grep -qxF "Command line: $CMDLINE" <(console_lines "$T/k.serial") ||
	fail "command line not echoed exactly: $(grep 'Command line' "$T/k.serial")"
grep -qxF "Kernel command line: $CMDLINE" <(console_lines "$T/k.serial") ||
	fail "kernel command line differs: $(grep 'Kernel command line' "$T/k.serial")"

# The usable ranges are exactly our layout; the hole and the BIOS area reserved.
got=$(console_e820 "$T/k.serial" | awk '$3 == "usable" { print $1, $2 }' | tr '\n' ' ')
want="0000000000000000 000000000009ffff 0000000000100000 000000000fffffff "
[[ $got == "$want" ]] || fail "usable e820 ranges '$got', want '$want'"
console_e820 "$T/k.serial" | grep -q "^00000000c0000000 00000000ffffffff reserved$" ||
	fail "the MMIO hole is not reserved in the map"

grep -q "smpboot: Allowing 2 CPUs, 0 hotplug CPUs" "$T/k.serial" ||
	fail "the kernel did not find 2 CPUs: $(grep -E 'smpboot|nr_cpu_ids' "$T/k.serial")"
grep -q "Hypervisor detected: KVM" "$T/k.serial" || fail "KVM's CPUID leaves not seen"
grep -q "ACPI: APIC 0x00000000000E" "$T/k.serial" || fail "the MADT was not found"

last=$(tail -n 1 "$T/k.serial")
if kill -0 "$pid" 2>/dev/null; then
	echo "ok: still running at $(($(now_ms) - start)) ms; last line: $last"
	ctl stop --api "$T/k.sock" >/dev/null || true
else
	vmm_wait "$pid"
	# The stop this host is known for; anything else fails the test.
	grep -q "KVM internal error" "$T/k.err" ||
		fail "vmmctl exited $RC: $(cat "$T/k.err")"
	echo "ok: stopped as this KVM stops it ($(cat "$T/k.err")); last line: $last"
fi
echo "ok: $(wc -l <"$T/k.serial") console lines, command line, e820 and 2 CPUs checked"
