"""Scoring and `barsafe which`: the seed thread's ground truth and the recommendation order."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.cli import main
from engine.model import Bar, BarKind, Device, Msix, Platform
from engine.score import answer
from engine.sources import load

ROOT = Path(__file__).resolve().parents[1]
SEED = str(ROOT / "corpus/devices/seed/lsi-sas3008-1000-0097.yaml")
POWER8 = Platform(64 * 1024, io_space=False)


pytestmark = pytest.mark.usefixtures("private_cache")



@pytest.fixture(scope="module")
def sas3008():
    return load(SEED)[0]


def verdicts(a):
    return {r.strategy: r.verdict for r in a.candidates}


def test_seed_ground_truth_off_works_rfc_fails_bar1_and_bar5_work(lib, sas3008):
    """Kardashevskiy's tests on POWER8: off works, auto (BAR0) fails to probe, bar1 and bar5 work."""
    a = answer(sas3008, POWER8, lib)
    v = verdicts(a)
    assert a.rulesets == ("mpt3sas",)
    assert (v["off"], v["qemu-rfc"], v["bar1"], v["bar5"]) == ("safe", "forbid", "safe", "safe")
    assert v["bar0"] == "forbid" and v["bar2"] == v["bar4"] == "refused"


def test_seed_recommendation_is_bar5_by_the_documented_tie_break(lib, sas3008):
    a = answer(sas3008, POWER8, lib)
    assert a.needs_relocation
    assert a.recommendation.option == "bar5"  # bar1 costs the same 64K; the higher slot wins


def test_no_relocation_needed_on_4k_pages(lib, sas3008):
    a = answer(sas3008, Platform(4096, io_space=True), lib)
    assert not a.needs_relocation and a.recommendation.strategy == "off"
    assert "no relocation needed" in a.why


def test_unknown_driver_gets_the_generic_set_and_says_so(lib):
    dev = Device("00:01.0", vendor=0x1234, device=0x5678, bars=(Bar(0, BarKind.MEM64, 16 * 1024),),
                 msix=Msix(8, 0, 0x2000, 0, 0x3000))
    a = answer(dev, POWER8, lib)
    assert a.rulesets == ("generic",) and "generic set applies" in a.match_reasons[0]
    assert a.recommendation is not None and a.recommendation.verdict == "warn"


def test_no_safe_target_is_an_answer_with_reasons(lib):
    # tsi721 with every free slot taken by its own 64-bit windows: nothing relocates safely
    dev = Device("00:01.0", vendor=0x111D, device=0x80AB,
                 bars=(Bar(0, BarKind.MEM32, 512 * 1024), Bar(1, BarKind.MEM32, 16 << 20),
                       Bar(2, BarKind.MEM64, 1 << 20), Bar(4, BarKind.MEM64, 1 << 20)),
                 msix=Msix(64, 0, 0x2C000, 0, 0x2A000))
    a = answer(dev, POWER8, lib)
    assert a.recommendation is not None and a.recommendation.option in ("bar0", "bar1")
    squeezed = Device("00:01.0", vendor=0x111D, device=0x80AB,
                      bars=(Bar(0, BarKind.MEM32, 2 << 30), Bar(1, BarKind.MEM32, 2 << 30),
                            Bar(2, BarKind.MEM64, 1 << 20), Bar(4, BarKind.MEM64, 1 << 20)),
                      msix=Msix(64, 0, 0x2C000, 0, 0x2A000))
    a = answer(squeezed, POWER8, lib)
    assert a.recommendation is None and "no target is safe" in a.why


def test_which_json_shape_and_exit_code(capsys):
    code = main(["which", SEED, "--page-size", "64K", "--no-io-space", "--json"])
    (dev,) = json.loads(capsys.readouterr().out)
    assert code == 0
    assert set(dev) >= {"slot", "vendor", "device", "driver", "rules", "needs_relocation", "candidates",
                        "recommendation"}
    assert dev["recommendation"] == {"strategy": "bar5", "target": 5, "option": "bar5", "verdict": "safe",
                                     "mmio_cost": 65536}
    bar0 = next(c for c in dev["candidates"] if c["strategy"] == "bar0")
    assert bar0["verdict"] == "forbid"
    assert bar0["reasons"][0]["rule"] == "mpt3sas/registers-are-first-memory-bar"
    assert {"rule", "severity", "message"} <= set(bar0["reasons"][0])


def test_which_text_has_table_recommendation_and_configuration(capsys):
    main(["which", SEED, "--page-size", "64K", "--no-io-space"])
    out = capsys.readouterr().out
    assert "recommendation: bar5 (safe, +64K MMIO)" in out
    assert "-device vfio-pci,host=0001:03:00.0,x-msix-relocation=bar5" in out
    assert "<qemu:property name='x-msix-relocation' type='string' value='bar5'/>" in out


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86 not installed")
def test_qemu_option_parser_accepts_the_emitted_device(capsys):
    main(["which", SEED, "--page-size", "64K", "--no-io-space"])
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("  QEMU:"))
    device = line.split("-device ", 1)[1].strip()
    proc = subprocess.run(["qemu-system-x86_64", "-nodefaults", "-display", "none", "-S",
                           "-machine", "q35,accel=tcg", "-device", device],
                          capture_output=True, text=True, timeout=60)
    # The option was parsed: QEMU got as far as looking for the (absent) host device.
    assert "no such host device" in proc.stderr, proc.stderr
    assert "does not accept value" not in proc.stderr


@pytest.mark.skipif(shutil.which("virt-xml-validate") is None, reason="libvirt-clients not installed")
def test_libvirt_schema_accepts_the_emitted_hostdev_and_override(tmp_path, capsys):
    from engine.report import config
    xml = ("<domain type='kvm' xmlns:qemu='%s'>\n  <name>barsafe</name>\n"
           "  <memory unit='KiB'>1048576</memory>\n  <os><type arch='x86_64'>hvm</type></os>\n"
           "  <devices>\n%s\n  </devices>\n%s\n</domain>\n") % (
        config.QEMU_NS, config.libvirt_hostdev("0001:03:00.0"),
        config.libvirt_override([("0001:03:00.0", "bar5")]))
    path = tmp_path / "domain.xml"
    path.write_text(xml)
    proc = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("kind, expected", [
    ("qemu", "-device vfio-pci,host=0001:03:00.0,x-msix-relocation=bar5"),
    ("proxmox", "args: -set device.hostpci3.x-msix-relocation=bar5"),
    ("libvirt", "<qemu:property name='x-msix-relocation' type='string' value='bar5'/>"),
])
def test_emit_prints_only_the_configuration(capsys, kind, expected):
    hostpci = ["--hostpci", "3"] if kind == "proxmox" else []  # it numbers Proxmox devices only
    assert main(["which", SEED, "--page-size", "64K", "--no-io-space", "--emit", kind, *hostpci]) == 0
    out = capsys.readouterr().out
    assert expected in out and "candidate" not in out


@pytest.mark.skipif(shutil.which("virt-xml-validate") is None, reason="libvirt-clients not installed")
def test_emitted_libvirt_snippet_validates_once_merged_into_a_domain(tmp_path, capsys):
    main(["which", SEED, "--page-size", "64K", "--no-io-space", "--emit", "libvirt"])
    snippet = capsys.readouterr().out
    merged = snippet.replace("  <devices>", "  <name>vm</name>\n  <memory unit='KiB'>1048576</memory>\n"
                             "  <os><type arch='x86_64'>hvm</type></os>\n  <devices>")
    path = tmp_path / "domain.xml"
    path.write_text(merged)
    proc = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_qemu_pba_correction_is_said_in_the_answer(lib, capsys):
    dev = Device("00:01.1", vendor=0x1425, device=0x5803, bars=(Bar(0, BarKind.MEM64, 8 * 1024),),
                 msix=Msix(4, 0, 0x0, 0, 0x8000))
    a = answer(dev, Platform(4096), lib)
    assert a.candidates[0].judgement.outcome.ok  # QEMU fixes the PBA itself: off is not refused
    from engine.report import text
    assert "QEMU PBA quirk: Chelsio T5 VF" in text.which(a)


def test_sm2263_after_reset_off_is_refused_and_a_target_fixes_it(lib):
    dev = Device("01:00.0", vendor=0x126F, device=0x2263, class_code=0x0108, modules=("nvme",),
                 bars=(Bar(0, BarKind.MEM64, 16 * 1024),), msix=Msix(22, 0, 0x2000, 0, 0x2100))
    a = answer(dev, Platform(4096), lib)
    off = a.candidates[0]
    assert off.verdict == "refused"
    assert off.judgement.outcome.refused == "table & pba overlap, or they don't fit in BARs, or don't align"
    assert a.needs_relocation and a.recommendation is not None
    assert "QEMU refuses" in a.why


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86 not installed")
@pytest.mark.parametrize("target", ["bar0", "bar1", "bar2", "bar3", "bar4", "bar5"])
def test_qemu_accepts_every_value_barsafe_can_emit(target):
    from engine.report import config
    device = config.qemu_device("0000:01:00.0", target).split(" ", 1)[1]
    proc = subprocess.run(["qemu-system-x86_64", "-nodefaults", "-display", "none", "-S",
                           "-machine", "q35,accel=tcg", "-device", device],
                          capture_output=True, text=True, timeout=60)
    assert "no such host device" in proc.stderr and "does not accept value" not in proc.stderr


def test_no_relocation_needed_still_names_a_fallback_target(capsys):
    """4K pages: the seed's MSI-X pages hold nothing else, so 'off'; the fallback is bar5, the
    target a device breaking the PCIe rule would need (an FPGA on qemu-devel, January 2020)."""
    code, out, _ = run_which(capsys, "--page-size", "4K", "--no-io-space", "--json")
    (a,) = json.loads(out)
    assert a["recommendation"]["strategy"] == "off"
    assert a["fallback"] == {"strategy": "bar5", "target": 5, "option": "bar5", "verdict": "safe",
                             "mmio_cost": 4096}
    code, out, _ = run_which(capsys, "--page-size", "4K", "--no-io-space")
    assert "fallback: bar5 (safe, +4K MMIO)" in out
    assert "-device vfio-pci,host=0001:03:00.0,x-msix-relocation=bar5" in out


def test_a_needed_relocation_has_no_fallback(capsys):
    code, out, _ = run_which(capsys, "--page-size", "64K", "--no-io-space", "--json")
    (a,) = json.loads(out)
    assert a["recommendation"]["strategy"] == "bar5" and a["fallback"] is None


def run_which(capsys, *argv):
    code = main(["which", SEED, *argv])
    out, err = capsys.readouterr()
    return code, out, err
