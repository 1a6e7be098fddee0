"""kombu drop-in fidelity: what kombu's own pool tests do to a pool.

Found by running kombu's ``t/unit/test_pools.py`` and ``test_connection.py``
with ``greenpools.install()``: any callable as ``Producer``, hooks set on a
pool instance, resources lent while pooling was off, and resources dropped
by their holder after a reset.
"""

from __future__ import annotations

import functools
import gc
import weakref
from typing import Any
from unittest import mock

import pytest
from brokers import clean_global_pools, run_in_child, unique_name  # noqa: F401  (autouse)
from helpers import Factory, Thing, assert_balanced
from kombu import Connection, Exchange, Producer

import greenpools
from greenpools import pools


def memory_url() -> str:
    return f"memory://localhost/{unique_name('vhost')}"


@pytest.fixture
def connections() -> Any:
    pool = pools.ConnectionPool(Connection(memory_url()), limit=2)
    yield pool
    pool.force_close_all()


# -- Producer: any callable ---------------------------------------------------------


def test_producer_may_be_a_partial(connections: Any) -> None:
    pool = pools.ProducerPool(connections, limit=2,
                              Producer=functools.partial(Producer, serializer="pickle"))
    producer = pool.acquire()
    assert producer.serializer == "pickle" and producer.connection is not None
    producer.release()  # kombu binds release on what it lends: so does greenpools
    with pool.acquire() as again:
        assert again is producer
    assert_balanced(pool)
    assert_balanced(connections)


def test_producer_may_be_a_method_of_a_subclass(connections: Any) -> None:
    made: list[Any] = []

    class MyPool(pools.ProducerPool):
        def Producer(self, channel: Any) -> Any:  # kombu's name for it
            made.append(Producer(channel, serializer="json"))
            return made[-1]

    pool = MyPool(connections, limit=2)
    with pool.acquire() as producer:
        assert producer is made[0]
    assert_balanced(pool)


def test_producer_set_after_construction_makes_the_next_producers(connections: Any) -> None:
    class MyProducer(Producer):  # type: ignore[misc]
        pass

    pool = pools.ProducerPool(connections, limit=2)
    first = pool.acquire()
    pool.Producer = MyProducer
    second = pool.acquire()
    assert not isinstance(first, MyProducer) and isinstance(second, MyProducer)
    first.release()
    second.release()
    assert_balanced(pool)


def test_producer_that_is_not_callable_is_refused(connections: Any) -> None:
    with pytest.raises(TypeError, match="Producer must be callable, got 42"):
        pools.ProducerPool(connections, Producer=42)


# -- ProducerPool.prepare: after the binding ---------------------------------------------


def declaring(base: type, seen: list[Any]) -> type:
    """A subclass of ``base`` (kombu's ProducerPool or ours) whose prepare
    uses the producer ``super().prepare`` returns, as kombu code does."""

    class Declaring(base):  # type: ignore[valid-type, misc]
        def prepare(self, p: Any) -> Any:
            p = super().prepare(p)
            seen.append(p.__connection__)
            p.maybe_declare(Exchange(unique_name("x"), "direct"))  # needs a channel
            return p

    return Declaring


def lent_count(pool: Any) -> int:
    return len(pool._lent_slots())


def test_a_subclass_prepare_finds_the_producer_bound_as_in_kombu(connections: Any) -> None:
    import kombu.pools

    for base in (kombu.pools.ProducerPool, pools.ProducerPool):
        seen: list[Any] = []
        pool = declaring(base, seen)(connections, limit=2)
        for _ in range(2):  # made, then reused
            with pool.acquire(block=True) as producer:
                assert seen[-1] is producer.__connection__ is not None, base
                assert lent_count(connections) == 1
        assert len(seen) == 2, base
        assert_balanced(connections)
    assert_balanced(pool)


def test_prepare_set_on_a_producer_pool_finds_the_producer_bound(connections: Any) -> None:
    pool = pools.ProducerPool(connections, limit=2)
    seen: list[Any] = []

    def prepare(producer: Any) -> Any:
        seen.append(producer.__connection__)
        return producer

    with mock.patch.object(pool, "prepare", side_effect=prepare):  # as kombu's tests do
        with pool.acquire() as producer:
            assert seen == [producer.__connection__] and seen[0] is not None
    assert "acquire" not in pool.__dict__ and pool._bare_leases  # the plain path again
    with pool.acquire() as producer:
        assert len(seen) == 1
    assert_balanced(pool)
    assert_balanced(connections)


def test_a_subclass_acquire_runs_and_its_prepare_after_it(connections: Any) -> None:
    calls: list[str] = []

    class Both(pools.ProducerPool):
        def acquire(self, block: bool = False, timeout: float | None = None) -> Any:
            calls.append("acquire")
            return super().acquire(block, timeout)

        def prepare(self, p: Any) -> Any:
            p = super().prepare(p)
            calls.append("prepare" if p.__connection__ is not None else "unbound")
            return p

    pool = Both(connections, limit=2)
    with pool.acquire(block=True, timeout=5):
        assert calls == ["acquire", "prepare"]
    assert_balanced(pool)


def test_a_failing_prepare_gives_back_the_producer_and_its_connection(
    connections: Any,
) -> None:
    seen: list[Any] = []
    errors = [ValueError("not declared"), connections.connection.connection_errors[0]("gone")]

    class Failing(pools.ProducerPool):
        def prepare(self, p: Any) -> Any:
            p = super().prepare(p)
            seen.append(p.__connection__)
            raise errors.pop(0)

    pool = Failing(connections, limit=2)
    with pytest.raises(ValueError, match="not declared"):
        pool.acquire()
    assert seen[0] is not None
    assert_balanced(pool)
    assert_balanced(connections)
    assert connections.get_stats()["connections_lost"] == 0
    with pytest.raises(connections.connection.connection_errors[0], match="gone"):
        pool.acquire()
    assert seen[1] is seen[0]  # the same connection: it went back
    assert_balanced(pool)
    assert_balanced(connections)
    # A connection error: the connection is replaced, and the producer with it.
    assert connections.get_stats()["connections_lost"] == 1
    assert pool.get_stats()["connections_lost"] == 1
    with pytest.raises(IndexError):
        pool.acquire()  # prepare runs again: the pool is still usable
    assert len(seen) == 3 and seen[2] is not seen[0]
    assert_balanced(connections)


def test_what_a_producer_pools_prepare_returns_is_lent_in_its_place(connections: Any) -> None:
    class Swapping(pools.ProducerPool):
        def prepare(self, p: Any) -> Any:
            p = super().prepare(p)
            if self.swap_for is None:
                conn = p.__connection__
                assert conn is not None
                return Producer(conn)  # bound to the same connection
            return self.swap_for

    pool = Swapping(connections, limit=2)
    pool.swap_for = None
    swapped = pool.acquire()
    assert type(swapped) is Producer and swapped.__connection__ is not None
    pool.swap_for = swapped  # lent: not to be lent twice
    with pytest.raises(ValueError, match=r"prepare returned .* which pool .* already holds"):
        pool.acquire()
    assert lent_count(pool) == lent_count(connections) == 1  # the other went back
    pool.release(swapped)  # its slot now
    assert_balanced(pool)
    assert_balanced(connections)
    assert pool.get_stats()["pool_size"] == 2


def test_prepare_binds_a_producer_bound_to_nothing_as_kombus_does(connections: Any) -> None:
    import kombu.pools

    for base in (kombu.pools.ProducerPool, pools.ProducerPool):
        pool = base(connections, limit=2)
        producer = Producer(None)
        assert pool.prepare(producer) is producer
        assert producer.__connection__ is not None, base
        assert producer.channel is producer.__connection__.default_channel
        producer.__connection__.release()
        assert_balanced(connections)


# -- hooks set on an instance ------------------------------------------------------------


def test_prepare_set_on_an_instance_is_honoured_and_removable(make_pool: Any) -> None:
    pool = make_pool(Factory(), 2)
    assert pool._bare_leases  # no hooks: the fast path
    prepared: list[Any] = []

    def prepare(resource: Any) -> Any:
        prepared.append(resource)
        return resource

    with mock.patch.object(pool, "prepare", side_effect=prepare):  # as kombu's tests do
        assert not pool._bare_leases
        thing = pool.acquire()
        assert prepared == [thing]
        pool.release(thing)
        assert pool.acquire() is thing and prepared == [thing, thing]
        pool.release(thing)
    assert pool._bare_leases  # the patch is gone: the pool is plain again
    assert pool.acquire() is thing and prepared == [thing, thing]
    pool.release(thing)
    assert_balanced(pool)


def test_release_resource_set_on_an_instance_is_honoured(make_pool: Any) -> None:
    pool = make_pool(Factory(), 2)
    returned: list[Any] = []
    pool.release_resource = returned.append
    thing = pool.acquire()
    pool.release(thing)
    assert returned == [thing]
    del pool.release_resource
    pool.release(pool.acquire())
    assert returned == [thing]
    assert pool.release_resource.__func__ is greenpools.Resource.release_resource


def test_prepare_set_on_an_instance_of_a_subclass_replaces_its_method() -> None:
    class Numbered(greenpools.Resource[Thing]):
        def new(self) -> Thing:
            return Thing()

        def prepare(self, resource: Thing) -> Thing:
            resource.prepared = "by the class"  # type: ignore[attr-defined]
            return resource

    pool = Numbered(2)
    thing = pool.acquire()
    assert thing.prepared == "by the class"  # type: ignore[attr-defined]
    pool.release(thing)

    def by_instance(resource: Thing) -> Thing:
        resource.prepared = "by the instance"  # type: ignore[attr-defined]
        return resource

    pool.prepare = by_instance
    assert pool.acquire().prepared == "by the instance"  # type: ignore[attr-defined]
    pool.force_close_all()


# -- resources lent while pooling was off ------------------------------------------------


def test_resources_lent_at_limit_zero_do_not_count_against_a_later_limit() -> None:
    pool = pools.ConnectionPool(Connection(memory_url()), limit=0)  # no pooling, as in kombu
    unpooled = [pool.acquire(), pool.acquire(), pool.acquire()]
    pool.limit = 1
    pooled = pool.acquire(block=False)  # the three above take no place
    assert pooled not in unpooled
    for conn in unpooled:  # still usable, and closed when given back
        assert conn.default_channel is not None
        conn.release()
        assert conn._closed
    pooled.release()
    assert not pooled._closed and pool.acquire() is pooled
    pool.force_close_all()


@pytest.mark.parametrize("limit", [0, None])
def test_a_producer_pool_without_a_limit_pools_nothing_as_in_kombu(
    connections: Any, limit: int | None,
) -> None:
    import kombu.pools

    kombus = kombu.pools.ProducerPool(connections, limit=limit)
    ours = pools.ProducerPool(connections, limit=limit)
    for pool in (kombus, ours):
        first = pool.acquire()
        first.release()
        again = pool.acquire()
        assert again is not first, pool  # dropped on release, not kept idle
        assert again.connection is not None
        again.release()
    assert ours.get_stats()["pool_size"] == 0
    assert_balanced(connections)  # every connection went back


def test_a_producer_pool_leaving_limit_zero_starts_pooling(connections: Any) -> None:
    pool = pools.ProducerPool(connections, limit=0)
    unpooled = pool.acquire()
    pool.limit = 1
    pooled = pool.acquire(block=False)  # the one lent at 0 takes no place
    unpooled.release()
    pooled.release()
    assert pool.acquire() is pooled
    pooled.release()
    pool.limit = 0
    fresh = pool.acquire()
    assert fresh is not pooled  # going back to 0 retired the idle one
    fresh.release()
    assert pool.get_stats()["pool_size"] == 0
    assert_balanced(connections)


# -- a lent resource its holder drops ---------------------------------------------------


def test_a_reset_frees_the_places_of_lent_resources_dropped_by_their_holders(
    make_pool: Any,
) -> None:
    # kombu's test_acquire_resize_force_smaller: resize(force=True), then del.
    factory = Factory()
    pool = make_pool(factory, 2)
    c1, c2 = pool.acquire(), pool.acquire()
    with pytest.raises(greenpools.LimitExceeded):
        pool.acquire()
    pool.resize(1, force=True)
    assert factory.closed_counts() == [0, 0]  # in use: not closed under their holders
    del c1, c2
    fresh = pool.acquire()
    with pytest.raises(greenpools.LimitExceeded):
        pool.acquire()
    pool.release(fresh)
    assert_balanced(pool)


def test_a_resource_lent_across_a_reset_closes_when_given_back(make_pool: Any) -> None:
    pool = make_pool(Factory(), 2)
    old = pool.acquire()
    pool.resize(2, reset=True)
    new = [pool.acquire(), pool.acquire()]  # both places are free
    assert old not in new
    pool.release(old)
    assert old.closed == 1
    with pytest.raises(ValueError, match="released twice"):
        pool.release(old)
    for thing in new:
        pool.release(thing)
    assert_balanced(pool)


def test_without_a_reset_a_dropped_resource_keeps_its_place(make_pool: Any) -> None:
    # Documented: capacity comes back through release, replace, resize(reset
    # or force) or force_close_all, never through garbage collection.
    pool = make_pool(Factory(), 1)
    dropped = weakref.ref(pool.acquire())
    gc.collect()
    assert dropped() is not None  # the pool keeps it: an open connection is not garbage
    with pytest.raises(greenpools.LimitExceeded):
        pool.acquire()
    pool.force_close_all(close_pool=False)
    assert dropped().closed == 1  # type: ignore[union-attr]
    pool.release(pool.acquire())


# -- one connection's options stay its own ---------------------------------------------


def test_a_publish_retry_policy_stays_on_its_own_connection() -> None:
    """kombu's ``publish(retry=True, retry_policy=...)`` writes the policy into
    its connection's ``transport_options``: pooled connections must not share
    that dict with each other or with the pool's template."""
    template = Connection(memory_url(), transport_options={"confirm_publish": False})
    pool = pools.ProducerPool(pools.ConnectionPool(template, limit=2), limit=2)
    try:
        first, second = pool.acquire(), pool.acquire()
        first.publish("x", routing_key="nowhere", retry=True, retry_policy={"max_retries": 7})
        assert first.connection.transport_options["max_retries"] == 7
        assert "max_retries" not in second.connection.transport_options
        assert template.transport_options == {"confirm_publish": False}
        first.release()
        second.release()
        assert_balanced(pool)
    finally:
        pool.force_close_all()
        pool.connections.force_close_all()


# -- PoolGroup: whatever create returns ------------------------------------------------


def both_groups(create: Any) -> list[Any]:
    """A group of kombu's PoolGroup and one of ours, each with ``create``."""
    import kombu.pools

    return [type("G", (base,), {"create": create})(limit=2)
            for base in (kombu.pools.PoolGroup, pools.PoolGroup)]


def test_a_group_stores_what_a_kombu_style_create_returns() -> None:
    made: list[Any] = []

    def create(group: Any, connection: Any, limit: Any) -> Any:
        made.append(connection.Pool(limit=limit))  # kombu's Connections.create
        return made[-1]

    url = memory_url()
    for group in both_groups(create):
        pool = group[Connection(url)]
        assert not isinstance(pool, greenpools.Resource)  # kombu's own pool
        assert group[Connection(url)] is pool, group
        assert len(group) == 1 and made[-1] is pool, group
        pool.release(pool.acquire())
        pool.force_close_all()
    assert len(made) == 2
    group.drain()  # ours passes over what cannot drain


@pytest.mark.parametrize("made", [("any", "thing"), None, 0])
def test_a_group_stores_any_object_create_returns_as_kombus_does(made: Any) -> None:
    calls: list[Any] = []

    def create(group: Any, connection: Any, limit: Any) -> Any:
        calls.append(connection)
        return made

    conn = Connection(memory_url())
    for group in both_groups(create):
        assert group[conn] is made and group[conn] is made, group
        assert calls == [conn] and len(group) == 1, group
        calls.clear()
    greenpools.listen(group, "checkout", lambda *args: None)  # ours: no pool to watch
    assert group[conn] is made and calls == []


def test_create_gets_a_url_key_as_given_as_in_kombu() -> None:
    given: list[Any] = []

    def create(group: Any, resource: Any, limit: Any) -> Any:
        given.append(resource)
        return pools.ConnectionPool(resource, limit=limit)

    url = memory_url()
    for group in both_groups(create):
        group[url].close()
        assert given == [url], group
        given.clear()
    # greenpools' own groups take URLs too, and equal parameters share a pool.
    assert pools.connections[url] is pools.connections[Connection(url)]
    assert pools.producers[url].connections is pools.connections[url]


def test_the_global_functions_treat_kombus_pools_in_a_group_as_kombu_does() -> None:
    import kombu.pools

    class KombuProducers(pools.PoolGroup):
        def create(self, connection: Any, limit: Any) -> Any:
            return kombu.pools.ProducerPool(connection.Pool(limit=limit), limit=limit)

    group = pools.register_group(KombuProducers(limit=pools.use_global_limit))
    try:
        pool = group[Connection(memory_url())]
        assert isinstance(pool, kombu.pools.ProducerPool) and pool.limit == 10
        idle = pool._resource.qsize()
        pools.set_limit(10, force=True)  # the same limit: kombu's set_limit leaves it
        assert pool._resource.qsize() == idle  # kombu's resize would add 10 producers
        pools.set_limit(3)
        assert pool.limit == 3
        pool.release(pool.acquire())
        with mock.patch.object(pool, "force_close_all", wraps=pool.force_close_all) as close:
            pools.reset()
        close.assert_called_once_with()
        assert len(group) == 0
    finally:
        pools._groups.remove(group)


def test_a_forked_child_starts_with_a_kombu_style_group_empty() -> None:
    def create(group: Any, connection: Any, limit: Any) -> Any:
        return connection.Pool(limit=limit)

    group = both_groups(create)[1]
    conn = Connection(memory_url())
    pool = group[conn]

    def check() -> None:
        assert len(group) == 0
        assert group[conn] is not pool

    run_in_child(check)
    assert group[conn] is pool


# -- limit None ------------------------------------------------------------------------


def test_a_limit_given_as_none_reads_none_as_in_kombu() -> None:
    import kombu.connection
    import kombu.pools

    url = memory_url()
    ours = [pools.ConnectionPool(Connection(url), limit=None),
            pools.ChannelPool(Connection(url), limit=None),
            pools.ProducerPool(pools.ConnectionPool(Connection(url)), limit=None)]
    theirs = [kombu.connection.ConnectionPool(Connection(url), limit=None),
              kombu.connection.ChannelPool(Connection(url), limit=None),
              kombu.pools.ProducerPool(None, limit=None)]
    assert [p.limit for p in ours] == [p.limit for p in theirs] == [None, None, None]
    assert pools.ConnectionPool(Connection(url), limit=0).limit == 0  # as given, as kombu
    for pool in ours:
        assert pool.get_stats()["pool_max"] == 0  # psycopg_pool's figure stays a number
        pool.limit = 3
        assert pool.limit == 3
        pool.limit = 0
        assert pool.limit == 0
        pool.limit = None
        assert pool.limit is None
        pool.close()


def test_a_group_of_kombus_own_pools_may_name_their_class() -> None:
    """``pool_class`` set to a class without greenpools' checks: kombu's ways."""
    import kombu.connection

    class KombuConnections(pools.PoolGroup):
        pool_class = kombu.connection.ConnectionPool

        def create(self, connection: Any, limit: Any) -> Any:
            return connection.Pool(limit=limit)

    group = KombuConnections(limit=2)
    pool = group[Connection(f"memory://localhost/{unique_name('vhost')}")]
    assert type(pool) is kombu.connection.ConnectionPool and pool.limit == 2


def test_a_refused_resize_leaves_a_limit_of_none_as_it_was() -> None:
    pool = pools.ConnectionPool(Connection("memory://"), limit=None, min_size=2)
    try:
        with pytest.raises(ValueError, match="min_size"):
            pool.resize(1)
        assert pool.limit is None
    finally:
        pool.force_close_all()
