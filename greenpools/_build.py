"""Which build of the pool core runs: compiled by Cython, or plain Python.

The modules below are written once, in Python, with Cython declarations
beside them (``.pxd``); ``pip install`` compiles them when Cython and a C
compiler are at hand (see ``setup.py``, which reads :data:`COMPILED`
from this file) and installs the plain sources either way.  At import,
greenpools uses the compiled modules only if *all* of them are there (they
share C-level types, so a mix cannot work), and never when the
environment variable ``GREENPOOLS_NO_SPEEDUPS`` is set: then an import
hook loads the ``.py`` sources even where a compiled module sits next to
them.

This module imports only the standard library: ``setup.py`` runs it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

#: The compiled modules, in the order they depend on each other.
COMPILED = (
    "greenpools.backends.base",
    "greenpools.core.waiting",
    "greenpools.core.slotpool",
    "greenpools.backends._green",
    "greenpools.backends.threading",
    "greenpools.aio.waiting",
    "greenpools.aio.acquiring",
)

#: Set to anything but the empty string to run the plain-Python build.
ENV_VAR = "GREENPOOLS_NO_SPEEDUPS"

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _module_path(name: str, suffix: str) -> str:
    parts = name.split(".")[1:]
    return os.path.join(_PACKAGE_DIR, *parts[:-1], parts[-1] + suffix)


def compiled_modules_present() -> bool:
    """Whether every module of :data:`COMPILED` has a compiled file."""
    return all(
        any(os.path.exists(_module_path(name, suffix))
            for suffix in importlib.machinery.EXTENSION_SUFFIXES)
        for name in COMPILED
    )


class _SourceFirst:
    """A meta path finder that loads :data:`COMPILED` from their ``.py`` files."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> Any:
        if fullname not in COMPILED:
            return None
        source = _module_path(fullname, ".py")
        return importlib.util.spec_from_file_location(fullname, source)


def _choose() -> str:
    if os.environ.get(ENV_VAR):
        reason = f"pure Python ({ENV_VAR} is set)"
    elif not compiled_modules_present():
        reason = "pure Python (not compiled: reinstall with Cython and a C compiler at hand)"
    else:
        return "compiled"
    if not any(isinstance(finder, _SourceFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourceFirst())
    return reason


#: ``"compiled"``, or ``"pure Python (<why>)"``: what ``doctor`` reports.
BUILD = _choose()
COMPILED_BUILD = BUILD == "compiled"


def active() -> str:
    """Which build the pool core modules actually came from (read from
    the loaded modules: a test asserts it matches :data:`BUILD`)."""
    kinds = set()
    for name in COMPILED:
        module = sys.modules.get(name)
        if module is None:
            continue
        origin = getattr(module, "__file__", "") or ""
        kinds.add("pure" if origin.endswith(".py") else "compiled")
    return "/".join(sorted(kinds)) or "none loaded"
