#!/usr/bin/env bash
# Print the -cpu model QEMU (path in $1) can run here with KVM: `host`, or
# `host,-arch-capabilities` where KVM refuses the IA32_ARCH_CAPABILITIES
# value QEMU 7.2 derives for `host` (seen on AMD EPYC hosts of this nested
# KVM: "failed to set MSR 0x10a", then an assertion aborts QEMU before the
# guest's first instruction). The probe starts QEMU stopped (-S) and quits
# at once; it prints nothing and fails when neither model starts.
#   scripts/qemu-cpu.sh /usr/bin/qemu-system-x86_64
set -uo pipefail
qemu=${1:?usage: scripts/qemu-cpu.sh QEMU}
for cpu in host host,-arch-capabilities; do
	# (the subshell keeps bash's own "Aborted" report off stderr too)
	if (echo quit | timeout 20 "$qemu" -enable-kvm -cpu "$cpu" -m 16 \
		-nodefaults -display none -S -monitor stdio >/dev/null 2>&1) \
		2>/dev/null; then
		echo "$cpu"
		exit 0
	fi
done
exit 1
