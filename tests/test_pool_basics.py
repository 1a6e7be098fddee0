"""The generic pool without contention: reuse, limits, closing, errors, hooks, stats."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import kombu.exceptions
import pytest
from helpers import Factory, Thing, assert_balanced

import greenpools
from greenpools import LimitExceeded, PoolClosed, PoolTimeout, Resource, TooManyRequests
from greenpools.exceptions import PoolError

STATS_KEYS = {
    "pool_min", "pool_max", "pool_size", "pool_available", "requests_waiting",
    "requests_num", "requests_queued", "requests_wait_ms", "requests_errors", "returns_bad",
    "connections_num", "connections_ms", "connections_errors", "connections_lost", "usage_ms",
}


# -- reuse and limits ------------------------------------------------------------


def test_reuses_the_most_recently_released(make_pool: Any) -> None:
    pool = make_pool(Factory(), 3)
    a, b, c = (pool.acquire() for _ in range(3))
    for resource in (a, c, b):
        pool.release(resource)
    assert [pool.acquire() for _ in range(3)] == [b, c, a]


def test_creates_only_when_nothing_is_idle(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 3)
    first = pool.acquire()
    pool.release(first)
    assert pool.acquire() is first
    assert len(factory.made) == 1


@pytest.mark.parametrize("limit", [None, 0])
def test_no_limit(make_pool: Any, limit: int | None) -> None:
    factory = Factory()
    pool = make_pool(factory, limit)
    assert pool.limit == 0
    taken = [pool.acquire() for _ in range(50)]
    assert len({id(r) for r in taken}) == 50 == len(factory.made)
    for resource in taken:
        pool.release(resource)
    assert pool.get_stats()["pool_size"] == 50
    assert_balanced(pool)


def test_limit_reached_without_blocking(make_pool: Any) -> None:
    pool = make_pool(Factory(), 2)
    pool.acquire(), pool.acquire()
    with pytest.raises(LimitExceeded) as info:
        pool.acquire()
    assert isinstance(info.value, kombu.exceptions.LimitExceeded)
    assert not isinstance(info.value, (PoolTimeout, TooManyRequests))
    assert "2" in str(info.value)
    with pytest.raises(LimitExceeded):
        pool.acquire(block=False, timeout=5)  # a timeout does not make it wait


def test_preload(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 5, preload=3)
    stats = pool.get_stats()
    assert (len(factory.made), stats["pool_size"], stats["pool_available"]) == (3, 3, 3)
    taken = [pool.acquire() for _ in range(3)]
    assert {id(r) for r in taken} == {id(t) for t in factory.made}
    assert len(factory.made) == 3


def test_preload_on_unlimited_pool(make_pool: Any) -> None:
    factory = Factory()
    make_pool(factory, None, preload=4)
    assert len(factory.made) == 4


def test_limit_property_resizes(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1)
    pool.acquire()
    pool.limit = 2
    assert pool.limit == 2
    pool.acquire()


# -- any object can be pooled ---------------------------------------------------------


class Slotted:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 1


@pytest.mark.parametrize("create", [list, dict, Slotted, object], ids=lambda c: c.__name__)
def test_any_object(make_pool: Any, create: Any) -> None:
    pool = make_pool(create, 2)
    a, b = pool.acquire(), pool.acquire()
    assert a is not b
    pool.release(a)
    assert pool.acquire() is a
    pool.release(a)
    pool.release(b)
    with pytest.raises(ValueError):
        pool.release(a)
    assert_balanced(pool)


def test_equal_resources_are_told_apart(make_pool: Any) -> None:
    pool = make_pool(list, 2)
    a, b = pool.acquire(), pool.acquire()
    assert a == b and a is not b
    pool.release(a)
    with pytest.raises(ValueError):
        pool.release(a)  # b, equal to a, is still out: identity decides
    pool.release(b)


def test_nothing_is_set_on_resources(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 1, check=lambda r: None, reset=lambda r: None,
                     configure=lambda r: None, max_lifetime=100, leak_timeout=100)
    thing = pool.acquire()
    before = dict(vars(thing))
    pool.release(thing)
    with pool.acquired() as again:
        assert again is thing
    pool.replace(pool.acquire())
    assert vars(thing) == {**before, "closed": 1}


# -- releasing wrongly -------------------------------------------------------------


def test_release_twice_is_a_clear_error(make_pool: Any) -> None:
    pool = make_pool(Factory(), 2)
    thing = pool.acquire()
    pool.release(thing)
    before = pool.get_stats()
    with pytest.raises(ValueError) as info:
        pool.release(thing)
    assert repr(thing) in str(info.value) and "released twice" in str(info.value)
    assert pool.get_stats() == before
    assert pool.acquire() is thing
    with pytest.raises(LimitExceeded):
        pool.acquire(), pool.acquire()  # thing is in the pool once, not twice


def test_release_foreign_object(make_pool: Any) -> None:
    pool = make_pool(Factory(), 2)
    other = make_pool(Factory(), 2)
    mine = pool.acquire()
    theirs = other.acquire()
    before = pool.get_stats()
    for stranger in (theirs, Thing(), "text", None):
        with pytest.raises(ValueError) as info:
            pool.release(stranger)
        assert repr(stranger) in str(info.value)
    assert pool.get_stats() == before
    pool.release(mine)
    other.release(theirs)


def test_replace_foreign_object(make_pool: Any) -> None:
    pool = make_pool(Factory(), 2)
    thing = Thing()
    before = pool.get_stats()
    with pytest.raises(ValueError, match="cannot be replaced"):
        pool.replace(thing)
    assert pool.get_stats() == before and not thing.closed


# -- bad arguments -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"limit": -1}, ValueError, ["limit", "-1"]),
        ({"limit": True}, TypeError, ["limit", "True"]),
        ({"limit": "3"}, TypeError, ["limit", "'3'"]),
        ({"limit": 2.5}, TypeError, ["limit", "2.5"]),
        ({"limit": 2**70}, ValueError, ["limit", str(2**70)]),
        ({"max_waiting": 2**70}, ValueError, ["max_waiting", str(2**70)]),
        ({"timeout": -1}, ValueError, ["timeout", "-1"]),
        ({"timeout": "soon"}, TypeError, ["timeout", "'soon'"]),
        ({"timeout": float("nan")}, ValueError, ["timeout", "nan"]),
        ({"preload": -1}, ValueError, ["preload", "-1"]),
        ({"limit": 2, "preload": 3}, ValueError, ["preload", "3"]),
        ({"limit": 2, "min_size": 3}, ValueError, ["min_size", "3"]),
        ({"min_size": None}, TypeError, ["min_size", "None"]),
        ({"max_waiting": -2}, ValueError, ["max_waiting", "-2"]),
        ({"max_idle": -1}, ValueError, ["max_idle", "-1"]),
        ({"max_lifetime": -0.5}, ValueError, ["max_lifetime", "-0.5"]),
        ({"leak_timeout": -1}, ValueError, ["leak_timeout", "-1"]),
        ({"reconnect_timeout": -1}, ValueError, ["reconnect_timeout", "-1"]),
        ({"check": "x"}, TypeError, ["check", "'x'"]),
        ({"reset": 1}, TypeError, ["reset", "1"]),
        ({"configure": 1}, TypeError, ["configure", "1"]),
        ({"reconnect_failed": 1}, TypeError, ["reconnect_failed", "1"]),
        ({"close": 1}, TypeError, ["close", "1"]),
        ({"name": 3}, TypeError, ["name", "3"]),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], words: list[str]) -> None:
    limit = kwargs.pop("limit", 5)
    with pytest.raises(error) as info:
        greenpools.Pool(Thing, limit, **kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_options_that_refuse_none_do_not_suggest_it() -> None:
    with pytest.raises(TypeError) as info:
        greenpools.Pool(Thing, 2, max_waiting=None)
    assert str(info.value) == "max_waiting must be a non-negative int, got None"


class NamedPool(greenpools.Pool[Any]):
    """A user's subclass with no ``__init__`` of its own."""


class TaggedPool(greenpools.Pool[Any]):
    """A user's subclass that takes a keyword of its own out of ``**options``."""

    def __init__(self, create: Any, **options: Any) -> None:
        self.tag = options.pop("tag", None)
        super().__init__(create, **options)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: greenpools.Pool(Thing, limt=5),
         "Pool() got an unexpected keyword argument 'limt'. Did you mean 'limit'?"),
        (lambda: greenpools.Pool(Thing, 2, max_wait=3),
         "Pool() got an unexpected keyword argument 'max_wait'. Did you mean 'max_waiting'?"),
        (lambda: greenpools.Pool(Thing, 2, frobnicate=True),
         "Pool() got an unexpected keyword argument 'frobnicate'"),
        (lambda: Resource(limt=1),
         "Resource() got an unexpected keyword argument 'limt'. Did you mean 'limit'?"),
    ],
)
def test_an_unknown_keyword_names_the_class_called_and_the_nearest_option(
    make: Any, message: str,
) -> None:
    with pytest.raises(TypeError) as info:
        make()
    assert str(info.value) == message


def test_a_subclass_is_named_and_keeps_the_keywords_it_takes_itself() -> None:
    with pytest.raises(TypeError) as info:
        NamedPool(Thing, 2, min_sise=1)
    assert str(info.value) == (
        "NamedPool() got an unexpected keyword argument 'min_sise'. Did you mean 'min_size'?")
    # A class outside greenpools that takes **options may use some itself:
    # it is not second-guessed (Python still refuses what nobody takes).
    pool = TaggedPool(Thing, tag="mine", limit=2)
    assert (pool.tag, pool.limit) == ("mine", 2)
    pool.close()
    with pytest.raises(TypeError, match="unexpected keyword argument 'limt'"):
        TaggedPool(Thing, limt=2)


def test_connection_errors_option_forms(make_pool: Any) -> None:
    single = make_pool(Factory(), 1, connection_errors=OSError)
    assert single.connection_errors == (OSError,)
    several = make_pool(Factory(), 1, connection_errors=[OSError, EOFError])
    assert several.connection_errors == (OSError, EOFError)
    for bad in ("OSError", [OSError, 3]):
        with pytest.raises(TypeError, match="connection_errors must be exception classes"):
            greenpools.Pool(Thing, 1, connection_errors=bad)


def test_create_must_be_callable() -> None:
    with pytest.raises(TypeError, match="create must be callable, got 3"):
        greenpools.Pool(3, 1)  # type: ignore[arg-type]


def test_a_timeout_past_any_float_means_forever_not_an_overflow() -> None:
    from greenpools.core.slotpool import check_seconds

    assert check_seconds("timeout", 10**400) == float("inf")


BAD_TIMEOUTS = [
    (-1, ValueError, r"timeout must be a non-negative number of seconds, got -1"),
    (-0.5, ValueError, r"timeout must be a non-negative number of seconds, got -0.5"),
    (float("nan"), ValueError, r"timeout must be a non-negative .*, got nan"),
    ("1", TypeError, r"timeout must be a number of seconds or None, got '1'"),
    (True, TypeError, r"timeout must be a number of seconds or None, got True"),
]


@pytest.mark.parametrize(("timeout", "error", "message"), BAD_TIMEOUTS)
def test_a_bad_timeout_is_refused_even_when_a_resource_is_free(
    make_pool: Any, timeout: Any, error: type[Exception], message: str,
) -> None:
    """As ``queue.Queue.get`` does: not only once the caller would wait."""
    pool = make_pool(Factory(), 2)
    pool.release(pool.acquire())  # one idle: the lock-free path
    with pytest.raises(error, match=message):
        pool.acquire(block=True, timeout=timeout)
    assert pool.get_stats()["pool_available"] == 1
    pool.release(pool.acquire(block=False, timeout=timeout))  # not blocking: not read
    assert_balanced(pool)


@pytest.mark.parametrize("timeout", ["1", -1, float("nan"), 10**400, True],
                         ids=["str", "negative", "nan", "past-any-float", "bool"])
@pytest.mark.parametrize("state", ["empty", "full"])
def test_a_timeout_is_ignored_without_block_as_kombu_does(
    make_pool: Any, timeout: Any, state: str,
) -> None:
    """Whether the pool has to create one or is full, not only when one is idle."""
    pool = make_pool(Factory(), 1)
    if state == "empty":
        pool.release(pool.acquire(block=False, timeout=timeout))
    else:
        held = pool.acquire()
        with pytest.raises(LimitExceeded):
            pool.acquire(block=False, timeout=timeout)
        pool.release(held)
    assert_balanced(pool)


def test_any_real_number_of_seconds_is_a_timeout(make_pool: Any) -> None:
    """As kombu takes them: any ``numbers.Real`` (here a ``Fraction``; numpy's
    register as such); a ``bool`` stays refused, a mistake rather than a time."""
    pool = make_pool(Factory(), 1)
    pool.release(pool.acquire(block=True, timeout=Fraction(1, 20)))
    held = pool.acquire()
    with pytest.raises(PoolTimeout, match=r"within 0\.05 s"):
        pool.acquire(block=True, timeout=Fraction(1, 20))
    pool.release(held)
    assert_balanced(pool)


def test_bad_arguments_to_methods_change_nothing(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1)
    held = pool.acquire()
    before = pool.get_stats()
    with pytest.raises(ValueError, match=r"timeout.*-1"):
        pool.acquire(block=True, timeout=-1)
    with pytest.raises(ValueError, match=r"limit.*-3"):
        pool.resize(-3)
    with pytest.raises(TypeError, match=r"limit.*False"):
        pool.resize(False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=rf"limit must be at most .*{2**70}"):
        pool.resize(2**70)
    after = pool.get_stats()
    assert pool.limit == 1
    assert {k: v for k, v in after.items() if not k.startswith("requests")} == {
        k: v for k, v in before.items() if not k.startswith("requests")}
    pool.release(held)
    assert_balanced(pool)


# -- exceptions ----------------------------------------------------------------------


def test_exception_hierarchy() -> None:
    for cls in (LimitExceeded, PoolTimeout, TooManyRequests):
        assert issubclass(cls, kombu.exceptions.LimitExceeded)
        assert issubclass(cls, LimitExceeded) and issubclass(cls, PoolError)
    assert issubclass(PoolClosed, RuntimeError) and issubclass(PoolClosed, PoolError)
    from greenpools import exceptions

    assert exceptions.PoolTimeout is PoolTimeout and exceptions.PoolClosed is PoolClosed


class ConnectionLike(Resource[Thing]):
    """A kombu-style subclass: only new(), and kombu's own LimitExceeded class."""

    LimitExceeded = kombu.exceptions.ConnectionLimitExceeded

    def new(self) -> Thing:
        return Thing()


def test_subclass_limit_exceeded_class_is_honoured() -> None:
    pool = ConnectionLike(1, max_waiting=1)
    held = pool.acquire()
    with pytest.raises(kombu.exceptions.ConnectionLimitExceeded) as info:
        pool.acquire()
    assert isinstance(info.value, LimitExceeded)
    with pytest.raises(kombu.exceptions.ConnectionLimitExceeded) as info:
        pool.acquire(block=True, timeout=0)
    assert isinstance(info.value, PoolTimeout)
    pool.close()
    with pytest.raises(RuntimeError):
        pool.acquire()
    pool.release(held)


def test_timeout_option_is_the_default_wait(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1, timeout=0.01)
    held = pool.acquire()
    with pytest.raises(PoolTimeout) as info:
        pool.acquire(block=True)
    assert isinstance(info.value, kombu.exceptions.LimitExceeded)
    assert pool.get_stats()["requests_errors"] == 1
    pool.release(held)
    assert pool.acquire(block=True) is held


# -- closing -----------------------------------------------------------------------


def test_close_closes_everything_exactly_once(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 4)
    taken = [pool.acquire() for _ in range(4)]
    pool.release(taken[0])
    pool.release(taken[1])
    pool.close()
    assert pool.closed
    assert factory.closed_counts() == [1, 1, 0, 0]  # idle now, lent on return
    with pytest.raises(PoolClosed) as info:
        pool.acquire()
    assert isinstance(info.value, RuntimeError)
    pool.release(taken[2])
    pool.replace(taken[3])
    assert factory.closed_counts() == [1, 1, 1, 1]
    pool.close()
    assert factory.closed_counts() == [1, 1, 1, 1]
    assert pool.get_stats()["pool_size"] == 0


def test_pool_as_context_manager_closes_it() -> None:
    factory = Factory()
    with greenpools.Pool(factory, 2) as pool:
        pool.release(pool.acquire())
    assert pool.closed and factory.closed_counts() == [1]


@pytest.mark.parametrize("close_pool", [True, False])
def test_force_close_all(make_pool: Any, close_pool: bool) -> None:
    factory = Factory()
    pool = make_pool(factory, 3)
    taken = [pool.acquire() for _ in range(3)]
    pool.release(taken[0])
    pool.force_close_all(close_pool=close_pool)
    assert factory.closed_counts() == [1, 1, 1]
    for resource in taken[1:]:
        pool.release(resource)  # dropped silently, not closed again
    assert factory.closed_counts() == [1, 1, 1]
    assert pool.closed is close_pool
    if close_pool:
        with pytest.raises(PoolClosed):
            pool.acquire()
    else:
        fresh = [pool.acquire() for _ in range(3)]
        assert not {id(r) for r in fresh} & {id(r) for r in taken}
        for resource in fresh:
            pool.release(resource)
        assert_balanced(pool)
    pool.close()
    assert all(count == 1 for count in factory.closed_counts())


def test_force_close_all_then_lease_exit(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 1)
    with pool.acquired() as thing:
        pool.force_close_all(close_pool=False)
    assert thing.closed == 1
    assert pool.acquire() is not thing


def test_close_errors_are_swallowed(make_pool: Any) -> None:
    def bad_close(thing: Thing) -> None:
        thing.closed += 1
        raise OSError("cannot close")

    factory = Factory()
    pool = make_pool(factory, 2, close=bad_close)
    pool.release(pool.acquire())
    pool.close()
    assert factory.closed_counts() == [1]


# -- replace ---------------------------------------------------------------------------


def test_replace_frees_the_slot(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 1)
    broken = pool.acquire()
    pool.replace(broken)
    assert broken.closed == 1
    assert pool.get_stats()["pool_size"] == 0
    assert pool.get_stats()["connections_lost"] == 1
    fresh = pool.acquire()
    assert fresh is not broken and len(factory.made) == 2
    with pytest.raises(ValueError):
        pool.replace(broken)  # not lent any more


# -- the acquired() context manager ------------------------------------------------------


def test_acquired_returns_on_exit(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1)
    with pool.acquired() as thing:
        assert pool.get_stats()["pool_available"] == 0
    assert pool.acquire() is thing


def test_acquired_replaces_on_connection_error(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 1, connection_errors=(ConnectionError,))
    with pytest.raises(ConnectionResetError), pool.acquired() as thing:
        raise ConnectionResetError("broken pipe")
    assert thing.closed == 1
    assert pool.acquire() is not thing


def test_acquired_returns_on_other_errors(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1, connection_errors=(ConnectionError,))
    with pytest.raises(KeyError), pool.acquired() as thing:
        raise KeyError("not the connection's fault")
    assert not thing.closed
    assert pool.acquire() is thing


def test_acquired_tolerates_release_inside(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1)
    with pool.acquired() as thing:
        pool.release(thing)
    assert_balanced(pool)
    assert pool.get_stats()["pool_available"] == 1


def test_acquired_non_blocking(make_pool: Any) -> None:
    pool = make_pool(Factory(), 1)
    held = pool.acquire()
    with pytest.raises(LimitExceeded), pool.acquired(block=False):
        pass
    pool.release(held)


def test_connection_errors_class_attribute() -> None:
    class Broken(ConnectionLike):
        connection_errors = (OSError,)

    pool = Broken(1)
    with pytest.raises(OSError), pool.acquired() as thing:
        raise OSError
    assert thing.closed == 1
    pool.close()


# -- kombu-compatible subclass hooks ------------------------------------------------------


class Recorder(Resource[Any]):
    """Records every hook call, in order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.calls: list[tuple[str, Any]] = []
        super().__init__(*args, **kwargs)

    def setup(self) -> None:
        self.calls.append(("setup", self.limit))

    def new(self) -> Thing:
        thing = Thing()
        self.calls.append(("new", thing))
        return thing

    def prepare(self, resource: Any) -> Any:
        self.calls.append(("prepare", resource))
        return resource

    def release_resource(self, resource: Any) -> None:
        self.calls.append(("release_resource", resource))

    def close_resource(self, resource: Any) -> None:
        self.calls.append(("close_resource", resource))

    def collect_resource(self, resource: Any) -> None:
        self.calls.append(("collect_resource", resource))


def test_subclass_with_only_new() -> None:
    pool = ConnectionLike(2, 1)  # kombu's positional limit, preload
    assert pool.limit == 2 and pool.get_stats()["pool_available"] == 1
    a, b = pool.acquire(), pool.acquire()
    pool.release(a)
    pool.release(b)
    pool.close()
    assert a.closed == b.closed == 1  # the default close_resource calls close()


def test_resource_base_new_is_abstract() -> None:
    with pytest.raises(NotImplementedError):
        Resource(1).acquire()


def test_hooks_are_called_as_documented() -> None:
    pool = Recorder(2)
    assert pool.calls == [("setup", 2)]
    thing = pool.acquire()
    assert pool.calls[1:] == [("new", thing), ("prepare", thing)]
    pool.release(thing)
    assert pool.calls[-1] == ("release_resource", thing)
    assert pool.acquire() is thing
    assert pool.calls[-1] == ("prepare", thing)
    other = pool.acquire()
    pool.release(other)
    del pool.calls[:]
    pool.force_close_all(close_pool=False)
    assert sorted(pool.calls, key=lambda c: c[1].number) == [
        ("collect_resource", thing), ("collect_resource", other)]
    del pool.calls[:]
    pool.release(thing)  # force-closed while lent: no hook runs again
    assert pool.calls == []
    fresh = pool.acquire()
    pool.release(fresh)
    del pool.calls[:]
    pool.close()
    assert pool.calls == [("close_resource", fresh)]


def test_prepare_may_return_another_object() -> None:
    class Wrapping(Resource[Any]):
        def new(self) -> Thing:
            return Thing()

        def prepare(self, resource: Any) -> Any:
            return ("wrapped", resource)

    pool = Wrapping(1)
    wrapped = pool.acquire()
    assert wrapped[0] == "wrapped"
    with pytest.raises(LimitExceeded):
        pool.acquire()
    pool.release(wrapped)
    assert pool.get_stats()["pool_available"] == 1
    again = pool.acquire()
    pool.release(again)
    pool.close()


def test_failing_prepare_gives_the_resource_back() -> None:
    class Failing(Resource[Any]):
        fail = True

        def new(self) -> Thing:
            return Thing()

        def prepare(self, resource: Any) -> Any:
            if self.fail:
                raise RuntimeError("prepare failed")
            return resource

    pool = Failing(1)
    with pytest.raises(RuntimeError, match="prepare failed"):
        pool.acquire()
    assert pool.get_stats()["pool_available"] == 1
    pool.fail = False
    pool.release(pool.acquire())
    pool.close()


def test_failing_new_frees_the_slot(make_pool: Any) -> None:
    factory = Factory()
    factory.fail_next = 1
    pool = make_pool(factory, 1)
    with pytest.raises(ConnectionError):
        pool.acquire()
    stats = pool.get_stats()
    assert stats["pool_size"] == 0 and stats["connections_errors"] == 1
    pool.release(pool.acquire())


def test_repr_names_the_pool(make_pool: Any) -> None:
    pool = make_pool(Factory(), 3, name="db")
    assert "'db'" in repr(pool) and "limit=3" in repr(pool)


# -- statistics -------------------------------------------------------------------------


def test_stats_keys_are_psycopgs(make_pool: Any) -> None:
    pool = make_pool(Factory(), 2)
    # psycopg_pool's keys, all of them, and greenpools' own: the timeouts
    # counter and the connections the broker blocks now.
    assert set(pool.get_stats()) == STATS_KEYS | {"requests_timeouts", "connections_blocked"}
    assert set(pool.pop_stats()) == STATS_KEYS | {"requests_timeouts", "connections_blocked"}


def test_stats_count_and_pop_resets_counters(make_pool: Any) -> None:
    factory = Factory()
    pool = make_pool(factory, 2, min_size=0)
    a = pool.acquire()
    b = pool.acquire()
    with pytest.raises(LimitExceeded):
        pool.acquire()
    pool.release(a)
    pool.replace(b)
    stats = pool.get_stats()
    assert stats["pool_max"] == 2 and stats["pool_min"] == 0
    assert stats["pool_size"] == 1 and stats["pool_available"] == 1
    assert stats["requests_num"] == 3
    assert stats["requests_errors"] == 1
    assert stats["connections_num"] == 2
    assert stats["connections_lost"] == 1
    assert pool.pop_stats() == stats
    after = pool.get_stats()
    assert after["pool_size"] == 1 and after["pool_available"] == 1 and after["pool_max"] == 2
    for key in STATS_KEYS - {"pool_min", "pool_max", "pool_size", "pool_available"}:
        assert after[key] == 0, key


def test_acquire_takes_block_and_timeout_like_kombu() -> None:
    pool = greenpools.Pool(Thing, 2)
    first = pool.acquire(True, 1.0)
    second = pool.acquire(block=True, timeout=1.0)
    assert first is not second
    pool.release(first)
    pool.release(second)
    with pytest.raises(TypeError, match=r"multiple values for (keyword )?argument 'block'"):
        pool.acquire(True, block=True)  # type: ignore[misc]
    with pytest.raises(TypeError, match="unexpected keyword argument 'wait'"):
        pool.acquire(wait=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        pool.acquire(True, 1.0, 2)  # type: ignore[call-arg]
    assert_balanced(pool)


def test_release_takes_the_resource_positionally_in_both_builds() -> None:
    # Positional-only, as the hand-written C core it replaced had it: a
    # keyword would cost every release an argument parse.
    pool = greenpools.Pool(Thing, 1)
    resource = pool.acquire()
    with pytest.raises(TypeError):
        pool.release(resource=resource)  # type: ignore[call-arg]
    pool.release(resource)
    assert pool.acquire() is resource
    pool.release(resource)
    assert_balanced(pool)
