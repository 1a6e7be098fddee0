"""Which host a pool's next connection goes to, when its connection has alternates.

kombu builds every connection of a pool made from
``Connection('amqp://n1;amqp://n2;amqp://n3')`` on the first host, so a
cluster's first node carries every connection of every process while the
others idle.  :class:`HostSpread` instead hands out the hosts round-robin
from a per-pool cursor that starts at a random host in each process (a
forked child picks its own start), so many processes spread too.

Each connection it places gets the chosen host first and the others after
it, in their order: when that connection breaks, kombu's own failover
(``failover_strategy``, ``round-robin`` by default) moves it on from
there, exactly as it would have from the first host.  A failed-over
connection stays where it went; only its replacement (after
``max_lifetime``, or when it is lost) is placed afresh, which is how a pool
drifts back onto a node that returned.

``placement="first"`` keeps kombu's behaviour: every connection starts at
the first host.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Any

from kombu.utils.url import parse_url

from ..forking import fork_guard

__all__ = ["PLACEMENTS", "HostSpread", "hosts_of"]

#: The placements a connection pool accepts.
PLACEMENTS = ("spread", "first")


def check_placement(placement: object) -> str:
    if placement not in PLACEMENTS:
        raise ValueError(
            f"placement must be one of {', '.join(map(repr, PLACEMENTS))}, got {placement!r}"
        )
    return placement  # type: ignore[return-value]


def hosts_of(connection: Any) -> list[Any]:
    """Every host of a kombu connection, its own first.

    ``Connection('amqp://a;amqp://b')`` and ``Connection(['amqp://a',
    'amqp://b'])`` keep all hosts in ``alt``; ``Connection('amqp://a',
    alternates=['amqp://b'])`` keeps only the others there.
    """
    alt = list(connection.alt or ())
    if not alt or _same_host(alt[0], connection):
        return alt
    return [connection.as_uri(include_password=True), *alt]


def _same_host(host: Any, connection: Any) -> bool:
    if not isinstance(host, str):
        return False
    if "://" not in host:
        return bool(host == connection.hostname)
    parts = parse_url(host)
    return bool(parts.get("hostname") == connection.hostname
                and (parts.get("port") or connection.port) == connection.port)


class HostSpread:
    """Round-robin placement of new connections over a connection's hosts.

    ``hosts`` are the URLs of :func:`hosts_of`.  Safe to share between
    threads: the cursor is an ``itertools.count``, whose ``next()`` the
    interpreter does not interrupt.
    """

    __slots__ = ("_cursor", "_hosts", "_pid", "_rng", "placement")

    def __init__(
        self, hosts: Sequence[Any], placement: str = "spread", rng: Any = None,
    ) -> None:
        self.placement = check_placement(placement)
        self._hosts = list(hosts)
        # The random module's own generator, which Python reseeds in every
        # forked child, unless a test passes a seeded random.Random.
        self._rng = random if rng is None else rng
        self._pid = -1  # no cursor yet
        self._cursor = itertools.count()

    def choose(self) -> int:
        """The index in ``hosts`` of the host the next connection goes to."""
        count = len(self._hosts)
        if count < 2 or self.placement == "first":
            return 0
        if self._pid != fork_guard.pid:  # first use in this process: a random start
            self._cursor = itertools.count(self._rng.randrange(count))
            self._pid = fork_guard.pid
        return next(self._cursor) % count

    def place(self, info: dict[str, Any]) -> dict[str, Any]:
        """``info`` (a connection's ``_info()``) for a connection on the next host.

        The chosen host becomes ``hostname`` and leads the ``alternates``;
        with fewer than two hosts, or ``placement="first"``, ``info`` is
        returned unchanged.
        """
        index = self.choose()
        if len(self._hosts) < 2 or self.placement == "first":
            return info
        hosts = self._hosts
        return {**info, "hostname": hosts[index], "alternates": hosts[index:] + hosts[:index]}
