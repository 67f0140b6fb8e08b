#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# fetch-linux.sh - put a stock Debian kernel into BUILD_DIR/linux for the
# Linux boot tests (tests/integration/t_linux_*.sh):
#
#   scripts/fetch-linux.sh BUILD_DIR
#
# Downloads the newest linux-image-6.1.0-N-amd64 package that apt knows
# (Debian's own repository, like every other dependency; `apt-get update`
# first if apt's lists are empty), unpacks its /boot/vmlinuz-* with
# dpkg-deb and extracts the uncompressed ELF vmlinux from it: the bzImage
# payload is an xz stream, found by its magic and decompressed by
# python3's lzma (our own few lines below, no code from the kernel tree).
#
# Result (cached: a second run with both files present does nothing):
#   BUILD_DIR/linux/vmlinuz    the bzImage as Debian ships it
#   BUILD_DIR/linux/vmlinux    the ELF kernel, with its PVH note
#   BUILD_DIR/linux/VERSION    the package name and version
# Exit status 0 on success, 1 with one line on stderr otherwise.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: fetch-linux.sh BUILD_DIR" >&2
	exit 2
fi
out=$1/linux
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ -s "$out/vmlinuz" ] && [ -s "$out/vmlinux" ] && [ -s "$out/VERSION" ]; then
	echo "fetch-linux: cached: $(cat "$out/VERSION")"
	exit 0
fi

pick() {
	apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' |
		awk '{print $1}' | sort -t- -k4,4n | tail -n 1
}
pkg=$(pick || true)
if [ -z "$pkg" ]; then
	apt-get update -qq >/dev/null 2>&1 || true
	pkg=$(pick || true)
fi
if [ -z "$pkg" ]; then
	echo "fetch-linux: apt knows no linux-image-6.1.0-N-amd64 package" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -qq "$pkg" >/dev/null) || {
	echo "fetch-linux: apt-get download $pkg failed" >&2
	exit 1
}
deb=$(ls "$tmp"/*.deb)
dpkg-deb -x "$deb" "$tmp/x"
vmlinuz=$(ls "$tmp"/x/boot/vmlinuz-* 2>/dev/null | head -n 1)
if [ -z "$vmlinuz" ]; then
	echo "fetch-linux: $deb holds no /boot/vmlinuz-*" >&2
	exit 1
fi

python3 - "$vmlinuz" "$tmp/vmlinux" <<'PY'
import lzma, sys
data = open(sys.argv[1], "rb").read()
magic = b"\xfd7zXZ\x00"
pos = data.find(magic)
while pos >= 0:
    try:
        d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        elf = d.decompress(data[pos:])
    except lzma.LZMAError:
        elf = b""
    if elf[:4] == b"\x7fELF":
        open(sys.argv[2], "wb").write(elf)
        sys.exit(0)
    pos = data.find(magic, pos + 1)
sys.stderr.write("fetch-linux: no xz stream holding an ELF in %s\n" % sys.argv[1])
sys.exit(1)
PY

cp "$vmlinuz" "$out/vmlinuz.tmp" && mv "$out/vmlinuz.tmp" "$out/vmlinuz"
mv "$tmp/vmlinux" "$out/vmlinux"
echo "$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)" >"$out/VERSION"
echo "fetch-linux: $(cat "$out/VERSION"): $(du -sh "$out" | cut -f1) in $out"
