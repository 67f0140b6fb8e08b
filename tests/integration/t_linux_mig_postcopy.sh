#!/usr/bin/env bash
# A stock Linux kernel migrated mid-boot, postcopy: see linux_migrate_test in
# linux_lib.sh (the console continues on the destination, no line lost or
# repeated, the same end as an unmigrated boot, --verify passes).
. "$(dirname "$0")/linux_lib.sh"
need_kvm
need_linux
linux_migrate_test postcopy
