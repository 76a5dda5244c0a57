// SPDX-License-Identifier: GPL-2.0
/* mpt3sas's loop: the first I/O and the first memory resource, with "found" guards. */
#include <linux/pci.h>

static const struct pci_device_id fm_ids[] = {
	{ PCI_DEVICE(0x1000, 0x0097) },
	{ }
};

static int fm_map(struct pci_dev *pdev)
{
	u64 pio_sz, memap_sz;
	int i;

	for (i = 0, memap_sz = 0, pio_sz = 0; (i < DEVICE_COUNT_RESOURCE) &&
	     (!memap_sz || !pio_sz); i++) {
		if (pci_resource_flags(pdev, i) & IORESOURCE_IO) {
			if (pio_sz)
				continue;
			pio_sz = pci_resource_len(pdev, i);
		} else if (pci_resource_flags(pdev, i) & IORESOURCE_MEM) {
			if (memap_sz)
				continue;
			memap_sz = pci_resource_len(pdev, i);
		}
	}
	return 0;
}

static int fm_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	return fm_map(pdev);
}

static struct pci_driver fm_driver = {
	.name = "firstmem",
	.id_table = fm_ids,
	.probe = fm_probe,
};
