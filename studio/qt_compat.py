"""Workarounds for bugs in the Qt bindings, each detected at run time and applied only when present.

PySide6 6.12.0 on CPython 3.10/3.11: its wrappers return ``None``, ``True`` and ``False`` without a new
reference (the ``Py_RETURN_NONE`` of Python >= 3.12 headers, where those objects are immortal).
Every call of a void method (``widget.update()``, ``item.setData(...)``) drops a reference to None,
every ``signal.emit()`` one to True. CPython 3.11 aborts with "Fatal Python error: none_dealloc:
deallocating None" (or bool_dealloc) once a count reaches zero: within seconds of a live plot.
PySide6 6.11.3 does not have the bug, nor does any Python >= 3.12 (the objects are immortal there).

The guard measures the loss with two probe calls and, only if there is one, raises the reference
counts of those singletons by 2**40, which no session can exhaust. It changes nothing on a correct
PySide6; remove it once 6.12.0 is no longer installable.
"""

from __future__ import annotations

import ctypes
import sys

_SINGLETONS = (None, True, False, NotImplemented, Ellipsis)
_applied = False


def lost_references() -> int:
    """References to None and True that a void call and an emit() drop (0 on a correct PySide6)."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        probe = Signal()

    obj = _Probe()
    obj.probe.emit()
    obj.setObjectName("probe")
    before = sys.getrefcount(None) + sys.getrefcount(True)
    for _ in range(16):
        obj.probe.emit()
        obj.setObjectName("probe")
    return max(0, before - sys.getrefcount(None) - sys.getrefcount(True))


def guard_singleton_refcounts() -> bool:
    """Apply the guard when needed (idempotent). Returns whether the bug was found."""
    global _applied
    if _applied:
        return True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    if lost_references() == 0:
        return False
    for obj in _SINGLETONS:
        # ob_refcnt is the first field of every CPython object; the GIL is held here.
        ctypes.c_ssize_t.from_address(id(obj)).value += 1 << 40
    _applied = True
    return True
