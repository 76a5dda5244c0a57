"""The rule language's syntax tree: frozen nodes, each with the span it came from.

Spans are excluded from equality, so `parse -> fmt -> parse` can be checked
with ==.  Node names follow the grammar (grammar/barsafe.lark).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from ..errors import Location


@dataclass(frozen=True)
class Span:
    path: str
    line: int
    column: int
    end_line: int
    end_column: int

    @property
    def location(self) -> Location:
        return Location(self.path, self.line, self.column)


NO_SPAN = Span("<none>", 0, 0, 0, 0)


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


# --- references and selectors -------------------------------------------------------------

@dataclass(frozen=True)
class Ref:
    """A BAR slot (bar0..bar5) or a role, in the relocated layout or, with `native`, the original."""

    bar: int | None = None
    role: str | None = None
    native: bool = False
    span: Span = _span()

    @property
    def text(self) -> str:
        name = f"bar{self.bar}" if self.bar is not None else str(self.role)
        return f"native {name}" if self.native else name


@dataclass(frozen=True)
class Fixed:
    index: int


@dataclass(frozen=True)
class Ordinal:
    order: str  # first | last
    kind: str  # memory | io | 64bit | prefetchable


@dataclass(frozen=True)
class Largest:
    pass


@dataclass(frozen=True)
class MsixBar:
    pass


Selector = Union[Fixed, Ordinal, Largest, MsixBar]


# --- conditions ---------------------------------------------------------------------------

@dataclass(frozen=True)
class AnyOf:
    items: tuple["Cond", ...]
    span: Span = _span()


@dataclass(frozen=True)
class AllOf:
    items: tuple["Cond", ...]
    span: Span = _span()


@dataclass(frozen=True)
class Not:
    item: "Cond"
    span: Span = _span()


@dataclass(frozen=True)
class Stays:
    ref: Ref
    span: Span = _span()


@dataclass(frozen=True)
class IsAttr:
    ref: Ref
    attr: str  # memory | io | 64bit | 32bit | prefetchable | implemented
    negated: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class SizeCmp:
    ref: Ref
    op: str
    size: int
    span: Span = _span()


@dataclass(frozen=True)
class SizeIn:
    ref: Ref
    sizes: tuple[int, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Unchanged:
    ref: Ref
    span: Span = _span()


@dataclass(frozen=True)
class SizeUnchanged:
    ref: Ref
    span: Span = _span()


@dataclass(frozen=True)
class EndUnchanged:
    ref: Ref
    span: Span = _span()


@dataclass(frozen=True)
class NoBarAdded:
    below: Ref | None = None
    span: Span = _span()


@dataclass(frozen=True)
class NoBarExtended:
    span: Span = _span()


@dataclass(frozen=True)
class CountUnchanged:
    span: Span = _span()


Cond = Union[AnyOf, AllOf, Not, Stays, IsAttr, SizeCmp, SizeIn, Unchanged, SizeUnchanged,
             EndUnchanged, NoBarAdded, NoBarExtended, CountUnchanged]


# --- statements ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Text:
    """A string; `pieces` keeps how the author split it over lines (for fmt)."""

    value: str
    pieces: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Ruleset:
    name: str
    span: Span = _span()


@dataclass(frozen=True)
class Describe:
    text: Text
    span: Span = _span()


@dataclass(frozen=True)
class Source:
    where: Text  # "path/to/file.c:123"
    function: str | None = None
    kernel: Text | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Include:
    path: Text
    span: Span = _span()


@dataclass(frozen=True)
class MatchDriver:
    name: str
    span: Span = _span()


@dataclass(frozen=True)
class MatchModule:
    name: str
    span: Span = _span()


@dataclass(frozen=True)
class MatchId:
    vendor: int | None
    device: int | None
    subsystem_vendor: int | None = None
    subsystem_device: int | None = None
    has_subsystem: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class MatchClass:
    value: int
    mask: int | None = None
    span: Span = _span()


Match = Union[MatchDriver, MatchModule, MatchId, MatchClass]


@dataclass(frozen=True)
class Role:
    name: str
    selector: Selector
    span: Span = _span()


@dataclass(frozen=True)
class Rule:
    name: str
    guard: Cond | None
    cond: Cond
    severity: str  # forbid | warn
    message: Text
    span: Span = _span()


@dataclass(frozen=True)
class ExampleDevice:
    path: Text
    span: Span = _span()


@dataclass(frozen=True)
class ExampleBar:
    index: int
    kind: str  # io | mem32 | mem64
    size: int | None = None
    prefetchable: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class ExampleMsix:
    entries: int
    table_bar: int
    table_offset: int
    pba_bar: int
    pba_offset: int
    span: Span = _span()


@dataclass(frozen=True)
class ExamplePlatform:
    page_size: int
    io_space: bool = True
    span: Span = _span()


@dataclass(frozen=True)
class Expect:
    strategy: str
    verdict: str  # safe | warn | forbid | refused
    span: Span = _span()


ExampleItem = Union[ExampleDevice, ExampleBar, ExampleMsix, ExamplePlatform, Expect]


@dataclass(frozen=True)
class Example:
    title: Text
    items: tuple[ExampleItem, ...]
    span: Span = _span()


Statement = Union[Ruleset, Describe, Source, Include, MatchDriver, MatchModule, MatchId,
                  MatchClass, Role, Rule, Example]


@dataclass(frozen=True)
class Comment:
    line: int
    column: int
    text: str
    own_line: bool = True  # nothing but the comment on its line


@dataclass(frozen=True)
class RuleFile:
    path: str = field(compare=False)
    statements: tuple[Statement, ...]
    comments: tuple[Comment, ...] = field(default=(), compare=False)

    def of(self, *types: type) -> list:
        return [s for s in self.statements if isinstance(s, types)]

    @property
    def name(self) -> str | None:
        found = self.of(Ruleset)
        return found[0].name if found else None

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
    def examples(self) -> list[Example]:
        return self.of(Example)

    @property
    def includes(self) -> list[Include]:
        return self.of(Include)


def stem_of(path: str) -> str:
    """The rule set name a file must carry: its name without .rules."""
    return Path(path).name.removesuffix(".rules")
