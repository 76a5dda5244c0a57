// SPDX-License-Identifier: GPL-2.0
/* Fixed BAR indices: a #define, a literal, a mask; MSI-X through pci_alloc_irq_vectors. */
#include <linux/pci.h>
#include "fixed.h"

#define FX_REG_BAR	0
#define FX_DB_BAR	(FX_REG_BAR + 2)
#define FX_ONE(d)	{ PCI_VDEVICE(INTEL, (d) ?: 0x5555) }
#define FX_PAIR(d)	FX_ONE(d), FX_ONE((d) + 1)

static const struct pci_device_id fx_ids[] = {
	{ PCI_VDEVICE(INTEL, FX_DEVICE_ID), 0 },
	{ PCI_DEVICE(PCI_VENDOR_ID_LSI_LOGIC, 0x0097) },
	FX_PAIR(0x10),
	{ PCI_DEVICE_DATA(INTEL, FAKE, 0) },
	{ 0, }
};

static int fx_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	void __iomem *regs;
	int rc;

	regs = pci_iomap(pdev, FX_REG_BAR, 0);
	rc = pci_request_region(pdev, FX_DB_BAR, "fx");
	rc = pcim_iomap_regions(pdev, BIT(4) | BIT(FX_REG_BAR), "fx");
	rc = pci_alloc_irq_vectors(pdev, 1, 8, PCI_IRQ_MSIX | PCI_IRQ_MSI);
	return rc;
}

static struct pci_driver fx_driver = {
	.name = KBUILD_MODNAME,
	.id_table = fx_ids,
	.probe = fx_probe,
};
module_pci_driver(fx_driver);
