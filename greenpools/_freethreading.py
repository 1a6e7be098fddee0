"""Whether the interpreter runs without the GIL, which the pools still rely on.

Free-threaded CPython (3.13t, 3.14t) can run with the GIL disabled; the
threading path of greenpools is not safe there yet (what relies on the
GIL, and what a free-threaded build would need, is written down in
:mod:`greenpools.backends.threading`).  ``import greenpools`` warns once
on such an interpreter, and ``python -m greenpools doctor`` says so.

This module imports only the standard library: ``import greenpools`` runs it.
"""

from __future__ import annotations

import sys
import warnings

__all__ = ["DOCTOR_LINE", "IMPORT_WARNING", "gil_disabled", "warn_if_gil_disabled"]

#: What ``doctor`` prints about an interpreter running without the GIL.
DOCTOR_LINE = (
    "free-threaded interpreter: not supported yet "
    "(the GIL is disabled; PYTHON_GIL=1 turns it back on)"
)

#: The warning ``import greenpools`` gives on such an interpreter.
IMPORT_WARNING = (
    "greenpools: this free-threaded interpreter runs without the GIL, and "
    "greenpools' pools are not safe there yet (they rely on the GIL); "
    "run with PYTHON_GIL=1 or on a standard build of CPython"
)


def gil_disabled() -> bool:
    """True on a free-threaded interpreter whose GIL is disabled now."""
    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)  # Python 3.13+
    return is_gil_enabled is not None and not is_gil_enabled()


def warn_if_gil_disabled() -> None:
    """Give :data:`IMPORT_WARNING` as a ``RuntimeWarning`` if the GIL is disabled."""
    if gil_disabled():
        warnings.warn(IMPORT_WARNING, RuntimeWarning, stacklevel=3)
