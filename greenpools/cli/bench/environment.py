"""What a benchmark runs on: the backends it can use and the versions it measures."""

from __future__ import annotations

import sys

BACKENDS = ("threading", "gevent", "eventlet")


def running_backend() -> str:
    """The backend the running process is patched for."""
    from greenpools import backends

    return backends.detect()


def installed_backends() -> list[str]:
    """The backends whose library can be imported here."""
    return [name for name in BACKENDS if backend_problem(name) is None]


def backend_problem(name: str) -> str | None:
    """Why the backend ``name`` cannot run here (its library does not
    import), or ``None`` when it can."""
    from greenpools import backends

    try:
        backends.load(name)
    except ImportError as exc:
        return str(exc)
    return None


def versions() -> dict[str, str]:
    """Versions of the libraries measured, for the JSON record."""
    from importlib import metadata

    found = {"python": sys.version.split()[0]}
    for name in ("greenpools", "kombu", "gevent", "eventlet", "greenlet", "SQLAlchemy"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found
