"""What the compiled modules use of Cython's ``cython`` module, for plain Python.

The modules Cython compiles (see :mod:`greenpools._build`) ``import cython``
for a few declarations; Cython ships a pure-Python stand-in for them, but
Cython is only needed to *build* greenpools.  Where it is not installed,
those modules import this instead (``except ImportError``), so that the
plain-Python build runs with nothing but the runtime requirements.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: Never compiled here.
compiled = False

bint = bool
Py_ssize_t = int

#: ``with cython.nogil:`` only means something compiled.
nogil = contextlib.nullcontext()


def declare(kind: Any, value: Any = None) -> Any:
    """A variable of ``kind``: plain Python keeps only its value."""
    return value


def locals(**kinds: Any) -> Callable[[F], F]:
    """Types of a function's locals: plain Python ignores them."""
    return lambda func: func
