/* A few lines of include/linux/pci_ids.h, as the miner reads them. */
#define PCI_VENDOR_ID_LSI_LOGIC		0x1000
#define PCI_VENDOR_ID_INTEL		0x8086
#define PCI_VENDOR_ID_REALTEK		0x10ec
#define PCI_DEVICE_ID_INTEL_FAKE	0x1234
#define PCI_CLASS_STORAGE_EXPRESS	0x010802
