"""Where a connection pool puts its connections when the URL names several hosts."""

# ruff: noqa: F811  (pytest fixtures imported from brokers are redefined as arguments)
from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from brokers import amqp_url, clean_global_pools, run_in_child  # noqa: F401  (fixtures)
from helpers import assert_balanced
from kombu import Connection

from greenpools import pools
from greenpools.kombu.placement import HostSpread, hosts_of

THREE = "amqp://guest:guest@127.0.0.1:5701//;amqp://guest:guest@127.0.0.1:5702//;" \
        "amqp://guest:guest@127.0.0.1:5703//"


def ports_of(pool: pools.ConnectionPool, count: int) -> list[int]:
    """The ports of ``count`` connections the pool makes (none is connected)."""
    taken = [pool.acquire() for _ in range(count)]
    ports = [conn.port for conn in taken]
    for conn in taken:
        conn.release()
    return ports


def test_connections_go_round_robin_over_the_hosts() -> None:
    pool = pools.ConnectionPool(THREE, limit=6)
    try:
        ports = ports_of(pool, 6)
        assert sorted(ports) == [5701, 5701, 5702, 5702, 5703, 5703]
        start = ports[0] - 5701
        assert ports == [5701 + (start + i) % 3 for i in range(6)]
        assert_balanced(pool)
    finally:
        pool.force_close_all()


def test_a_groups_pools_spread_unless_the_group_says_first() -> None:
    pool = pools.connections[Connection(THREE)]
    assert sorted(ports_of(pool, 6)) == [5701, 5701, 5702, 5702, 5703, 5703]
    first = pools.Connections(limit=3, placement="first")
    try:
        assert ports_of(first[Connection(THREE)], 3) == [5701] * 3
    finally:
        for made in first.values():
            made.force_close_all()
        first.clear()


def test_a_placed_connection_finds_its_own_pool_in_the_groups() -> None:
    """kombu's idiom ``producers[conn]`` on a pooled connection: one pool per
    group whatever host the connection was placed on, so the limit holds."""
    pool = pools.connections[Connection(THREE)]
    taken = [pool.acquire() for _ in range(3)]
    try:
        assert sorted(conn.port for conn in taken) == [5701, 5702, 5703]
        assert all(pools.connections[conn] is pool for conn in taken)
        producers = pools.producers[Connection(THREE)]
        assert all(pools.producers[conn] is producers for conn in taken)
        assert len(pools.connections) == len(pools.producers) == 1
    finally:
        for conn in taken:
            conn.release()


def test_placement_first_keeps_kombus_first_host() -> None:
    pool = pools.ConnectionPool(THREE, limit=4, placement="first")
    try:
        assert ports_of(pool, 4) == [5701] * 4
    finally:
        pool.force_close_all()


def test_a_placed_connection_fails_over_in_kombus_order_from_its_host() -> None:
    spread = HostSpread(hosts_of(Connection(THREE)), rng=random.Random(7))
    template = Connection(THREE)
    for _ in range(3):
        conn = Connection(**spread.place(dict(template._info(resolve=False))))
        seen = [conn.port]
        for _ in range(3):
            conn.maybe_switch_next()
            seen.append(conn.port)
        first = seen[0] - 5701
        assert seen == [5701 + (first + i) % 3 for i in range(4)]


def test_alternates_given_apart_include_the_connections_own_host() -> None:
    conn = Connection("amqp://guest:guest@127.0.0.1:5701//",
                      alternates=["amqp://guest:guest@127.0.0.1:5702//"])
    pool = pools.ConnectionPool(conn, limit=2)
    try:
        assert sorted(ports_of(pool, 2)) == [5701, 5702]
    finally:
        pool.force_close_all()


def test_a_single_host_is_left_as_kombu_makes_it() -> None:
    pool = pools.ConnectionPool("amqp://guest:guest@127.0.0.1:5701//", limit=2)
    try:
        assert ports_of(pool, 2) == [5701, 5701]
    finally:
        pool.force_close_all()


@pytest.mark.parametrize("bad", ["round-robin", "", 1])
def test_an_unknown_placement_is_refused_by_name(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"placement must be one of .*got " + repr(bad)):
        pools.ConnectionPool(THREE, limit=2, placement=bad)


def test_each_forked_process_starts_at_a_random_host() -> None:
    """A pool used before the fork: every child picks its own start."""
    pool = pools.ConnectionPool(THREE, limit=3)
    ports_of(pool, 1)  # the parent's cursor is now set
    starts = set()
    for _ in range(12):  # all 12 alike by chance: 3 ** -11
        starts.add(int(run_in_child(pool._hosts.choose)))
    pool.force_close_all()
    assert len(starts) > 1, f"every child started at host {starts}"


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A loopback URL where nothing listens (the port stays bound, unlistened)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"amqp://guest:guest@127.0.0.1:{sock.getsockname()[1]}//"
    sock.close()


@pytest.mark.broker
def test_connections_placed_on_a_dead_host_fail_over_to_a_live_one(
    amqp_url: str, refused_url: str
) -> None:
    live_port = Connection(amqp_url).port
    pool = pools.ConnectionPool(f"{refused_url};{amqp_url}", limit=4)
    try:
        taken = [pool.acquire() for _ in range(4)]
        placed = sorted(conn.port for conn in taken)
        assert placed.count(live_port) == 2, placed
        for conn in taken:
            conn.ensure_connection(max_retries=3)  # fails over if placed on the dead host
            assert conn.connected and conn.port == live_port
            conn.release()
        assert_balanced(pool)
    finally:
        pool.force_close_all()
