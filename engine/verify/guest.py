"""Reading the guest's report: the console text between the init's "@@barsafe" markers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import InputError
from ..model import Device

MARK = "@@barsafe "


@dataclass
class GuestReport:
    booted: bool  # the init started (so QEMU accepted the device and the guest ran)
    finished: bool  # the init reached its end marker
    sections: dict[str, str] = field(default_factory=dict)
    kernel: str | None = None
    driver: str | None = None
    lspci: str = ""  # lspci -vvvnn -k of the device after the driver loaded
    device: Device | None = None  # that lspci as barsafe reads it
    parse_error: str | None = None
    msix_enabled: bool | None = None
    msix_vectors: int = 0  # /proc/interrupts lines for the device's MSI-X vectors
    msix_interrupts: int = 0  # their counts, summed over CPUs
    msi_interrupts: int = 0  # plain MSI, if the driver fell back to it
    irqs: dict[int, str] = field(default_factory=dict)  # the device's msi_irqs/: IRQ -> msi|msix
    insmod_failed: list[str] = field(default_factory=list)
    driver_messages: list[str] = field(default_factory=list)  # dmesg lines naming the device
    loading: str | None = None  # the module whose insmod had not returned when the console ended
    section: str | None = None  # the last report section the init began


def sections(console: str) -> tuple[bool, bool, dict[str, str]]:
    out: dict[str, list[str]] = {}
    current = None
    booted = finished = False
    for raw in console.splitlines():
        line = raw.rstrip("\r")
        idx = line.find(MARK)
        if idx >= 0:
            word = line[idx + len(MARK):].strip()
            if word == "begin":
                booted = True
            elif word == "end":
                finished = True
                current = None
            elif word.startswith("section "):
                current = word.split(None, 1)[1]
                out[current] = []
            continue
        if current is not None:
            out[current].append(line)
    return booted, finished, {k: "\n".join(v).strip("\n") for k, v in out.items()}


def activity(console: str) -> tuple[str | None, str | None]:
    """(module being loaded, last section begun) where the console ends: the last
    "@@barsafe loading M" with no "@@barsafe loaded M" after it, and the last section."""
    loading: str | None = None
    section: str | None = None
    for raw in console.splitlines():
        idx = raw.find(MARK)
        if idx < 0:
            continue
        word = raw[idx + len(MARK):].strip()
        if word.startswith("loading "):
            loading = word.split(None, 1)[1]
        elif word.startswith("loaded ") and word.split(None, 1)[1] == loading:
            loading = None
        elif word.startswith("section "):
            section = word.split(None, 1)[1]
    return (loading.rsplit("/", 1)[-1] if loading else None), section


def interrupts(text: str, irqs: dict[int, str]) -> tuple[int, int, int]:
    """(MSI-X vectors, MSI-X interrupt count, MSI interrupt count) in /proc/interrupts, for the
    device's own IRQs as its sysfs msi_irqs/ lists them (number -> "msix" or "msi")."""
    lines = text.splitlines()
    if not lines:
        return 0, 0, 0
    ncpu = len(lines[0].split())
    vectors = sum(1 for kind in irqs.values() if kind == "msix")
    msix = msi = 0
    for line in lines[1:]:
        parts = line.split()
        if len(parts) < ncpu + 1 or not parts[0].rstrip(":").isdigit():
            continue
        kind = irqs.get(int(parts[0].rstrip(":")))
        if kind is None:
            continue
        try:
            count = sum(int(p) for p in parts[1:1 + ncpu])
        except ValueError:
            continue
        if kind == "msix":
            msix += count
        else:
            msi += count
    return vectors, msix, msi


def msi_irqs(text: str) -> dict[int, str]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            out[int(parts[0])] = parts[1]
    return out


def parse(console: str, slot: str) -> GuestReport:
    booted, finished, secs = sections(console)
    rep = GuestReport(booted, finished, secs)
    rep.kernel = secs.get("uname", "").strip() or None
    rep.driver = secs.get("driver", "").strip() or None
    rep.lspci = secs.get("lspci", "") or secs.get("lspci-before", "")
    if rep.lspci.strip():
        from ..sources import lspci
        try:
            found = lspci.parse(rep.lspci, "guest lspci")
            rep.device = found[0] if found else None
        except InputError as exc:
            rep.parse_error = str(exc)
    m = re.search(r"MSI-X: Enable([+-])", rep.lspci)
    rep.msix_enabled = None if m is None else m[1] == "+"
    rep.irqs = msi_irqs(secs.get("msi_irqs", ""))
    rep.msix_vectors, rep.msix_interrupts, rep.msi_interrupts = interrupts(secs.get("interrupts", ""), rep.irqs)
    rep.insmod_failed = [l[len("failed "):] for l in secs.get("insmod", "").splitlines()
                         if l.startswith("failed ")]
    short = slot.split(":", 1)[1]
    rep.driver_messages = [l for l in secs.get("dmesg", "").splitlines() if slot in l or f" {short}:" in l][-12:]
    rep.driver_messages += [l for l in secs.get("insmod", "").splitlines() if l.startswith("pending:")]
    rep.loading, rep.section = activity(console)
    return rep


def stall_message(rep: GuestReport, silent: float) -> str:
    """Why a guest was ended early: its heartbeat stopped (vm.run's ``stalled``)."""
    where = (f"while insmod {rep.loading} was running: the driver's probe did not return"
             if rep.loading else f"during the init's {rep.section or 'start'} step")
    return (f"stopped: the guest printed nothing for {silent:.0f} s (its 2 s heartbeat stopped)"
            f" {where}")
