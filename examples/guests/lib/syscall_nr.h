/* SPDX-License-Identifier: MIT */
/*
 * syscall_nr.h - the numbers of the guest's "system calls".
 *
 * Neither `int` nor `syscall` gets from ring 3 to ring 0 on the nested KVM
 * we run on (kvm-notes.md), but exceptions do. A system call is therefore a
 * deliberate `ud2` executed in ring 3 with SYS_MAGIC + number in RAX; the
 * ring-0 #UD handler recognises it by all three: CPL 3, the magic in RAX and
 * the ud2 opcode at RIP. A call that returns does so with RIP advanced past
 * the ud2 and its result in RAX.
 */
#ifndef GUEST_SYSCALL_NR_H
#define GUEST_SYSCALL_NR_H

#define SYS_MAGIC   0x5ca11000
#define SYS_NR_MASK 0xfff

#define SYS_HALT  0 /* park this CPU in ring 0 (cli; hlt), never returns */
#define SYS_RESET 1 /* pulse the i8042 reset line (port 0x64 <- 0xfe) */

#endif /* GUEST_SYSCALL_NR_H */
