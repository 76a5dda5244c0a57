"""Command line: the only place that prints, reads the environment and chooses exit codes.

Exit codes (README "Exit codes"): 0 success; 1 a negative answer (a rule
example failed, a file needs formatting); 2 bad input, rules or usage;
3 an internal error (a bug in barsafe: please report it).
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence
from functools import lru_cache

# Start-up is part of every answer (`which` is run once per question), so this module imports
# at the top only what reading an input needs; each command imports the rest (json, the
# reports, strategies, the rule library, pathlib) when it runs, a plain command line is read
# without argparse (engine/quickargs.py), and otherwise the parser builds only the subcommand
# asked for (build_parser).  `which` names files with strings (engine/paths.py).
from . import __version__
from .errors import BarsafeError, InputError, Location, OutputError, RuleError, RuleErrors, UsageError
from .model import Device, Platform
from .paths import is_dir
from .report.safe import long_text, message, printable
from .sources import load, load_sysfs, stream
from .units import parse_size

EXIT_OK, EXIT_NO, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


@lru_cache(maxsize=64)
def _file_lines(path: str) -> tuple[str, ...]:
    from pathlib import Path
    try:
        return tuple(Path(path).read_text(errors="replace").splitlines())
    except OSError:
        return ()


def source_line(path: str, line: int) -> str | None:
    lines = _file_lines(path)
    return lines[line - 1] if 0 < line <= len(lines) else None


def write_output(path: Path | str, content: str) -> None:
    """Write a file the user asked for, all or nothing (engine/files.py); failure is one line."""
    from .files import write_text_atomic
    try:
        write_text_atomic(path, content)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}; the old file, if any,"
                          " is unchanged") from None


def host_page_size() -> int:
    return os.sysconf("SC_PAGESIZE")


def page_size_arg(value: str) -> int:
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise _type_error(str(exc)) from None
    if size < 4096 or size & (size - 1):
        raise _type_error(f"{value}: a host page size is a power of two >= 4K")
    return size


def _type_error(text: str) -> Exception:
    """argparse.ArgumentTypeError(text): argparse shows it as the option's error (imported
    here, as a plain command line is read without argparse: engine/quickargs.py)."""
    import argparse
    return argparse.ArgumentTypeError(text)


@lru_cache(maxsize=1)
def _slot_forms():
    import re
    return re.compile(r"(?:([0-9a-f]{1,5}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})(?:\.([0-7]))?")


def parse_slot(slot: str) -> tuple[int | None, int, int, int] | None:
    """(domain or None, bus, device, function) of the forms people type: `07:00` (function 0),
    `7:0.0`, `0000:07:00.0`; None if it is no PCI address."""
    m = _slot_forms().fullmatch(slot.strip().lower())
    if not m or int(m.group(3), 16) > 0x1F:
        return None
    domain = int(m.group(1), 16) if m.group(1) else None
    return domain, int(m.group(2), 16), int(m.group(3), 16), int(m.group(4) or "0")


def slot_text(domain: int | None, bus: int, dev: int, fn: int) -> str:
    return (f"{domain:04x}:" if domain is not None else "") + f"{bus:02x}:{dev:02x}.{fn}"


def select(devices: list[Device], slot: str | None) -> list[Device]:
    """The device at ``slot``; without a domain, the one device with that bus:device.function."""
    if slot is None:
        return devices
    want = parse_slot(slot)
    if want is None:
        raise UsageError(f"--slot {printable(slot)}: not a PCI address (like 0000:03:00.0, 03:00.0 or 3:0)")
    chosen = []
    for d in devices:
        have = parse_slot(d.slot) if d.slot else None
        if have and have[1:] == want[1:] and (want[0] is None or (have[0] or 0) == want[0]):
            chosen.append(d)
    if len({d.slot for d in chosen}) > 1:
        raise UsageError(f"--slot {slot_text(*want)} is in several PCI domains here: give the domain"
                         f" ({', '.join(printable(d.slot) for d in chosen)})")
    if not chosen:
        known = ", ".join(printable(d.slot or "-") for d in devices[:20]) + (", ..." if len(devices) > 20 else "")
        raise UsageError(f"no device at slot {slot_text(*want)} in the input (it has: {known or 'no devices'})")
    return chosen


def input_specs(args: argparse.Namespace) -> list[str]:
    """The inputs named, or standard input when it is a pipe and nothing is named."""
    names = args.input if isinstance(args.input, list) else [args.input] if args.input else []
    if args.sysfs:
        if names:
            raise UsageError("give either INPUT or --sysfs, not both")
        return []
    if not names:
        if sys.stdin is not None and not sys.stdin.isatty():
            return ["-"]
        raise UsageError("no input: give a file, a directory of dumps, '-' for standard input, or --sysfs")
    if names.count("-") > 1:
        raise UsageError("standard input ('-') can be read only once")
    return names


def read_input(args: argparse.Namespace) -> list[Device]:
    specs = input_specs(args)
    if args.sysfs:
        return with_names(load_sysfs())
    return with_names([d for _, read in _audit_inputs(specs) for d in read()])


def with_names(devices: list[Device]) -> list[Device]:
    """The names an input lacked (sysfs, lspci -n) from the system's pci.ids, or the file
    $BARSAFE_PCI_IDS names ('' for none); read only when some device lacks them."""
    from .names import lacks_names
    if not any(lacks_names(d) for d in devices):
        return devices
    from .sources import pciids
    return pciids.name_devices(devices, os.environ.get("BARSAFE_PCI_IDS"))


def cmd_show(args: argparse.Namespace) -> int:
    import json

    from .report import jsonout, text
    devices = select(read_input(args), args.slot)
    fmt = "json" if args.json else args.format
    if fmt == "json":
        print(json.dumps([jsonout.device(d) for d in devices], indent=2))
    elif fmt == "yaml":
        from .sources import record
        sys.stdout.write(record.dump_all(devices))
    else:
        registers = stated_registers_of(devices)
        print("\n\n".join(text.show(d, registers.get(id(d), ())) for d in devices))
    return EXIT_OK


def stated_registers_of(devices: list[Device]) -> dict[int, tuple]:
    """Registers the shipped driver rule sets place beside each MSI-X device's table (`registers`
    statements: iwlwifi's interrupt-cause registers), by id(device), so that `show` and
    `simulate` judge the trapped pages as `which` does.  Loads the rules only when needed."""
    if not any(d.msix is not None for d in devices):
        return {}
    from .rules import library
    from .score import stated_registers
    lib = library.load()
    return {id(d): stated_registers([rs for rs, _ in lib.matching(d)])
            for d in devices if d.msix is not None}


def one_msix_device(devices: list[Device], slot: str | None = None) -> Device:
    found = msix_devices(devices, slot)
    if len(found) == 1:
        return found[0]
    slots = ", ".join(printable(d.slot or "-") for d in found)
    raise UsageError(f"{len(found)} MSI-X devices in the input; choose one with --slot ({slots})")


def cmd_simulate(args: argparse.Namespace) -> int:
    import json

    from . import strategies
    from .report import jsonout, text
    device = one_msix_device(select(read_input(args), args.slot), args.slot)
    platform = platform_of(args)
    if args.all:
        names = strategies.all_names()
    elif args.target:
        names = [args.target]
    else:
        names = [args.heuristic]
    outcomes = [strategies.run(name, device, platform) for name in names]
    if args.json:
        data = [jsonout.outcome(o) for o in outcomes]
        print(json.dumps(data if args.all else data[0], indent=2))
        return EXIT_OK
    print(text.header(device))
    registers = stated_registers_of([device]).get(id(device), ())
    print(f"{text.platform_text(platform)}: {text.page_verdict(device, platform, registers)}")
    for o in outcomes:
        print()
        print(text.outcome(device, o, platform))
    return EXIT_OK


def rule_paths(paths: list[str] | None) -> list[Path]:
    """Rule roots for the authoring commands: the paths given, else the shipped rules/."""
    from pathlib import Path

    from .rules.library import DEFAULT_ROOT
    return [Path(p) for p in paths] if paths else [DEFAULT_ROOT]


def answer_rule_paths(args: argparse.Namespace) -> list[str]:
    """Rule roots for answers: the shipped rules (generic included), then each --rules root,
    whose rule sets add to them and replace a shipped set of the same name; --only-rules
    leaves the shipped ones out.  Names, which library.load reads as the Paths they name."""
    from .paths import RULES_DIR
    extra = list(args.rules or ())
    if args.only_rules:
        if not extra:
            raise UsageError("--only-rules needs at least one --rules DIR")
        return extra
    return [RULES_DIR, *extra]


def cmd_check(args: argparse.Namespace) -> int:
    """Errors exit 2; warnings print but exit 0, or 1 with --strict."""
    from .report import diagnostics
    from .rules.lint import lint
    found = lint(rule_paths(args.paths))
    shown = diagnostics.diagnostics_of(found.diagnostics)
    if args.format == "json":
        print(diagnostics.render_json(shown))
    elif args.format == "sarif":
        print(diagnostics.render_sarif(shown, __version__))
    else:
        if shown:
            print(diagnostics.render_text(shown, source_line), file=sys.stderr)
        if not found.errors:
            warned = f", {diagnostics.summary(shown)}" if shown else ""
            print(f"ok: {found.files} rule files, {found.rules} rules, {found.examples} examples{warned}")
    if found.errors:
        return EXIT_INPUT
    return EXIT_NO if (args.strict and found.warnings) else EXIT_OK


def cmd_fmt(args: argparse.Namespace) -> int:
    from .rules.fmt import fmt
    from .rules.library import rule_files
    from .rules.parse import parse
    changed, errors = [], []
    for path in rule_files(rule_paths(args.paths)):
        data = path.read_bytes()
        try:
            original = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append(RuleError("not UTF-8 text", Location(str(path), data[:exc.start].count(b"\n") + 1)))
            continue
        try:
            formatted = fmt(parse(original, str(path)))
        except RuleErrors as exc:
            errors.extend(exc.errors)
            continue
        if formatted != original:
            changed.append(path)
            if args.diff:
                sys.stdout.write(_escaped_diff(original, formatted, str(path)))
            elif not args.check:
                # rule_files() kept every file inside its root; a symlink there is written through
                write_output(path.resolve(), formatted)
    if errors:
        raise RuleErrors(errors)
    if args.diff:
        if changed:
            print(f"{len(changed)} rule file(s) would be reformatted", file=sys.stderr)
        return EXIT_NO if changed else EXIT_OK
    verb = "would reformat" if args.check else "reformatted"
    for path in changed:
        print(f"{verb} {path}")
    if not changed:
        print("all rule files are formatted")
    return EXIT_NO if (args.check and changed) else EXIT_OK


def _escaped_diff(original: str, formatted: str, path: str) -> str:
    """What fmt would change, as a unified diff naming the file on both sides (`patch -p0`
    applies it).  Rule text is input: a control character in it (a string or a comment may
    hold one) is shown escaped, tabs kept, so the diff cannot drive the terminal; a file
    without such characters gives a diff `patch` applies as it is."""
    import difflib
    lines = difflib.unified_diff(original.splitlines(keepends=True),
                                 formatted.splitlines(keepends=True),
                                 fromfile=printable(path), tofile=printable(path))
    out = []
    for line in lines:
        body, newline = (line[:-1], "\n") if line.endswith("\n") else (line, "")
        out.append("\t".join(message(part, sys.maxsize) for part in body.split("\t")) + newline)
        if not newline:  # the file's last line had no newline
            out.append("\n\\ No newline at end of file\n")
    return "".join(out)


def cmd_test(args: argparse.Namespace) -> int:
    from . import examples
    from .rules import library
    lib = library.load(rule_paths(args.paths))
    results = examples.run_library(lib)
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"{r.where}: FAIL {r.ruleset}: example {r.title!r}: {r.strategy}:"
              f" expected {r.expected}, got {r.actual}")
        for reason in r.reasons:
            print(f"    {reason}")
    files = len({r.ruleset for r in results})
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed"
          f" ({len(results)} expectations in {files} rule sets)")
    return EXIT_NO if failed else EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .report import text
    from .rules import library
    from .score import judge
    device = one_msix_device(select(with_names(load(args.device)), args.slot), args.slot)
    platform = platform_of(args)
    rules_path = Path(args.rules)
    if rules_path.is_file():
        lib = library.load([rules_path.parent])
        chosen = [rs for rs in lib.rulesets.values() if Path(rs.path).resolve() == rules_path.resolve()]
        why = [f"rule file given: {rules_path}"]
    else:
        lib = library.load([rules_path])
        found = lib.matching(device)
        chosen = [rs for rs, _ in found]
        why = [f"{rs.name} matches {reason}" for rs, reason in found]
        if not chosen and "generic" in lib.rulesets:
            chosen, why = [lib.rulesets["generic"]], ["no rule set matches: the generic set applies"]
    trace: list[str] = []
    strategy = args.target or args.heuristic
    j = judge(device, platform, strategy, chosen, trace)
    print(text.header(device))
    print(f"{text.platform_text(platform)}; strategy {strategy}")
    for line in why:
        print(f"  {line}")
    from .score import MINED_NOTE, is_mined
    for rs in chosen:
        if is_mined(rs):
            print(f"  {rs.name}: {MINED_NOTE}")
    if j.outcome.ok:
        print(text.outcome(device, j.outcome, platform))
    for line in trace:
        print(line)
    print(f"verdict: {j.verdict}")
    for v in j.violations:
        print(f"  {v.severity} {v.rule_id} ({v.where}): {v.message}")
        print(f"      because {v.evidence}")
    return EXIT_OK


def msix_devices(devices: list[Device], slot: str | None = None) -> list[Device]:
    found = [d for d in devices if d.msix is not None]
    if not found:
        unknown = [d for d in devices if d.msix_unknown]
        if unknown:
            raise UsageError(f"{printable(unknown[0].slot or 'device')}: {long_text(unknown[0].notes[-1])}")
        if slot is not None:
            d = devices[0]
            raise UsageError(f"the device at {printable(d.slot or slot)} [{d.id_text}] has no MSI-X"
                             " capability: nothing to relocate")
        raise UsageError("no device with an MSI-X capability in the input: nothing to relocate")
    return found


def emit_config(kind: str, answers: list, hostpci: int) -> str:
    """Only the configuration for each device's recommendation, ready to paste."""
    from .report import config
    return config.emit(kind, answers, hostpci)


def hostpci_arg(value: str) -> int:
    """--hostpci: a Proxmox VE hostpciN index, 0..15 (engine/report/config.py PROXMOX_HOSTPCI_MAX)."""
    from .report.config import PROXMOX_HOSTPCI_MAX
    try:
        index = int(value, 10)
    except ValueError:
        raise _type_error(f"{value!r} is not a number") from None
    if not 0 <= index <= PROXMOX_HOSTPCI_MAX:
        raise _type_error(
            f"{index}: Proxmox VE names passed-through devices hostpci0 to hostpci{PROXMOX_HOSTPCI_MAX}")
    return index


def cmd_which(args: argparse.Namespace) -> int:
    from .report import text
    from .rules import library
    from .score import answer
    if args.emit and args.json:
        raise UsageError("--json and --emit are two different outputs: give one")
    if args.hostpci is not None and args.emit != "proxmox":
        raise UsageError("--hostpci numbers Proxmox's hostpciN devices: it needs --emit proxmox")
    devices = msix_devices(select(read_input(args), args.slot), args.slot)
    platform = platform_of(args)
    lib = library.load(answer_rule_paths(args))
    answers = [answer(d, platform, lib) for d in devices]
    if args.emit:
        print(emit_config(args.emit, answers, args.hostpci or 0))
    elif args.json:
        import json

        from .report import jsonout
        print(json.dumps([jsonout.answer(a) for a in answers], indent=2))
    else:
        print("\n\n".join(text.which(a) for a in answers))
    return EXIT_OK if all(a.recommendation is not None for a in answers) else EXIT_NO


def _audit_inputs(specs: list[str]):
    """(name, devices) per input file, one at a time; directories are walked."""
    for spec in specs:
        try:
            directory = spec != "-" and is_dir(spec)
        except OSError:  # a name the system refuses (too long): reading it says so
            directory = False
        if directory:
            from pathlib import Path
            path = Path(spec)
            try:
                if not _device_dir(path) and not any(_device_dir(p) for p in path.iterdir()):
                    for f in sorted(p for p in path.rglob("*") if p.is_file()
                                    and p.suffix in (".txt", ".yaml", ".yml", ".lspci")):
                        yield str(f), lambda f=f: load(str(f))
                    continue
            except OSError as exc:
                raise InputError(f"cannot read the directory: {exc.strerror or exc}", Location(spec)) from None
        yield spec, lambda spec=spec: load(spec)


def _device_dir(path: Path) -> bool:
    from .sources import sysfs
    return sysfs.is_device_dir(path)


def cmd_audit(args: argparse.Namespace) -> int:
    import argparse

    from . import strategies
    from .audit import DEFAULT_STRATEGIES, Audit
    from .report import audit as audit_report
    from .rules import library
    try:
        pages = [page_size_arg(p) for p in args.page_size.split(",")]
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"--page-size: {exc}") from None
    names = args.strategies.split(",") if args.strategies else list(DEFAULT_STRATEGIES)
    for name in names:
        if name not in strategies.all_names():
            raise UsageError(f"unknown strategy {name!r}; known: {', '.join(strategies.all_names())}")
    if args.scheduler is not None and args.engine != "dask":
        raise UsageError("--scheduler needs --engine dask")
    if args.workers is not None and (args.engine != "dask" or args.scheduler is not None):
        raise UsageError("--workers sizes a local Dask cluster: it needs --engine dask and no --scheduler")
    if args.format == "parquet":
        from .report.devices import need_pyarrow
        if not args.output:
            raise UsageError("--format parquet writes a file: give -o FILE")
        need_pyarrow()
    rows = args.format in ("jsonl", "parquet")  # one row per device, written as the audit goes
    generated = source_date() if args.format == "html" else None
    audit = Audit(library.load(answer_rule_paths(args)), pages, names, io_space=not args.no_io_space,
                  per_device=not rows)
    inputs = list(_audit_inputs(args.inputs))
    if rows:
        return _audit_rows(args, audit, inputs)
    _run_audit(args, audit, inputs)
    rendered = audit_report.render(args.format, audit.result(), generated)
    if args.output:
        write_output(args.output, rendered)
    else:
        sys.stdout.write(rendered)
    return EXIT_INPUT if audit.failed_inputs else EXIT_OK


def source_date() -> int:
    """A report's date, seconds since 1970: $SOURCE_DATE_EPOCH when set (reproducible output,
    reproducible-builds.org/specs/source-date-epoch), else now."""
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None:
        import time
        return int(time.time())
    if not value.isdigit() or len(value) > 12:
        raise UsageError(f"SOURCE_DATE_EPOCH={printable(value, 40)}: not a number of seconds since 1970")
    return int(value)


def _run_audit(args: argparse.Namespace, audit, inputs: list, rows=None) -> None:
    """Every input into the audit, here or on Dask (engine/fleet.py), the same way: errors
    printed in input order, rows(input, slot, device, verdicts) called per device."""
    progress = sys.stderr.isatty()
    if args.engine == "dask":
        from .fleet import Cluster
        with Cluster(args.scheduler, args.workers) as cluster:
            show = (lambda n, total: print(f"\r[{n}/{total} partitions]", end="", file=sys.stderr,
                                           flush=True)) if progress else None
            for tally in cluster.tallies([name for name, _ in inputs], show):
                for _, error in tally.failed:
                    print(f"{'' if not progress else chr(10)}barsafe: error: {message(error)}", file=sys.stderr)
                audit.merge(tally, rows)
    else:
        from .audit import Tally
        for n, (name, _) in enumerate(inputs, start=1):
            if progress:
                print(f"\r[{n}/{len(inputs)}] {name[-60:]:60}", end="", file=sys.stderr, flush=True)
            # Streamed into a tally: memory holds each distinct device once (a 50 MB dump of a
            # fleet's hosts is a few dozen devices), and an input that fails half-way counts
            # for nothing, as on Dask.
            tally = Tally()
            try:
                tally.read(name, stream(name))
            except BarsafeError as exc:
                audit.inputs += 1
                audit.failed_inputs.append(name)
                print(f"{'' if not progress else chr(10)}barsafe: error: {message(exc)}", file=sys.stderr)
                continue
            audit.merge(tally, rows)
    if progress:
        print(file=sys.stderr)


def _audit_rows(args: argparse.Namespace, audit, inputs: list) -> int:
    """--format jsonl / parquet: a row per device to -o FILE (replaced only when complete) or stdout."""
    from contextlib import nullcontext

    from .files import replacing_file
    from .report.devices import WRITERS
    stdout = getattr(sys.stdout, "buffer", None)
    if not args.output:
        sys.stdout.flush()
    try:
        with replacing_file(args.output) if args.output else nullcontext(stdout) as stream:
            rows = WRITERS[args.format](audit, stream)
            _run_audit(args, audit, inputs, rows)
            rows.close()
    except OSError as exc:
        if not args.output:
            raise
        raise OutputError(f"cannot write {args.output}: {exc.strerror or exc}; the old file, if any,"
                          " is unchanged") from None
    return EXIT_INPUT if audit.failed_inputs else EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from . import export
    from .paths import CORPUS
    from .report import qemu_table
    from .rules import library
    specs = args.inputs or [str(CORPUS / "devices")]
    devices = [d for _, read in _audit_inputs(specs) for d in read()]
    platform = Platform(args.page_size, io_space=not args.no_io_space)
    entries, conflicts, _ = export.build(devices, platform, library.load(answer_rule_paths(args)))
    render = qemu_table.to_c if args.format == "c" else qemu_table.to_json
    sys.stdout.write(render(entries, conflicts, platform))
    return EXIT_OK


def workers_arg(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 1024:
        raise _type_error(f"{value!r}: a number of workers, 1..1024")
    return int(value)


def add_platform(p: argparse.ArgumentParser) -> None:
    p.add_argument("--page-size", type=page_size_arg, metavar="SIZE",
                   help="host page size: 4K, 16K or 64K (default: this host's)")
    p.add_argument("--no-io-space", action="store_true",
                   help="the host has no I/O port space (arm64, ppc64): I/O BARs vanish")


def platform_of(args: argparse.Namespace) -> Platform:
    return Platform(args.page_size or host_page_size(), io_space=not args.no_io_space)


def add_rules_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rules", action="append", metavar="DIR",
                   help="rule files or directories to add to the shipped rules (a rule set of the same"
                        " name replaces the shipped one); repeatable")
    p.add_argument("--only-rules", action="store_true",
                   help="judge by the --rules given alone: leave out the shipped rules and the generic set")


def add_export_command(sub) -> None:
    exp = sub.add_parser("export", help="export data for other programs")
    exp_sub = exp.add_subparsers(dest="what", required=True, metavar="WHAT")
    table = exp_sub.add_parser("qemu-table", help="vendor:device -> safe target, for QEMU's 'auto' lookup")
    table.add_argument("inputs", nargs="*", metavar="INPUT",
                       help="device records or dumps (default: the shipped corpus/devices)")
    table.add_argument("--page-size", type=page_size_arg, default=64 * 1024, metavar="SIZE",
                       help="host page size the table is for (default 64K)")
    table.add_argument("--no-io-space", action="store_true", help="hosts without I/O port space")
    add_rules_options(table)
    table.add_argument("--format", choices=("c", "json"), default="c",
                       help="a C initializer for hw/vfio (default) or JSON with the evidence")
    table.set_defaults(func=cmd_export)


def cmd_coverage(args: argparse.Namespace) -> int:
    """Which MSI-X devices a reviewed, a mined or only the generic rule set judges, per driver
    and per ID (engine/coverage.py); inputs are streamed as audit's are."""
    from .coverage import Coverage
    from .report import coverage as report
    from .rules import library
    cov = Coverage(library.load(answer_rule_paths(args)))
    for name, _ in _audit_inputs(args.inputs):
        try:  # an input that fails half-way counts for nothing, as in audit
            devices = [d for d in stream(name) if d.msix is not None or d.msix_unknown]
        except BarsafeError as exc:
            cov.fail(name)
            print(f"barsafe: error: {message(exc)}", file=sys.stderr)
            continue
        cov.read(name, devices)
    vendors = cov.names_needed()
    names = None
    if vendors is not None:
        from .sources import pciids
        names = pciids.lookup(vendors, os.environ.get("BARSAFE_PCI_IDS"))
    result = cov.result(names)
    sys.stdout.write(report.json_text(result) if args.json else report.text(result))
    return EXIT_INPUT if cov.failed_inputs else EXIT_OK


def add_coverage_command(sub) -> None:
    cov = sub.add_parser("coverage", help="which MSI-X devices a reviewed, a mined or only the generic"
                                          " rule set judges, per driver and per ID")
    cov.add_argument("inputs", nargs="+", metavar="INPUT",
                     help="lspci dumps, YAML records, sysfs trees, or directories of them; '-' for stdin")
    add_rules_options(cov)
    cov.add_argument("--json", action="store_true", help="JSON output")
    cov.set_defaults(func=cmd_coverage)


def add_audit_command(sub) -> None:
    aud = sub.add_parser("audit", help="what each auto-mode heuristic picks and breaks, over many devices")
    aud.add_argument("inputs", nargs="+", metavar="INPUT",
                     help="lspci dumps, YAML records, sysfs trees, or directories of them; '-' for stdin")
    aud.add_argument("--page-size", default="4K,16K,64K", metavar="SIZES",
                     help="comma-separated host page sizes (default 4K,16K,64K)")
    aud.add_argument("--no-io-space", action="store_true", help="hosts without I/O port space")
    aud.add_argument("--strategies", metavar="NAMES",
                     help="comma-separated (default: qemu-rfc,reverse,extend-only,cloud-hypervisor,pve-tools,qemu,off);"
                          " barsafe's own pick is always a column")
    add_rules_options(aud)
    aud.add_argument("--format", choices=("table", "markdown", "json", "html", "jsonl", "parquet"),
                     default="table",
                     help="the report as table (default), markdown, json or html; or one row per"
                          " device with its input: jsonl (JSON Lines) or parquet (needs pyarrow and -o)")
    aud.add_argument("-o", "--output", metavar="FILE", help="write the report here instead of stdout")
    aud.add_argument("--engine", choices=("local", "dask"), default="local",
                     help="local (default): read and judge in this process; dask: read the inputs on a"
                          " Dask cluster, judge each distinct device once here; same report"
                          " (pip install 'barsafe[fleet]')")
    aud.add_argument("--scheduler", metavar="ADDRESS",
                     help="with --engine dask: a running Dask scheduler, e.g. tcp://10.0.0.1:8786, whose"
                          " workers have barsafe and see the inputs at the same paths (default: a local"
                          " cluster)")
    aud.add_argument("--workers", type=workers_arg, metavar="N",
                     help="with --engine dask and no --scheduler: worker processes of the local cluster"
                          " (default: one per CPU)")
    aud.set_defaults(func=cmd_audit)


def add_which_command(sub) -> None:
    which = sub.add_parser("which", help="the safe x-msix-relocation target for each MSI-X device")
    add_input(which, many=True)
    add_platform(which)
    add_rules_options(which)
    which.add_argument("--json", action="store_true", help="JSON output")
    which.add_argument("--emit", choices=("qemu", "libvirt", "proxmox"),
                       help="print only the configuration for each recommendation")
    which.add_argument("--hostpci", type=hostpci_arg, default=None, metavar="N",
                       help="with --emit proxmox: the VM's hostpciN index of the (first) device,"
                            " 0..15 (default 0)")
    which.set_defaults(func=cmd_which)


def add_check_command(sub) -> None:
    check = sub.add_parser("check", help="validate rule files (default: the shipped rules/)")
    check.add_argument("paths", nargs="*", metavar="PATH",
                       help="rule files or directories (default: the shipped rules/)")
    check.add_argument("--format", choices=("text", "json", "sarif"), default="text",
                       help="text (stderr, with the source line), json (a list of diagnostics)"
                            " or sarif (SARIF 2.1.0, for code scanning); json and sarif go to stdout")
    check.add_argument("--strict", action="store_true",
                       help="exit 1 when there are warnings (errors always exit 2)")
    check.set_defaults(func=cmd_check)


def add_fmt_command(sub) -> None:
    fmt = sub.add_parser("fmt", help="rewrite rule files in canonical form (comments kept)")
    fmt.add_argument("paths", nargs="*", metavar="PATH",
                     help="rule files or directories to format in place (default: the shipped rules/)")
    fmt.add_argument("--check", action="store_true", help="only list files that need formatting; exit 1 if any")
    fmt.add_argument("--diff", action="store_true",
                     help="print what would change as a unified diff, write nothing; exit 1 if anything would")
    fmt.set_defaults(func=cmd_fmt)


def add_test_command(sub) -> None:
    test = sub.add_parser("test", help="run the examples the rule files carry")
    test.add_argument("paths", nargs="*", metavar="PATH",
                      help="rule files or directories whose examples to run (default: the shipped rules/)")
    test.set_defaults(func=cmd_test)


def add_explain_command(sub) -> None:
    from . import strategies
    explain = sub.add_parser("explain", help="trace one candidate through the rules, role by role")
    explain.add_argument("rules", metavar="RULES", help="a rule file, or a directory to match from")
    explain.add_argument("device", metavar="DEVICE", help="lspci text, YAML record or sysfs directory")
    explain.add_argument("--slot", metavar="S", help="the device at this slot, when DEVICE holds several")
    add_platform(explain)
    what = explain.add_mutually_exclusive_group(required=True)
    what.add_argument("--target", choices=["off", *strategies.TARGETS],
                      help="the x-msix-relocation value to trace")
    what.add_argument("--heuristic", choices=[h for h in strategies.HEURISTICS],
                      help="let this auto-mode heuristic choose the target, then trace it")
    explain.set_defaults(func=cmd_explain)


def cmd_verify(args: argparse.Namespace) -> int:
    """Boot the guest driver once per target with the host device passed through (engine/verify)."""
    from pathlib import Path

    from .verify import grammar, run as verify_run, text as verify_text
    if args.candidates and args.targets:
        raise UsageError("give either --targets or --candidates, not both")
    modules = grammar.modules(args.modules) if args.modules else ()
    setup = verify_run.prepare(args.slot, kernel=args.kernel, accel=args.accel, modules=modules,
                               extra_initrd=args.initrd)
    if not setup.preflight.ok:
        print(verify_text.preflight(setup), file=sys.stderr)
        return EXIT_INPUT
    targets = grammar.targets(args.targets) if args.targets else verify_run.default_targets(setup)
    if not args.json:
        print(verify_text.intro(setup), flush=True)

    def progress(result) -> None:
        if not args.json:
            print(verify_text.case(result), flush=True)
    results = verify_run.verify(setup, targets, timeout=args.timeout, extra_initrd=args.initrd,
                                progress=progress, keep_logs=Path(args.keep_logs) if args.keep_logs else None)
    if args.json:
        import json
        print(json.dumps(verify_text.data(setup, results), indent=2))
    else:
        print()
        print(verify_text.table(results))
    return EXIT_OK if all(r.agrees is not False for r in results) else EXIT_NO


def add_verify_command(sub) -> None:
    ver = sub.add_parser("verify", help="boot the guest driver against each relocation, with the host"
                                        " device (bound to vfio-pci) passed through")
    ver.add_argument("slot", metavar="HOST_SLOT", help="the host device, DDDD:BB:DD.F, bound to vfio-pci")
    ver.add_argument("--targets", metavar="T,...", help="off,bar0..bar5 to try (comma separated)")
    ver.add_argument("--candidates", action="store_true",
                     help="every target which does not expect QEMU to refuse (the default)")
    ver.add_argument("--kernel", metavar="K", help="guest kernel (default /boot/vmlinuz-$(uname -r))")
    ver.add_argument("--initrd", metavar="I", help="an initramfs unpacked under barsafe's own (extra modules)")
    ver.add_argument("--modules", metavar="M,...", help="guest driver modules (default: from modules.alias)")
    ver.add_argument("--accel", choices=("kvm", "tcg"), help="default: kvm if /dev/kvm is usable, else tcg")
    ver.add_argument("--timeout", type=float, default=300.0, metavar="S",
                     help="seconds per guest before it is killed (default 300)")
    ver.add_argument("--keep-logs", metavar="DIR", help="keep each guest's console and QEMU's messages here")
    ver.add_argument("--json", action="store_true", help="JSON output")
    ver.set_defaults(func=cmd_verify)


def cmd_mine(args: argparse.Namespace) -> int:
    """Draft rule files from a Linux tree's driver source (engine/mine)."""
    from pathlib import Path

    from .mine import cfront, run as mine_run
    if not cfront.available():
        raise UsageError("barsafe mine needs tree-sitter and tree-sitter-c: pip install 'barsafe[mine]'")
    tree = Path(args.tree)
    if not (tree / "drivers").is_dir() and not args.paths:
        raise UsageError(f"{tree} is not a Linux source tree (no drivers/ folder)")
    for p in args.paths:
        if not (tree / p).exists():
            raise UsageError(f"{p}: not in {tree}")
    result = mine_run.mine(tree, list(args.paths) or None, workers=args.jobs)
    written = mine_run.write(result, Path(args.output)) if args.output else []
    if args.json:
        import json
        print(json.dumps({"summary": mine_run.summary(result),
                          "drivers": [d.to_json() for d in result.drivers],
                          "errors": result.errors}, indent=2))
        return EXIT_OK
    for d in result.drivers:
        flags = f"{'msix' if d.uses_msix else 'no-msix'}, {len(d.ids)} ids, {len(d.dependencies)} deps"
        unresolved = f", {len(d.unresolved)} unresolved" if d.unresolved else ""
        print(f"{d.name}: {d.place.where} ({d.module}; {flags}{unresolved})")
    numbers = mine_run.summary(result)
    print(f"{numbers['pci_drivers']} PCI drivers, {numbers['msix_drivers']} use MSI-X,"
          f" {numbers['with_dependencies']} with BAR dependencies, {numbers['with_unresolved']} with"
          f" unresolved indices or sizes ({numbers['unresolved']} places); Linux {result.kernel},"
          f" {numbers['seconds']} s on {result.workers} worker(s)")
    if written:
        print(f"wrote {len(written)} mined rule files to {args.output}")
    for e in result.errors:
        print(f"barsafe: warning: {e}", file=sys.stderr)
    return EXIT_OK


def add_mine_command(sub) -> None:
    mine = sub.add_parser("mine", help="draft rule files (status mined, at most warn) from a Linux"
                                       " tree's PCI driver source")
    mine.add_argument("tree", metavar="LINUX_TREE", help="an extracted Linux source tree")
    mine.add_argument("paths", nargs="*", metavar="PATH",
                      help="folders or files in the tree to mine (default: drivers)")
    mine.add_argument("-o", "--output", metavar="DIR", help="write one NAME.rules per driver here")
    mine.add_argument("-j", "--jobs", type=int, default=2, metavar="N", help="worker processes (default 2)")
    mine.add_argument("--json", action="store_true", help="the facts as JSON: drivers, IDs, MSI-X,"
                                                          " dependencies, unresolved places")
    mine.set_defaults(func=cmd_mine)


def add_input(p: argparse.ArgumentParser, many: bool = False) -> None:
    if many:
        p.add_argument("input", nargs="*", metavar="INPUT",
                       help="lspci -vvv text, barsafe YAML records, sysfs device directories or"
                            " directories of dumps; '-' (or a pipe) for standard input")
    else:
        p.add_argument("input", nargs="?", metavar="INPUT",
                       help="lspci -vvv text, a barsafe YAML record, a sysfs device directory,"
                            " or '-' (or a pipe) for standard input")
    p.add_argument("--sysfs", action="store_true",
                   help="read the live machine's /sys/bus/pci/devices instead of INPUT")
    p.add_argument("--slot", metavar="S", help="only the device at this slot (e.g. 0000:03:00.0)")


def add_show_command(sub) -> None:
    show = sub.add_parser("show", help="print devices as barsafe reads them")
    add_input(show, many=True)
    show.add_argument("--json", action="store_true", help="JSON (same as --format json)")
    show.add_argument("--format", choices=("text", "json", "yaml"), default="text",
                      help="yaml writes barsafe device records that read back identical")
    show.set_defaults(func=cmd_show)


def add_simulate_command(sub) -> None:
    from . import strategies
    sim = sub.add_parser("simulate", help="guest-visible layout after MSI-X relocation")
    add_input(sim)
    add_platform(sim)
    what = sim.add_mutually_exclusive_group(required=True)
    what.add_argument("--target", choices=strategies.TARGETS, help="relocate to this BAR")
    what.add_argument("--heuristic", choices=[h for h in strategies.HEURISTICS],
                      help="let a named heuristic choose")
    what.add_argument("--all", action="store_true",
                      help="off, bar0..bar5, then every heuristic")
    sim.add_argument("--json", action="store_true", help="JSON output")
    sim.set_defaults(func=cmd_simulate)


@lru_cache(maxsize=1)
def _parser_class() -> type:
    """The class of every barsafe parser, subcommands' too (argparse makes them of the parent's
    class): argparse's own with a help formatter that measures the terminal as
    shutil.get_terminal_size does but without importing shutil (argparse makes a formatter for
    every option it adds, to check its metavar, and the import (bz2, lzma, fnmatch...) cost
    `which` a tenth of its start-up).  Made when first needed, as argparse is imported then."""
    import argparse

    class HelpFormatter(argparse.HelpFormatter):
        def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                     width: int | None = None) -> None:
            if width is None:
                width = _terminal_columns() - 2
            super().__init__(prog, indent_increment, max_help_position, width)

    class ArgumentParser(argparse.ArgumentParser):
        def __init__(self, *args, formatter_class=HelpFormatter, **kwargs) -> None:
            super().__init__(*args, formatter_class=formatter_class, **kwargs)

    return ArgumentParser


def _terminal_columns() -> int:
    """shutil.get_terminal_size().columns: $COLUMNS, else the terminal's, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; given a command name (one of COMMANDS), the same top level with
    that command's subparser alone, which is all parsing its arguments needs: building every
    subparser costs more than some answers (`which` runs once per question)."""
    parser = _parser_class()(
        prog="barsafe",
        description="Predict which MSI-X relocation (QEMU x-msix-relocation) a passed-through"
                    " PCI device's guest driver survives.",
        epilog="Exit codes: 0 success, 1 negative answer (failed rule example, file needs"
               " formatting), 2 bad input, rules or usage, 3 internal error.")
    parser.add_argument("--version", action="version", version=f"barsafe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, add in COMMANDS.items():
        if command is None or name == command:
            add(sub)
    return parser


def cmd_schema(args: argparse.Namespace) -> int:
    """The JSON Schema of one machine-readable output, as shipped (engine/schemas, docs/json-schemas.md)."""
    from . import schemas
    sys.stdout.write(schemas.text(args.name))
    return EXIT_OK


def add_schema_command(sub) -> None:
    from .schemas import OUTPUTS
    sch = sub.add_parser("schema", help="print the JSON Schema (draft 2020-12) of a machine-readable output",
                         description="Validate barsafe's JSON with it; its version is the number in $id"
                                     " (docs/json-schemas.md).")
    sch.add_argument("name", choices=list(OUTPUTS), metavar="NAME",
                     help="; ".join(f"{name}: {what}" for name, what in OUTPUTS.items()))
    sch.set_defaults(func=cmd_schema)


SHELLS = ("bash", "zsh", "fish")


def cmd_completion(args: argparse.Namespace) -> int:
    """The shell's completion hook for barsafe, from argcomplete (completions come from this parser)."""
    import argcomplete
    sys.stdout.write(argcomplete.shellcode(["barsafe"], shell=args.shell))
    return EXIT_OK


def add_completion_command(sub) -> None:
    comp = sub.add_parser("completion", help="print shell completion for bash, zsh or fish",
                          description="Load it with: eval \"$(barsafe completion bash)\" (bash, zsh), or"
                                      " barsafe completion fish | source (fish).")
    comp.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    comp.set_defaults(func=cmd_completion)


# Every subcommand, in the order `barsafe --help` lists them: name -> the function adding its
# subparser (which sets func=cmd_NAME).  A new command is one adder and one line here.
COMMANDS = {
    "show": add_show_command,
    "simulate": add_simulate_command,
    "export": add_export_command,
    "audit": add_audit_command,
    "coverage": add_coverage_command,
    "which": add_which_command,
    "check": add_check_command,
    "fmt": add_fmt_command,
    "test": add_test_command,
    "explain": add_explain_command,
    "completion": add_completion_command,
    "verify": add_verify_command,
    "mine": add_mine_command,
    "schema": add_schema_command,
}


class Arguments:
    """The namespace of a command line read by quick_args: argparse.Namespace's behaviour."""

    def __init__(self, values: dict) -> None:
        self.__dict__.update(values)

    def __contains__(self, name: str) -> bool:
        return name in self.__dict__

    def __eq__(self, other) -> bool:
        return vars(self) == vars(other) if hasattr(other, "__dict__") else NotImplemented

    def __repr__(self) -> str:
        return f"Arguments({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"


def quick_args(command: str, words: list[str]) -> Arguments | None:
    """``command``'s arguments read without argparse (engine/quickargs.py), or None when argparse
    must read them (help, errors, anything but the plain cases)."""
    from . import quickargs
    spec = quickargs.declared(COMMANDS[command])
    values = quickargs.parse(spec, words) if spec is not None else None
    return None if values is None else Arguments({"command": command, **values})


# Commands that start no threads, processes or clusters and leave no file open: when the
# program itself runs one, it ends as soon as its output is flushed (_end).
ENDS_AT_ONCE = frozenset({"which", "show", "simulate", "explain", "schema"})


def main(argv: Sequence[str] | None = None) -> int:
    code = _main(argv)
    if argv is None and len(sys.argv) > 1 and sys.argv[1] in ENDS_AT_ONCE:
        _end(code)
    return code


def _end(code: int) -> None:
    """Exit now, without the interpreter's teardown, once the output is out: freeing every
    module, class and object one by one cost a warm `which` 3 % of its time, and the system
    frees the process at once.  If flushing fails (a closed pipe), return, and the normal
    exit reports it as it always has."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        return
    os._exit(code)


def _main(argv: Sequence[str] | None) -> int:
    if argv is None:  # the program itself, `barsafe ...` (not a caller's main(argv))
        # Starting made tens of thousands of objects that live as long as the process
        # (modules, classes, functions); left to the collector, every pass rescans them, and
        # the passes during the command's own imports and reading cost a warm `which` a tenth
        # of its time.  gc.freeze() sets them aside for good; collection goes on for the rest.
        gc.freeze()
    argv = sys.argv[1:] if argv is None else list(argv)
    completing = "_ARGCOMPLETE" in os.environ  # the shell asks for completions (argcomplete's protocol)
    # A command named first needs only its own subparser; anything else (--help, --version, a
    # misspelt command, completion) gets the whole parser, so its messages list every command.
    command = argv[0] if argv and argv[0] in COMMANDS and not completing else None
    args = quick_args(command, argv[1:]) if command is not None else None
    if args is None:
        parser = build_parser(command)
        if completing:
            import argcomplete
            argcomplete.autocomplete(parser)  # prints the candidates and exits
        args = parser.parse_args(argv)
    try:
        return args.func(args)
    except RuleErrors as exc:
        from .report import diagnostics
        print(diagnostics.render(exc, source_line), file=sys.stderr)
        return EXIT_INPUT
    except BarsafeError as exc:
        print(f"barsafe: error: {message(exc)}", file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: say so briefly, never dump a traceback on users
        print(f"barsafe: internal error: {type(exc).__name__}: {exc}"
              " (this is a bug in barsafe; please report it with the input)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
