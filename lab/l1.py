"""Runs inside the lab's outer VM (L1), which plays the host: bind each lab device to vfio-pci
and run `barsafe verify` on it.  Reads OUT/plan.json, writes OUT/<name>.json (verify's JSON),
OUT/<name>.txt (verify's text, when asked), OUT/<name>.l1-lspci, OUT/<name>.l1-sysfs/ (the
device's config and resource files as L1's kernel shows them) and OUT/l1.json (timings).
verify runs this checkout's engine (PYTHONPATH), whatever barsafe the venv has installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

PCI = Path("/sys/bus/pci/devices")
REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> None:
    path.write_text(text)


def child_of_port(index: int, base: int) -> str | None:
    port = PCI / f"0000:00:{base + index:02x}.0"
    if not port.exists():
        return None
    kids = sorted(p.name for p in port.resolve().iterdir() if p.name.startswith("0000:") and ":00." in p.name[5:])
    return kids[0] if kids else None


def bind_vfio(slot: str) -> str:
    dev = PCI / slot
    (dev / "driver_override").write_text("vfio-pci")
    if (dev / "driver").exists():
        (dev / "driver" / "unbind").write_text(slot)
    Path("/sys/bus/pci/drivers_probe").write_text(slot)
    return os.path.basename(os.readlink(dev / "driver")) if (dev / "driver").exists() else "none"


def unassign_bars(slot: str, bars: list[int]) -> str:
    """Leave BARs unassigned, as firmware and kernel do on a host without I/O port space.

    L1 boots with pci=nobar: when the kernel first scans a bus it zeroes any BAR found at
    address 0 instead of assigning it (arch/x86/pci/common.c pcibios_fixup_device_resources,
    called from pcibios_fixup_bus only for a bus not yet added).  So, with no driver on the
    device: turn off its decoding, write 0 to the BARs, remove its root port (so the bus below
    is new again) and rescan.  The device comes back with those BARs of size 0, VFIO reports
    their regions with size 0, and QEMU (vfio_bar_prepare) leaves the slots empty.
    """
    def run(*a: str) -> None:
        subprocess.run(a, check=True, capture_output=True, text=True, timeout=60)
    dev = PCI / slot
    port = dev.resolve().parent.name
    if (dev / "driver").exists():
        (dev / "driver" / "unbind").write_text(slot)
    run("setpci", "-s", slot, "COMMAND=0000:0003")
    for bar in bars:
        run("setpci", "-s", slot, f"BASE_ADDRESS_{bar}=0")
    (PCI / port / "remove").write_text("1")
    time.sleep(1)
    Path("/sys/bus/pci/rescan").write_text("1")
    time.sleep(3)
    return (PCI / slot / "resource").read_text()


def main() -> int:
    out = Path(sys.argv[1])
    plan = json.loads((out / "plan.json").read_text())
    log: dict = {"l1_uptime_at_start": float(Path("/proc/uptime").read_text().split()[0]), "devices": {}}
    subprocess.run(["modprobe", "vfio-pci"], check=False)
    for item in plan["devices"]:
        try:
            one_device(item, plan, out, log)
        except Exception as exc:  # record it and go on with the next device
            log["devices"].setdefault(item["name"], {})["error"] = f"{type(exc).__name__}: {exc}"
            write(out / f"{item['name']}.stderr", f"lab/l1.py: {type(exc).__name__}: {exc}\n")
        write(out / "l1.json", json.dumps(log, indent=2))
    write(out / "l1.json", json.dumps(log, indent=2))
    return 0


def one_device(item: dict, plan: dict, out: Path, log: dict) -> None:
    name = item["name"]
    slot = child_of_port(item["index"], plan["root_port_base"])
    entry: dict = {"slot": slot}
    log["devices"][name] = entry
    if slot is None:
        entry["error"] = "device not found behind its root port"
        return
    if item.get("unassign"):
        entry["resource_after_unassign"] = unassign_bars(slot, item["unassign"])
    lspci = subprocess.run(["lspci", "-vvvnn", "-k", "-s", slot], capture_output=True, text=True)
    write(out / f"{name}.l1-lspci", lspci.stdout)
    keep = out / f"{name}.l1-sysfs"
    keep.mkdir(exist_ok=True)
    for f in ("config", "resource"):  # what barsafe verify's sysfs reader gets
        (keep / f).write_bytes((PCI / slot / f).read_bytes())
    entry["bound"] = bind_vfio(slot)
    write(out / f"{name}.l1-lspci-vfio",
          subprocess.run(["lspci", "-vvvnn", "-k", "-s", slot], capture_output=True, text=True).stdout)
    argv = [plan["barsafe"], "verify", slot, "--targets", ",".join(item["targets"]),
            "--timeout", str(plan["timeout"]), "--keep-logs", str(out / f"{name}-logs")]
    if plan.get("accel"):
        argv += ["--accel", plan["accel"]]
    if not item.get("text"):
        argv.append("--json")
    entry["command"] = "barsafe " + " ".join(argv[1:])
    start = time.monotonic()
    env = dict(os.environ, BARSAFE_CACHE_DIR="/tmp/barsafe-cache", PYTHONPATH=str(REPO))
    budget = len(item["targets"]) * (plan["timeout"] + 60) + 300
    res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=budget)
    entry["seconds"] = round(time.monotonic() - start, 1)
    entry["exit"] = res.returncode
    write(out / (f"{name}.txt" if item.get("text") else f"{name}.json"), res.stdout)
    write(out / f"{name}.stderr", res.stderr)


if __name__ == "__main__":
    sys.exit(main())
