// SPDX-License-Identifier: GPL-2.0
/* sfc's shape: the BAR comes from an ops function per chip, through a helper's parameter,
 * and the helper is reached through an ops table that probe installs. */
#include <linux/pci.h>

struct in_nic;
struct in_type { unsigned int (*mem_bar)(struct in_nic *nic); };
struct in_nic { const struct in_type *type; struct pci_dev *pci_dev; };
struct net_device_ops { int (*ndo_open)(struct in_nic *nic); };

static unsigned int in_pf_mem_bar(struct in_nic *nic)
{
	switch (nic->pci_dev->device) {
	case 0x0b03:
		return 0;
	default:
		return 2;
	}
}

static unsigned int in_vf_mem_bar(struct in_nic *nic)
{
	return 0;
}

static const struct in_type in_pf_type = { .mem_bar = in_pf_mem_bar };
static const struct in_type in_vf_type = { .mem_bar = in_vf_mem_bar };

static int in_init_io(struct in_nic *nic, int bar)
{
	return pci_resource_len(nic->pci_dev, bar) / 8192;
}

static int in_open(struct in_nic *nic)
{
	return in_init_io(nic, nic->type->mem_bar(nic));
}

static const struct net_device_ops in_netdev_ops = { .ndo_open = in_open };

static const struct pci_device_id in_ids[] = {
	{ PCI_DEVICE(0x1924, 0x0903), .driver_data = (unsigned long)&in_pf_type },
	{ PCI_DEVICE(0x1924, 0x1903), .driver_data = (unsigned long)&in_vf_type },
	{ 0 }
};

static int in_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct net_device *dev = alloc_netdev();

	dev->netdev_ops = &in_netdev_ops;
	return 0;
}

static struct pci_driver in_driver = {
	.name = "indirect",
	.id_table = in_ids,
	.probe = in_probe,
};
