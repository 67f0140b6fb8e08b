#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# kvm-unit-tests.sh - run the x86 tests of kvm-unit-tests (upstream KVM's
# own guest test suite, GPL, never part of this repository) under vmmctl.
#
#   tests/thirdparty/kvm-unit-tests.sh [--migrate MODE [--seeds N | --seed S]]
#                                      KUT_DIR [TEST...]
#
# KUT_DIR is a local build of kvm-unit-tests (./configure --arch=x86_64 &&
# make). The script reads KUT_DIR/x86/unittests.cfg: each [name] section's
# file, smp, timeout, arch, groups, check, test_args (or an extra_params
# "-append '...'") and qemu_params. What translates becomes vmmctl options;
# a test that needs what vmmctl does not offer (another CPU model, QEMU-only
# devices or machine options, i386) is reported SKIP with the reason. Each
# test boots as
#   vmmctl boot --kernel KUT_DIR/x86/FILE --cpus SMP --mem 128M
#     --device debug-exit --device pc-testdev --initrd ENVIRON
#     --append ARGS --serial LOG
# (pc-testdev as QEMU's x86 runner adds it: realmode raises IRQ 11 through it)
# with ENVIRON the suite's environ module (NR_CPUS, MEMSIZE, TEST_DEVICE=0,
# BOOTLOADER=0). Verdicts as the suite's own runner: status 1 PASS, 77 SKIP,
# 124 timeout (FAIL), anything else FAIL. Per-test logs go to OUT_DIR
# (default ./kut-results); the last line is "N passed, N failed, N skipped".
#
# --migrate precopy|postcopy|hybrid: each test first runs unmigrated (the
# reference), then once per seed migrated live, once, from a source VMM
# to a destination VMM started for it (--incoming, same --cpus, --mem and
# --device debug-exit --device pc-testdev; its serial log continues the
# source's; its exit status is the verdict). The seed picks the point: after L lines of serial
# output or after T ms (both within the reference run's length); it is
# printed with the point, and `--seed S` replays it. A test that ended
# before the migration completed is "not migrated" and is run again with
# the point halved, down to 0 (migrate as soon as the source serves its
# API). A migrated run PASSes when its status equals the reference's and
# its PASS/FAIL/SKIP/XFAIL/XPASS/KFAIL lines are the same sequence; a test
# whose reference timed out has nothing to compare and is SKIP. --seeds N
# runs seeds 1..N (default: one seed, from the clock).
#
# Environment: VMMCTL (default: build/vmm/vmmctl next to this script's
# repository), OUT_DIR, KUT_TIMEOUT_CAP (seconds, default 90: no test runs
# longer), KUT_MEM (default 128M).
set -u

mig_mode="" seeds=()
while [ $# -gt 0 ]; do
	case $1 in
	--migrate)
		mig_mode=${2:-}
		case $mig_mode in
		precopy | postcopy | hybrid) ;;
		*)
			echo "kvm-unit-tests.sh: --migrate precopy|postcopy|hybrid" >&2
			exit 2
			;;
		esac
		shift 2
		;;
	--seeds)
		[[ ${2:-} =~ ^[1-9][0-9]*$ ]] || { echo "kvm-unit-tests.sh: --seeds N" >&2; exit 2; }
		mapfile -t seeds < <(seq 1 "$2")
		shift 2
		;;
	--seed)
		[[ ${2:-} =~ ^[0-9]+$ ]] || { echo "kvm-unit-tests.sh: --seed S (a number)" >&2; exit 2; }
		seeds=("$2")
		shift 2
		;;
	*) break ;;
	esac
done
if [ -n "$mig_mode" ] && [ ${#seeds[@]} -eq 0 ]; then
	seeds=($(($(date +%s%N) / 1000 % 1000000)))
fi

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
VMMCTL=${VMMCTL:-$repo/build/vmm/vmmctl}
OUT_DIR=${OUT_DIR:-$PWD/kut-results}
CAP=${KUT_TIMEOUT_CAP:-90}
MEM=${KUT_MEM:-128M}

usage() {
	cat <<'USAGE'
usage: kvm-unit-tests.sh [--migrate MODE [--seeds N | --seed S]] KUT_DIR [TEST...]

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
if [ -n "$mig_mode" ]; then
	# shellcheck source=scripts/ports.sh
	. "$repo/scripts/ports.sh"
	command -v jq >/dev/null || { echo "kvm-unit-tests.sh: --migrate needs jq" >&2; exit 2; }
	SOCK_DIR=$(mktemp -d /tmp/kut-mig.XXXXXX) || exit 2
	trap 'rm -rf "$SOCK_DIR"' EXIT
fi
wanted=("$@")
npass=0 nfail=0 nskip=0

# One result line; the verdict counts.
report() { # name verdict seconds cause...
	printf '%-34s %-7s %4ss  %s\n' "$1" "$2" "$3" "${*:4}"
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
	local mem=$MEM why="" st t0 t1
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
		--mem "$mem" --device debug-exit --device pc-testdev --initrd "$env")
	[ -n "$args" ] && cmd+=(--append "$args")
	echo "${cmd[*]}" >"$OUT_DIR/$name.cmd"
	t0=$(date +%s%3N)
	timeout -k 5 "$tmo" "${cmd[@]}" --serial "$log" </dev/null \
		2>"$OUT_DIR/$name.stderr"
	st=$?
	t1=$(date +%s%3N)
	verdict_of "$st" "$log" "$OUT_DIR/$name.stderr"
	if [ -z "$mig_mode" ]; then
		report "$name" "$verdict" $(((t1 - t0) / 1000)) "$cause"
		return
	fi
	# The reference: printed, not counted.
	printf '%-34s %-7s %4ss  %s\n' "$name [unmigrated]" "$verdict" \
		$(((t1 - t0) / 1000)) "$cause"
	local seed
	for seed in "${seeds[@]}"; do
		mig_test "$seed" "$st" $((t1 - t0))
	done
}

# Status st of a run with serial log $1 and stderr $2 -> verdict, cause.
verdict_of() {
	case $1 in
	1) verdict=PASS cause="" ;;
	77) verdict=SKIP cause=$(grep -am1 -E '^SKIP' "$2" 2>/dev/null) ;;
	124 | 137) verdict=FAIL cause="timeout after ${tmo}s: $(tail -n1 "$2" 2>/dev/null)" ;;
	*)
		verdict=FAIL
		cause="status $1: $(grep -am1 -E '^FAIL|Unhandled' "$2" 2>/dev/null)"
		cause="$cause $(tail -n1 "$3" 2>/dev/null)"
		;;
	esac
}

# The result lines of serial logs, in order, without the UART's CRs.
result_lines() {
	cat "$@" 2>/dev/null | tr -d '\r' |
		grep -aE '^(PASS|FAIL|SKIP|XPASS|XFAIL|KFAIL): '
}

# mig_test SEED REF_STATUS REF_MS: the test (run_test's locals) migrated
# once at the seed's point; retried with the point halved while the test
# ends before the migration completes.
mig_test() {
	local seed=$1 rst=$2 rms=$3 rlines kind point tag
	tag="$name [$mig_mode seed=$seed]"
	if [ "$rst" = 124 ] || [ "$rst" = 137 ]; then
		report "$tag" SKIP 0 "the unmigrated run timed out: nothing to compare"
		return
	fi
	rlines=$(wc -l <"$log")
	RANDOM=$(cksum <<<"$seed $name" | cut -d' ' -f1)
	if [ $((RANDOM % 2)) = 0 ] && [ "$rlines" -gt 1 ]; then
		kind=lines point=$((RANDOM % (rlines - 1) + 1))
	else
		kind=ms point=$((RANDOM * 32768 + RANDOM))
		point=$((point % (rms > 1 ? rms : 1)))
	fi
	echo "$tag: seed $seed: migrate after $point $kind"
	while :; do
		mig_once "$seed" "$kind" "$point"
		[ "$mresult" != not-migrated ] && break
		if [ "$point" = 0 ]; then
			report "$tag" FAIL 0 "not migrated: the test ends before" \
				"a migration started with it completes"
			return
		fi
		echo "$tag: not migrated at $point $kind (the test ended" \
			"first): retrying at $((point / 2)) $kind"
		point=$((point / 2))
	done
	local mlog=$OUT_DIR/$name.$mig_mode.$seed
	verdict_of "$mst" "$mlog.dst.log" "$mlog.dst.stderr"
	if [ "$mst" != "$rst" ]; then
		report "$tag" FAIL "$msec" "status $mst, unmigrated $rst" \
			"($verdict: $cause) at $point $kind"
	elif ! diff <(result_lines "$log") \
		<(result_lines "$mlog.src.log" "$mlog.dst.log") \
		>"$mlog.diff"; then
		report "$tag" FAIL "$msec" "other result lines than" \
			"unmigrated at $point $kind (see $mlog.diff)"
	else
		report "$tag" "$verdict" "$msec" "migrated at $point $kind"
	fi
}

# mig_once SEED KIND POINT: one source and one destination VMM; mresult
# migrated (mst: the destination's status) or not-migrated; msec seconds.
mig_once() {
	local kind=$2 point=$3 mlog=$OUT_DIR/$name.$mig_mode.$1 port
	local sock=$SOCK_DIR/src.sock dsock=$SOCK_DIR/dst.sock spid dpid
	local t0 now
	rm -f "$sock" "$dsock" "$mlog".*
	port=$(port_pick) || { echo "no free port" >&2; exit 2; }
	timeout -k 5 "$tmo" "$VMMCTL" boot --incoming "tcp:127.0.0.1:$port" \
		--api "$dsock" --cpus "$smp" --mem "$mem" --device debug-exit \
		--device pc-testdev \
		--serial "$mlog.dst.log" </dev/null 2>"$mlog.dst.stderr" &
	dpid=$!
	wait_sock "$dsock" "$dpid"
	t0=$(date +%s%3N)
	timeout -k 5 "$tmo" "${cmd[@]}" --api "$sock" --serial "$mlog.src.log" \
		</dev/null 2>"$mlog.src.stderr" &
	spid=$!
	wait_sock "$sock" "$spid"
	while kill -0 "$spid" 2>/dev/null; do
		if [ "$kind" = lines ]; then
			[ "$(wc -l <"$mlog.src.log")" -ge "$point" ] && break
		else
			now=$(date +%s%3N)
			[ $((now - t0)) -ge "$point" ] && break
		fi
		sleep 0.005
	done
	"$VMMCTL" migrate --api "$sock" --to "tcp:127.0.0.1:$port" \
		--mode "$mig_mode" >"$mlog.migrate.json" 2>&1
	if [ "$(jq -r .state "$mlog.migrate.json" 2>/dev/null)" = completed ]; then
		mresult=migrated
		wait "$dpid"
		mst=$?
		wait "$spid"
	else
		mresult=not-migrated
		wait "$spid"
		kill "$dpid" 2>/dev/null
		wait "$dpid"
	fi
	msec=$((($(date +%s%3N) - t0) / 1000))
}

# wait_sock SOCK PID: until PID serves its API on SOCK (or has ended).
wait_sock() {
	while [ ! -S "$1" ] && kill -0 "$2" 2>/dev/null; do
		sleep 0.005
	done
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
