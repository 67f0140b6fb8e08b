#!/usr/bin/env bash
# A stock Debian bzImage (scripts/fetch-linux.sh) boots through the 64-bit
# boot protocol: vmmctl enters it in long mode on identity page tables of
# its own at LINUX_PGT_GPA (vmm/linux_boot.h) with RSI = the zero page. On
# this nested KVM its ring-0 decompressor runs for minutes and Debian's
# prints nothing (no verbose boot), so the evidence that the kernel took
# over is the machine's own: within 60 s vCPU 0's CR3 (the first table of
# `vmmctl translate`'s walk) has left our tables for page tables the
# decompressor built for itself above its load address (16 MiB), and the
# VMM is still running it (no emulation failure, no triple fault).
# docs/linux.md says how far this path gets here.
. "$(dirname "$0")/linux_lib.sh"
need_kvm
need_linux

OURS=$((0x9000)) # LINUX_PGT_GPA: the tables vmmctl writes
linux_start z "$VMLINUZ" --mem 256M --cpus 1 \
	--append "earlyprintk=serial,ttyS0 console=ttyS0"
pid=$VMM_PID

# cr3 NAME: vCPU 0's CR3 now, from a walk of any address.
cr3()
{
	"$VMMCTL" translate --api "$T/$1.sock" --cpu 0 0x1000000 | jq -r '.walk[0].table_gpa'
}

first=$(cr3 z)
[[ $first =~ ^[0-9]+$ ]] || fail "no walk from vCPU 0: $first"
echo "ok: CR3 at the first look: $(printf 0x%x "$first")"
wait_until 60 "the decompressor's own page tables" \
	'c=$(cr3 z); [[ $c =~ ^[0-9]+$ ]] && ((c != OURS && c >= 0x1000000))'
c=$(cr3 z)
kill -0 "$pid" 2>/dev/null || fail "vmmctl exited: $(cat "$T/z.err")"
echo "ok: the kernel runs on its own page tables: CR3 $(printf 0x%x "$c")" \
	"(ours were at $(printf 0x%x $OURS)); console bytes so far: $(wc -c <"$T/z.serial")"
ctl stop --api "$T/z.sock" >/dev/null || true
vmm_wait "$pid"
