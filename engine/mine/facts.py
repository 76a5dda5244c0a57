"""What the miner found in one driver, as plain data: the stage between C and rules.

Every fact carries its place (file:line and function) in the kernel tree it came
from.  Nothing here knows C or the rule language; `extract` fills these records,
`emit` turns them into rule AST nodes, and `--json` prints them as they are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Place:
    file: str  # tree-relative
    line: int
    function: str | None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def __str__(self) -> str:
        return f"{self.function} ({self.where})" if self.function else self.where


@dataclass(frozen=True)
class PciId:
    """One ID table entry, resolved.  None: PCI_ANY_ID."""

    vendor: int | None
    device: int | None
    subvendor: int | None = None
    subdevice: int | None = None
    class_code: int | None = None  # 24-bit class as in pci_device_id
    class_mask: int | None = None
    line: int = 0


@dataclass(frozen=True)
class Dependency:
    """One BAR-layout dependency reachable from probe.

    kind:
      fixed    the driver uses BAR `bar` by its index (map, request, start, len, flags)
      flag     it tests BAR `bar`'s attribute `attr` (memory, io, 64bit, prefetchable)
      size     it compares BAR `bar`'s length: `op` `value` (value None: not a constant)
      derived  it computes something from BAR `bar`'s length (queues, windows, masks)
      ordinal  it takes the `order` (first, second, third, last) BAR of `attr` (memory or
               io), among bar`low`..bar`high`
      mask     it compares the set of memory BARs with `value` (a bitmask): no BAR may appear
      extent   it uses the length of a BAR whose index it reads at run time (unresolved index)
    """

    kind: str
    place: Place
    bar: int | None = None
    attr: str | None = None
    op: str | None = None
    value: int | None = None
    order: str | None = None
    low: int = 0
    high: int = 5
    api: str = ""  # the call or construct: pci_resource_len, loop over resources, ...
    detail: str = ""


@dataclass(frozen=True)
class Unresolved:
    """A BAR index or size the miner could not reduce to constants: reported, never guessed."""

    place: Place
    what: str  # "index" | "size" | "id"
    api: str
    expression: str
    reason: str = ""


@dataclass
class Driver:
    """One `struct pci_driver` and what its probe path assumes about BARs."""

    name: str  # the driver's .name (or the variable's name when .name is not a constant)
    module: str
    variable: str
    place: Place
    probe: Place | None
    id_table: str | None
    ids: list[PciId] = field(default_factory=list)
    msix: list[Place] = field(default_factory=list)  # where it asks for MSI-X vectors
    dependencies: list[Dependency] = field(default_factory=list)
    unresolved: list[Unresolved] = field(default_factory=list)
    functions: int = 0  # functions reachable from probe in the driver's own files
    files: list[str] = field(default_factory=list)

    @property
    def uses_msix(self) -> bool:
        return bool(self.msix)

    def to_json(self) -> dict:
        data = asdict(self)
        data["uses_msix"] = self.uses_msix
        return data


@dataclass
class Result:
    """The miner's answer for a tree (or part of it)."""

    kernel: str
    drivers: list[Driver] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # files that could not be read or parsed
    seconds: float = 0.0
    workers: int = 1
