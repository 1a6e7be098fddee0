"""``install()`` / ``uninstall()``: make kombu itself use greenpools' pools.

After :func:`install`, ``kombu.pools`` hands out greenpools' groups and
functions (``connections``, ``producers``, ``ProducerPool``,
``set_limit``, ...) and ``kombu.Connection.Pool()`` /
``ChannelPool()`` build greenpools pools.  Code built on kombu follows
without changes: Celery's ``app.pool`` comes from
``kombu.pools.connections`` and its ``app.amqp.producer_pool`` from
``kombu.pools.producers``.  Celery versions that imported ``ProducerPool``
from ``kombu.pools`` at import time are patched too, whether Celery is
imported before or after ``install()``.  Celery apps that already built
their pools drop them and build greenpools ones on next use.

:func:`uninstall` puts back exactly what was there.  Call ``install()``
once at start-up, before the pools are in use: a pool already handed out
is not converted.
"""

from __future__ import annotations

import sys
from typing import Any

from . import pools

__all__ = ["install", "installed", "uninstall"]

_MISSING = object()

#: What ``install`` replaced: ``(module or class, attribute) -> original``.
_saved: dict[tuple[Any, str], Any] = {}


def _connection_pool(self: Any, limit: int | None = None, **options: Any) -> pools.ConnectionPool:
    """``kombu.Connection.Pool`` while greenpools is installed."""
    return pools.ConnectionPool(self, limit, **options)


def _channel_pool(self: Any, limit: int | None = None, **options: Any) -> pools.ChannelPool:
    """``kombu.Connection.ChannelPool`` while greenpools is installed."""
    return pools.ChannelPool(self, limit, **options)


def _replacements() -> dict[str, Any]:
    """kombu.pools' public names and what stands in for each."""
    return {
        "ProducerPool": pools.ProducerPool,
        "PoolGroup": pools.PoolGroup,
        "Connections": pools.Connections,
        "Producers": pools.Producers,
        "connections": pools.connections,
        "producers": pools.producers,
        "get_limit": pools.get_limit,
        "set_limit": pools.set_limit,
        "reset": pools.reset,
        "register_group": pools.register_group,
    }


# Modules that copy names out of kombu.pools (``from kombu.pools import
# ProducerPool``), by the names they copy.
_DEPENDENTS = {
    "kombu": ("connections", "producers"),  # kombu's lazy top-level attributes
    "celery.app.amqp": ("ProducerPool", "connections", "producers"),
    "celery.app.base": ("ProducerPool", "connections", "producers"),
}


def installed() -> bool:
    """Whether :func:`install` is in effect."""
    return bool(_saved)


def _replace(owner: Any, name: str, value: Any) -> None:
    key = (owner, name)
    if key not in _saved:
        _saved[key] = vars(owner).get(name, _MISSING)
    setattr(owner, name, value)


def _patch_dependents(replacements: dict[str, Any], originals: dict[str, Any]) -> None:
    """Repoint modules already imported that hold kombu's objects."""
    for module_name, names in _DEPENDENTS.items():
        module = sys.modules.get(module_name)
        if module is None:
            continue
        for name in names:
            current = vars(module).get(name, _MISSING)
            if current is not _MISSING and current is originals.get(name):
                _replace(module, name, replacements[name])


def _drop_celery_pools() -> None:
    """Make Celery apps that already built their pools build them again."""
    state = sys.modules.get("celery._state")
    if state is None:
        return
    try:
        apps = list(state._get_active_apps())
    except Exception:
        return
    for app in apps:
        vars(app)["_pool"] = None
        amqp = vars(app).get("amqp")  # a cached property, if it was made
        if amqp is not None:
            vars(amqp)["_producer_pool"] = None


def install() -> None:
    """Make kombu (and Celery through it) use greenpools' pools.

    Replaces ``kombu.pools``' names (``connections``, ``producers``,
    ``set_limit``, the pool classes, ...), ``kombu.Connection.Pool`` and
    ``.ChannelPool``, and the copies other modules made of them; Celery
    apps that built their pools build them again.  kombu's global limit,
    if set, carries over.  Takes no arguments; a second call does
    nothing.  Call it before pools are in use.
    """
    if _saved:
        return
    import kombu
    import kombu.connection
    import kombu.pools

    replacements = _replacements()
    originals = {name: getattr(kombu.pools, name) for name in replacements}
    for name, value in replacements.items():
        _replace(kombu.pools, name, value)
    _replace(kombu.connection, "ConnectionPool", pools.ConnectionPool)
    _replace(kombu.connection, "ChannelPool", pools.ChannelPool)
    _replace(kombu.connection.Connection, "Pool", _connection_pool)
    _replace(kombu.connection.Connection, "ChannelPool", _channel_pool)
    _patch_dependents(replacements, originals)
    # kombu's global limit was perhaps set (Celery sets it): carry it over.
    kombu_limit = originals["get_limit"]()
    if kombu_limit != pools.get_limit():
        pools.set_limit(kombu_limit)
    _drop_celery_pools()


def uninstall() -> None:
    """Put back exactly what :func:`install` replaced.

    Does nothing if not installed; takes no arguments.  Pools made
    meanwhile stay greenpools pools.
    """
    if not _saved:
        return
    originals = {name: value for (owner, name), value in _saved.items()
                 if getattr(owner, "__name__", None) == "kombu.pools"}
    ours = _replacements()
    # Modules that copied our objects while installed (imported meanwhile).
    for module_name, names in _DEPENDENTS.items():
        module = sys.modules.get(module_name)
        if module is None:
            continue
        for name in names:
            if vars(module).get(name, _MISSING) is ours.get(name) and name in originals:
                _saved.setdefault((module, name), originals[name])
    for (owner, name), original in list(_saved.items()):
        if original is _MISSING:
            try:
                delattr(owner, name)
            except AttributeError:
                pass
        else:
            setattr(owner, name, original)
    _saved.clear()
    try:  # carry the limit back, as install() carried it over
        originals["set_limit"](pools.get_limit())
    except Exception:
        pass
    _drop_celery_pools()
