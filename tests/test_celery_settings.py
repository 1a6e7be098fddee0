"""What Celery's pool settings mean once ``greenpools.install()`` ran (the README's table).

Celery builds ``app.pool`` as ``kombu.pools.connections[...]`` after
calling the global ``kombu.pools.set_limit(broker_pool_limit)``, builds
``app.producer_pool`` from ``kombu.pools.producers`` with the same limit,
and (Celery 5.7+) passes ``broker_pool_acquire_timeout`` as the
``timeout`` of both pools' acquires.  After ``install()`` those are
greenpools' groups, so each claim below is checked on a real Celery app,
on kombu's in-memory transport.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import celery
import pytest
from brokers import clean_global_pools  # noqa: F401
from celery.exceptions import OperationalError
from helpers import HANG_TIMEOUT, start_acquirer
from kombu import Connection

import greenpools
from greenpools import pools

URL = "memory://"


@pytest.fixture
def app() -> Iterator[celery.Celery]:
    """A Celery app on greenpools' pools; install() and the global groups'
    options are undone afterwards."""
    saved = {group: dict(group.options) for group in (pools.connections, pools.producers)}
    greenpools.install()
    application = celery.Celery("greenpools-settings", broker=URL, set_as_current=False)
    try:
        yield application
    finally:
        application.close()
        greenpools.uninstall()
        for group, options in saved.items():
            group.options.clear()
            group.options.update(options)


def test_broker_pool_limit_becomes_the_global_limit(app: celery.Celery) -> None:
    app.conf.broker_pool_limit = 3
    assert isinstance(app.pool, pools.ConnectionPool)
    assert app.pool.limit == 3
    assert app.amqp.producer_pool.limit == 3
    assert app.amqp.producer_pool is pools.producers[app.connection_for_write()]
    # Celery set the global limit: every pool of the global groups follows,
    # also one the application code makes itself.
    assert pools.get_limit() == 3
    assert pools.producers[Connection("memory://other-host//")].limit == 3


def test_broker_pool_limit_none_turns_pooling_off(app: celery.Celery) -> None:
    app.conf.broker_pool_limit = None
    conn = app.pool.acquire(block=True)
    conn.connect()
    conn.release()
    assert app.pool.get_stats()["pool_size"] == 0  # closed on release, not kept


def hold_every_connection(app: celery.Celery) -> list[Any]:
    return [app.pool.acquire(block=True) for _ in range(app.pool.limit)]


@pytest.mark.parametrize("how", ["celery setting", "greenpools group option"])
def test_a_wait_for_a_connection_gives_up_after_the_timeout(
    app: celery.Celery, how: str
) -> None:
    app.conf.broker_pool_limit = 1
    if how == "celery setting":
        app.conf.broker_pool_acquire_timeout = 0.2
    else:  # Celery leaves timeout=None: the pool's own option decides
        pools.connections.options["timeout"] = 0.2
    held = hold_every_connection(app)
    try:
        with pytest.raises(OperationalError) as raised:
            with app.connection_or_acquire():
                pass
        assert isinstance(raised.value.__cause__, greenpools.PoolTimeout)
        # apply_async/send_task take a producer, whose connection is held.
        with pytest.raises(OperationalError) as raised:
            with app.producer_or_acquire():
                pass
        assert isinstance(raised.value.__cause__, greenpools.PoolTimeout)
    finally:
        for conn in held:
            conn.release()
    # Both waits were for the one connection; the producer went back.
    assert app.pool.get_stats()["requests_errors"] == 2
    assert app.amqp.producer_pool.get_stats()["pool_available"] == 1


def test_max_waiting_on_the_global_group_bounds_celerys_queue(app: celery.Celery) -> None:
    app.conf.broker_pool_limit = 1
    pools.connections.options.update(max_waiting=1, timeout=HANG_TIMEOUT)
    held = hold_every_connection(app)
    try:
        first = start_acquirer(app.pool, timeout=HANG_TIMEOUT)
        with pytest.raises(OperationalError) as raised:
            with app.connection_or_acquire():
                pass
        assert isinstance(raised.value.__cause__, greenpools.TooManyRequests)
    finally:
        for conn in held:
            conn.release()
    first.join().release()  # the caller already queued got the connection
