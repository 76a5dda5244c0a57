// SPDX-License-Identifier: GPL-2.0
/* r8169's lookup: ffs() of the memory-BAR mask; atlantic's: the first memory BAR of 0..3. */
#include <linux/pci.h>

static const struct pci_device_id ff_ids[] = {
	{ PCI_VDEVICE(REALTEK, 0x8168) },
	{}
};

static int ff_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	int region, bar;

	region = ffs(pci_select_bars(pdev, IORESOURCE_MEM)) - 1;
	if (region < 0)
		return -ENODEV;
	if (pcim_iomap_regions(pdev, BIT(region), "ff"))
		return -ENOMEM;
	for (bar = 0; bar < 4; ++bar) {
		if (IORESOURCE_MEM & pci_resource_flags(pdev, bar)) {
			if (pci_resource_len(pdev, bar) <= 24)
				return -EIO;
			break;
		}
	}
	return 0;
}

static struct pci_driver ff_driver = {
	.name = "ffs",
	.id_table = ff_ids,
	.probe = ff_probe,
};
