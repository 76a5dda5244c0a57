"""verify's results as text and as JSON-ready data (engine/cli.py prints them)."""

from __future__ import annotations

import re
from typing import Any

from ..report import jsonout
from ..report.text import header
from .run import CaseResult, Setup

GUEST_LINES = re.compile(r"^\s*(Region \d|Expansion ROM|Capabilities: \[[0-9a-f]+\] MSI-X|"
                         r"Vector table|PBA:|Kernel driver in use|Kernel modules)")


def yesno(v: bool | None) -> str:
    return "-" if v is None else "yes" if v else "no"


def preflight(setup: Setup) -> str:
    pf = setup.preflight
    lines = [f"barsafe verify {pf.slot}: cannot run here:"]
    lines += [f"  - {p}" for p in pf.problems]
    return "\n".join(lines)


def intro(setup: Setup) -> str:
    pf = setup.preflight
    mods = ", ".join(setup.modules.wanted) or "none"
    lines = [header(setup.device),
             f"  host: IOMMU group {pf.group}, bound to vfio-pci; guest: {pf.kernel} ({pf.kernel_release}),"
             f" accel {pf.accel}, QEMU {setup.qemu_version}",
             f"  guest driver modules: {mods} ({len(setup.modules.paths)} module files with dependencies)"]
    lines += [f"  note: {n}" for n in pf.notes + setup.modules.notes]
    rec = setup.answer.recommendation
    lines.append(f"  barsafe which: recommends {rec.option if rec else 'nothing'}")
    return "\n".join(lines)


def case(r: CaseResult) -> str:
    rep = r.report
    secs = f"{r.run.seconds:.0f}s" if r.run else "-"
    lines = [f"candidate {r.target} ({secs}): {r.summary}"]
    if not r.accepted:
        lines.append(f"  QEMU: {'refused: ' + r.qemu_message if r.qemu_message else 'did not start the guest'}")
    else:
        assert rep is not None
        fired = (f"yes ({rep.msix_vectors} vectors, {rep.msix_interrupts} interrupts)"
                 if rep.msix_interrupts else
                 f"no ({rep.msix_vectors} vectors allocated, 0 interrupts"
                 + (f"; {rep.msi_interrupts} MSI interrupts" if rep.msi_interrupts else "") + ")")
        lines.append(f"  QEMU accepted; driver bound: {rep.driver or 'no'}; MSI-X enabled:"
                     f" {yesno(rep.msix_enabled)}; MSI-X fired: {fired}")
        lines.append("  guest lspci:")
        lines += [f"    {l.strip()}" for l in rep.lspci.splitlines() if GUEST_LINES.match(l)]
        if rep.device is None:
            lines.append(f"  layout: the guest's lspci could not be read ({rep.parse_error or 'empty'})")
        elif r.predicted.layout is None:
            lines.append(f"  layout: simulate predicted a refusal ({r.predicted.refused}), QEMU accepted")
        elif r.differences:
            lines.append("  layout DIFFERS from simulate:")
            lines += [f"    {d}" for d in r.differences]
        else:
            lines.append("  layout == simulate (every BAR's index, kind, prefetch and size;"
                         " MSI-X table and PBA BAR and offset)")
        if rep.insmod_failed:
            lines += [f"  insmod failed: {f}" for f in rep.insmod_failed]
        if not rep.driver or not rep.msix_interrupts:
            lines += [f"  guest: {m.strip()}" for m in rep.driver_messages[-6:]]
    if r.reasons:
        lines += [f"  barsafe {r.verdict}: {why}" for why in r.reasons]
    return "\n".join(lines)


def table(results: list[CaseResult]) -> str:
    rows = [("target", "QEMU", "layout==simulate", "driver", "MSI-X fired", "barsafe", "agrees")]
    for r in results:
        rep = r.report
        rows.append((r.target, "accepted" if r.accepted else "refused" if r.observed == "refused" else r.observed,
                     yesno(r.layout_equal),
                     (rep.driver or "no") if r.accepted and rep else "-",
                     yesno(rep.msix_interrupts > 0) if r.accepted and rep else "-",
                     r.verdict, yesno(r.agrees)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def data(setup: Setup, results: list[CaseResult]) -> dict[str, Any]:
    pf = setup.preflight
    return {
        "slot": pf.slot, "device": jsonout.device(setup.device),
        "qemu": setup.qemu_version, "kernel": str(pf.kernel), "kernel_release": pf.kernel_release,
        "accel": pf.accel, "modules": setup.modules.wanted, "notes": pf.notes + setup.modules.notes,
        "recommendation": setup.answer.recommendation.option if setup.answer.recommendation else None,
        "candidates": [{
            "target": r.target, "command": list(r.run.argv) if r.run else None,
            "seconds": round(r.run.seconds, 1) if r.run else None,
            "accepted": r.accepted, "qemu_message": r.qemu_message,
            "predicted": jsonout.outcome(r.predicted), "verdict": r.verdict, "reasons": r.reasons,
            "guest_lspci": r.report.lspci if r.report and r.accepted else None,
            "observed_layout": (jsonout.device(r.report.device)
                                if r.report and r.accepted and r.report.device else None),
            "layout_equal": r.layout_equal,
            "differences": [{"field": d.field, "predicted": d.predicted, "observed": d.observed}
                            for d in r.differences],
            "driver": r.report.driver if r.report and r.accepted else None,
            "msix_enabled": r.report.msix_enabled if r.report and r.accepted else None,
            "msix_vectors": r.report.msix_vectors if r.report else 0,
            "msix_interrupts": r.report.msix_interrupts if r.report else 0,
            "guest_kernel": r.report.kernel if r.report else None,
            "observed": r.observed, "agrees": r.agrees, "summary": r.summary,
            "guest_messages": r.report.driver_messages if r.report else [],
        } for r in results],
    }
