"""Trying a broker URL once, with an answer a user can act on.

The command line (``doctor``, ``demo``) checks a broker before using it:
the URL names a kombu transport, something answers at its address within
a few seconds, and it accepts the credentials.  The hosts of a ``;``
failover list are tried in order, as kombu does, until one answers.  Each
failure is one paragraph that says what was tried (the address, the
error; a line for each host), and URLs are printed with
:func:`masked_url`.  Before that, every ``--broker`` option parses its
value with :func:`broker_url`, so that an empty or scheme-less URL is a
usage error instead of kombu's default or a host name.
"""

from __future__ import annotations

import argparse
import importlib
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any

__all__ = ["BrokerAnswer", "BrokerProblem", "broker_url", "check_broker", "failure_in_use",
           "masked_url"]

#: Exception class names that mean "the broker refused these credentials"
#: (amqp's AccessRefused, redis-py's AuthenticationError and its variants).
_CREDENTIAL_ERRORS = (
    "AccessRefused", "AuthenticationError", "AuthenticationWrongNumberOfArgsError",
)


def masked_url(url: str) -> str:
    """``url`` with its password, if it has one, shown as ``**``.

    A URL without a password is returned unchanged (no ``:**@`` appears
    where nothing was hidden); each URL of a ``;``-separated failover
    list is masked on its own.
    """
    return ";".join(_mask_one(part) for part in url.split(";"))


def _mask_one(url: str) -> str:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    userinfo, at, hostport = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not at or not colon or not password:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:**@{hostport}"))


#: What the usage errors of :func:`broker_url` suggest.
_URL_EXAMPLES = "amqp://guest:guest@127.0.0.1:5672//, redis://127.0.0.1:6379/0 or memory://"


def broker_url(text: str) -> str:
    """argparse type: a broker URL whose scheme is a transport kombu knows.

    Each URL of a ``;``-separated failover list is checked; ``amqp+ssl``
    style schemes are judged by the transport before the ``+``.  An empty
    URL (kombu would quietly use its default) and one without a scheme
    (``notaurl`` would be taken for a host name) are refused too.
    """
    from kombu.transport import TRANSPORT_ALIASES

    for url in text.split(";"):
        scheme, separator, _ = url.strip().partition("://")
        transport = scheme.partition("+")[0]
        if not separator or not transport:
            raise argparse.ArgumentTypeError(
                f"must be a broker URL such as {_URL_EXAMPLES}, got {masked_url(text)!r}")
        if transport not in TRANSPORT_ALIASES:
            raise argparse.ArgumentTypeError(
                f"{transport!r} in {masked_url(text)!r} is not a kombu transport; "
                f"known: {', '.join(sorted(TRANSPORT_ALIASES, key=str.lower))}")
    return text


class BrokerProblem(Exception):
    """The broker cannot be used; the message says why, in one paragraph
    (for a failover list, a line for each host tried)."""


class _NoAnswer(BrokerProblem):
    """Nothing answered at one host's address: kombu goes on to the next
    host of a failover list, so the check does too."""


@dataclass(frozen=True)
class BrokerAnswer:
    """The host of a broker URL that answered, and what was seen on the way."""

    #: The URL of that host alone (one of a failover list): the one to use.
    url: str
    #: A line for each host tried before it that did not answer, then one
    #: saying that this one answers.
    lines: tuple[str, ...]


def check_broker(url: str, timeout: float) -> BrokerAnswer:
    """Connect to each host of ``url`` in turn, until one answers.

    ``url`` may be a ``;``-separated failover list; each host gets about
    ``timeout`` seconds.  As kombu does, a host that does not answer is
    passed over, but one that answers and refuses (the credentials, the
    virtual host) ends the check.  Raises :class:`BrokerProblem` for an
    unknown transport, refused credentials, or when no host answers.
    Never retries a host.
    """
    hosts = [part.strip() for part in url.split(";")]
    tried: list[str] = []
    for number, host_url in enumerate(hosts, 1):
        try:
            answers = _check_one(host_url, timeout)
        except _NoAnswer as problem:
            tried.append(str(problem))
            continue
        except BrokerProblem as problem:
            raise BrokerProblem("\n".join([*tried, str(problem)])) from None
        if len(hosts) > 1:
            answers += f", host {number} of {len(hosts)} in the failover list"
        return BrokerAnswer(host_url, (*tried, answers))
    if len(hosts) > 1:
        tried.append(f"none of the {len(hosts)} hosts of the failover list answered")
    raise BrokerProblem("\n".join(tried))


def _check_one(url: str, timeout: float) -> str:
    """Connect to the one host of ``url``: a line saying what answered, or
    :class:`BrokerProblem` (:class:`_NoAnswer` when nothing answered)."""
    from kombu.connection import Connection

    shown = masked_url(url)
    connection: Any
    # kombu loads the transport inside Connection(): name it from the URL till then.
    transport = url.partition("://")[0] if "://" in url else ""
    try:
        connection = Connection(url, connect_timeout=timeout)
        transport = connection.transport_cls
        connection.get_transport_cls()
    except KeyError as exc:
        raise BrokerProblem(
            f"the broker URL {shown} names no kombu transport ({_first_arg(exc)}); "
            f"use a URL such as amqp://guest:guest@127.0.0.1:5672// or redis://127.0.0.1:6379/0"
        ) from None
    except Exception as exc:  # kombu rejects a malformed URL in many ways
        if transport and _transport_failed_to_load(exc):
            missing = _missing_client(transport)
            if missing:
                raise BrokerProblem(
                    f"the redis client is not installed, and kombu's {transport} transport, "
                    f"which {shown} needs, cannot load without it: pip install {' '.join(missing)}"
                ) from None
            raise BrokerProblem(
                f"kombu's {transport} transport, which {shown} needs, could not be "
                f"loaded ({_describe(exc)}); is its client library installed? "
                f"pip install 'kombu[{_EXTRAS.get(transport, transport)}]'"
            ) from None
        raise BrokerProblem(f"the broker URL {shown} is not valid: {_describe(exc)}") from None
    try:
        address = _address(connection)
        try:
            _connect_within(connection, timeout)
        except Exception as exc:
            if _refused_credentials(exc):
                raise BrokerProblem(
                    f"the broker at {address} ({shown}) refused the credentials: "
                    f"{_describe(_root(exc))}; check the user name and password in the URL"
                ) from None
            root = _root(exc)
            if _refused_vhost(root):
                raise BrokerProblem(
                    f"the broker at {address} ({shown}) refused the virtual host: "
                    f"{_describe(root)}; check the virtual host in the URL, the path after "
                    f"host:port (// is the default one, /)"
                ) from None
            waited = f" in {timeout:g} s" if isinstance(root, (TimeoutError, _NoReply)) else ""
            raise _NoAnswer(
                f"the broker at {address} ({shown}) did not answer{waited}: "
                f"{_describe(root)}; is it running, and are the host and port right?"
            ) from None
        shown = masked_url(connection.as_uri(include_password=True))
        return f"{shown} answers ({transport} transport)"
    finally:
        connection.release()


class _NoReply(Exception):
    def __str__(self) -> str:
        return "a connection opened, or is still opening, but nothing came back"


def _connect_within(connection: Any, timeout: float) -> None:
    """Connect once; raise what failed, or :class:`_NoReply` after ``timeout``.

    Some transports bound only the TCP connect by ``connect_timeout``
    (redis-py waits for a silent server's reply forever), so the attempt
    runs in a daemon thread (a green thread when patched) that is left
    behind if it never returns.
    """
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            connection.ensure_connection(max_retries=0, timeout=timeout)
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    worker = threading.Thread(target=attempt, name="greenpools-broker-check", daemon=True)
    worker.start()
    worker.join(timeout + 1.0)
    if not outcome:
        raise _NoReply()
    if outcome[0] is not None:
        raise outcome[0]


#: kombu extras whose name is not the transport's.
_EXTRAS = {"rediss": "redis", "sqla": "sqlalchemy"}

#: What kombu's Redis transports import: redis-py, and packaging first of
#: all (so without either, the error names packaging).
_REDIS_MODULES = ("redis", "packaging")


def _missing_client(transport: str) -> list[str]:
    """For a Redis transport without redis-py, the modules (also the pip
    names) to install; otherwise an empty list."""
    if transport not in ("redis", "rediss"):
        return []
    missing = []
    for name in _REDIS_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing if "redis" in missing else []


def _transport_failed_to_load(exc: BaseException) -> bool:
    """Whether ``exc`` came from importing a transport module, whose client
    library is missing (an ImportError, or, as kombu's Redis transport does
    without redis-py, an AttributeError on the missing module's ``None``)."""
    return isinstance(exc, ImportError) or _raised_in_transport(exc, importing=True)


def _raised_in_transport(exc: BaseException, importing: bool = False) -> bool:
    """Whether ``exc``'s traceback passes through a kombu transport module
    (only through its import, its ``<module>`` code, if ``importing``)."""
    traceback = exc.__traceback__
    while traceback is not None:
        frame = traceback.tb_frame
        if (not importing or frame.f_code.co_name == "<module>") and \
                str(frame.f_globals.get("__name__", "")).startswith("kombu.transport."):
            return True
        traceback = traceback.tb_next
    return False


def failure_in_use(url: str, exc: BaseException) -> BrokerProblem | None:
    """What to tell the user when using ``url`` raised ``exc``, or None when
    ``exc`` is not the broker's or its transport's (a bug to show as is).

    The broker's are kombu's and py-amqp's errors, ``OSError``, the errors
    the transport declares (``connection_errors``, ``channel_errors``), and
    an ``ImportError`` raised inside the transport: transports open their
    server or client library lazily (kombu's SQLAlchemy one imports the
    database driver, and connects, only when a channel first needs it,
    after :func:`check_broker` passed).
    """
    from amqp.exceptions import AMQPError
    from kombu.exceptions import KombuError

    shown = masked_url(url)
    if isinstance(exc, ImportError) and _raised_in_transport(exc):
        transport = url.partition("://")[0].partition("+")[0]
        return BrokerProblem(
            f"kombu's {transport} transport, which {shown} needs, could not load a library "
            f"it uses ({_describe(exc)}); is it installed?")
    if isinstance(exc, (KombuError, AMQPError, OSError, *_declared_errors(url))):
        return BrokerProblem(f"the broker {shown} failed: {_describe(_root(exc))}")
    return None


def _declared_errors(url: str) -> tuple[type[BaseException], ...]:
    """The errors kombu's transport for ``url`` says its broker raises."""
    from kombu.connection import Connection

    from ..kombu.base import errors_of

    try:
        return errors_of(Connection(url))
    except Exception:  # kombu cannot even make the connection: nothing declared
        return ()


def _address(connection: Any) -> str:
    """``host:port`` as the transport will try it (its default port filled in)."""
    try:
        return str(connection.host)
    except Exception:
        return str(connection.hostname)


def _root(exc: BaseException) -> BaseException:
    """The error kombu wrapped (its ``OperationalError`` is raised ``from`` it)."""
    return exc.__cause__ or exc


def _refused_credentials(exc: BaseException) -> bool:
    return any(
        cls.__name__ in _CREDENTIAL_ERRORS
        for error in (exc, exc.__cause__) if error is not None
        for cls in type(error).__mro__
    )


def _refused_vhost(exc: BaseException) -> bool:
    """py-amqp's NotAllowed (530) for a virtual host that does not exist or
    that the user may not use."""
    return type(exc).__name__ == "NotAllowed" and "vhost" in str(exc)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".") or "no details"
    return text if isinstance(exc, _NoReply) else f"{type(exc).__name__}: {text}"


def _first_arg(exc: BaseException) -> str:
    return str(exc.args[0]) if exc.args else str(exc)
