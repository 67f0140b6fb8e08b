#!/usr/bin/env bash
# vmmctl translate walks a vCPU's page tables (GVA -> GPA) on a live guest:
# identity-mapped RAM, the device window, an unmapped and a non-canonical
# address, and a page the guest's own #PF handler mapped elsewhere.
. "$(dirname "$0")/lib.sh"
need_kvm

vmm_start a --mem 64M --cpus 2 --append "pagefault --pages 4; heartbeat"
wait_until 30 "pagefault done" '(($(marker_count "$T/a.sock" pf-count) >= 1))'
tr() { ctl translate --api "$T/a.sock" "$@"; }

out=$(tr --cpu 0 0x100123)
[[ $(jq -r .status <<<"$out") == ok ]] || fail "kernel text: $out"
[[ $(jq -r .gpa <<<"$out") == 0x100123 ]] || fail "kernel text gpa: $out"
[[ $(jq -r .page_size <<<"$out") == 4096 ]] || fail "page size: $out"
[[ $(jq -r '.walk | length' <<<"$out") == 4 ]] || fail "walk has not 4 levels: $out"
out=$(tr --cpu 1 0xd0000000)
[[ $(jq -r .gpa <<<"$out") == 0xd0000000 ]] || fail "device window: $out"
out=$(tr --cpu 0 0x7f0000000000)
[[ $(jq -r .status <<<"$out") == not-present ]] || fail "unmapped: $out"
[[ $(jq -r .level <<<"$out") == 4 ]] || fail "unmapped stops at PML4: $out"
out=$(tr --cpu 0 0x0000900000000000)
[[ $(jq -r .status <<<"$out") == non-canonical ]] || fail "non-canonical: $out"
out=$(tr --cpu 0 0 )
[[ $(jq -r .status <<<"$out") == not-present ]] || fail "page 0 must be unmapped: $out"
[[ $(jq -r .level <<<"$out") == 1 ]] || fail "page 0 stops at PT: $out"

# The pagefault workload's first page: mapped by the guest, not identity.
gva=$(grep -o "pagefault: region at 0x[0-9a-f]*" "$T/a.serial" | awk '{print $4}')
[[ -n $gva ]] || fail "pagefault workload did not print its region"
out=$(tr --cpu 0 "$gva")
[[ $(jq -r .status <<<"$out") == ok ]] || fail "guest-mapped page: $out"
[[ $(jq -r .gpa <<<"$out") != "$gva" ]] || fail "guest-mapped page looks identity-mapped: $out"

[[ $(status_get "$T/a.sock" .state) == running ]] || fail "translate left the VM paused"
if tr --cpu 7 0x1000 2>"$T/err"; then fail "translate on a missing vCPU succeeded"; fi
grep -q "no such vCPU" "$T/err" || fail "missing vCPU: $(cat "$T/err")"
ctl stop --api "$T/a.sock" >/dev/null
vmm_wait "$VMM_PID"
echo "ok: translate"
