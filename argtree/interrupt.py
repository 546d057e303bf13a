"""Ctrl-C that arrives wrapped in another exception.

Python delivers SIGINT as KeyboardInterrupt wherever the main thread happens to be.  In a few places
it re-raises what it caught as another exception: during class creation (a dataclass's fields, so while
a lazily imported module is being imported) Python 3.11 raises ``RuntimeError: Error calling
__set_name__`` *from* the KeyboardInterrupt.  A user pressing Ctrl-C then must still get the interrupt
(exit 130, the loop's run stopped and its task handed back), not a traceback.
"""

from __future__ import annotations

__all__ = ["caused_by_ctrl_c"]


def caused_by_ctrl_c(err: BaseException) -> bool:
    """Is ``err`` a KeyboardInterrupt, or raised from or while handling one (its cause/context chain)?"""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False
