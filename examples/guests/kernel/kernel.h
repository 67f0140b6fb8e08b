/* SPDX-License-Identifier: MIT */
/*
 * kernel.h - what the ring-0 files of the guest share.
 *
 * The guest kernel is a few hundred instructions: descriptor tables, the
 * exception path and a way into ring 3. struct trap_frame is the exact
 * stack image built by the CPU and trap_common (start.S): a handler that
 * edits it (RIP, RAX, ...) and returns resumes the interrupted code with
 * those values.
 */
#ifndef GUEST_KERNEL_H
#define GUEST_KERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernel/layout.h"
#include "common/guest_abi.h"

#define TRAP_UD 6
#define TRAP_PF 14

/* Lowest address first: the registers trap_common pushed, then the CPU's. */
struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector;
	uint64_t error; /* 0 for vectors without an error code */
	uint64_t rip, cs, rflags, rsp, ss;
};

_Static_assert(sizeof(struct trap_frame) == 22 * 8, "trap frame layout");

/* start.S */
extern const uint64_t trap_stubs[IDT_VECTORS];
void user_enter(uint64_t rip, uint64_t rsp, uint64_t arg0, uint64_t arg1)
	__attribute__((noreturn));

/* main.c */
extern uint8_t kstack[KERNEL_MAX_CPUS][KSTACK_SIZE];
void kernel_main(struct boot_info *bi, uint64_t cpu) __attribute__((noreturn));
/*
 * End the guest with code: through the test device, or when it is absent
 * (BOOT_INFO_F_NO_TESTDEV) with a UART line and a write to the
 * isa-debug-exit port 0xf4 (QEMU exits with (code << 1) | 1).
 */
void kernel_exit(uint32_t code) __attribute__((noreturn));

/* mb_boot.c (guest-mb.elf only): called by _start32, returns boot info. */
struct boot_info *mb_boot(uint32_t info);

/* gdt.c: this CPU's GDT with its TSS, loaded, segments reloaded, ltr. */
void gdt_init(unsigned int cpu);

/* idt.c: this CPU's IDT with vectors 0-47, loaded. */
void idt_init(unsigned int cpu);

/* trap.c */
void trap_dispatch(struct trap_frame *f);
void trap_panic(const struct trap_frame *f) __attribute__((noreturn));
int trap_cpu(const struct trap_frame *f);

/* syscall.c: true when f was a system call that has been handled. */
bool syscall_handle(struct trap_frame *f);

/* pagefault.c: fix the fault up and return, or panic. */
void pagefault_handle(struct trap_frame *f);
/* SYS_PF_POOL and SYS_PF_COUNT (lib/syscall_nr.h). */
uint64_t pagefault_set_pool(uint64_t pool, uint64_t pool_pages, uint64_t va,
			    uint64_t pages);
uint64_t pagefault_count(void);

/* timer.c: vectors 32-47, and SYS_TIMER_* / SYS_IPI_SEND (result). */
void timer_interrupt(struct trap_frame *f);
uint64_t timer_syscall(struct trap_frame *f, uint64_t nr);

/* uart.c */
void uart_write(const char *s, size_t len);
void uart_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The ring-3 program (user/main.c), entered by kernel_main. */
void user_main(struct boot_info *bi, uint64_t cpu) __attribute__((noreturn));

#endif /* GUEST_KERNEL_H */
