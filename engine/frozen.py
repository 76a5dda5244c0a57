"""Frozen records: what ``@dataclass(frozen=True, slots=True)`` gives, without its start-up cost.

`barsafe which` answers one question per process, so start-up is most of its time.
Importing dataclasses costs as much as 45 % of `import yaml` (it imports inspect), and each
dataclass another 2.5 % at import, because it writes its methods as source text and
compiles them with exec every time the program starts; the model, the simulator and the
scorer have eighteen of them.  A record here writes its own ``__init__`` (plain code,
compiled once into the .pyc, as fast as the generated one) and gets the rest from
``Frozen``:

- ``__slots__``: the annotated fields, in order (checked against ``__init__``'s parameters
  when the class is made, so the two cannot drift apart);
- ``==`` and ``hash`` over the fields, less those named in ``uncompared=``; ``repr`` of the
  fields, less those in ``unshown=``; ``__match_args__``;
- assignment and deletion raise FrozenInstanceError (an AttributeError);
- pickling and copying (Dask ships devices between processes);
- ``dataclasses.replace``, ``fields``, ``asdict`` and ``is_dataclass`` work on them: the
  fields those functions look for are built (with dataclasses) the first time one asks.

``__init__`` sets each field with ``_set(self, name, value)`` and may check its values, as
a ``__post_init__`` would.  ``replace(record, **changes)`` is dataclasses.replace.
"""

from __future__ import annotations

from operator import attrgetter

_set = object.__setattr__


class FrozenInstanceError(AttributeError):
    """Assigning to (or deleting) a field of a frozen record."""


def _getter(names: tuple[str, ...]):
    """A function giving ``obj``'s values of ``names`` as a tuple (attrgetter gives a bare
    value for one name)."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        name = names[0]
        return lambda obj: (getattr(obj, name),)
    return lambda obj: ()


class _DataclassFields:
    """``__dataclass_fields__``, made when first read: dataclasses' own Field objects, taken
    from a dataclass twin with the same fields, defaults, compare and repr flags."""

    def __get__(self, obj, cls):
        found = cls.__dict__.get("_dataclass_twin_fields")
        if found is None:
            import dataclasses
            given = cls.__init__.__defaults__ or ()
            defaults = dict(zip(cls._fields[len(cls._fields) - len(given):], given))
            spec = []
            for name in cls._fields:
                options = {"compare": name not in cls._uncompared, "repr": name not in cls._unshown}
                if name in defaults:
                    options["default"] = defaults[name]
                spec.append((name, cls.__annotations__.get(name, "object"), dataclasses.field(**options)))
            twin = dataclasses.make_dataclass(cls.__name__, spec, frozen=True)
            found = twin.__dataclass_fields__
            type.__setattr__(cls, "_dataclass_twin_fields", found)
        return found


class _FrozenMeta(type):
    def __new__(mcls, name, bases, ns, uncompared: tuple[str, ...] = (), unshown: tuple[str, ...] = ()):
        fields = tuple(ns.get("__annotations__", {}))
        if bases:  # a record class (Frozen itself has no fields)
            init = ns.get("__init__")
            params = init.__code__.co_varnames[1:init.__code__.co_argcount] if init else None
            if params != fields:
                raise TypeError(f"{name}.__init__ must take the fields in order: {', '.join(fields)}")
        ns["__slots__"] = fields
        ns["__match_args__"] = fields
        ns["_fields"] = fields
        ns["_uncompared"] = frozenset(uncompared)
        ns["_unshown"] = frozenset(unshown)
        ns["_values"] = staticmethod(_getter(fields))
        ns["_key"] = staticmethod(_getter(tuple(f for f in fields if f not in uncompared)))
        ns["_shown"] = tuple(f for f in fields if f not in unshown)
        return super().__new__(mcls, name, bases, ns)


class Frozen(metaclass=_FrozenMeta):
    __slots__ = ()

    __dataclass_fields__ = _DataclassFields()

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return self._key(self) == other._key(other)
        return NotImplemented

    def __hash__(self):
        return hash(self._key(self))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._shown)
        return f"{type(self).__qualname__}({shown})"

    def __setattr__(self, name, value):
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name):
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __getstate__(self):
        return self._values(self)

    def __setstate__(self, state):
        for name, value in zip(self._fields, state):
            _set(self, name, value)


def replace(record: Frozen, /, **changes) -> Frozen:
    """A copy of ``record`` with some fields changed (checked by its ``__init__``)."""
    values = dict(zip(record._fields, record._values(record)))
    values.update(changes)
    return record.__class__(**values)
