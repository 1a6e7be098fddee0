"""greenpools.install() / uninstall(): kombu and Celery on greenpools' pools."""

# ruff: noqa: F811  (pytest fixtures imported from brokers are redefined as arguments)
from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import celery
import celery.app.amqp
import kombu
import kombu.connection
import kombu.pools
import pytest
from brokers import amqp_url, clean_global_pools, drain, make_queue  # noqa: F401
from helpers import run_python
from kombu import Connection, Queue

import greenpools
from greenpools import pools
from greenpools.kombu import install as kombu_install

URL = "memory://"
POOL_NAMES = ("ProducerPool", "PoolGroup", "Connections", "Producers", "connections",
              "producers", "get_limit", "set_limit", "reset", "register_group")


def snapshot() -> dict[str, Any]:
    """Everything install() may touch, as it is now."""
    taken = {f"kombu.pools.{name}": vars(kombu.pools).get(name) for name in POOL_NAMES}
    for name in ("ConnectionPool", "ChannelPool"):
        taken[f"kombu.connection.{name}"] = vars(kombu.connection).get(name)
    for name in ("Pool", "ChannelPool"):
        taken[f"Connection.{name}"] = vars(kombu.connection.Connection).get(name)
    for name in ("connections", "producers"):
        taken[f"kombu.{name}"] = vars(kombu).get(name)
    taken["celery.app.amqp.ProducerPool"] = vars(celery.app.amqp).get("ProducerPool")
    return taken


@pytest.fixture(autouse=True)
def always_uninstall() -> Iterator[None]:
    yield
    greenpools.uninstall()


def test_install_patches_kombu_and_uninstall_restores_exactly() -> None:
    before = snapshot()
    greenpools.install()
    assert kombu_install.installed()
    assert kombu.pools.connections is pools.connections
    assert kombu.pools.producers is pools.producers
    assert kombu.pools.ProducerPool is pools.ProducerPool
    assert kombu.pools.set_limit is pools.set_limit
    assert isinstance(Connection(URL).Pool(2), pools.ConnectionPool)
    assert isinstance(Connection(URL).ChannelPool(2), pools.ChannelPool)
    assert kombu.connection.ConnectionPool is pools.ConnectionPool
    assert kombu.connections is pools.connections  # kombu's lazy top-level name
    greenpools.install()  # twice: no-op
    greenpools.uninstall()
    assert not kombu_install.installed()
    after = snapshot()
    for name, value in before.items():
        if name == "kombu.connections" or name == "kombu.producers":
            # kombu fills these lazily; they must be kombu's own again.
            assert after[name] in (None, vars(kombu.pools)[name.split(".")[1]])
        else:
            assert after[name] is value, name
    assert not isinstance(Connection(URL).Pool(2), pools.ConnectionPool)
    greenpools.uninstall()  # twice: no-op


def test_kombu_code_uses_greenpools_after_install() -> None:
    greenpools.install()
    kombu.pools.set_limit(3)
    assert pools.get_limit() == 3
    pool = kombu.pools.connections[Connection(URL)]
    assert isinstance(pool, pools.ConnectionPool) and pool.limit == 3
    with kombu.pools.producers[Connection(URL)].acquire(block=True) as producer:
        assert isinstance(producer, kombu.Producer)
        assert producer.__connection__ in [s.resource for s in pool._lent_slots()]
    with Connection(URL).Pool(1).acquire() as conn:
        assert isinstance(conn, kombu.Connection)


def test_install_carries_kombus_limit_over() -> None:
    original = kombu.pools.get_limit()
    kombu.pools.set_limit(7)
    try:
        greenpools.install()
        assert pools.get_limit() == 7
    finally:
        greenpools.uninstall()
        kombu.pools.set_limit(original)


def test_modules_that_copied_kombus_producer_pool_are_patched(monkeypatch: Any) -> None:
    # Celery versions before 5.3 did ``from kombu.pools import ProducerPool``.
    monkeypatch.setattr(celery.app.amqp, "ProducerPool", kombu.pools.ProducerPool,
                        raising=False)
    original = kombu.pools.ProducerPool
    greenpools.install()
    assert celery.app.amqp.ProducerPool is pools.ProducerPool
    greenpools.uninstall()
    assert celery.app.amqp.ProducerPool is original


def test_celery_app_uses_greenpools_and_publishes(amqp_url: str, make_queue: Any) -> None:
    queue: Queue = make_queue(amqp_url)
    app = celery.Celery("greenpools-test", broker=amqp_url, set_as_current=False)
    app.conf.broker_pool_limit = 3
    kombus_pool = app.pool  # built before install: replaced by install
    assert not isinstance(kombus_pool, pools.ConnectionPool)
    try:
        greenpools.install()
        assert isinstance(app.pool, pools.ConnectionPool)
        assert app.pool.limit == 3
        producer_pool = app.amqp.producer_pool
        assert isinstance(producer_pool, pools.ProducerPool)
        assert producer_pool.connections is app.pool
        for n in range(5):
            app.send_task("greenpools.tests.add", args=(n, n), queue=queue)
        assert app.pool.get_stats()["pool_size"] >= 1
        bodies = drain(amqp_url, queue, 5)
        assert sorted(body[0][0] for body in bodies) == [0, 1, 2, 3, 4]
        greenpools.uninstall()
        assert not isinstance(app.pool, pools.ConnectionPool)
        assert not isinstance(app.amqp.producer_pool, pools.ProducerPool)
    finally:
        app.close()


def test_install_before_celery_is_imported() -> None:
    result = run_python(textwrap.dedent("""
        import greenpools
        greenpools.install()
        import celery, kombu.pools
        from greenpools import pools
        app = celery.Celery("t", broker="memory://", set_as_current=False)
        assert isinstance(app.pool, pools.ConnectionPool), app.pool
        assert isinstance(app.amqp.producer_pool, pools.ProducerPool)
        assert app.amqp.producer_pool.connections is app.pool
        greenpools.uninstall()
        assert not isinstance(kombu.pools.producers, pools.Producers)
        fresh = celery.Celery("u", broker="memory://", set_as_current=False)
        assert not isinstance(fresh.pool, pools.ConnectionPool)
        print("ok")
    """))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")
