"""What a user configures on a pool: the options' validation, and hooks that
one pool may override.

Every option error names the option and the value it got
(``limit must be a non-negative int, got -1``); the pool classes and the
kombu layer's ``set_limit`` share these checks, so the messages are the
same wherever an option is given.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

__all__ = ["HOOK_NAMES", "Hook", "check_callable", "check_error_classes", "check_limit"]


def check_limit(name: str, value: Any, *, allow_none: bool = True) -> int:
    """``value`` as a non-negative int (``None`` as 0), or a clear error."""
    if value is None and allow_none:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "a non-negative int or None" if allow_none else "a non-negative int"
        raise TypeError(f"{name} must be {kind}, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    if value > sys.maxsize:  # the pool counts in C integers when compiled
        raise ValueError(f"{name} must be at most {sys.maxsize}, got {value!r}")
    return value


def check_error_classes(value: Any) -> tuple[type[BaseException], ...]:
    """``connection_errors``: one exception class or an iterable of them."""
    classes = (value,) if isinstance(value, type) else value
    try:
        classes = tuple(classes)
    except TypeError:
        classes = (value,)
    if not all(isinstance(c, type) and issubclass(c, BaseException) for c in classes):
        raise TypeError(
            f"connection_errors must be exception classes, got {value!r}"
        )
    return classes


def check_callable(name: str, value: Any) -> Any:
    """``value`` if it is callable or None, or a clear error."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, got {value!r}")
    return value


_MISSING = object()


class Hook:
    """A hook method that one pool may override: ``pool.prepare = f`` (what
    ``mock.patch.object`` does) is honoured, and deleting it restores the
    class's method.  Setting or deleting it recomputes the flags that keep
    hook-less pools on the fast path, so those pay nothing for this."""

    __slots__ = ("func", "name")

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        self.name: str = func.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self.func
        override = instance.__dict__.get(self.name, _MISSING)
        if override is not _MISSING:
            return override
        return self.func.__get__(instance, owner)

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__[self.name] = value
        instance._hooks_changed()

    def __delete__(self, instance: Any) -> None:
        if instance.__dict__.pop(self.name, _MISSING) is _MISSING:
            raise AttributeError(self.name)
        instance._hooks_changed()


#: The hooks a pool instance may override after it was made.
HOOK_NAMES = ("prepare", "release_resource")
