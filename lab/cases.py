"""Lab results as observed cases in corpus/cases/ (the format of corpus/cases/README.md).

One file per lab device, ``lab-<device>.yaml``: the device as L1's sysfs shows
it (read by barsafe verify, with the guest driver's module), the platform
(x86, 4K pages, I/O port space), one observation per target that decided
something (QEMU refused it, or the driver bound with MSI-X interrupts firing:
works; the driver did not bind: fails), and the provenance: QEMU version,
guest kernel, date, the exact commands, and per target what the guest showed.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import yaml

from engine.model import Bar, BarKind, Device, Msix
from engine.sources import record

from .devices import DEVICES


def device_from_json(d: dict, name: str) -> Device:
    bars = tuple(Bar(b["index"], BarKind(b["kind"]), b["size"], prefetchable=b["prefetchable"],
                     assigned=b["assigned"]) for b in d["bars"])
    m = d["msix"]
    msix = Msix(m["entries"], m["table_bar"], m["table_offset"], m["pba_bar"], m["pba_offset"]) if m else None
    return Device(d["slot"], vendor=d["vendor"], device=d["device"], subsystem_vendor=d["subsystem_vendor"],
                  subsystem_device=d["subsystem_device"], class_code=d["class"], revision=d["revision"],
                  name=d["name"], bars=bars, msix=msix, driver=d["driver"],
                  modules=tuple(d["modules"]),
                  provenance=(("source", f"barsafe lab, L1's sysfs of the emulated {name} as barsafe"
                                         " verify read it (L1 plays the host)"),))


def observation(c: dict) -> dict | None:
    target = c["target"]
    if not c["accepted"] and c["observed"] == "refused":
        return {"strategy": target, "outcome": "fails", "evidence": f"QEMU refused: {c['qemu_message']}"}
    if c["observed"] == "works":
        return {"strategy": target, "outcome": "works",
                "evidence": f"guest driver {c['driver']} bound; {c['msix_vectors']} MSI-X vectors,"
                            f" {c['msix_interrupts']} interrupts"}
    if c["observed"] == "fails":
        said = [m for m in c["guest_messages"] if m.startswith(("pending: ", "stopped: "))]  # verify's words
        dmesg = [m.split("] ", 1)[-1] for m in c["guest_messages"]
                 if not m.startswith(("pending: ", "stopped: ", "ended: "))]
        msgs = "; ".join(said + dmesg[-1:]) or (
            "loading the driver never returned: the guest was stopped at verify's timeout"
            f" after {c['seconds']:.0f} s")
        return {"strategy": target, "outcome": "fails",
                "evidence": f"QEMU accepted; the guest driver did not bind ({msgs})"}
    return None  # bound but no MSI-X interrupt seen, or timed out: decides nothing


def guest_lines(text: str | None) -> list[str]:
    keep = ("Region", "Capabilities: [", "Vector table", "PBA:", "Kernel driver")
    return [l.strip() for l in (text or "").splitlines()
            if l.strip().startswith(keep) and ("MSI-X" in l or not l.strip().startswith("Capabilities"))]


def case(name: str, entry: dict, summary: dict, date: str) -> dict:
    v = entry["verify"]
    lab = DEVICES[name]
    device = device_from_json(v["device"], name)
    rec = record.dump_all([device])
    cands = v["candidates"]
    obs = [o for o in (observation(c) for c in cands) if o]
    return {
        "title": f"QEMU {name} ({lab.what}), passed through with vfio-pci: barsafe lab, by execution",
        "device": rec,
        "platform": {"page_size": "4K", "io_space": True},
        "hypervisor": f"QEMU {v['qemu']}: L1 (the host) TCG -cpu max, q35, intel-iommu intremap=on,"
                      f" kernel {v['kernel_release']}; L2 -accel {v['accel']}",
        "guest_driver": f"{lab.driver} (Linux {v['kernel_release']})",
        "observations": obs,
        "lab": {
            "date": date,
            "qemu": v["qemu"],
            "guest_kernel": v["kernel_release"],
            "lab_command": summary.get("lab_command", ""),
            "l1_command": summary.get("l1_command", ""),
            "verify_command": entry["l1"].get("command") or (  # what lab/l1.py runs
                f"barsafe verify {v['slot']} --targets {','.join(entry['targets'])} --timeout"
                f" {summary.get('case_timeout', 420.0)} --keep-logs OUT/{name}-logs --json"),
            "results": [{
                "target": c["target"], "accepted": c["accepted"], "qemu_message": c["qemu_message"],
                "layout_equal_to_simulate": (False if c["accepted"] and c["predicted"].get("refused")
                                             else c["layout_equal"]),
                "differences": [f"{d['field']}: simulate {d['predicted']}, guest {d['observed']}"
                                for d in c["differences"]],
                "driver": c["driver"], "msix_vectors": c["msix_vectors"],
                "msix_interrupts": c["msix_interrupts"], "barsafe_verdict": c["verdict"],
                "agrees": c["agrees"], "seconds": c["seconds"],
                "guest_lspci": guest_lines(c["guest_lspci"]),
                "command": " ".join(c["command"] or []),
            } for c in cands],
        },
        **({"notes": [f"known difference, reported: {lab.known.why}"]} if lab.known else {}),
        "sources": [f"barsafe lab run of {date}: python -m lab.run (lab/README in README.md, 'The lab')"],
    }


def _flow(value) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True, sort_keys=False)
    return text.strip().removesuffix("\n...").strip()


def dump(data: dict) -> str:
    """The case in the corpus's own style: the device as barsafe writes records, flow-style
    observations, then the lab's provenance."""
    out = [f"title: {_flow(data['title'])}", "device:"]
    out += [f"  {line}" if line else "" for line in data["device"].rstrip("\n").split("\n")]
    out.append(f"platform: {_flow(data['platform'])}")
    out.append(f"hypervisor: {_flow(data['hypervisor'])}")
    out.append(f"guest_driver: {_flow(data['guest_driver'])}")
    out.append("observations:")
    out += [f"  - {_flow(o)}" for o in data["observations"]]
    lab = yaml.safe_dump({"lab": data["lab"]}, sort_keys=False, width=110, allow_unicode=True)
    out.append(lab.rstrip("\n"))
    if data.get("notes"):
        out.append("notes:")
        out += [f"  - {_flow(n)}" for n in data["notes"]]
    out.append("sources:")
    out += [f"  - {_flow(src)}" for src in data["sources"]]
    return "\n".join(out) + "\n"


def write_all(summary: dict, folder: Path) -> list[Path]:
    date = datetime.date.today().isoformat()
    written = []
    for name, entry in summary["devices"].items():
        if "verify" not in entry:
            continue
        data = case(name, entry, summary, date)
        if not data["observations"]:
            continue
        path = folder / f"lab-{name}.yaml"
        old = yaml.safe_load(path.read_text()) if path.is_file() else None
        if old:  # merge: targets run before and not now are kept
            have = {o["strategy"] for o in data["observations"]}
            data["observations"] = [o for o in old["observations"] if o["strategy"] not in have] + data["observations"]
            have_r = {r["target"] for r in data["lab"]["results"]}
            data["lab"]["results"] = [r for r in old["lab"]["results"] if r["target"] not in have_r] + data["lab"]["results"]
            order = {t: i for i, t in enumerate(("off", "bar0", "bar1", "bar2", "bar3", "bar4", "bar5"))}
            data["observations"].sort(key=lambda o: order.get(o["strategy"], 9))
            data["lab"]["results"].sort(key=lambda r: order.get(r["target"], 9))
        path.write_text(dump(data))
        written.append(path)
    return written
