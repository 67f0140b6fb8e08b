#!/usr/bin/env bash
# Fuzz proto/'s decoders for a fixed short time (FUZZ_TIME seconds, default
# 60): configure a separate build (build-fuzz) with clang and -DVMM_FUZZ=ON,
# build fuzz_proto (libFuzzer + ASan + UBSan), write a seed corpus of valid
# frames of every message, and run. Exits non-zero when the fuzzer finds a
# crash, a sanitizer report or a failed round-trip check (the input is left
# in build-fuzz/fuzz-artifacts/ and can be replayed with
# build-fuzz/proto/fuzz_proto FILE). Skips, saying so, without clang.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
FUZZ_TIME=${FUZZ_TIME:-60}

if ! command -v clang >/dev/null 2>&1; then
	echo "fuzz: clang is not installed: skipping the proto fuzzer"
	exit 0
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const char *d, long n){return 0;}\n' \
	>"$probe/p.c"
if ! clang -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" \
	2>/dev/null; then
	echo "fuzz: clang cannot link -fsanitize=fuzzer (libclang-rt-dev" \
		"missing?): skipping the proto fuzzer"
	exit 0
fi

cmake -S . -B "$BUILD_DIR" -DCMAKE_C_COMPILER=clang -DVMM_FUZZ=ON \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" --target fuzz_proto -j"$(nproc)"

fuzzer=$BUILD_DIR/proto/fuzz_proto
corpus=$BUILD_DIR/fuzz-corpus
seeds=$BUILD_DIR/fuzz-seeds
artifacts=$BUILD_DIR/fuzz-artifacts
rm -rf "$seeds" "$artifacts"
mkdir -p "$corpus" "$seeds" "$artifacts"
PROTO_FUZZ_SEED_DIR=$seeds "$fuzzer"

echo "fuzz: running fuzz_proto for ${FUZZ_TIME}s"
status=0
"$fuzzer" -max_total_time="$FUZZ_TIME" -max_len=65536 -timeout=10 \
	-rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$artifacts/" "$corpus" "$seeds" || status=$?
if [[ $status -ne 0 ]]; then
	echo "fuzz: fuzz_proto FAILED (exit $status); inputs in $artifacts:" >&2
	ls -l "$artifacts" >&2
	exit 1
fi
echo "fuzz: no crash in ${FUZZ_TIME}s"
