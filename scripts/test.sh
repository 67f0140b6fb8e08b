#!/usr/bin/env bash
# Run every test: set up and build (see setup.sh), then CTest (Criterion
# unit tests and integration tests that boot real guests on /dev/kvm; those
# skip, saying so, only where /dev/kvm is absent). Exits non-zero when any
# test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build}
[[ -e /dev/kvm ]] || echo "test: /dev/kvm is absent: KVM integration tests will be skipped"
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 300 "$@"
