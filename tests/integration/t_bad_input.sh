#!/usr/bin/env bash
# Bad input of every kind gives exactly one clear error line and a non-zero
# exit: bad flags, a missing kernel, a non-ELF kernel, a missing KVM device.
. "$(dirname "$0")/lib.sh"
need_kvm

# expect_error EXPECTED_RC PATTERN ARGS...: vmmctl ARGS fails with one line.
expect_error()
{
	local want=$1 pattern=$2 rc=0
	shift 2
	"$VMMCTL" "$@" >"$T/out" 2>"$T/err" </dev/null || rc=$?
	[[ $rc == "$want" ]] || fail "vmmctl $*: exit $rc, expected $want ($(cat "$T/err"))"
	[[ $(wc -l <"$T/err") == 1 ]] || fail "vmmctl $*: expected one error line, got: $(cat "$T/err")"
	grep -q -- "$pattern" "$T/err" || fail "vmmctl $*: '$(cat "$T/err")' lacks '$pattern'"
}

printf 'not an elf\n' >"$T/text"
mkdir "$T/dir"
: >"$T/empty"

expect_error 2 "unknown option '--frob'" boot --kernel "$GUEST_ELF" --frob
expect_error 2 "--kernel FILE is required" boot --mem 64M
expect_error 2 "--cpus '0'" boot --kernel "$GUEST_ELF" --cpus 0
expect_error 2 "--cpus 'x'" boot --kernel "$GUEST_ELF" --cpus x
expect_error 2 "--cpus '33'" boot --kernel "$GUEST_ELF" --cpus 33
expect_error 2 "--mem '8M'" boot --kernel "$GUEST_ELF" --mem 8M
expect_error 2 "--mem '65G'" boot --kernel "$GUEST_ELF" --mem 65G
expect_error 2 "--mem 'lots'" boot --kernel "$GUEST_ELF" --mem lots
expect_error 2 "missing value for '--mem'" boot --kernel "$GUEST_ELF" --mem
expect_error 2 "unexpected argument 'extra'" boot --kernel "$GUEST_ELF" extra
expect_error 1 "$T/nope: No such file or directory" boot --kernel "$T/nope"
expect_error 1 "bad magic\|not an ELF" boot --kernel "$T/text"
expect_error 1 "$T/dir" boot --kernel "$T/dir"
expect_error 1 "$T/empty" boot --kernel "$T/empty"
expect_error 1 "cannot open KVM device $T/no-kvm" boot --kernel "$GUEST_ELF" --kvm-device "$T/no-kvm"
expect_error 1 "$T/text" boot --kernel "$GUEST_ELF" --kvm-device "$T/text"
expect_error 1 "cannot connect to control socket $T/none.sock" status --api "$T/none.sock"
expect_error 2 "requires\|required" status
expect_error 1 "$T/dir/x/serial" boot --kernel "$GUEST_ELF" --serial "$T/dir/x/serial"

expect_error 1 "--incoming 'tcp:nope': expected tcp:HOST:PORT" boot --incoming tcp:nope --mem 64M
expect_error 2 "no --kernel or --append" boot --incoming tcp:127.0.0.1:7 --kernel "$GUEST_ELF"
expect_error 1 "TCP congestion control 'nosuchcc': not on this host (available here: " \
	boot --incoming "tcp:127.0.0.1:$(free_port)" --mem 64M --tcp-congestion nosuchcc
expect_error 2 "--tcp-congestion go with --incoming" boot --kernel "$GUEST_ELF" --tcp-congestion cubic

# A second VMM on a live control socket is refused; the first keeps running.
vmm_start a --append heartbeat
expect_error 1 "in use" boot --kernel "$GUEST_ELF" --api "$T/a.sock"
expect_error 1 "'tcp:999.1.1.1:80': expected tcp:HOST:PORT" migrate --api "$T/a.sock" --to tcp:999.1.1.1:80
expect_error 1 "unknown mode 'warp'" migrate --api "$T/a.sock" --to tcp:127.0.0.1:1 --mode warp
expect_error 2 "--downtime-limit 'x' is not a number" migrate --api "$T/a.sock" --to tcp:127.0.0.1:1 --downtime-limit x
expect_error 1 "TCP congestion control 'nosuchcc': not on this host (available here: " migrate --api "$T/a.sock" \
	--to tcp:127.0.0.1:1 --tcp-congestion nosuchcc
expect_error 1 "a name of 1 to 15 characters" migrate --api "$T/a.sock" --to tcp:127.0.0.1:1 \
	--tcp-congestion abcdefghijklmnopq
expect_error 1 "no migration in progress" migrate --api "$T/a.sock" --cancel
expect_error 2 "--to tcp:HOST:PORT (or unix:PATH) is required" migrate --api "$T/a.sock"
[[ $(status_get "$T/a.sock" .state) == running ]] || fail "first VMM disturbed"
ctl stop --api "$T/a.sock" >/dev/null
echo "ok: every bad input gave one clear line"
