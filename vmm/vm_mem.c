/* SPDX-License-Identifier: MIT */
/*
 * vm_mem.c - the VM's policy for its guest RAM's backing (ept/mem_back.h):
 * --mem-prealloc populates it, --mlock locks it, at creation or, on a live
 * update destination, once the source's memfd is adopted (before the
 * source pauses, so neither costs downtime). Main (event-loop) thread,
 * before any vCPU of this VM runs.
 */
#include <stdio.h>
#include <unistd.h>

#include "common/clock.h"
#include "ept/mem_back.h"
#include "vmm/vm.h"

int vm_mem_hold(struct vm *vm, char *err, size_t errlen)
{
	uint64_t t0 = clock_now_ns();
	int r = 0;

	if (vm->cfg.mem_prealloc) {
		r = mem_populate(&vm->mem, err, errlen);
		if (r)
			return r;
		fprintf(stderr,
			"vmm: --mem-prealloc: %llu MiB populated in %llu ms\n",
			(unsigned long long)vm->mem.size >> 20,
			(unsigned long long)(clock_now_ns() - t0) / 1000000);
	}
	if (vm->cfg.mem_lock)
		r = mem_lock(&vm->mem, err, errlen);
	return r;
}

int vm_mem_adopt(struct vm *vm, int fd, char *err, size_t errlen)
{
	int r = mem_adopt_fd(&vm->mem, fd, err, errlen);

	if (r) {
		close(fd);
		return r;
	}
	return vm_mem_hold(vm, err, errlen);
}
