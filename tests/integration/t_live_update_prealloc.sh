#!/usr/bin/env bash
# --mem-prealloc and --mlock (docs/migration.md "Pre-faulted guests"):
#
#  1. --mem-prealloc with --mem-mode lazy is refused with one line.
#  2. A guest booted with both has all its RAM resident and locked.
#  3. A TCP destination with --mem-prealloc populates when it is created,
#     before any page arrives; it declines post-copy (a populated page
#     would never be fetched), so --mode postcopy completes in pre-copy;
#     the guest verifies and its heartbeats go on.
#  4. A live update to a VMM with both: the RAM it adopts is populated and
#     locked before the source pauses (the destination says so before
#     READY), and the guest runs on there.
. "$(dirname "$0")/lib.sh"
need_kvm

MIB=1024
# --mlock needs RLIMIT_MEMLOCK >= --mem unless root: test it where it can work.
LOCK=(--mlock)
lim=$(ulimit -l)
if [[ $EUID != 0 && $lim != unlimited ]] && ((lim < MIB * 1024)); then
	LOCK=()
	echo "note: RLIMIT_MEMLOCK ${lim} KiB, not root: --mlock is left out"
fi
locked_ok() { ((${#LOCK[@]} == 0)) || (($(kib "$1" VmLck) >= MIB * 1024)); }

# kib PID FIELD: a /proc/PID/status field, KiB.
kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

# 1.
RC=0
"$VMMCTL" boot --kernel "$GUEST_ELF" --mem-prealloc --mem-mode lazy 2>"$T/l.err" || RC=$?
[[ $RC != 0 ]] || fail "1: --mem-prealloc with --mem-mode lazy accepted"
one_line "$T/l.err" "^vmmctl boot: --mem-prealloc populates what --mem-mode lazy leaves missing" "1"
echo "ok: $(cat "$T/l.err")"

# 2.
vmm_start a --mem ${MIB}M --mem-prealloc "${LOCK[@]}" --append "dirty --mib 64 --rate 50"
src=$VMM_PID
grep -q "^vmm: --mem-prealloc: $MIB MiB populated in [0-9]* ms" "$T/a.err" || fail "2: $(cat "$T/a.err")"
(($(kib "$src" RssShmem) >= MIB * 1024)) || fail "2: RssShmem $(kib "$src" RssShmem) KiB"
locked_ok "$src" || fail "2: VmLck $(kib "$src" VmLck) KiB"
echo "ok: booted with $(grep -o 'populated in [0-9]* ms' "$T/a.err"), locked $(kib "$src" VmLck) KiB"

# 3.
port=$(free_port)
vmm_incoming b "tcp:127.0.0.1:$port" --mem ${MIB}M --mem-prealloc
dst=$VMM_PID
grep -q "^vmm: --mem-prealloc: $MIB MiB populated" "$T/b.err" || fail "3: $(cat "$T/b.err")"
(($(kib "$dst" RssShmem) >= MIB * 1024)) || fail "3: destination RssShmem $(kib "$dst" RssShmem) KiB before the migration"
wait_until 20 "a: dirtying" 'grep -q "dirty: 64 MiB" "$T/a.serial"'
ctl migrate --api "$T/a.sock" --to "tcp:127.0.0.1:$port" --mode postcopy >"$T/m1.json" ||
	fail "3: migrate: $(cat "$T/m1.json")"
[[ $(jq -r .state "$T/m1.json") == completed ]] || fail "3: $(cat "$T/m1.json")"
[[ $(jq -r .postcopy "$T/m1.json") == false ]] || fail "3: went post-copy"
grep -q -- "--mem-prealloc populated guest RAM" "$T/b.err" || fail "3: no notice on b"
vmm_wait_for "$src" 15
[[ $RC == 0 ]] || fail "3: source exited $RC"
guest_verify "$T/b.sock" "b"
out=$(hb_check_merged "$T/a.hb" "$T/b.hb") || fail "3: heartbeats: $out"
echo "ok: pre-copy to a preallocated destination (post-copy declined), downtime $(jq .downtime_us "$T/m1.json") us"

# 4.
vmm_incoming c "unix:$T/c.live" --mem ${MIB}M --mem-prealloc "${LOCK[@]}"
dst2=$VMM_PID
! grep -q "populated" "$T/c.err" || fail "4: c populated its own RAM, which the source's replaces"
ctl migrate --api "$T/b.sock" --to "unix:$T/c.live" >"$T/m2.json" ||
	fail "4: migrate: $(cat "$T/m2.json")"
[[ $(jq -r .mode "$T/m2.json") == local ]] || fail "4: mode"
grep -q "^vmm: --mem-prealloc: $MIB MiB populated" "$T/c.err" || fail "4: $(cat "$T/c.err")"
vmm_wait_for "$dst" 15
[[ $RC == 0 ]] || fail "4: b exited $RC"
locked_ok "$dst2" || fail "4: VmLck $(kib "$dst2" VmLck) KiB"
(($(kib "$dst2" RssShmem) >= MIB * 1024)) || fail "4: RssShmem $(kib "$dst2" RssShmem) KiB"
guest_verify "$T/c.sock" "c"
cat "$T/a.hb" "$T/b.hb" >"$T/ab.hb"
out=$(hb_check_merged "$T/ab.hb" "$T/c.hb") || fail "4: heartbeats: $out"
ctl stop --api "$T/c.sock" >/dev/null
vmm_wait_for "$dst2" 15
[[ $RC == 0 ]] || fail "4: c exited $RC"
echo "ok: live update to a preallocated, locked VMM: downtime $(jq .downtime_us "$T/m2.json") us, total $(jq .time_elapsed "$T/m2.json") ms"
