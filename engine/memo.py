"""A one-entry memo for the pure functions that judging a device calls again and again."""

from functools import wraps


def same_arguments_as_last_call(fn):
    """Memoise ``fn`` for a repeat of its last call with the very same argument objects.

    Judging one device asks for its QEMU view, visible BARs and diagnosis some fifty times
    (every candidate, every heuristic, the page analysis) with the same Device and Platform
    objects; rebuilding them was a third of an audit's time.  Identity, not equality: it
    costs nothing to check, and the arguments are immutable, so the same objects always give
    the same answer.  One entry, replaced whole, so it is safe under threads and holds only
    the device being judged.
    """
    last: list = [None]
    code = fn.__code__
    plain = not fn.__defaults__ and not fn.__kwdefaults__ and not code.co_kwonlyargcount

    if plain and code.co_argcount == 1:  # the common arities, without a loop over the arguments
        def memoised(a):
            hit = last[0]
            if hit is not None and hit[0] is a:
                return hit[1]
            result = fn(a)
            last[0] = (a, result)
            return result
    elif plain and code.co_argcount == 2:
        def memoised(a, b):
            hit = last[0]
            if hit is not None and hit[0] is a and hit[1] is b:
                return hit[2]
            result = fn(a, b)
            last[0] = (a, b, result)
            return result
    elif plain and code.co_argcount == 3:
        def memoised(a, b, c):
            hit = last[0]
            if hit is not None and hit[0] is a and hit[1] is b and hit[2] is c:
                return hit[3]
            result = fn(a, b, c)
            last[0] = (a, b, c, result)
            return result
    else:
        def memoised(*args):
            hit = last[0]
            if hit is not None and len(hit[0]) == len(args):
                for a, b in zip(hit[0], args):
                    if a is not b:
                        break
                else:
                    return hit[1]
            result = fn(*args)
            last[0] = (args, result)
            return result
    return wraps(fn)(memoised)
