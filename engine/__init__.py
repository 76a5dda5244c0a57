"""barsafe: predict which MSI-X relocation a PCI device's guest driver survives.

The package is a pipeline: ``sources`` (parsers) -> ``model`` (frozen
dataclasses) -> ``relocate`` / ``strategies`` (QEMU's arithmetic) ->
``report`` (text and JSON) -> ``cli``.  Everything but ``cli`` and the
readers in ``sources`` is free of I/O.
"""

__version__ = "0.1.0"
