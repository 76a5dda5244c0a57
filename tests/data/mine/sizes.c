// SPDX-License-Identifier: GPL-2.0
/* tsi721's flag and size tests; a length turned into a quantity; a mask compared whole. */
#include <linux/pci.h>
#include <linux/sizes.h>

#define SZ_REG_SPACE	SZ_512K

static char sz_driver_name[] = "sizes";	/* igb names its driver this way */

static const struct pci_device_id sz_ids[] = {
	{ PCI_DEVICE(0x111d, 0x80ab) },
	{ 0, }
};

static int sz_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	u32 doorbells;
	resource_size_t len;

	if (!(pci_resource_flags(pdev, 0) & IORESOURCE_MEM) ||
	    pci_resource_flags(pdev, 0) & IORESOURCE_MEM_64 ||
	    pci_resource_len(pdev, 0) < SZ_REG_SPACE)
		return -ENODEV;
	if (pci_resource_flags(pdev, 2) & IORESOURCE_PREFETCH)
		return 0;
	len = pci_resource_len(pdev, 2);
	doorbells = len >> 12;
	if (pci_select_bars(pdev, IORESOURCE_MEM) != (BIT(0) | BIT(2)))
		return -EINVAL;
	return doorbells;
}

static struct pci_driver sz_driver = {
	.name = sz_driver_name,
	.id_table = sz_ids,
	.probe = sz_probe,
};
