#!/usr/bin/env bash
# Snapshot files that must not restore, each refused with one line on
# stderr and exit 1 before any vCPU runs: a corrupt state, a corrupt
# header, a truncated file, another version, a --mem or --cpus that is not
# the file's, a file that is not a snapshot. A snapshot that cannot be
# written leaves no file behind and the VM running.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/snap_lib.sh"
need_kvm

vmm_start a --mem 64M --append "dirty --mib 4 --rate 10"
wait_until 30 "dirty running" '(($(status_get "$T/a.sock" .heartbeats.count) >= 100))'
ctl snapshot --api "$T/a.sock" --to "$T/good.snap" >"$T/good.json" || fail "snapshot: $(cat "$T/good.json")"

# A snapshot into a directory that does not exist: one line, nothing left.
if ctl snapshot --api "$T/a.sock" --to "$T/nodir/x.snap" >/dev/null 2>"$T/nodir.err"; then
	fail "a snapshot into a missing directory succeeded"
fi
one_line "$T/nodir.err" 'snapshot .*nodir/x.snap.*No such file' "missing directory"
echo "ok: $(cat "$T/nodir.err")"
[[ $(status_get "$T/a.sock" .state) == running ]] || fail "the VM does not run after a failed snapshot"
[[ -z $(find "$T" -name 'x.snap*') ]] || fail "a failed snapshot left a file"
ctl stop --api "$T/a.sock" >/dev/null

# A VM with a DMA device: refused before anything is written.
vmm_start p --mem 64M --device pt --append "pt-driver --ms 20000"
if ctl snapshot --api "$T/p.sock" --to "$T/p.snap" >/dev/null 2>"$T/pt.err"; then
	fail "a snapshot of a VM with a pt device succeeded"
fi
one_line "$T/pt.err" 'p.snap: the VM has a DMA device \(--device pt\), which a snapshot does not quiesce yet$' "pt device"
[[ ! -e $T/p.snap && -z $(find "$T" -name 'p.snap.tmp*') ]] || fail "the refused snapshot left a file"
echo "ok: $(cat "$T/pt.err")"
ctl stop --api "$T/p.sock" >/dev/null

# refuse NAME ERE ARGS...: boot --restore ARGS exits $WANT (1; 2 for bad
# usage) with one line.
WANT=1
refuse()
{
	local name=$1 ere=$2
	shift 2
	local rc=0
	timeout 20 "$VMMCTL" boot "$@" --api "$T/$name.sock" >"$T/$name.out" 2>"$T/$name.err" || rc=$?
	[[ $rc == "$WANT" ]] || fail "$name: exit $rc, expected $WANT ($(cat "$T/$name.err"))"
	one_line "$T/$name.err" "$ere" "$name"
	echo "ok: $name: $(cat "$T/$name.err")"
}

size=$(stat -c %s "$T/good.snap")
state_off=$(od -An -t u8 -j 40 -N 8 "$T/good.snap" | tr -d ' ')

cp --sparse=always "$T/good.snap" "$T/state.snap"
printf '\xff' | dd of="$T/state.snap" bs=1 seek=$((state_off + 100)) conv=notrunc status=none
refuse corrupt-state 'vmmctl boot: --restore: snapshot .*state.snap: checksum mismatch' \
	--restore "$T/state.snap"

cp --sparse=always "$T/good.snap" "$T/hdr.snap"
printf '\x01' | dd of="$T/hdr.snap" bs=1 seek=24 conv=notrunc status=none
refuse corrupt-header 'snapshot .*hdr.snap: header checksum mismatch \(corrupt\)$' --restore "$T/hdr.snap"

cp --sparse=always "$T/good.snap" "$T/short.snap"
truncate -s $((size / 2)) "$T/short.snap"
refuse truncated "snapshot .*short.snap: truncated: $((size / 2)) bytes, its header says $size\$" \
	--restore "$T/short.snap"

cp --sparse=always "$T/good.snap" "$T/v2.snap"
printf '\x02' | dd of="$T/v2.snap" bs=1 seek=8 conv=notrunc status=none
refuse version 'snapshot .*v2.snap: snapshot version 2; this vmmctl reads version 1$' --restore "$T/v2.snap"

refuse mem 'snapshot .*good.snap has 64 MiB of RAM; --mem asks for 128 MiB$' \
	--restore "$T/good.snap" --mem 128M
refuse cpus 'snapshot .*good.snap has 1 vCPUs; --cpus asks for 2$' \
	--restore "$T/good.snap" --cpus 2
head -c 8192 /dev/urandom >"$T/junk.snap"
refuse junk 'snapshot .*junk.snap: not a vmm snapshot \(no magic\)$' --restore "$T/junk.snap"
refuse device 'does not fit this VM: .*pt0' --restore "$T/good.snap" --device pt
WANT=2 refuse kernel '--restore takes the guest from the file' --restore "$T/good.snap" --kernel "$GUEST_ELF"

# The good file still restores (nothing above touched it).
vmm_restore r "$T/good.snap" --mem-mode lazy
restored_runs_on r "$VMM_PID" "$T/good.json" "the good snapshot"
