"""A subcommand's command line read without argparse, when it is plain enough to be sure.

`barsafe which` is run once per question, so its start-up is most of its time, and
importing argparse (which imports gettext and locale, and looks for a translation of each
message it builds) and building the parser cost a warm `which` about a twentieth of it.
Each subcommand's arguments are declared once, by its adder in engine/cli.py, for argparse.
``declared`` runs an adder against a Recorder that stands in for argparse and keeps what
it declared; ``parse`` then reads a command line against that declaration when nothing
needs judgement: options spelt in full, ``--name value`` or ``--name=value``, values that
convert and are among the choices, the positionals in one run.  Anything else (help, an
abbreviation, ``--``, a short option, a value that starts with ``-``, one that does not
convert, a missing or extra argument, a declaration it does not know) gives None, and the
caller runs argparse, whose answer or message is then the one the user gets.
tests/test_quickargs.py holds parse to argparse's result on generated command lines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

_PLAIN = {"help", "metavar", "type", "choices", "default", "action", "nargs", "dest"}
_ACTIONS = {"store", "store_true", "append"}
_NARGS = {None, "?", "*", "+"}


class _Argument:
    __slots__ = ("dest", "action", "nargs", "type", "choices", "default")

    def __init__(self, dest: str, kw: dict) -> None:
        self.dest = kw.get("dest", dest)
        self.action = kw.get("action", "store")
        self.nargs = kw.get("nargs")
        self.type = kw.get("type")
        self.choices = kw.get("choices")
        self.default = kw.get("default", False if self.action == "store_true" else None)

    def value(self, text: str):
        """The converted value, or _NO when argparse would refuse it."""
        try:
            value = self.type(text) if self.type is not None else text
        except Exception:  # argparse turns these into its message: let it
            return _NO
        if self.choices is not None and value not in self.choices:
            return _NO
        return value


_NO = object()


class Recorder:
    """Stands in for an argparse parser (and its subparsers action) while an adder declares a
    subcommand; ``plain`` turns False at anything parse does not read itself."""

    def __init__(self) -> None:
        self.plain = True
        self.options: dict[str, _Argument] = {}
        self.positionals: list[_Argument] = []
        self.defaults: dict = {}
        self.command: Recorder | None = None

    def add_parser(self, name: str, **kw) -> Recorder:
        self.command = Recorder()
        return self.command

    def add_argument(self, *flags: str, **kw) -> None:
        action = kw.get("action", "store")
        if (not flags or set(kw) - _PLAIN or action not in _ACTIONS or kw.get("nargs") not in _NARGS
                or (action == "append" and kw.get("default") is not None)
                or (isinstance(kw.get("default"), str) and kw.get("type") is not None)):
            self.plain = False
            return
        if flags[0].startswith("-"):
            if not all(f.startswith("--") and len(f) > 2 for f in flags) or "nargs" in kw or (
                    action == "store_true" and set(kw) - {"help", "action", "dest"}):
                self.plain = False
                return
            arg = _Argument(flags[0][2:].replace("-", "_"), kw)
            for flag in flags:
                self.options[flag] = arg
        elif len(flags) == 1 and action == "store" and "dest" not in kw:
            self.positionals.append(_Argument(flags[0], kw))
        else:
            self.plain = False

    def set_defaults(self, **kw) -> None:
        self.defaults.update(kw)

    def __getattr__(self, name: str):
        """Any other parser method (groups, subparsers, ...): not a plain declaration."""
        if name.startswith("__"):
            raise AttributeError(name)
        self.plain = False
        return lambda *args, **kw: Recorder()


def declared(adder: Callable[[Recorder], None]) -> Recorder | None:
    """What a subcommand adder declares (cli.COMMANDS), or None if parse could not read it."""
    top = Recorder()
    adder(top)
    spec = top.command
    if spec is None or not spec.plain or len(spec.positionals) > 1:
        return None
    dests = [a.dest for a in {id(a): a for a in spec.options.values()}.values()] + [a.dest for a in spec.positionals]
    if len(set(dests)) != len(dests) or set(dests) & set(spec.defaults) or "command" in dests:
        return None
    return spec


def parse(spec: Recorder, args: Sequence[str]) -> dict | None:
    """The subcommand's values from ``args`` (the words after its name) as argparse's
    namespace would hold them, or None when argparse must read them."""
    values: dict = {}
    words: list[str] = []
    ended = False  # the run of positionals is over (an option came after it)
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if word.startswith("-") and word != "-":
            name, eq, text = word.partition("=")
            option = spec.options.get(name)
            if option is None or not name.startswith("--"):
                return None
            ended = bool(words)
            if option.action == "store_true":
                if eq:
                    return None
                values[option.dest] = True
                continue
            if not eq:
                if i == len(args):
                    return None
                text = args[i]
                i += 1
            if text.startswith("-"):
                return None
            value = option.value(text)
            if value is _NO:
                return None
            if option.action == "append":
                values.setdefault(option.dest, []).append(value)
            else:
                values[option.dest] = value
        elif ended:
            return None
        else:
            words.append(word)
    for option in spec.options.values():
        values.setdefault(option.dest, option.default)
    if spec.positionals:
        (positional,) = spec.positionals
        got = _positional(positional, words)
        if got is _NO:
            return None
        values[positional.dest] = got
    elif words:
        return None
    values.update(spec.defaults)
    return values


def _positional(arg: _Argument, words: list[str]):
    converted = [arg.value(w) for w in words]
    if _NO in converted:
        return _NO
    if arg.nargs is None:
        return converted[0] if len(converted) == 1 else _NO
    if arg.nargs == "?":
        return converted[0] if len(converted) == 1 else arg.default if not converted else _NO
    if arg.nargs == "+" and not converted:
        return _NO
    if not converted and arg.default is not None:
        return arg.default
    return converted
