"""Names for devices whose input gave only numbers: a sysfs directory, `lspci -n`.

lspci prints "Ethernet controller: Intel Corporation 82574L Gigabit Network Connection"
beside the IDs by looking them up in pci.ids; so does barsafe, through a lookup the reader
engine/sources/pciids.py builds from the system's file.  Here the lookup is applied: pure,
no I/O.  Names the input had are kept as they are.
"""

from __future__ import annotations

from .model import Device, text_problem

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: it costs `which` start-up
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # Lookup is for type checkers; nothing checks it at run time

UNAVAILABLE = "names unavailable: {why}"


class Lookup(Protocol):
    about: str  # where the names come from: 'pci.ids 2023.04.10 (/usr/share/misc/pci.ids)'

    def device_name(self, vendor: int, device: int) -> str | None: ...

    def class_name(self, class_code: int) -> str | None: ...


def lacks_names(device: Device) -> bool:
    """The input gave IDs or a class without the names lspci prints beside them."""
    return (device.name is None and device.vendor is not None and device.device is not None) or (
        device.class_name is None and device.class_code is not None)


def named(device: Device, names: Lookup | str) -> Device:
    """``device`` with the vendor/device and class names its input lacked, from ``names``;
    ``names`` a reason instead (no pci.ids on this system, or a damaged one): the device
    with a note saying names are unavailable and why."""
    from .frozen import replace  # dataclasses.replace for frozen records, without importing dataclasses
    if not lacks_names(device):
        return device
    if isinstance(names, str):
        note = UNAVAILABLE.format(why=names)
        return device if note in device.notes else replace(device, notes=(*device.notes, note))
    name, class_name = device.name, device.class_name
    if name is None and device.vendor is not None and device.device is not None:
        name = _usable(names.device_name(device.vendor, device.device))
    if class_name is None and device.class_code is not None:
        class_name = _usable(names.class_name(device.class_code))
    if (name, class_name) == (device.name, device.class_name):
        return device
    return replace(device, name=name, class_name=class_name)


def _usable(text: str | None) -> str | None:
    """A name a Device can hold (no control characters: model.text_problem), else none."""
    return text if text is not None and text_problem(text) is None else None
