// SPDX-License-Identifier: GPL-2.0
/* nouveau's shape: the BAR API behind a wrapper that takes the index, called directly and
 * through a struct of function pointers; each call site is its own BAR use. */
#include <linux/pci.h>
#include <linux/sizes.h>

struct wr_dev;
struct wr_func { u64 (*resource_size)(struct wr_dev *dev, unsigned bar); };
struct wr_dev { const struct wr_func *func; struct pci_dev *pdev; u64 vm; };

static u64 wr_resource_size(struct wr_dev *dev, unsigned bar)
{
	return pci_resource_len(dev->pdev, bar);
}

static const struct wr_func wr_pci_func = { .resource_size = wr_resource_size };

static const struct pci_device_id wr_ids[] = {
	{ PCI_DEVICE(0x10de, 0x1234) },
	{ }
};

static int wr_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct wr_dev *dev = kzalloc(sizeof(*dev), GFP_KERNEL);

	dev->func = &wr_pci_func;
	dev->vm = dev->func->resource_size(dev, 3) >> 12;
	if (wr_resource_size(dev, 1) != SZ_16M)
		return -ENODEV;
	return 0;
}

static struct pci_driver wr_driver = {
	.name = "wrapper",
	.id_table = wr_ids,
	.probe = wr_probe,
};
