# shellcheck shell=bash
# Helpers for the Linux boot tests (t_linux_*.sh): find the kernel that
# scripts/fetch-linux.sh put into the build directory (VMM_LINUX, set by
# CTest), skip saying so when it is absent, and read the kernel's console.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_linux()
{
	local d=${VMM_LINUX:-}
	if [[ -z $d || ! -s $d/vmlinux || ! -s $d/vmlinuz ]]; then
		echo "SKIP: no Linux kernel in ${d:-VMM_LINUX (unset)}:" \
			"run scripts/fetch-linux.sh BUILD_DIR (scripts/setup.sh does)"
		exit 77
	fi
	VMLINUX=$d/vmlinux
	VMLINUZ=$d/vmlinuz
}

# linux_start NAME KERNEL ARGS...: vmmctl boot of a Linux kernel, console
# in $T/NAME.serial, API $T/NAME.sock. Sets VMM_PID.
linux_start()
{
	local name=$1 kernel=$2
	shift 2
	"$VMMCTL" boot --kernel "$kernel" --api "$T/$name.sock" \
		--serial "$T/$name.serial" "$@" >"$T/$name.out" 2>"$T/$name.err" &
	VMM_PID=$!
	VMM_PIDS+=("$VMM_PID")
	wait_until 20 "$name control socket" \
		'[[ -S $T/'"$name"'.sock ]] || ! kill -0 $VMM_PID 2>/dev/null'
	[[ -S $T/$name.sock ]] || fail "$name: vmmctl boot exited early: $(cat "$T/$name.err")"
}

# console_lines FILE: the kernel's lines without the "[ time]" stamps, the
# figures that differ from boot to boot masked (kvm-clock's offset, timing
# figures), complete lines only.
console_lines()
{
	tr -d '\r' <"$1" | sed -n 's/^\[ *[0-9]*\.[0-9]*\] //p' |
		sed -E 's/sched offset of [0-9]+ cycles/sched offset of N cycles/;
			s/[0-9]+(\.[0-9]+)? (BogoMIPS|ms|MHz)/N \2/g'
}

# The e820 map the kernel printed: "START END TYPE" per line.
console_e820()
{
	tr -d '\r' <"$1" |
		sed -n 's/.*BIOS-e820: \[mem 0x\([0-9a-f]*\)-0x\([0-9a-f]*\)\] \(.*\)$/\1 \2 \3/p'
}

# linux_migrate_test MODE: boot vmlinux (2 vCPUs, 256 MiB) and, once it
# printed `Linux version`, live-migrate it with --mode MODE --verify to a
# destination on loopback, while an unmigrated boot of the same kernel
# runs alongside as the reference. The source's console followed by the
# destination's must be the reference's console (time stamps and the
# figures that differ from boot to boot masked): no line lost, none
# repeated, the same last line; and the destination must end as the
# reference did (on this KVM: the same emulation failure).
linux_migrate_test()
{
	local mode=$1 cmdline port start src dst ref
	cmdline="earlyprintk=serial,ttyS0 console=ttyS0 vmmtest.token=mig-$mode-$$"
	start=$(now_ms)
	linux_start ref "$VMLINUX" --mem 256M --cpus 2 --append "$cmdline"
	ref=$VMM_PID
	port=$(free_port)
	vmm_incoming dst "tcp:127.0.0.1:$port" --mem 256M --cpus 2
	dst=$VMM_PID
	linux_start src "$VMLINUX" --mem 256M --cpus 2 --append "$cmdline"
	src=$VMM_PID
	wait_until 120 "Linux version on the source" \
		'grep -q "Linux version" "$T/src.serial" || ! kill -0 $src 2>/dev/null'
	grep -q "Linux version" "$T/src.serial" || fail "source: no Linux version"
	ctl migrate --api "$T/src.sock" --to "tcp:127.0.0.1:$port" --mode "$mode" \
		--verify >"$T/mig.json" 2>"$T/mig.err" ||
		fail "migrate --mode $mode: $(cat "$T/mig.err" "$T/mig.json")"
	# With --verify, a RAM digest that differs fails the migration
	# (migration/src_verify.c): the exit status above is the check.
	echo "ok: migrated ($mode) after $(($(now_ms) - start)) ms, at source line" \
		"$(wc -l <"$T/src.serial"): $(tail -n 1 "$T/src.serial" | cut -c1-70)"
	vmm_wait_for "$src" 10
	# Both kernels end: the reference and the destination stop where this
	# KVM stops them (or are stopped here once they printed Memory:).
	local p
	for p in dst ref; do
		local pid=${!p}
		wait_until 120 "$p to reach Memory: or stop" \
			'grep -q "^\[ *[0-9.]*\] Memory: " "$T/'"$p"'.serial" || ! kill -0 '"$pid"' 2>/dev/null'
	done
	sleep 2
	for p in dst ref; do
		local pid=${!p}
		if kill -0 "$pid" 2>/dev/null; then
			ctl stop --api "$T/$p.sock" >/dev/null 2>&1 || true
			echo "running" >"$T/$p.end"
		else
			grep -o "KVM internal error.*" "$T/$p.err" >"$T/$p.end" || echo "exit" >"$T/$p.end"
		fi
		vmm_wait_for "$pid" 10
	done
	cat "$T/src.serial" "$T/dst.serial" >"$T/merged.serial"
	console_lines "$T/merged.serial" >"$T/merged.lines"
	console_lines "$T/ref.serial" >"$T/ref.lines"
	diff "$T/ref.lines" "$T/merged.lines" >"$T/diff" ||
		fail "source + destination console differs from the unmigrated boot: $(head -20 "$T/diff")"
	cmp -s "$T/ref.end" "$T/dst.end" ||
		fail "ends differ: reference '$(cat "$T/ref.end")', destination '$(cat "$T/dst.end")'"
	echo "ok: $(wc -l <"$T/src.serial") source + $(wc -l <"$T/dst.serial") destination" \
		"lines = the $(wc -l <"$T/ref.lines") of the unmigrated boot; both end" \
		"'$(cat "$T/dst.end")' after '$(tail -n 1 "$T/ref.lines" | cut -c1-60)';" \
		"downtime $(jq .downtime_us "$T/mig.json") us, $(($(now_ms) - start)) ms in all"
}
