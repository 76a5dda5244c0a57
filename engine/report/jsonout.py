"""The documented, stable JSON shapes (README: "JSON output").  Numbers are integers."""

from __future__ import annotations

from ..model import Bar, Device, Msix
from ..relocate import MsixDiagnosis, Outcome, diagnose_msix

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: it costs `which` start-up
if TYPE_CHECKING:
    from typing import Any

JSON_VERSION = 1


def bar(b: Bar) -> dict[str, Any]:
    return {"index": b.index, "kind": b.kind.value, "prefetchable": b.prefetchable,
            "size": b.size, "assigned": b.assigned}


def msix(m: Msix | None) -> dict[str, Any] | None:
    if m is None:
        return None
    return {"entries": m.entries, "table_bar": m.table_bar, "table_offset": m.table_offset,
            "pba_bar": m.pba_bar, "pba_offset": m.pba_offset}


def diagnosis(d: MsixDiagnosis) -> dict[str, Any]:
    """relocate.diagnose_msix: whether the capability is broken (no relocation can help), each
    problem with the structure, kind and whether it blocks, and the checks the input did not allow."""
    return {"broken": d.broken,
            "problems": [{"structure": p.structure, "kind": p.kind, "blocking": p.blocking,
                          "summary": p.summary, "detail": p.detail} for p in d.problems],
            "unchecked": list(d.unchecked)}


def device(d: Device) -> dict[str, Any]:
    return {
        "slot": d.slot, "vendor": d.vendor, "device": d.device,
        "subsystem_vendor": d.subsystem_vendor, "subsystem_device": d.subsystem_device,
        "class": d.class_code, "revision": d.revision, "name": d.name,
        "driver": d.driver, "modules": list(d.modules),
        "bars": [bar(b) for b in d.bars], "msix": msix(d.msix),
        "msix_unknown": d.msix_unknown, "notes": list(d.notes),
        "msix_diagnosis": None if d.msix is None else diagnosis(diagnose_msix(d)),
    }


def outcome(o: Outcome) -> dict[str, Any]:
    if o.layout is None:
        return {"strategy": o.strategy, "target": o.target, "refused": o.refused,
                "notes": list(o.notes)}
    return {"strategy": o.strategy, "target": o.target, "option": o.option, "vmm": o.vmm,
            "bars": [bar(b) for b in o.layout.bars], "msix": msix(o.layout.msix),
            "notes": list(o.notes),
            "findings": [{"rule": f.rule, "severity": f.severity, "message": f.message} for f in o.findings]}


def answer(a) -> dict[str, Any]:
    """`which --json`: one object per MSI-X device (README "JSON output")."""
    d = a.device
    rec = a.recommendation
    return {
        "slot": d.slot, "input": d.origin, "vendor": d.vendor, "device": d.device, "driver": d.driver,
        "modules": list(d.modules), "rules": list(a.rulesets), "mined_rules": list(a.mined),
        "needs_relocation": a.needs_relocation, "why": a.why,
        "msix_diagnosis": diagnosis(a.msix),
        "candidates": [{
            "strategy": r.strategy, "target": r.target, "verdict": r.verdict,
            "mmio_cost": r.mmio_cost,
            "refused": r.judgement.outcome.refused,
            "reasons": [{"rule": v.rule_id, "severity": v.severity, "message": v.message,
                         "evidence": v.evidence} for v in r.judgement.violations],
        } for r in a.candidates],
        "recommendation": _pick(rec),
        "fallback": _pick(a.fallback),
    }


def _pick(row) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"strategy": row.strategy, "target": row.target, "option": row.option,
            "verdict": row.verdict, "mmio_cost": row.mmio_cost}
