"""What a user configures on a pool: the options' validation, and hooks that
one pool may override.

Every option error names the option and the value it got
(``limit must be a non-negative int, got -1``); the pool classes and the
kombu layer's ``set_limit`` share these checks, so the messages are the
same wherever an option is given.  :func:`check_options` runs all of a
pool's checks on a mapping of options, so that a pool group can refuse a
bad option when it is given, not at the first pool it makes.  An unknown
keyword is refused naming the class called, with the nearest valid name
(:func:`check_names`), not ``Resource.__init__``, which Python would name.
"""

from __future__ import annotations

import difflib
import inspect
import sys
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Generic, TypeVar

from .slotpool import check_seconds

__all__ = [
    "HOOK_NAMES", "Hook", "PoolOptions", "check_callable", "check_error_classes", "check_limit",
    "check_names", "check_options", "option_names",
]

T = TypeVar("T")


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


def check_name(name: str, value: Any) -> Any:
    """``value`` if it is a str or None (a pool's ``name``), or a clear error."""
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, got {value!r}")
    return value


def _check_count(name: str, value: Any) -> int:
    return check_limit(name, value, allow_none=False)


def _check_errors(name: str, value: Any) -> Any:
    return None if value is None else check_error_classes(value)


#: How each keyword option of :class:`greenpools.Resource` is checked: each
#: check returns the value converted, or raises naming the option.
_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "name": check_name,
    "limit": check_limit,
    "preload": check_limit,
    "min_size": _check_count,
    "max_idle": check_seconds,
    "max_lifetime": check_seconds,
    "timeout": check_seconds,
    "max_waiting": _check_count,
    "check": check_callable,
    "reset": check_callable,
    "configure": check_callable,
    "reconnect_timeout": check_seconds,
    "reconnect_failed": check_callable,
    "leak_timeout": check_seconds,
    "keepalive": check_seconds,
    "connection_errors": _check_errors,
}


def check_options(options: Mapping[str, Any], *, keeps_alive: bool = False) -> dict[str, Any]:
    """The pool options among ``options`` checked and converted (the others,
    such as ``placement``, are left to their owners and out of the result),
    or the ``TypeError`` or ``ValueError`` a pool raises for them.

    ``keeps_alive``: the pool class keeps idle resources alive without a
    ``check`` (kombu connection pools), so ``keepalive`` alone is allowed.
    ``preload`` and ``min_size`` are held to ``limit`` when ``options``
    has a non-zero one.
    """
    checked = {name: _CHECKS[name](name, value)
               for name, value in options.items() if name in _CHECKS}
    limit = checked.get("limit")
    for name in ("preload", "min_size"):
        if limit and checked.get(name, 0) > limit:
            raise ValueError(f"{name} must not exceed limit {limit}, got {options[name]!r}")
    keepalive = checked.get("keepalive")
    if keepalive == 0:
        raise ValueError(
            f"keepalive must be a positive number of seconds, got {options['keepalive']!r}")
    if keepalive is not None and checked.get("check") is None and not keeps_alive:
        raise ValueError(
            f"keepalive={options['keepalive']!r} runs the pool's check on idle resources: "
            f"pass check too"
        )
    return checked


class PoolOptions(Generic[T]):
    """A base of :class:`greenpools.Resource`: the options it sets from
    :func:`check_options` that the pool core does not declare itself, and
    the refusal of an unknown keyword naming the class called
    (``ConnectionPool() got an unexpected keyword argument 'limt'. Did you
    mean 'limit'?``).  It costs construction only."""

    preload: int
    configure: Callable[[T], object] | None
    reconnect_timeout: float | None
    reconnect_failed: Callable[[Any], object] | None
    keepalive: float | None

    def __new__(cls, *args: Any, **options: Any) -> Any:
        names = option_names(cls) if options else None
        if names is not None:
            check_names(f"{cls.__name__}()", options, names)
        return super().__new__(cls)


_option_names: weakref.WeakKeyDictionary[type, frozenset[str] | None] = (
    weakref.WeakKeyDictionary())
_GREENPOOLS = __name__.partition(".")[0] + "."


def option_names(cls: type) -> frozenset[str] | None:
    """Every keyword ``cls(...)`` accepts: the parameters of its ``__init__``
    and, while an ``__init__`` passes ``**options`` on (greenpools' own pass
    them all, unchanged), those of the next one in the MRO.

    ``None`` when a class outside greenpools takes ``**kwargs`` (it may use
    some itself: only Python can tell then).  Worked out once per class.
    """
    try:
        return _option_names[cls]
    except KeyError:
        pass
    names: set[str] = set()
    found: frozenset[str] | None = None
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            parameters = list(inspect.signature(init).parameters.values())[1:]  # not self
        except (TypeError, ValueError):
            break
        names.update(p.name for p in parameters
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            found = frozenset(names)
            break
        if not klass.__module__.startswith(_GREENPOOLS):
            break
    _option_names[cls] = found
    return found


def check_names(caller: str, given: Iterable[str], valid: Collection[str]) -> None:
    """Raise ``TypeError`` for the first of ``given`` not in ``valid``, as
    Python would but naming ``caller`` (``"ConnectionPool()"``), with the
    nearest valid name when one is close."""
    for name in given:
        if name not in valid:
            near = difflib.get_close_matches(name, sorted(valid), n=1)
            hint = f". Did you mean {near[0]!r}?" if near else ""
            raise TypeError(f"{caller} got an unexpected keyword argument {name!r}{hint}")


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
