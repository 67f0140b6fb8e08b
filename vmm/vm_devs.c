/* SPDX-License-Identifier: MIT */
/*
 * vm_devs.c - the VM's devices as one table (devices/dev.h): which ones a
 * VM embeds, and the VM-level calls that go over all of them, so that
 * neither the VM core nor migration names a device type.
 */
#include "vmm/vm.h"

/*
 * Both sides of a migration list the devices in this order and match
 * them by index (the HELLO compares the lists by name): optional devices
 * go last, after these.
 */
int vm_devs_register(struct vm *vm, char *err, size_t errlen)
{
	int r = dev_table_add(&vm->devs, "serial-com1", &serial_dev_ops,
			      &vm->com1, err, errlen);

	if (!r)
		r = dev_table_add(&vm->devs, "testdev", &testdev_dev_ops,
				  &vm->testdev, err, errlen);
	return r;
}

const struct dev *vm_dev_at(const struct vm *vm, int i)
{
	return i >= 0 && i < vm->devs.nr ? &vm->devs.dev[i] : NULL;
}

void *vm_dev_find(struct vm *vm, const char *name)
{
	struct dev *d = dev_table_find(&vm->devs, name);

	return d ? d->dev : NULL;
}

int vm_devs_nr_quiesce(struct vm *vm)
{
	return dev_table_nr_quiesce(&vm->devs);
}

int vm_devs_quiesce_request(struct vm *vm)
{
	return dev_table_quiesce_request(&vm->devs);
}

int vm_devs_quiesce_poll(struct vm *vm, char *err, size_t errlen)
{
	return dev_table_quiesce_poll(&vm->devs, err, errlen);
}

uint64_t vm_devs_quiesce_ns(struct vm *vm)
{
	return dev_table_quiesce_ns(&vm->devs);
}

void vm_devs_resume(struct vm *vm)
{
	dev_table_resume(&vm->devs);
}

void vm_devs_pinned(struct vm *vm, dev_pin_fn fn, void *opaque)
{
	dev_table_pinned(&vm->devs, fn, opaque);
}

void vm_devs_set_ack_hook(struct vm *vm, dev_ack_fn fn, void *opaque)
{
	dev_table_set_ack(&vm->devs, fn, opaque);
}
