#define SZ_4K				0x00001000
#define SZ_512K				0x00080000
#define SZ_16M				0x01000000
