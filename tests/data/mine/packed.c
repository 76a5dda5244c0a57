// SPDX-License-Identifier: GPL-2.0
/* pds_core's compaction of memory BARs into an array, and QAT's for_each_set_bit version. */
#include <linux/pci.h>

#define PK_BARS_MAX	4

struct pk_bar { u64 len; int index; };
struct pk { struct pk_bar bars[PK_BARS_MAX]; struct pk_bar qat[3]; };

static const struct pci_device_id pk_ids[] = {
	{ PCI_DEVICE_SUB(0x1dd8, 0x100c, 0x1dd8, 0x4000) },
	{ 0 }
};

static int pk_map(struct pk *pk, struct pci_dev *pdev)
{
	unsigned long bar_mask;
	int i, j, bar_nr;

	for (i = 0, j = 0; i < PK_BARS_MAX; i++) {
		if (!(pci_resource_flags(pdev, i) & IORESOURCE_MEM))
			continue;
		pk->bars[j].len = pci_resource_len(pdev, i);
		pk->bars[j].index = i;
		j++;
	}
	i = 0;
	bar_mask = pci_select_bars(pdev, IORESOURCE_MEM);
	for_each_set_bit(bar_nr, &bar_mask, PCI_STD_NUM_BARS) {
		struct pk_bar *bar = &pk->qat[i++];

		bar->index = bar_nr;
	}
	return 0;
}

static int pk_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct pk *pk = kzalloc(sizeof(*pk), GFP_KERNEL);

	return pk_map(pk, pdev);
}

static struct pci_driver pk_driver = {
	.name = "packed",
	.id_table = pk_ids,
	.probe = pk_probe,
};
