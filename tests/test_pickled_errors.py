"""Every error a pool raises survives pickling, also across processes.

Celery ships exceptions between processes (result backends, billiard
pools) and multiprocessing pickles what its workers raise; kombu's own
errors pickle.  The kombu pools' errors are of classes made at run time
(greenpools' class and the pool's kombu class in one), which pickle cannot
find by name: each scenario here raises a real error from a real pool
(kombu's ``memory://`` transport), then pickles it, and its class, in every
protocol and through a spawned worker process.  Celery keeps a failed
task's error class only if the class itself pickles.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import kombu.exceptions
import pytest
from amqp.exceptions import InternalError, RecoverableConnectionError
from celery.utils.serialization import get_pickleable_etype
from helpers import BACKEND, start_acquirer

import greenpools
from greenpools import (
    ConnectionBlocked,
    LimitExceeded,
    NodeShuttingDown,
    NotCheckedOut,
    PoolClosed,
    PoolError,
    PoolTimeout,
    TooManyRequests,
)
from greenpools.exceptions import specialise
from greenpools.kombu.publishing import guard_publish
from greenpools.pools import ChannelPool, ConnectionPool, ProducerPool

URL = "memory://"
REASON = "low on memory"


class AppLimitExceeded(Exception):
    """What a user's Resource subclass names as its ``LimitExceeded``."""


class AppPool(greenpools.Resource[object]):
    LimitExceeded = AppLimitExceeded

    def new(self) -> object:
        return object()


@contextlib.contextmanager
def closing(*pools: Any) -> Iterator[None]:
    try:
        yield
    finally:
        for pool in pools:
            pool.force_close_all()


def connections_at_limit(**options: Any) -> ConnectionPool:
    """A connection pool of one, lent (fixed name: the messages compare equal)."""
    pool = ConnectionPool(URL, limit=1, name="connections", **options)
    pool.acquire()
    return pool


def connections_limit_exceeded() -> None:
    pool = connections_at_limit()
    with closing(pool):
        pool.acquire(block=False)


def connections_timeout() -> None:
    pool = connections_at_limit()
    with closing(pool):
        pool.acquire(block=True, timeout=0.01)


def connections_too_many_requests() -> None:
    pool = ConnectionPool(URL, limit=1, name="connections", max_waiting=1)
    held = pool.acquire()
    waiter = start_acquirer(pool, timeout=30)
    try:
        pool.acquire(block=True, timeout=30)
    finally:
        held.release()
        waiter.join().release()
        pool.force_close_all()


def connections_not_ready() -> None:
    """``wait()`` for ``min_size`` connections that cannot connect."""
    pool = ConnectionPool("amqp://guest:guest@127.0.0.1:1//", limit=1, min_size=1,
                          name="connections", reconnect_timeout=60)
    with closing(pool):
        pool.wait(timeout=0.05)


def blocked_connection() -> tuple[ConnectionPool, Any]:
    """A connection pool whose lent connection heard ``connection.blocked``."""
    pool = ConnectionPool(URL, limit=2, name="connections")
    conn = pool.acquire()
    conn._heard_blocked(REASON)  # what py-amqp calls on the broker's notice
    return pool, conn


def connections_blocked() -> None:
    pool, _ = blocked_connection()
    with closing(pool):
        pool.acquire(block=False)


def blocked_publish() -> None:
    pool, conn = blocked_connection()
    with closing(pool):
        guard_publish(conn, lambda: None)()


def node_shutting_down() -> None:
    pool = ConnectionPool(URL, limit=1, name="connections")
    conn = pool.acquire()

    def refused() -> None:
        raise InternalError("CONNECTION_FORCED - shutdown", (60, 40), reply_code=541)

    with closing(pool):
        guard_publish(conn, refused)()


def channels_limit_exceeded() -> None:
    pool = ChannelPool(URL, limit=1, name="channels")
    with closing(pool):
        pool.acquire()
        pool.acquire(block=False)


def channels_timeout() -> None:
    pool = ChannelPool(URL, limit=1, name="channels")
    with closing(pool):
        pool.acquire()
        pool.acquire(block=True, timeout=0.01)


def producers_limit_exceeded() -> None:
    connections = ConnectionPool(URL, limit=2, name="connections")
    producers = ProducerPool(connections, limit=1, name="producers")
    with closing(producers, connections):
        producers.acquire()
        producers.acquire(block=False)


def producers_blocked() -> None:
    connections = ConnectionPool(URL, limit=2, name="connections")
    producers = ProducerPool(connections, limit=1, name="producers")
    with closing(producers, connections):
        producers.acquire().connection._heard_blocked(REASON)
        producers.acquire(block=True, timeout=0.01)


class NamedResource:
    """A resource whose repr, and so the error's message, is the same in every process."""

    def __repr__(self) -> str:
        return "<the resource>"


def released_twice() -> None:
    pool = greenpools.Pool(NamedResource, 1, name="app")
    with closing(pool):
        resource = pool.acquire()
        pool.release(resource)
        pool.release(resource)


def closed_pool() -> None:
    pool = ConnectionPool(URL, limit=1, name="connections")
    pool.close()
    pool.acquire()


def app_pool_limit_exceeded() -> None:
    pool = AppPool(1, name="app")
    with closing(pool):
        pool.acquire()
        pool.acquire(block=False)


def app_pool_timeout() -> None:
    pool = AppPool(1, name="app")
    with closing(pool):
        pool.acquire()
        pool.acquire(block=True, timeout=0.01)


#: Each scenario, with the classes its error must be an instance of.
SCENARIOS: dict[str, tuple[Callable[[], None], tuple[type[BaseException], ...]]] = {
    "connections-limit-exceeded": (
        connections_limit_exceeded, (LimitExceeded, kombu.exceptions.ConnectionLimitExceeded)),
    "connections-timeout": (
        connections_timeout, (PoolTimeout, kombu.exceptions.ConnectionLimitExceeded)),
    "connections-too-many-requests": (
        connections_too_many_requests,
        (TooManyRequests, kombu.exceptions.ConnectionLimitExceeded)),
    "connections-not-ready": (
        connections_not_ready, (PoolTimeout, kombu.exceptions.ConnectionLimitExceeded)),
    "connections-blocked": (
        connections_blocked, (ConnectionBlocked, kombu.exceptions.ConnectionLimitExceeded)),
    "blocked-publish": (
        blocked_publish, (ConnectionBlocked, kombu.exceptions.ConnectionLimitExceeded)),
    "node-shutting-down": (
        node_shutting_down, (NodeShuttingDown, RecoverableConnectionError)),
    "channels-limit-exceeded": (
        channels_limit_exceeded, (LimitExceeded, kombu.exceptions.ChannelLimitExceeded)),
    "channels-timeout": (
        channels_timeout, (PoolTimeout, kombu.exceptions.ChannelLimitExceeded)),
    "producers-limit-exceeded": (
        producers_limit_exceeded, (LimitExceeded, kombu.exceptions.LimitExceeded)),
    "producers-blocked": (
        producers_blocked, (ConnectionBlocked, kombu.exceptions.LimitExceeded)),
    "closed-pool": (closed_pool, (PoolClosed, PoolError, RuntimeError)),
    "released-twice": (released_twice, (NotCheckedOut, PoolError, ValueError)),
    "app-pool-limit-exceeded": (app_pool_limit_exceeded, (LimitExceeded, AppLimitExceeded)),
    "app-pool-timeout": (app_pool_timeout, (PoolTimeout, AppLimitExceeded)),
}


def raise_error(scenario: str) -> None:
    """Run ``scenario``, which raises (in a worker process too)."""
    SCENARIOS[scenario][0]()
    raise AssertionError(f"scenario {scenario} raised nothing")


def raised(scenario: str) -> BaseException:
    with pytest.raises(SCENARIOS[scenario][1][0]) as info:
        raise_error(scenario)
    return info.value


def assert_same_error(copy: BaseException, error: BaseException, scenario: str) -> None:
    assert type(copy) is type(error)
    for cls in SCENARIOS[scenario][1]:
        assert isinstance(copy, cls), (scenario, cls)
    assert copy.args == error.args
    assert str(copy) == str(error)
    # NotCheckedOut's resource_id is an id() in the raising process: not carried.
    assert copy.__dict__ == {k: v for k, v in error.__dict__.items() if k != "resource_id"}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_error_round_trips_through_pickle_in_every_protocol(scenario: str) -> None:
    error = raised(scenario)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert_same_error(pickle.loads(pickle.dumps(error, protocol)), error, scenario)


class AppTimeout(specialise(PoolTimeout, kombu.exceptions.ConnectionLimitExceeded)):  # type: ignore[misc]
    """A user's subclass of a specialised class: pickled by its own name."""


def test_a_subclass_of_a_specialised_class_pickles_by_its_name() -> None:
    assert pickle.loads(pickle.dumps(AppTimeout)) is AppTimeout
    copy = pickle.loads(pickle.dumps(AppTimeout("late")))
    assert type(copy) is AppTimeout and copy.args == ("late",)


def round_trip(obj: object, protocol: int, pickler: type[pickle.Pickler]) -> object:
    buffer = io.BytesIO()
    pickler(buffer, protocol).dump(obj)
    return pickle.loads(buffer.getvalue())


@pytest.mark.parametrize("pickler", [pickle.Pickler, pickle._Pickler], ids=["C", "Python"])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_error_class_round_trips_through_pickle_as_itself(
    scenario: str, pickler: type[pickle.Pickler],
) -> None:
    cls = type(raised(scenario))
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert round_trip(cls, protocol, pickler) is cls


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_celery_keeps_the_error_class_of_a_failed_task(scenario: str) -> None:
    """What Celery's tracer does before it logs and stores a task's failure."""
    cls = type(raised(scenario))
    assert get_pickleable_etype(cls) is cls


def test_node_shutting_down_keeps_its_arguments_in_order() -> None:
    """py-amqp's errors store ``args`` in another order than ``__init__`` takes them."""
    error = raised("node-shutting-down")
    assert isinstance(error, NodeShuttingDown)
    assert error.reply_code == 541 and "shutting down" in str(error)
    assert pickle.loads(pickle.dumps(error)).args == error.args


#: Tests that start their own processes run once, in the threading run.
starts_processes = pytest.mark.skipif(
    BACKEND != "threading", reason="starts its own processes: runs once, in the threading run"
)


@pytest.fixture(scope="module")
def worker() -> Iterator[Any]:
    """One spawned worker process, as a multiprocessing pool."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        yield pool


@starts_processes
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_error_raised_in_a_worker_process_reaches_the_parent_as_itself(
    scenario: str, worker: Any,
) -> None:
    error = raised(scenario)
    with pytest.raises(BaseException) as info:
        worker.apply(raise_error, (scenario,))
    assert_same_error(info.value, error, scenario)


def class_of_error(scenario: str) -> type[BaseException]:
    """The class of ``scenario``'s error, made in a worker process."""
    return type(raised(scenario))


@starts_processes
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_error_class_made_in_a_worker_process_reaches_the_parent_as_itself(
    scenario: str, worker: Any,
) -> None:
    assert worker.apply(class_of_error, (scenario,)) is type(raised(scenario))
