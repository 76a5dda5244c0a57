#define PCI_ANY_ID (~0)
