// SPDX-License-Identifier: GPL-2.0
/* nvme's CMB: the BAR named by a device register; a length compared with a run-time value. */
#include <linux/pci.h>

#define UN_BIR(x)	((x) & 0x7)

static const struct pci_device_id un_ids[] = {
	{ PCI_DEVICE_CLASS(PCI_CLASS_STORAGE_EXPRESS, 0xffffff) },
	{ PCI_VDEVICE(INTEL, UN_NO_SUCH_DEVICE) },
	{ 0, }
};

static int un_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	void __iomem *regs = pci_iomap(pdev, 0, 0);
	u32 cmbloc = readl(regs + 0x38);
	int bar = UN_BIR(cmbloc);
	u64 size = readl(regs + 0x3c);

	if (size > pci_resource_len(pdev, bar))
		return 0;
	if (size > pci_resource_len(pdev, 0))
		return -ENOMEM;
	return 0;
}

static struct pci_driver un_driver = {
	.name = "unresolved",
	.id_table = un_ids,
	.probe = un_probe,
};
