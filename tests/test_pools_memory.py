"""greenpools.pools semantics on kombu's in-memory transport (no services needed)."""

from __future__ import annotations

import threading
from typing import Any

import amqp.exceptions
import kombu
import kombu.exceptions
import pytest
from brokers import clean_global_pools, run_in_child, unique_name  # noqa: F401  (autouse)
from helpers import assert_balanced, join_all, spawn, start_acquirer, wait_until
from kombu import Connection, Exchange, Queue

import greenpools
from greenpools import pools

URL = "memory://"


def memory_url() -> str:
    """A memory URL with its own pool: the virtual host is part of the key."""
    return f"memory://localhost/{unique_name('vhost')}"


# -- groups ----------------------------------------------------------------


def test_equal_parameters_share_one_pool_urls_included() -> None:
    pool = pools.connections[URL]
    assert isinstance(pool, pools.ConnectionPool)
    assert pools.connections[Connection(URL)] is pool
    assert pools.connections[URL] is pool
    assert Connection(URL) in pools.connections and URL in pools.connections
    other = pools.connections[memory_url()]
    assert other is not pool
    assert len(pools.connections) == 2


def test_group_exported_at_package_level() -> None:
    assert greenpools.connections is pools.connections
    assert greenpools.producers is pools.producers


def test_global_groups_follow_the_global_limit() -> None:
    assert pools.get_limit() == 10
    assert pools.connections[URL].limit == 10
    assert pools.producers[URL].limit == 10
    pools.set_limit(4)
    assert pools.connections[memory_url()].limit == 4


def test_custom_groups_pass_limit_and_options_through() -> None:
    group = pools.Connections(limit=3, timeout=0.01, max_waiting=7, name="custom")
    pool = group[URL]
    assert (pool.limit, pool.timeout, pool.max_waiting, pool.name) == (3, 0.01, 7, "custom")
    producer_group = pools.Producers(limit=2, connections=group, timeout=0.02)
    producer_pool = producer_group[URL]
    assert producer_pool.limit == 2 and producer_pool.timeout == 0.02
    assert producer_pool.connections is pool
    follows = pools.Connections(limit=pools.use_default_limit)
    assert pools.use_default_limit is pools.use_global_limit is kombu.pools.use_global_limit
    assert follows[URL].limit == pools.get_limit()


def test_groups_follow_the_global_state_set_on_the_pools_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The groups live in another module; what is set on this one must still count.
    mine = pools.Connections(limit=2)
    monkeypatch.setattr(pools, "connections", mine)
    assert pools.Producers(limit=1)[URL].connections is mine[URL]
    marker = object()
    monkeypatch.setattr(pools, "use_global_limit", marker)
    pools.set_limit(5)
    assert pools.Connections(limit=marker)[URL].limit == 5


def pool_error(group_class: type[pools.PoolGroup], **options: Any) -> BaseException:
    """What the group's pool class raises for ``options`` (with the limit a
    group passes on), which is what the group made its first pool raise."""
    limit = options.pop("limit", None)
    with pytest.raises((TypeError, ValueError)) as info:
        if group_class is pools.Producers:
            pools.ProducerPool(pools.ConnectionPool(URL), limit, **options)
        else:
            pools.ConnectionPool(URL, limit, **options)
    return info.value


@pytest.mark.parametrize(
    ("group_class", "options"),
    [
        (pools.Connections, {"limit": -1}),
        (pools.Connections, {"limit": "3"}),
        (pools.Connections, {"timeout": "x"}),
        (pools.Connections, {"limit": 2, "min_size": 3}),
        (pools.Connections, {"placement": "nearest"}),
        (pools.Connections, {"check": 1}),
        (pools.Producers, {"max_waiting": -1}),
        (pools.Producers, {"keepalive": 5}),  # runs check: a producer pool has none
        (pools.Producers, {"Producer": 42}),
    ],
)
def test_a_group_refuses_a_bad_option_when_made_as_its_pools_would_naming_it(
    group_class: type[pools.PoolGroup], options: dict[str, Any],
) -> None:
    expected = pool_error(group_class, **options)
    with pytest.raises(type(expected)) as info:
        group_class(**options)
    assert str(info.value) == f"{group_class.__name__}(): {expected}"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: pools.Connections(limt=3),
         "Connections() got an unexpected keyword argument 'limt'. Did you mean 'limit'?"),
        (lambda: pools.Producers(limit=2, connection=pools.connections),
         "Producers() got an unexpected keyword argument 'connection'. "
         "Did you mean 'connections'?"),
        (lambda: pools.Connections(time_out=3),
         "Connections() got an unexpected keyword argument 'time_out'. "
         "Did you mean 'timeout'?"),
    ],
)
def test_a_group_refuses_an_unknown_option_when_made(make: Any, message: str) -> None:
    with pytest.raises(TypeError) as info:
        make()
    assert str(info.value) == message


def test_a_groups_options_and_limit_are_checked_when_they_change() -> None:
    group = pools.Connections(limit=2, timeout=1)
    refusals: list[tuple[Any, type[Exception], str]] = [
        (lambda: group.options.update(timeout="x"), TypeError,
         "Connections.options: timeout must be a number of seconds or None, got 'x'"),
        (lambda: group.options.__setitem__("min_size", 3), ValueError,
         "Connections.options: min_size must not exceed limit 2, got 3"),
        (lambda: group.options.update(timout=5), TypeError,
         "Connections.options got an unexpected keyword argument 'timout'. "
         "Did you mean 'timeout'?"),
        (lambda: group.options.update(limit=5), TypeError,
         "Connections.options: limit is the group's own, not an option it passes on: "
         "set Connections.limit"),
        (lambda: setattr(group, "options", {"max_idle": -1}), ValueError,
         "Connections.options: max_idle must be a non-negative number of seconds, got -1"),
        (lambda: setattr(group, "limit", -1), ValueError,
         "Connections.limit: limit must be a non-negative int, got -1"),
        (lambda: pools.connections.options.update(max_waiting="many"), TypeError,
         "Connections.options: max_waiting must be a non-negative int, got 'many'"),
    ]
    for change, error, message in refusals:
        with pytest.raises(error) as info:
            change()
        assert str(info.value) == message
    # Each refused change was refused whole: nothing of it stayed.
    assert dict(group.options) == {"timeout": 1} and group.limit == 2
    assert dict(pools.connections.options) == {}
    # Changes are checked as a whole: keepalive needs check, given together.
    producers = pools.Producers(limit=2, connections=group)
    producers.options.update(keepalive=5, check=lambda producer: None)
    group.options["min_size"] = 1
    group.limit = 3
    url = memory_url()
    producer_pool = producers[url]
    pool = group[url]
    assert producer_pool.connections is pool and producer_pool.keepalive == 5
    assert (pool.limit, pool.timeout, pool.min_size) == (3, 1, 1)
    producer_pool.close()
    pool.close()


def test_pool_group_without_create_says_so() -> None:
    with pytest.raises(NotImplementedError, match="create"):
        pools.PoolGroup()[URL]


def test_group_creates_one_pool_under_concurrent_first_use() -> None:
    release_creator = threading.Event()
    entered = threading.Event()
    made: list[Any] = []

    class SlowConnections(pools.Connections):
        def create(self, connection: Any, limit: int | None) -> Any:
            made.append(connection)
            entered.set()
            assert release_creator.wait(30)
            return super().create(connection, limit)

    group = SlowConnections(limit=2)
    creator = spawn(lambda: group[URL])
    assert entered.wait(30)
    others = [spawn(lambda: group[Connection(URL)]) for _ in range(20)]
    wait_until(lambda: len(group._creating[next(iter(group._creating))]) == 20)
    release_creator.set()
    results = join_all([creator, *others])
    assert len(made) == 1
    assert all(result is results[0] for result in results)


def test_group_creation_failure_lets_the_next_caller_try_again() -> None:
    failures = [RuntimeError("first create fails")]

    class Flaky(pools.Connections):
        def create(self, connection: Any, limit: int | None) -> Any:
            if failures:
                raise failures.pop()
            return super().create(connection, limit)

    group = Flaky(limit=1)
    with pytest.raises(RuntimeError, match="first create fails"):
        group[URL]
    assert group._creating == {}
    assert isinstance(group[URL], pools.ConnectionPool)


def test_register_group_is_usable_as_a_decorator_and_is_managed() -> None:
    group = pools.register_group(pools.Connections(limit=pools.use_global_limit))
    try:
        assert pools.register_group(group) is group  # returns its argument
        pool = group[memory_url()]
        pools.set_limit(3)
        assert pool.limit == 3
        pools.reset()
        assert len(group) == 0
        assert pool.closed
    finally:
        pools._groups.remove(group)
        pools._groups.remove(group)


# -- connection pools ----------------------------------------------------------


def test_acquire_returns_a_kombu_connection_released_exactly_once() -> None:
    pool = pools.ConnectionPool(URL, limit=2)
    conn = pool.acquire()
    assert isinstance(conn, kombu.Connection)
    conn.release()
    with pytest.raises(ValueError, match="released twice"):
        conn.release()
    with pytest.raises(ValueError, match="released twice"):
        pool.release(conn)
    taken = [pool.acquire(), pool.acquire()]
    assert len({id(c) for c in taken}) == 2  # never the same one twice
    with pytest.raises(kombu.exceptions.ConnectionLimitExceeded):
        pool.acquire()
    for c in taken:
        c.release()
    assert_balanced(pool)


@pytest.mark.parametrize("group", ["connections", "producers"])
@pytest.mark.parametrize(("timeout", "error"), [(-1, ValueError), ("1", TypeError)])
def test_a_bad_timeout_is_refused_even_when_one_is_idle(
    group: str, timeout: Any, error: type[Exception],
) -> None:
    pool = getattr(pools, group)[URL]
    with pool.acquire(block=True):
        pass  # idle now
    with pytest.raises(error, match=rf"timeout .*got {timeout!r}"):
        pool.acquire(block=True, timeout=timeout)
    with pool.acquire(block=True, timeout=1) as taken:  # nothing was taken
        assert taken is not None
    assert_balanced(pool)


def test_release_is_a_method_nothing_is_set_per_acquire() -> None:
    pool = pools.ConnectionPool(URL, limit=1)
    conn = pool.acquire()
    before = dict(vars(conn))
    conn.release()
    assert pool.acquire() is conn
    assert "release" not in vars(conn)  # kombu binds a closure on every acquire
    assert vars(conn).keys() == before.keys()
    conn.release()
    with pytest.raises(ValueError, match="released twice"):
        conn.release()


def test_limit_errors_are_kombu_and_greenpools_classes() -> None:
    pool = pools.ConnectionPool(URL, limit=1)
    held = pool.acquire()
    with pytest.raises(kombu.exceptions.ConnectionLimitExceeded) as info:
        pool.acquire()
    assert isinstance(info.value, greenpools.LimitExceeded)
    with pytest.raises(kombu.exceptions.ConnectionLimitExceeded) as info:
        pool.acquire(block=True, timeout=0.01)
    assert isinstance(info.value, greenpools.PoolTimeout)
    held.release()

    channels = Connection(URL).ChannelPool(1)  # kombu's, not installed
    ours = pools.ChannelPool(URL, limit=1)
    ours.acquire()
    with pytest.raises(kombu.exceptions.ChannelLimitExceeded) as info:
        ours.acquire()
    assert isinstance(info.value, greenpools.LimitExceeded)
    assert not isinstance(channels, pools.ChannelPool)


def test_with_block_returns_the_connection() -> None:
    pool = pools.ConnectionPool(URL, limit=1)
    with pool.acquire() as conn:
        assert isinstance(conn, kombu.Connection)
        with pytest.raises(kombu.exceptions.ConnectionLimitExceeded):
            pool.acquire()
    assert pool.acquire() is conn


def test_connection_error_in_with_block_replaces_the_connection() -> None:
    pool = pools.ConnectionPool(URL, limit=1)
    with pytest.raises(amqp.exceptions.ConnectionError):
        with pool.acquire() as broken:
            broken.default_channel  # noqa: B018  (connects)
            raise amqp.exceptions.ConnectionError("socket went away")
    assert broken._closed
    with pool.acquire() as fresh:
        assert fresh is not broken
    assert_balanced(pool)


def test_other_error_in_with_block_returns_the_connection() -> None:
    pool = pools.ConnectionPool(URL, limit=1)
    with pytest.raises(KeyError):
        with pool.acquire() as conn:
            raise KeyError("not a connection problem")
    assert not conn._closed
    assert pool.acquire() is conn


def test_limit_zero_means_no_pooling_as_in_kombu() -> None:
    pool = pools.ConnectionPool(URL)
    first = pool.acquire()
    second = pool.acquire()
    assert first is not second
    first.release()
    assert first._closed
    with pytest.raises(ValueError, match="released twice"):
        first.release()
    third = pool.acquire()
    assert third is not first
    second.release()
    third.release()
    stats = pool.get_stats()
    assert stats["connections_num"] == 3
    assert stats["connections_lost"] == 0  # closed because done with, not because broken
    pool.limit = 2  # pooling from now on
    kept = pool.acquire()
    kept.release()
    assert not kept._closed and pool.acquire() is kept


def test_acquire_channel_context() -> None:
    pool = pools.ConnectionPool(URL, limit=1)
    with pool.acquire_channel() as (conn, channel):
        assert channel is conn.default_channel
    assert pool.acquire() is conn


# -- channel pools ---------------------------------------------------------------


def test_channel_pool_hands_out_channels_that_go_back_on_exit() -> None:
    conn = Connection(URL)
    pool = pools.ChannelPool(conn, limit=2)
    with pool.acquire() as channel:
        assert channel.connection.client is conn
        assert not getattr(channel, "closed", False)
    assert pool.acquire() is channel  # returned open, not closed
    channel.release()
    with pytest.raises(ValueError, match="released twice"):
        channel.release()


# -- producer pools ----------------------------------------------------------------


def test_producer_pool_publishes_and_returns_producer_and_connection() -> None:
    url = memory_url()
    name = unique_name()
    queue = Queue(name, Exchange(name), routing_key=name)
    connection_pool = pools.connections[url]
    producer_pool = pools.producers[url]
    assert producer_pool.connections is connection_pool
    with producer_pool.acquire(block=True) as producer:
        assert isinstance(producer, kombu.Producer)
        assert producer.__connection__ in [s.resource for s in connection_pool._lent_slots()]
        producer.publish({"n": 1}, exchange=queue.exchange, routing_key=name, declare=[queue])
    assert_balanced(producer_pool)
    assert_balanced(connection_pool)
    with producer_pool.acquire() as again:
        assert again is producer
        again.publish({"n": 2}, exchange=queue.exchange, routing_key=name)
    with Connection(url) as conn, conn.SimpleQueue(queue) as simple:
        got = [simple.get(timeout=1).payload for _ in range(2)]
    assert got == [{"n": 1}, {"n": 2}]


def test_producer_is_not_revived_when_its_connection_comes_back() -> None:
    producer_pool = pools.producers[memory_url()]
    revived: list[Any] = []
    with producer_pool.acquire() as producer:
        producer.publish({}, routing_key="nowhere")
    original = producer.revive
    producer.revive = lambda channel: (revived.append(channel), original(channel))
    for _ in range(3):
        with producer_pool.acquire() as again:
            assert again is producer
    assert revived == []
    # Another connection under it: revived onto that one.
    conn = producer.__connection__
    other = producer_pool.connections.acquire()
    held = producer_pool.connections.acquire()
    assert conn in (other, held)
    keep = other if other is not conn else held
    conn.release()
    with producer_pool.acquire():
        pass
    keep.release()


def test_producer_pool_double_release_is_an_error_and_connection_not_doubled() -> None:
    producer_pool = pools.producers[memory_url()]
    producer = producer_pool.acquire()
    producer.release()
    with pytest.raises(ValueError, match="released twice"):
        producer.release()
    assert_balanced(producer_pool)
    assert_balanced(producer_pool.connections)


def test_producer_pool_connection_error_replaces_connection_and_producer() -> None:
    producer_pool = pools.producers[memory_url()]
    with pytest.raises(amqp.exceptions.ConnectionError):
        with producer_pool.acquire() as producer:
            conn = producer.__connection__
            raise amqp.exceptions.ConnectionError("broker went away")
    assert conn._closed
    assert_balanced(producer_pool.connections)
    with producer_pool.acquire() as fresh:
        assert fresh.__connection__ is not conn


def test_producer_pool_other_error_returns_both() -> None:
    producer_pool = pools.producers[memory_url()]
    with pytest.raises(KeyError):
        with producer_pool.acquire() as producer:
            conn = producer.__connection__
            raise KeyError("serialisation, say")
    assert not conn._closed
    with producer_pool.acquire() as again:
        assert again is producer and again.__connection__ is conn


def test_no_connection_leaks_when_making_a_producer_fails() -> None:
    class Refuses(kombu.Producer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("cannot make a producer")

    connection_pool = pools.ConnectionPool(URL, limit=1)
    producer_pool = pools.ProducerPool(connection_pool, 2, Refuses)  # kombu-style positional
    for _ in range(3):
        with pytest.raises(RuntimeError, match="cannot make a producer"):
            producer_pool.acquire()
    assert_balanced(connection_pool)
    assert_balanced(producer_pool)
    assert connection_pool.acquire(block=False)  # its only connection is free


def test_no_connection_leaks_when_reviving_a_producer_fails() -> None:
    fail = []

    class FragileProducer(kombu.Producer):
        def revive(self, channel: Any) -> None:
            if fail:
                raise fail.pop()
            super().revive(channel)

    connection_pool = pools.ConnectionPool(URL, limit=2)
    producer_pool = pools.ProducerPool(connection_pool, limit=1, Producer=FragileProducer)
    producer = producer_pool.acquire()
    first_conn = producer.__connection__
    other = connection_pool.acquire()  # the producer must move to another connection
    producer.release()
    first_conn_holder = connection_pool.acquire()
    assert first_conn_holder is first_conn
    other.release()
    fail.append(RuntimeError("revive failed"))
    with pytest.raises(RuntimeError, match="revive failed"):
        producer_pool.acquire()
    first_conn_holder.release()
    assert_balanced(connection_pool)
    assert_balanced(producer_pool)
    assert producer_pool.acquire().__connection__ is not None


def test_producer_pool_timeout_covers_waiting_for_a_connection() -> None:
    connection_pool = pools.ConnectionPool(URL, limit=1)
    producer_pool = pools.ProducerPool(connection_pool, limit=2)
    held = connection_pool.acquire()
    with pytest.raises(kombu.exceptions.ConnectionLimitExceeded):
        producer_pool.acquire(block=True, timeout=0.05)
    held.release()
    assert_balanced(producer_pool)
    producer = producer_pool.acquire(block=True, timeout=5)
    producer.release()


def test_producer_pool_acquire_without_blocking_never_waits_for_a_connection() -> None:
    connection_pool = pools.ConnectionPool(URL, limit=1)
    producer_pool = pools.ProducerPool(connection_pool, limit=2)
    held = connection_pool.acquire()
    with pytest.raises(kombu.exceptions.ConnectionLimitExceeded):
        producer_pool.acquire(block=False)
    assert_balanced(producer_pool)  # the producer it took went back
    held.release()
    producer = producer_pool.acquire(block=False)
    assert producer.__connection__ is held
    producer.release()
    assert_balanced(connection_pool)


def test_producer_pool_refuses_what_is_not_a_pool() -> None:
    with pytest.raises(TypeError, match="connections must be a connection pool"):
        pools.ProducerPool(Connection(URL))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: pools.ConnectionPool(URL, limt=5),
         "ConnectionPool() got an unexpected keyword argument 'limt'. Did you mean 'limit'?"),
        (lambda: pools.ChannelPool(URL, 2, max_idel=1),
         "ChannelPool() got an unexpected keyword argument 'max_idel'. Did you mean 'max_idle'?"),
        (lambda: pools.ProducerPool(pools.connections[URL], 2, producer=kombu.Producer),
         "ProducerPool() got an unexpected keyword argument 'producer'. Did you mean 'Producer'?"),
    ],
)
def test_an_unknown_keyword_names_the_pool_class_called(make: Any, message: str) -> None:
    with pytest.raises(TypeError) as info:
        make()
    assert str(info.value) == message


# -- set_limit and reset ---------------------------------------------------------------


def test_set_limit_shrinks_while_connections_are_in_use() -> None:
    pool = pools.connections[memory_url()]
    held = [pool.acquire() for _ in range(6)]
    idle = held[4:]
    for conn in idle:
        conn.release()
    assert pools.set_limit(3) == 3
    assert pool.limit == 3 and pools.get_limit() == 3
    assert all(conn._closed for conn in idle)  # idle ones over the limit closed now
    for conn in held[:4]:
        conn.release()
    assert pool.get_stats()["pool_size"] <= 3
    taken = [pool.acquire() for _ in range(3)]
    with pytest.raises(kombu.exceptions.ConnectionLimitExceeded):
        pool.acquire()
    for conn in taken:
        conn.release()


def test_set_limit_wakes_waiters_when_growing() -> None:
    pools.set_limit(1)
    pool = pools.connections[memory_url()]
    held = pool.acquire()
    waiter = start_acquirer(pool, timeout=30)
    pools.set_limit(2)
    got = waiter.join()
    assert got is not held
    pool.release(got)
    held.release()


def test_set_limit_force_and_reset_after() -> None:
    pool = pools.connections[memory_url()]
    pool.resize(4)  # drifted from the global limit
    assert pools.set_limit(10) == 10 and pool.limit == 4  # unchanged: nothing to do
    pools.set_limit(10, force=True)
    assert pool.limit == 10
    lent = pool.acquire()
    idle = pool.acquire()
    idle.release()
    pools.set_limit(10, reset_after=True)
    assert idle._closed and not lent._closed
    lent.release()  # a retired connection closes when it comes back
    assert lent._closed
    assert pool.acquire() not in (lent, idle)


def test_set_limit_force_means_what_resize_force_means() -> None:
    pools.set_limit(2)
    pool = pools.connections[memory_url()]
    held = [pool.acquire(), pool.acquire()]
    pools.set_limit(1)  # not forced: the two in use keep their places
    with pytest.raises(greenpools.LimitExceeded):
        pool.acquire()
    pools.set_limit(1, force=True)  # unchanged, yet applied: both in use retired
    fresh = pool.acquire()
    assert fresh not in held and not any(c._closed for c in held)
    for connection in held:
        connection.release()  # retired: they close on return
    assert all(c._closed for c in held)
    fresh.release()


def test_set_limit_applies_everywhere_then_raises_or_ignores_errors() -> None:
    class Unclosable(pools.ConnectionPool):
        def close_resource(self, resource: Any) -> None:
            raise OSError("cannot close")

    group = pools.register_group(pools.Connections(limit=pools.use_global_limit))
    group.create = lambda connection, limit: Unclosable(connection, limit)  # type: ignore[method-assign]
    try:
        bad = group[memory_url()]
        good = pools.connections[memory_url()]
        for pool in (bad, good):
            pool.acquire().release()
        with pytest.raises(OSError, match="cannot close"):
            pools.set_limit(5, reset_after=True)
        assert (pools.get_limit(), bad.limit, good.limit) == (5, 5, 5)
        bad.acquire().release()
        pools.set_limit(6, reset_after=True, ignore_errors=True)
        assert (pools.get_limit(), bad.limit, good.limit) == (6, 6, 6)
    finally:
        pools._groups.remove(group)


def test_set_limit_refuses_before_changing_anything() -> None:
    group = pools.register_group(pools.Connections(limit=pools.use_global_limit, min_size=0))
    try:
        pool = pools.ConnectionPool(URL, limit=10, min_size=4)
        group[URL] = pool
        with pytest.raises(ValueError, match="min_size"):
            pools.set_limit(2)
        assert pools.get_limit() == 10 and pool.limit == 10
        with pytest.raises(TypeError, match="limit"):
            pools.set_limit(True)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="limit"):
            pools.set_limit(-1)
        with pytest.raises(ValueError, match=f"limit must be at most .*{2**70}"):
            pools.set_limit(2**70)
        assert pools.get_limit() == 10 and pool.limit == 10
    finally:
        pools._groups.remove(group)
        pool.close()


def test_reset_closes_everything_and_empties_the_groups() -> None:
    url = memory_url()
    pool = pools.connections[url]
    producer_pool = pools.producers[url]
    lent = pool.acquire()
    lent.default_channel  # noqa: B018  (connects)
    producer = producer_pool.acquire()
    pools.reset()
    assert len(pools.connections) == 0 and len(pools.producers) == 0
    assert lent._connection is None  # collected under its user's feet
    with pytest.raises(RuntimeError):
        pool.acquire()
    lent.release()  # dropped silently: it was closed under its user
    producer.release()
    assert pools.connections[url] is not pool


# -- fork -----------------------------------------------------------------------------


def test_child_starts_with_empty_groups_and_reset_pools() -> None:
    url = memory_url()
    pool = pools.connections[url]
    producer_pool = pools.producers[url]
    lent = pool.acquire()
    producer = producer_pool.acquire()
    inherited = {id(lent), id(producer.__connection__)}
    kept = pools.ConnectionPool(url, limit=2)  # a pool the user holds outside groups
    kept_conn = kept.acquire()

    def check() -> None:
        assert len(pools.connections) == 0 and len(pools.producers) == 0
        assert pool.get_stats()["pool_size"] == 0
        assert kept.get_stats()["pool_size"] == 0
        lent.release()  # inherited: dropped silently, never pooled
        producer.release()
        kept_conn.release()
        fresh = pool.acquire()
        assert id(fresh) not in inherited
        assert pools.connections[url] is not pool

    run_in_child(check)
    # The parent is untouched.
    assert pools.connections[url] is pool
    lent.release()
    producer.release()
    kept_conn.release()
    assert pool.get_stats()["pool_size"] == 2
    assert id(pool.acquire()) in inherited


def test_pools_are_named_after_their_url_without_the_password() -> None:
    url = "amqp://guest:s3cret@127.0.0.1:5672//"
    names = [pools.connections[url].name, pools.producers[url].name,
             pools.ChannelPool(url).name]
    assert all("127.0.0.1" in name and "s3cret" not in name for name in names), names
    assert pools.ConnectionPool(url, name="mine").name == "mine"


def test_producer_pool_replace_and_acquired_replace_the_connection_too() -> None:
    producer_pool = pools.producers[memory_url()]
    assert amqp.exceptions.ConnectionError in producer_pool.connection_errors
    producer = producer_pool.acquire()
    conn = producer.__connection__
    producer_pool.replace(producer)
    assert conn._closed
    assert_balanced(producer_pool)
    assert_balanced(producer_pool.connections)
    with pytest.raises(amqp.exceptions.ConnectionError):
        with producer_pool.acquired() as producer:
            conn = producer.__connection__
            raise amqp.exceptions.ConnectionError("broker went away")
    assert conn._closed
    assert_balanced(producer_pool.connections)


def test_connection_errors_can_be_set_per_pool() -> None:
    pool = pools.ConnectionPool(URL, limit=1, connection_errors=(KeyError,))
    assert pool.connection_errors == (KeyError,)
    with pytest.raises(KeyError):
        with pool.acquired() as conn:
            raise KeyError("counts as broken here")
    assert conn._closed


def test_producer_pool_timeout_on_the_connection_says_the_whole_timeout() -> None:
    # The producer is free at once; the wait for a connection uses what is
    # left of the timeout, but the error names the timeout the caller gave.
    url = memory_url()
    pools.connections[url].limit = 1
    held = pools.connections[url].acquire()
    try:
        with pytest.raises(greenpools.PoolTimeout) as caught:
            pools.producers[url].acquire(block=True, timeout=0.05)
        assert isinstance(caught.value, kombu.exceptions.ConnectionLimitExceeded)
        assert str(caught.value).endswith("became free within 0.05 s"), caught.value
        assert_balanced(pools.producers[url])
    finally:
        held.release()


@pytest.mark.parametrize("end", ["release", "replace"])
def test_a_producer_refuses_to_publish_once_it_is_back_in_its_pool(end: str) -> None:
    """Its connection may be another task's by then (kombu sets the channel
    to None); lent again, it publishes on the channel it had."""
    url = f"memory://localhost/{unique_name('vhost')}"
    connections = pools.ConnectionPool(Connection(url), limit=1)
    producers = pools.ProducerPool(connections, limit=1)
    try:
        producer = producers.acquire(block=True)
        channel = producer.channel
        other = pools.ProducerPool(connections, limit=1)
        with pytest.raises(greenpools.NotCheckedOut):  # not its pool's: changes nothing
            other.release(producer)
        producer.publish({"n": 0}, routing_key="q", declare=[Queue("q")])
        getattr(producers, end)(producer)
        with pytest.raises(greenpools.NotCheckedOut, match="released"):
            producer.publish({"n": 1}, routing_key="q")
        with pytest.raises(greenpools.NotCheckedOut):  # refused: changes nothing
            producers.release(producer)
        with producers.acquire(block=True) as again:
            if end == "release":
                assert again is producer and again.channel is channel  # not revived
            again.publish({"n": 2}, routing_key="q", declare=[Queue("q")])
        assert_balanced(producers)
        assert_balanced(connections)
    finally:
        producers.force_close_all()
        connections.force_close_all()


def test_a_producer_held_across_a_reset_still_publishes() -> None:
    """A reset retires lent producers; their holders keep them until they give them back."""
    url = f"memory://localhost/{unique_name('vhost')}"
    connections = pools.ConnectionPool(Connection(url), limit=2)
    producers = pools.ProducerPool(connections, limit=2)
    try:
        with producers.acquire(block=True) as producer:
            producers.resize(2, reset=True)
            producer.publish({"n": 1}, routing_key="q", declare=[Queue("q")])
        assert_balanced(producers)
    finally:
        producers.force_close_all()
        connections.force_close_all()


def test_the_exit_does_not_hide_a_release_refused_for_another_object() -> None:
    """Only the block's own object, already back, is nothing to end."""
    connections = pools.ConnectionPool(Connection(f"memory://localhost/{unique_name('vhost')}"),
                                       limit=2)
    producers = pools.ProducerPool(connections, limit=2)
    try:
        with pytest.raises(greenpools.NotCheckedOut, match="Connection"):
            with producers.acquire(block=True) as producer:
                producer.__connection__.release()  # the producer's, given back by hand
        assert_balanced(producers)
        assert_balanced(connections)
    finally:
        producers.force_close_all()
        connections.force_close_all()
