"""Turn model values into what users read: lspci-style text and the documented JSON."""
