#!/usr/bin/env bash
# Install what is missing (Debian 12 packages only; a no-op when all are
# present) and build into ./build. Run as root on a fresh machine.
#   scripts/setup.sh [--with-qemu]
# --with-qemu also installs qemu-system-x86 (QEMU with KVM), which
# bench/compare-qemu.sh and tests/integration/t_mb_qemu.sh use (they skip
# without it).
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(gcc make cmake pkg-config linux-libc-dev libuv1-dev libzstd-dev libxxhash-dev
      libssl-dev openssl libvirt-dev libcriterion-dev libjansson-dev iproute2 jq
      gnuplot-nox clang libclang-rt-14-dev python3 tcpdump)
case ${1:-} in
'') ;;
--with-qemu) PKGS+=(qemu-system-x86) ;;
*) echo "usage: scripts/setup.sh [--with-qemu]" >&2; exit 2 ;;
esac

missing=()
for p in "${PKGS[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[[ "$status" == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "setup: installing ${missing[*]}"
	if [[ $(id -u) -ne 0 ]]; then
		echo "setup: need root to install packages: ${missing[*]}" >&2
		exit 1
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"
# The stock Debian kernel the Linux boot tests boot (tests/integration/
# t_linux_*.sh skip without it): ~6 s and 71 MiB, cached in $BUILD_DIR/linux.
scripts/fetch-linux.sh "$BUILD_DIR" ||
	echo "setup: no Linux kernel fetched: the t_linux_* tests will skip" >&2
echo "setup: built into $BUILD_DIR (guest image: $BUILD_DIR/examples/guests/guest.elf)"
