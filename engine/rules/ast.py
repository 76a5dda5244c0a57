"""The rule language's syntax tree: frozen nodes, each with the span it came from.

Spans are excluded from equality, so `parse -> fmt -> parse` can be checked
with ==.  Node names follow the grammar (grammar/barsafe.lark).

The nodes are frozen records on a small base class rather than dataclasses:
`barsafe which` must start within 1.3x of `import lark, yaml`, and creating
forty dataclasses (each generating its methods with exec) cost a fifth of
that budget.  The base gives the same contract: keyword or positional
construction with defaults, immutability, == and hash over the compared
fields, a readable repr, pickling.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..errors import Location
from ..units import QUOTE_LIMIT, quote


class FrozenInstanceError(AttributeError):
    pass


class Node:
    """Base of every AST record: fields come from the class annotations, in order."""

    _fields: tuple[str, ...] = ()
    _defaults: dict = {}
    _uncompared: frozenset[str] = frozenset({"span"})

    def __init_subclass__(cls, uncompared: tuple[str, ...] = (), **kw):
        super().__init_subclass__(**kw)
        names = tuple(cls.__dict__.get("__annotations__", {}))
        cls._fields = names
        cls._defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
        for n in cls._defaults:
            delattr(cls, n)
        cls._uncompared = frozenset({"span", *uncompared})
        cls._compared = tuple(n for n in names if n not in cls._uncompared)

    def __init__(self, *args, **kwargs):
        if len(args) > len(self._fields):
            raise TypeError(f"{type(self).__name__} takes {len(self._fields)} fields")
        values = dict(zip(self._fields, args))
        for name, value in kwargs.items():
            if name not in self._fields or name in values:
                raise TypeError(f"{type(self).__name__}: bad or repeated field {name!r}")
            values[name] = value
        for name in self._fields:
            if name not in values:
                if name not in self._defaults:
                    raise TypeError(f"{type(self).__name__} needs {name!r}")
                values[name] = self._defaults[name]
        self.__dict__.update(values)

    def __setattr__(self, name, value):
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name):
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def _key(self) -> tuple:
        return tuple(self.__dict__[n] for n in self._compared)

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self):
        return hash((self.__class__.__name__, self._key()))

    def __repr__(self):
        shown = ", ".join(f"{n}={self.__dict__[n]!r}" for n in self._fields if n != "span")
        return f"{type(self).__name__}({shown})"


class Span(Node, uncompared=()):
    path: str
    line: int
    column: int
    end_line: int
    end_column: int

    @property
    def location(self) -> Location:
        return Location(self.path, self.line, self.column)


NO_SPAN = Span("<none>", 0, 0, 0, 0)


# --- references and selectors -------------------------------------------------------------

class Ref(Node):
    """A BAR slot (bar0..bar5) or a role, in the relocated layout or, with `native`, the original."""

    bar: int | None = None
    role: str | None = None
    native: bool = False
    span: Span = NO_SPAN

    @property
    def text(self) -> str:
        name = f"bar{self.bar}" if self.bar is not None else str(self.role)
        return f"native {name}" if self.native else name


class Fixed(Node):
    index: int


class Ordinal(Node):
    order: str  # first | second | third | last
    kind: str  # memory | io | 64bit | prefetchable
    low: int = 0  # only BARs low..high count (`in bar0..bar3`)
    high: int = 5
    size_op: str | None = None  # only BARs whose size passes (`with size >= 1540`)
    size: int | None = None


class Largest(Node):
    pass


class MsixBar(Node):
    pass


Selector = Fixed | Ordinal | Largest | MsixBar


# --- conditions ---------------------------------------------------------------------------

class AnyOf(Node):
    items: tuple["Cond", ...]
    span: Span = NO_SPAN


class AllOf(Node):
    items: tuple["Cond", ...]
    span: Span = NO_SPAN


class Not(Node):
    item: "Cond"
    span: Span = NO_SPAN


class Stays(Node):
    ref: Ref
    span: Span = NO_SPAN


class IsAttr(Node):
    ref: Ref
    attr: str  # memory | io | 64bit | 32bit | prefetchable | implemented
    negated: bool = False
    span: Span = NO_SPAN


class SizeCmp(Node):
    ref: Ref
    op: str
    size: int
    span: Span = NO_SPAN


class SizeIn(Node):
    ref: Ref
    sizes: tuple[int, ...]
    span: Span = NO_SPAN


class Unchanged(Node):
    ref: Ref
    span: Span = NO_SPAN


class SizeUnchanged(Node):
    ref: Ref
    span: Span = NO_SPAN


class EndUnchanged(Node):
    ref: Ref
    span: Span = NO_SPAN


class NoBarAdded(Node):
    below: Ref | None = None
    span: Span = NO_SPAN


class NoBarExtended(Node):
    span: Span = NO_SPAN


class CountUnchanged(Node):
    span: Span = NO_SPAN


class Added(Node):
    """`bar4 added`: relocation added the BAR the reference names."""

    ref: Ref
    span: Span = NO_SPAN


class DeviceId(Node):
    """`device id 1da3:0001`: the rule is about this device (IDs may be *, the device a range)."""

    vendor: int | None
    device: int | None
    subsystem_vendor: int | None = None
    subsystem_device: int | None = None
    has_subsystem: bool = False
    span: Span = NO_SPAN
    device_high: int | None = None  # `1af4:1000..107f`: device IDs device..device_high


class DeviceIdUnknown(Node):
    """`device id unknown`: the input gave no vendor:device (lspci without -nn)."""

    span: Span = NO_SPAN


class RevisionUnknown(Node):
    """`revision unknown`: the input gave no revision ID."""

    span: Span = NO_SPAN


class RevisionCmp(Node):
    """`revision >= 0x07`: the PCI revision ID, as drivers test it."""

    op: str
    value: int
    span: Span = NO_SPAN


Cond = (AnyOf | AllOf | Not | Stays | IsAttr | SizeCmp | SizeIn | Unchanged | SizeUnchanged
        | EndUnchanged | NoBarAdded | NoBarExtended | CountUnchanged | Added | DeviceId | RevisionCmp
        | DeviceIdUnknown | RevisionUnknown)


# --- statements ---------------------------------------------------------------------------

class Text(Node, uncompared=("pieces",)):
    """A string; `pieces` keeps how the author split it over lines (for fmt), `span` where
    the first piece starts and the last ends (for errors about the string itself)."""

    value: str
    pieces: tuple[str, ...] = ()
    span: Span = NO_SPAN


class Ruleset(Node):
    name: str
    span: Span = NO_SPAN


class Status(Node):
    """`status mined` (drafted by `barsafe mine`, not read by a person: at most warn) or
    `status reviewed` (the default when a file says nothing)."""

    value: str  # mined | reviewed
    span: Span = NO_SPAN


class Describe(Node):
    text: Text
    span: Span = NO_SPAN


class Source(Node):
    where: Text  # "path/to/file.c:123"
    function: str | None = None
    kernel: Text | None = None
    span: Span = NO_SPAN


class Include(Node):
    path: Text
    span: Span = NO_SPAN


class MatchDriver(Node):
    name: str
    span: Span = NO_SPAN


class MatchModule(Node):
    name: str
    span: Span = NO_SPAN


class MatchId(Node, uncompared=("class_digits",)):
    """`match id 10de:* [subsystem V:D] [class 0x0300 [mask 0xff00]]`: IDs (the device part
    may be a range, `1af4:1000..107f`), and a class the device must also have."""

    vendor: int | None
    device: int | None
    subsystem_vendor: int | None = None
    subsystem_device: int | None = None
    has_subsystem: bool = False
    span: Span = NO_SPAN
    device_high: int | None = None  # device IDs device..device_high
    class_value: int | None = None  # as in `match class`
    class_mask: int | None = None
    class_with_prog_if: bool = False
    class_digits: int = 0


class MatchClass(Node, uncompared=("digits",)):
    """`match class 0x0108 [mask 0xff00]`: base class and subclass; written with 6 digits
    (`0x0c0330`, ``with_prog_if``) the programming interface too, as the kernel's 24-bit class."""

    value: int
    mask: int | None = None
    span: Span = NO_SPAN
    with_prog_if: bool = False
    digits: int = 0  # hex digits as written (check refuses 5), 0 when not parsed


Match = MatchDriver | MatchModule | MatchId | MatchClass


class Registers(Node):
    """`registers bar0 0x2800..0x28ff "what" cite "FILE:LINE"`: device registers the driver
    uses at these BAR offsets (``end`` inclusive).  Inside the 4K range of an MSI-X structure
    they break the PCIe rule the page analysis relies on, so QEMU's trapped page holds them."""

    bar: int
    start: int
    end: int
    what: Text
    cite: Text | None = None
    span: Span = NO_SPAN


class Role(Node):
    name: str
    selector: Selector
    span: Span = NO_SPAN


class Rule(Node):
    name: str
    guard: Cond | None
    cond: Cond
    severity: str  # forbid | warn
    message: Text
    span: Span = NO_SPAN


class ExampleDevice(Node):
    path: Text
    span: Span = NO_SPAN


class ExampleId(Node):
    """`id VVVV:DDDD [subsystem VVVV:DDDD]` in an inline example: the device's IDs."""

    vendor: int
    device: int
    subsystem_vendor: int | None = None
    subsystem_device: int | None = None
    span: Span = NO_SPAN


class ExampleRevision(Node):
    revision: int
    span: Span = NO_SPAN


class ExampleBar(Node):
    index: int
    kind: str  # io | mem32 | mem64
    size: int | None = None
    prefetchable: bool = False
    span: Span = NO_SPAN


class ExampleMsix(Node):
    entries: int
    table_bar: int
    table_offset: int
    pba_bar: int
    pba_offset: int
    span: Span = NO_SPAN


class ExamplePlatform(Node):
    page_size: int
    io_space: bool = True
    span: Span = NO_SPAN


class Expect(Node):
    strategy: str
    verdict: str  # safe | warn | forbid | refused
    span: Span = NO_SPAN


ExampleItem = (ExampleDevice | ExampleId | ExampleRevision | ExampleBar | ExampleMsix | ExamplePlatform
               | Expect)


class Example(Node):
    title: Text
    items: tuple[ExampleItem, ...]
    span: Span = NO_SPAN


Statement = (Ruleset | Status | Describe | Source | Include | MatchDriver | MatchModule | MatchId
             | MatchClass | Registers | Role | Rule | Example)


class Comment(Node):
    line: int
    column: int
    text: str
    own_line: bool = True  # nothing but the comment on its line


class RuleFile(Node, uncompared=("path", "comments")):
    path: str
    statements: tuple[Statement, ...]
    comments: tuple[Comment, ...] = ()

    def of(self, *types: type) -> list:
        return [s for s in self.statements if isinstance(s, types)]

    @property
    def name(self) -> str | None:
        found = self.of(Ruleset)
        return found[0].name if found else None

    @property
    def status(self) -> str:
        """`mined` or `reviewed` (a file without a status line is reviewed)."""
        found = self.of(Status)
        return found[0].value if found else "reviewed"

    @property
    def roles(self) -> list[Role]:
        return self.of(Role)

    @property
    def rules(self) -> list[Rule]:
        return self.of(Rule)

    @property
    def matches(self) -> list:
        return self.of(MatchDriver, MatchModule, MatchId, MatchClass)

    @property
    def registers(self) -> list[Registers]:
        return self.of(Registers)

    @property
    def examples(self) -> list[Example]:
        return self.of(Example)

    @property
    def includes(self) -> list[Include]:
        return self.of(Include)


def stem_of(path: str) -> str:
    """The rule set name a file must carry: its name without .rules."""
    from pathlib import Path  # here: only parsing asks, and pathlib costs every start-up
    return Path(path).name.removesuffix(".rules")


def quoted(value: object, limit: int = QUOTE_LIMIT) -> str:
    """A user's text as an error message quotes it (units.quote: one line, cut to ``limit``
    characters, invisible characters shown as <U+XXXX>), with its length when it was cut: a
    rule file may hold a megabyte in one string, and an error must not repeat it."""
    text = str(value)
    return quote(text, limit) + (f" ({len(text)} characters)" if len(text) > limit else "")


def atoms(cond: Cond | None) -> Iterator[Cond]:
    """The conditions that are not any/all/not, in source order (none for ``None``)."""
    if cond is None:
        return
    if isinstance(cond, (AnyOf, AllOf)):
        for item in cond.items:
            yield from atoms(item)
    elif isinstance(cond, Not):
        yield from atoms(cond.item)
    else:
        yield cond


def pci_id_text(vendor: int | None, device: int | None, device_high: int | None = None) -> str:
    """`1000:0097`, with `*` for a part that matches anything, `1af4:1000..107f` for a range."""
    high = f"..{device_high:04x}" if device_high is not None and device is not None else ""
    return f"{'*' if vendor is None else f'{vendor:04x}'}:{'*' if device is None else f'{device:04x}'}{high}"
