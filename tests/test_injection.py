"""Input text cannot inject lines into emitted configuration or raw control characters into reports.

Devices are built directly (engine.model.Device), so these tests hold whatever
the readers accept: a slot with a newline, a driver that closes an XML comment,
a name that closes a C comment.  If the model itself comes to reject such
values, ``hostile`` sets them after construction, as a reader bug would.
"""

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from engine import cli
from engine.errors import RuleError, Location, UsageError
from engine.model import Bar, BarKind, Device, Msix, Platform
from engine.report import config, diagnostics, qemu_table, safe, text
from engine.score import answer

ROOT = Path(__file__).resolve().parents[1]
POWER8 = Platform(64 * 1024, io_space=False)

EVIL_SLOT = "0000:01:00.0\nhookscript: local:snippets/x.pl"
EVIL_DRIVER = "x\n-->"
EVIL_NAME = "-->\n<hostdev mode='subsystem'/> */ \x1b[2J\u202e"
EVIL_CLASS = "Ethernet\r\nargs: -device evil"
EVIL_MODULE = "mpt3sas\x00\nhostpci9: 01:00.0"
EVIL_NOTE = "note\n# injected\x07"
# What an injection would put at the start of a line.
INJECTED_LINE = re.compile(r"^\s*(hookscript|args: -device evil|hostpci9|<hostdev mode='subsystem'/>|# injected)",
                           re.MULTILINE)
# Control characters barsafe never writes itself (it writes only \n and \t).
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e]")


pytestmark = pytest.mark.usefixtures("private_cache")



def hostile(slot=EVIL_SLOT, **fields) -> Device:
    """The seed's SAS3008 layout (relocation needed on 64K pages) with hostile text fields."""
    values = dict(slot=slot, vendor=0x1000, device=0x0097, class_code=0x0107, name=EVIL_NAME,
                  class_name=EVIL_CLASS, driver=EVIL_DRIVER, modules=(EVIL_MODULE, "mpt3sas"),
                  notes=(EVIL_NOTE,),
                  bars=(Bar(0, BarKind.IO, 0, assigned=False), Bar(1, BarKind.MEM64, 64 * 1024),
                        Bar(3, BarKind.MEM64, 256 * 1024)),
                  msix=Msix(96, 1, 0xE000, 1, 0xF000))
    values.update(fields)
    text_fields = ("slot", "name", "class_name", "driver", "modules", "notes")
    try:
        return Device(**values)
    except ValueError:  # the model validates text: set it afterwards, as a reader bug would
        clean = Device(**{k: v for k, v in values.items() if k not in text_fields},
                       slot="0000:01:00.0")
        for name in text_fields:
            object.__setattr__(clean, name, values[name])
        return clean


def assert_clean(out: str) -> None:
    assert not RAW_CONTROL.search(out), repr(RAW_CONTROL.search(out).group())
    assert not INJECTED_LINE.search(out), INJECTED_LINE.search(out).group()


def run(capsys, monkeypatch, devices, *argv):
    monkeypatch.setattr(cli, "read_input", lambda args: list(devices))
    monkeypatch.setattr(cli, "load", lambda spec, *a: list(devices))
    monkeypatch.setattr(cli, "stream", lambda spec: iter(devices))
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- the escaper ---------------------------------------------------------------------------

def test_printable_escapes_controls_invisible_characters_and_backslashes():
    assert safe.printable("a\nb\r\tc\x1b[0m\x00") == "a\\nb\\r\\tc\\x1b[0m\\x00"
    assert safe.printable("rtl\u202eevil\u2028x\udcff") == "rtl\\u202eevil\\u2028x\\udcff"
    assert safe.printable("C:\\n") == "C:\\\\n"  # a literal backslash-n stays distinguishable
    assert safe.printable("Intel Corporation Ethernet Controller X710 for 10GbE SFP+") == \
        "Intel Corporation Ethernet Controller X710 for 10GbE SFP+"
    assert safe.printable("ü and 日本") == "ü and 日本"  # printable non-ASCII is left alone


def test_printable_caps_length_without_cutting_an_escape():
    assert safe.printable("x" * 1000) == "x" * safe.FIELD_LIMIT + "..."
    fits = "a" * (safe.FIELD_LIMIT - 2) + "\n"
    assert safe.printable(fits) == fits[:-1] + "\\n"
    cut = safe.printable("a" + fits)
    assert cut == "a" * (safe.FIELD_LIMIT - 1) + "..."  # "\n" (2 chars) would not fit whole


def test_the_plain_text_shortcut_changes_nothing():
    """printable and message return plain ASCII text as it is, without looking at each
    character: on random text, the same as escaping character by character."""
    import random
    rng = random.Random(20261204)
    alphabet = "aZ09 ~-:./\\\n\t\x00\x1b\x7f\x85\xa0ü\u202e\u2028\udcff\ufffe日"
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        limit = rng.choice([None, 1, 4, 8, 256])
        pieces = [safe._escape_char(ch) for ch in text]
        want, length = "", 0
        for piece in pieces:
            if limit is not None and length + len(piece) > limit:
                want += "..."
                break
            want, length = want + piece, length + len(piece)
        assert safe.printable(text, limit) == want, (text, limit)
        plain = "".join(ch if ch == "\\" else safe._escape_char(ch) for ch in text)
        assert safe.message(text, 8) == (plain if len(plain) <= 8 else plain[:8] + "..."), text


def test_comment_escapers_cannot_be_closed_from_inside():
    assert "--" not in safe.xml_comment("a -- b --> c ---")
    assert not safe.xml_comment("ends with -").endswith("-")
    assert "*/" not in safe.c_comment("x */ y /* z")
    assert safe.markdown("a|b <script>*x*") == "a\\|b &lt;script&gt;\\*x\\*"


# --- emitted configuration ------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["qemu", "libvirt", "proxmox"])
def test_emit_refuses_a_slot_that_is_not_a_pci_address(capsys, monkeypatch, kind):
    code, out, err = run(capsys, monkeypatch, [hostile()], "which", "-", "--page-size", "64K",
                         "--no-io-space", "--emit", kind)
    assert code == 2 and out == ""
    assert "not a PCI address" in err and "\\nhookscript" in err
    assert_clean(err)


@pytest.mark.parametrize("slot", ["0000:01:00.0\n", "0000:01:00.0 ", "0000:01:20.0", "10000:e0:00.0",
                                  "0000:01:00.8", "00:01:00:0", "", None, "0000:０1:00.0"])
def test_host_address_takes_only_the_pci_address_grammar(slot):
    with pytest.raises(UsageError):
        config.host_address(slot)


def test_host_address_is_its_pattern():
    """host_address reads config.SLOT_PATTERN without compiling it: on random slots, the
    same addresses and the same refusals."""
    import random
    pattern = re.compile(config.SLOT_PATTERN, re.ASCII | re.IGNORECASE)
    rng = random.Random(20261204)
    read = 0
    for _ in range(20_000):
        base = rng.choice(["0000:03:00.0", "03:1f.7", "10000:00:00.0", "abCD:Ef:1F.7"])
        slot = "".join(ch if rng.random() > 0.12 else rng.choice("0fF1g:.78 \u0661") for ch in base)
        m = pattern.fullmatch(slot)
        try:
            got = config.host_address(slot)
        except UsageError:
            assert m is None, slot
            continue
        assert m is not None and got == (int(m.group(1) or "0", 16), int(m.group(2), 16),
                                         int(m.group(3), 16), int(m.group(4))), slot
        read += 1
    assert read > 2000


def test_host_address_reads_lspci_and_linux_spellings():
    assert config.host_address("01:00.0") == (0, 1, 0, 0)
    assert config.host_address("0001:03:1F.7") == (1, 3, 0x1F, 7)
    assert config.canonical("0001:03:1F.7") == "0001:03:1f.7"


def _answers(lib, devices, why=None):
    out = []
    for d in devices:
        a = answer(d, POWER8, lib)
        out.append(dataclasses.replace(a, why=why) if why is not None else a)
    return out


def _mixed(lib):
    """One device that relocates and one without a safe target whose reason is hostile text."""
    good = hostile(slot="0001:03:00.0")
    squeezed = hostile(slot="0000:02:00.0", vendor=0x111D, device=0x80AB,
                       bars=(Bar(0, BarKind.MEM32, 2 << 30), Bar(1, BarKind.MEM32, 2 << 30),
                             Bar(2, BarKind.MEM64, 1 << 20), Bar(4, BarKind.MEM64, 1 << 20)),
                       msix=Msix(64, 0, 0x2C000, 0, 0x2A000))
    (a,) = _answers(lib, [good])
    (b,) = _answers(lib, [squeezed], why=f"{EVIL_NAME} -- {EVIL_DRIVER} {EVIL_SLOT} */")
    assert a.recommendation is not None and b.recommendation is None
    return [a, b]


def test_emit_qemu_lines_are_comments_or_one_device_option(lib):
    out = config.emit("qemu", _mixed(lib))
    lines = out.split("\n")
    assert all(l.startswith("# ") or l.startswith("-device vfio-pci,") for l in lines), lines
    assert sum(l.startswith("-device") for l in lines) == 1
    assert_clean(out)


def test_emit_proxmox_lines_are_comments_or_one_args_line(lib):
    out = config.emit("proxmox", _mixed(lib), hostpci=4)
    lines = out.split("\n")
    assert all(l.startswith("# ") or l.startswith("args: ") for l in lines), lines
    assert [l for l in lines if l.startswith("args: ")] == [
        "args: -set device.hostpci4.x-msix-relocation=bar5"]
    assert_clean(out)


def test_emit_libvirt_comments_stay_comments(lib, tmp_path):
    out = config.emit("libvirt", _mixed(lib))
    comments = re.findall(r"<!--(.*?)-->", out, re.S)
    assert all("--" not in c and "\n" not in c for c in comments)
    assert_clean(out)
    if shutil.which("xmllint") is None:
        pytest.skip("xmllint (libxml2-utils) not installed")
    path = tmp_path / "emitted.xml"
    path.write_text(out + "\n")
    proc = subprocess.run(["xmllint", "--noout", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(shutil.which("virt-xml-validate") is None, reason="libvirt-clients not installed")
def test_emit_libvirt_with_hostile_notes_validates_as_a_domain(lib, tmp_path):
    out = config.emit("libvirt", _mixed(lib))
    merged = out.replace("  <devices>", "  <name>vm</name>\n  <memory unit='KiB'>1048576</memory>\n"
                         "  <os><type arch='x86_64'>hvm</type></os>\n  <devices>")
    path = tmp_path / "domain.xml"
    path.write_text(merged + "\n")
    proc = subprocess.run(["virt-xml-validate", str(path), "domain"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86 not installed")
def test_qemu_parses_the_emitted_option_for_a_hostile_device(lib):
    (line,) = [l for l in config.emit("qemu", _mixed(lib)).split("\n") if l.startswith("-device")]
    proc = subprocess.run(["qemu-system-x86_64", "-nodefaults", "-display", "none", "-S",
                           "-machine", "q35,accel=tcg", "-device", line.split(" ", 1)[1]],
                          capture_output=True, text=True, timeout=60)
    assert "no such host device" in proc.stderr, proc.stderr


def test_emit_through_the_cli_with_a_valid_slot_and_hostile_text(capsys, monkeypatch):
    code, out, err = run(capsys, monkeypatch, [hostile(slot="0001:03:00.0")], "which", "-",
                         "--page-size", "64K", "--no-io-space", "--emit", "proxmox", "--hostpci", "2")
    assert code == 0, err
    assert out == "# hostpci2 = 0001:03:00.0\nargs: -set device.hostpci2.x-msix-relocation=bar5\n"


# --- --hostpci --------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["-1", "16", "99", "x", "1.5"])
def test_hostpci_outside_proxmox_range_is_a_usage_error(capsys, value):
    with pytest.raises(SystemExit) as exc:
        cli.main(["which", "-", "--emit", "proxmox", "--hostpci", value])
    assert exc.value.code == 2
    assert "--hostpci" in capsys.readouterr().err


def test_hostpci_15_is_the_last_index_and_more_devices_do_not_run_past_it(lib):
    a = _answers(lib, [hostile(slot="0001:03:00.0")])[0]
    assert "hostpci15.x-msix-relocation=bar5" in config.emit("proxmox", [a], hostpci=15)
    b = _answers(lib, [hostile(slot="0001:04:00.0")])[0]
    with pytest.raises(UsageError, match="hostpci16"):
        config.emit("proxmox", [a, b], hostpci=15)


# --- text outputs -------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["which", "-", "--page-size", "64K", "--no-io-space"],
    ["show", "-"],
    ["simulate", "-", "--page-size", "64K", "--no-io-space", "--all"],
    ["which", "-", "--page-size", "64K", "--no-io-space", "--json"],
    ["show", "-", "--json"],
])
def test_text_outputs_escape_hostile_fields(capsys, monkeypatch, argv):
    code, out, err = run(capsys, monkeypatch, [hostile(slot="0001:03:00.0")], *argv)
    assert code == 0, err
    assert_clean(out)
    if "--json" not in argv:
        assert "\\x1b[2J" in out or "x\\n-->" in out  # shown, escaped, not dropped


@pytest.mark.parametrize("argv", [["show", "-"], ["show", "-", "--json"]])
def test_show_escapes_a_hostile_slot(capsys, monkeypatch, argv):
    code, out, err = run(capsys, monkeypatch, [hostile()], *argv)
    assert code == 0, err
    assert_clean(out)


@pytest.mark.parametrize("argv", [["which", "-", "--page-size", "64K", "--no-io-space"],
                                  ["simulate", "-", "--page-size", "64K", "--no-io-space", "--all"]])
def test_config_in_text_output_refuses_a_hostile_slot(capsys, monkeypatch, argv):
    code, out, err = run(capsys, monkeypatch, [hostile()], *argv)
    assert code == 2 and "not a PCI address" in err
    assert_clean(out + err)


@pytest.mark.parametrize("fmt", ["table", "markdown", "json", "html"])
def test_audit_reports_escape_hostile_slots_and_drivers(capsys, monkeypatch, fmt):
    devices = [hostile(), hostile(slot="<script>|x", driver="<b>a|b</b>\n-->")]
    code, out, err = run(capsys, monkeypatch, devices, "audit", "x.txt", "--page-size", "64K",
                         "--no-io-space", "--format", fmt)
    assert code == 0, err
    assert_clean(out)
    if fmt == "json":
        broken = json.loads(out)["strategies"]["qemu-rfc"]["64K"]["broken"]
        assert EVIL_SLOT in [b["slot"] for b in broken]  # JSON keeps the value, escaped by json
    elif fmt == "html":
        from engine.report.html_audit import _SCRIPT
        own = f"<script>{_SCRIPT}</script>"  # the page's own, allowed by its hash in the CSP
        assert out.count(own) == 1
        out = out.replace(own, "")
        assert "<script" not in out and "&lt;script&gt;" in out and "<b>" not in out
    elif fmt == "markdown":
        assert "\\|x" in out and "&lt;script&gt;" in out
    else:
        assert "0000:01:00.0\\nhookscript" in out


def test_export_qemu_table_output_is_clean_for_hostile_devices(capsys, monkeypatch):
    code, out, err = run(capsys, monkeypatch, [hostile()], "export", "qemu-table", "x.txt")
    assert code == 0, err
    assert_clean(out)


def test_qemu_table_comments_cannot_be_closed_by_rule_text():
    from engine.export import Entry
    entry = Entry(0x1000, 0x0097, 5, ("evil */ #include </etc/passwd> /*",),
                  "bar5 breaks none\n#define x */", ("r.yaml",))
    out = qemu_table.to_c([entry], [], POWER8)
    (line,) = [l for l in out.split("\n") if l.startswith("    { 0x1000")]
    assert line.count("*/") == 1 and line.endswith("*/")
    assert not any(l.startswith("#") for l in out.split("\n"))


def test_diagnostics_escape_message_path_and_source_line():
    err = RuleError("unexpected '\x1b[31m'", Location("rules/x\n.rules", 1, 5))
    out = diagnostics.render(err, lambda path, line: "ab\tc\x1b[31mdef")
    assert_clean(out)
    lines = out.split("\n")
    assert lines[1] == "    ab  c\\x1b[31mdef"
    assert lines[2].index("^") == lines[1].index("\\x1b")  # the caret sits under the escaped text


def test_which_text_shows_escaped_driver_and_name(lib):
    a = answer(hostile(slot="0001:03:00.0"), POWER8, lib)
    out = text.which(a)
    assert_clean(out)
    assert "driver x\\n-->" in out and "\\u202e" in out
