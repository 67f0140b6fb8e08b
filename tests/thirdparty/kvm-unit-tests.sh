#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# kvm-unit-tests.sh - run the x86 tests of kvm-unit-tests (upstream KVM's
# own guest test suite, GPL, never part of this repository) under vmmctl.
#
#   tests/thirdparty/kvm-unit-tests.sh KUT_DIR [TEST...]
#
# KUT_DIR is a local build of kvm-unit-tests (./configure --arch=x86_64 &&
# make). The script reads KUT_DIR/x86/unittests.cfg: each [name] section's
# file, smp, timeout, arch, groups, check, test_args (or an extra_params
# "-append '...'") and qemu_params. What translates becomes vmmctl options;
# a test that needs what vmmctl does not offer (another CPU model, QEMU-only
# devices or machine options, i386) is reported SKIP with the reason. Each
# test boots as
#   vmmctl boot --kernel KUT_DIR/x86/FILE --cpus SMP --mem 128M
#     --device debug-exit --initrd ENVIRON --append ARGS --serial LOG
# with ENVIRON the suite's environ module (NR_CPUS, MEMSIZE, TEST_DEVICE=0,
# BOOTLOADER=0). Verdicts as the suite's own runner: status 1 PASS, 77 SKIP,
# 124 timeout (FAIL), anything else FAIL. Per-test logs go to OUT_DIR
# (default ./kut-results); the last line is "N passed, N failed, N skipped".
#
# Environment: VMMCTL (default: build/vmm/vmmctl next to this script's
# repository), OUT_DIR, KUT_TIMEOUT_CAP (seconds, default 90: no test runs
# longer), KUT_MEM (default 128M).
set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
VMMCTL=${VMMCTL:-$repo/build/vmm/vmmctl}
OUT_DIR=${OUT_DIR:-$PWD/kut-results}
CAP=${KUT_TIMEOUT_CAP:-90}
MEM=${KUT_MEM:-128M}

usage() {
	cat <<'USAGE'
usage: kvm-unit-tests.sh KUT_DIR [TEST...]

KUT_DIR is a local build of kvm-unit-tests, which is not part of vmm.
To get one:
  git clone https://gitlab.com/kvm-unit-tests/kvm-unit-tests.git
  (or the GitHub mirror kvm-unit-tests/kvm-unit-tests)
  cd kvm-unit-tests && ./configure --arch=x86_64 && make -j2
then run: tests/thirdparty/kvm-unit-tests.sh /path/to/kvm-unit-tests
USAGE
}

if [ $# -lt 1 ] || [ ! -f "$1/x86/unittests.cfg" ]; then
	usage >&2
	echo "SKIP: no kvm-unit-tests build given (KUT_DIR/x86/unittests.cfg" \
		"not found): nothing was run" >&2
	exit 77
fi
KUT=$(cd "$1" && pwd)
shift
if [ ! -x "$VMMCTL" ]; then
	echo "kvm-unit-tests.sh: $VMMCTL is not built (set VMMCTL)" >&2
	exit 2
fi
mkdir -p "$OUT_DIR" || exit 2
wanted=("$@")
npass=0 nfail=0 nskip=0

# One result line; the verdict counts.
report() { # name verdict seconds cause
	printf '%-28s %-7s %4ss  %s\n' "$1" "$2" "$3" "$4"
	case $2 in
	PASS) npass=$((npass + 1)) ;;
	SKIP) nskip=$((nskip + 1)) ;;
	*) nfail=$((nfail + 1)) ;;
	esac
}

is_wanted() {
	[ ${#wanted[@]} -eq 0 ] && return 0
	local w
	for w in "${wanted[@]}"; do
		[ "$w" = "$1" ] && return 0
	done
	return 1
}

explicit() {
	local w
	for w in "${wanted[@]}"; do
		[ "$w" = "$1" ] && return 0
	done
	return 1
}

# Strip one pair of outer quotes.
unquote() {
	local v=$1
	case $v in
	\'*\') v=${v#\'} v=${v%\'} ;;
	\"*\") v=${v#\"} v=${v%\"} ;;
	esac
	printf '%s' "$v"
}

# qemu_params -> $mem and $why (non-empty: cannot be offered).
translate_qemu() {
	local -a p
	read -r -a p <<<"$1"
	local i=0 cpu
	while [ $i -lt ${#p[@]} ]; do
		case ${p[$i]} in
		-enable-kvm) ;;
		-m)
			i=$((i + 1))
			mem=${p[$i]}
			case $mem in *[0-9]) mem=${mem}M ;; esac
			;;
		-cpu)
			# vmmctl's vCPUs have every feature KVM supports (as
			# QEMU's -cpu host): a model that only adds features
			# runs, one that removes or renames any cannot.
			i=$((i + 1))
			cpu=${p[$i]}
			case ,$cpu, in
			*,-* | *vendor=* | *hv_* | *migratable=*)
				why="QEMU -cpu $cpu (vmmctl gives the host's"
				why="$why CPUID, unchanged)"
				return
				;;
			esac
			;;
		-machine)
			# The PIT stays silent until a guest programs it.
			i=$((i + 1))
			if [ "${p[$i]}" != pit=off ]; then
				why="QEMU -machine ${p[$i]}"
				return
			fi
			;;
		*)
			why="QEMU-only option: ${p[*]:$i}"
			return
			;;
		esac
		i=$((i + 1))
	done
}

# The cfg's check lines: each sysfs file must hold the value.
check_host() {
	local c f v
	for c in $1; do
		f=${c%%=*} v=${c#*=}
		if [ "$(cat "$f" 2>/dev/null)" != "$v" ]; then
			why="host check $f=$v failed"
			return
		fi
	done
}

# Run one section; its keys are in the sec_* variables.
run_test() {
	local name=$sec_name file=$sec_file smp=${sec_smp:-1}
	local tmo=${sec_timeout:-90s} args=$sec_args
	local log=$OUT_DIR/$name.log env=$OUT_DIR/$name.environ
	local mem=$MEM why="" st t0 t1 verdict cause
	is_wanted "$name" || return 0
	tmo=${tmo%s}
	[ "$tmo" -gt "$CAP" ] && tmo=$CAP
	if [ -n "$sec_arch" ] && [ "$sec_arch" != x86_64 ]; then
		report "$name" SKIP 0 "arch $sec_arch (built for x86_64)"
		return
	fi
	case " $sec_groups " in
	*" nodefault "*)
		if ! explicit "$name"; then
			report "$name" SKIP 0 "group nodefault (name it to run)"
			return
		fi
		;;
	esac
	[ -n "$sec_qemu" ] && translate_qemu "$sec_qemu"
	[ -z "$why" ] && [ -n "$sec_check" ] && check_host "$sec_check"
	if [ -n "$why" ]; then
		report "$name" SKIP 0 "$why"
		return
	fi
	if [ ! -f "$KUT/x86/$file" ]; then
		report "$name" SKIP 0 "x86/$file not built"
		return
	fi
	printf 'NR_CPUS=%s\nMEMSIZE=%s\nTEST_DEVICE=0\nBOOTLOADER=0\n' \
		"$smp" "$(mem_mib "$mem")" >"$env"
	local -a cmd=("$VMMCTL" boot --kernel "$KUT/x86/$file" --cpus "$smp"
		--mem "$mem" --device debug-exit --initrd "$env"
		--serial "$log")
	[ -n "$args" ] && cmd+=(--append "$args")
	echo "${cmd[*]}" >"$OUT_DIR/$name.cmd"
	t0=$(date +%s)
	timeout -k 5 "$tmo" "${cmd[@]}" </dev/null 2>"$OUT_DIR/$name.stderr"
	st=$?
	t1=$(date +%s)
	case $st in
	1) verdict=PASS cause="" ;;
	77) verdict=SKIP cause=$(grep -m1 -E '^SKIP' "$log" 2>/dev/null) ;;
	124 | 137) verdict=FAIL cause="timeout after ${tmo}s: $(tail -n1 "$log" 2>/dev/null)" ;;
	*)
		verdict=FAIL
		cause="status $st: $(grep -m1 -E '^FAIL|Unhandled' "$log" 2>/dev/null)"
		cause="$cause $(tail -n1 "$OUT_DIR/$name.stderr" 2>/dev/null)"
		;;
	esac
	report "$name" "$verdict" $((t1 - t0)) "$cause"
}

mem_mib() {
	local m=$1
	case $m in
	*G) echo $((${m%G} * 1024)) ;;
	*M) echo "${m%M}" ;;
	*) echo "$m" ;;
	esac
}

reset_sec() {
	sec_name=$1 sec_file="" sec_smp="" sec_timeout="" sec_args=""
	sec_arch="" sec_groups="" sec_qemu="" sec_check=""
}

# extra_params (older suites): -append '...' is the only part vmmctl takes.
extra_params() {
	local v=$1
	if [[ $v =~ -append\ +(\'[^\']*\'|\"[^\"]*\"|[^ ]+) ]]; then
		sec_args=$(unquote "${BASH_REMATCH[1]}")
		v=${v/"${BASH_REMATCH[0]}"/}
	fi
	v=${v#"${v%%[! ]*}"}
	[ -n "$v" ] && sec_qemu="$sec_qemu $v"
}

sec_name=""
while IFS= read -r line || [ -n "$line" ]; do
	case $line in
	\#* | "") continue ;;
	\[*\])
		[ -n "$sec_name" ] && run_test
		reset_sec "${line:1:${#line}-2}"
		continue
		;;
	esac
	key=${line%%=*} val=${line#*=}
	key=${key//[[:space:]]/} val=${val#"${val%%[! ]*}"}
	case $key in
	file) sec_file=$val ;;
	smp) sec_smp=$val ;;
	timeout) sec_timeout=$val ;;
	arch) sec_arch=$val ;;
	groups) sec_groups=$val ;;
	check) sec_check=$val ;;
	qemu_params) sec_qemu="$sec_qemu $val" ;;
	extra_params) extra_params "$val" ;;
	test_args)
		# As the suite's runner does: the shell expands it.
		sec_args=$(eval "echo $val")
		;;
	esac
done <"$KUT/x86/unittests.cfg"
[ -n "$sec_name" ] && run_test

echo "$npass passed, $nfail failed, $nskip skipped"
