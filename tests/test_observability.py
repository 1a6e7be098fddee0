"""Pool events, listeners and OpenTelemetry metrics (issue 11)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from brokers import amqp_url  # noqa: F401  (fixture)
from helpers import Thing, run_python, start_acquirer
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from test_pool_fork import in_child

import greenpools
from greenpools import Pool, PoolTimeout
from greenpools.pools import ConnectionPool, Connections

ALL_EVENTS = ["connect", "checkout", "checkin", "invalidate", "close", "timeout", "fork"]


class Recorder:
    """Listens to every event of ``target``; keeps (event, resource, seconds)."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.log: list[tuple[str, Any, Any]] = []
        self.fns = {e: self._fn(e) for e in ALL_EVENTS}
        for event, fn in self.fns.items():
            greenpools.listen(target, event, fn)

    def _fn(self, event: str) -> Any:
        def record(pool: Any, resource: Any, seconds: Any) -> None:
            self.log.append((event, resource, seconds))
        return record

    def events(self) -> list[str]:
        return [e for e, _, _ in self.log]

    def remove(self) -> None:
        for event, fn in self.fns.items():
            greenpools.remove_listener(self.target, event, fn)


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    greenpools.instrument(provider)
    yield reader
    greenpools.uninstrument()
    provider.shutdown()


def points(reader: InMemoryMetricReader, pool_name: str) -> dict[tuple[str, str], Any]:
    """(metric name, state or '') -> data point of ``pool_name``; units checked."""
    found: dict[tuple[str, str], Any] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    attrs = dict(point.attributes)
                    if attrs.get("db.client.connection.pool.name") != pool_name:
                        continue
                    expected = "s" if metric.name.endswith("_time") else "{"
                    assert metric.unit.startswith(expected), (metric.name, metric.unit)
                    key = (metric.name, attrs.get("db.client.connection.state", ""))
                    found[key] = point
    return found


def test_each_event_fires_when_it_should() -> None:
    pool = Pool(Thing, 1, connection_errors=(OSError,), name="events-order")
    rec = Recorder(pool)
    a = pool.acquire()
    assert rec.events() == ["connect", "checkout"]
    assert rec.log[1][1] is a and rec.log[1][2] >= 0
    with pytest.raises(PoolTimeout):
        pool.acquire(True, 0.01)
    assert rec.events()[-1] == "timeout" and rec.log[-1][2] >= 0
    pool.release(a)
    assert rec.log[-1][:2] == ("checkin", a)
    with pytest.raises(OSError), pool.acquired() as b:
        assert b is a
        raise OSError("broke inside with")
    assert rec.events()[-3:] == ["checkout", "invalidate", "close"]
    assert rec.log[-1][1] is a and a.closed == 1
    c = pool.acquire()
    pool.release(c)
    pool.close()
    assert rec.events()[-4:] == ["connect", "checkout", "checkin", "close"]
    assert rec.log[-1][1] is c


def test_raising_listener_is_logged_and_harmless(caplog: pytest.LogCaptureFixture) -> None:
    pool = Pool(Thing, 1, name="raising-listener")

    def boom(*args: Any) -> None:
        raise RuntimeError("listener bug")

    greenpools.listen(pool, "checkout", boom)
    greenpools.listen(pool, "checkin", boom)
    with caplog.at_level(logging.ERROR, logger="greenpools"):
        r = pool.acquire()
        pool.release(r)
    assert [rec.exc_info[1].args for rec in caplog.records if rec.exc_info] == [
        ("listener bug",), ("listener bug",)]
    assert pool.get_stats()["pool_available"] == 1
    assert pool.acquire() is r


def test_bad_arguments_name_the_value() -> None:
    pool = Pool(Thing, 1)
    with pytest.raises(ValueError, match="'checkouts'"):
        greenpools.listen(pool, "checkouts", print)
    with pytest.raises(TypeError, match="fn must be callable, got 42"):
        greenpools.listen(pool, "checkout", 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="target must be"):
        greenpools.listen("pool", "checkout", print)
    with pytest.raises(ValueError, match="does not listen"):
        greenpools.remove_listener(pool, "checkout", print)


def test_class_target_covers_subclasses_created_later() -> None:
    class Mine(Pool[Thing]):
        pass

    class Sub(Mine):
        pass

    rec = Recorder(Mine)
    try:
        other = Pool(Thing, 1)
        other.release(other.acquire())
        assert rec.log == []
        pool = Sub(Thing, 1)
        pool.release(pool.acquire())
        assert rec.events() == ["connect", "checkout", "checkin"]
    finally:
        rec.remove()


def test_group_target_covers_pools_created_later() -> None:
    group = Connections(limit=2)
    rec = Recorder(group)
    pool = group["memory://"]
    conn = pool.acquire()
    pool.release(conn)
    assert "checkout" in rec.events()
    assert rec.log[-1][:2] == ("checkin", conn)
    lone = ConnectionPool("memory://", 1)
    lone.release(lone.acquire())
    assert all(r is not None and r is not lone for _, r, _ in rec.log)
    assert len([e for e in rec.events() if e == "checkout"]) == 1


def test_unwatched_pool_is_back_on_the_fast_path() -> None:
    pool = Pool(Thing, 2)
    assert pool._bare_leases and pool._lock_free
    rec = Recorder(pool)
    assert not pool._bare_leases and not pool._lock_free
    rec.remove()
    assert pool._bare_leases and pool._lock_free
    pool.release(pool.acquire())
    assert rec.log == []


def test_fork_event_fires_in_a_real_forked_child() -> None:
    pool = Pool(Thing, 2, name="forked")
    seen: list[str] = []
    greenpools.listen(pool, "fork", lambda p, r, s: seen.append(p.name))
    pool.release(pool.acquire())

    def child() -> dict[str, Any]:
        return {"seen": list(seen)}

    assert in_child(child) == {"seen": ["forked"]}
    assert seen == []


def test_requests_timeouts_apart_from_errors() -> None:
    pool = Pool(Thing, 1)
    r = pool.acquire()
    with pytest.raises(greenpools.LimitExceeded):
        pool.acquire(block=False)
    with pytest.raises(PoolTimeout):
        pool.acquire(True, 0.01)
    stats = pool.get_stats()
    assert (stats["requests_errors"], stats["requests_timeouts"]) == (2, 1)
    pool.release(r)


def test_metrics_follow_acquires_and_releases(reader: InMemoryMetricReader) -> None:
    pool = Pool(Thing, 3, min_size=0, name="metrics-counts")
    held = [pool.acquire() for _ in range(3)]
    pool.release(held.pop())
    pts = points(reader, "metrics-counts")
    assert pts[("db.client.connection.count", "used")].value == 2
    assert pts[("db.client.connection.count", "idle")].value == 1
    assert pts[("db.client.connection.max", "")].value == 3
    assert pts[("db.client.connection.idle.min", "")].value == 0
    assert pts[("db.client.connection.create_time", "")].count == 3
    assert pts[("db.client.connection.wait_time", "")].count == 3
    assert pts[("db.client.connection.use_time", "")].count == 1
    held.append(pool.acquire())
    waiter = start_acquirer(pool, timeout=30)
    assert points(reader, "metrics-counts")[
        ("db.client.connection.pending_requests", "")].value == 1
    pool.release(held.pop())
    pool.release(waiter.join())
    while held:
        pool.release(held.pop())
    pts = points(reader, "metrics-counts")
    assert pts[("db.client.connection.count", "used")].value == 0
    assert pts[("db.client.connection.count", "idle")].value == 3


def test_a_kombu_pool_whose_limit_reads_none_reports_a_max_of_0(
    reader: InMemoryMetricReader,
) -> None:
    pool = ConnectionPool("memory://", limit=None, name="metrics-no-limit")
    assert pool.limit is None  # as given, as kombu's pools keep it
    pool.release(pool.acquire())
    pts = points(reader, "metrics-no-limit")
    assert pts[("db.client.connection.max", "")].value == 0
    assert pts[("db.client.connection.idle.max", "")].value == 0
    pool.close()


def test_blocked_connections_and_held_callers_are_shown(reader: InMemoryMetricReader) -> None:
    pool = Pool(Thing, 1, name="metrics-blocked")
    thing = pool.acquire()
    pool._block(thing, "connection blocked, see broker logs")
    waiter = start_acquirer(pool, timeout=30)  # held until the unblock
    pts = points(reader, "metrics-blocked")
    assert pts[("greenpools.connection.blocked", "")].value == 1
    assert pts[("db.client.connection.pending_requests", "")].value == 1
    pool._unblock(thing)
    pool.release(thing)
    pool.release(waiter.join())
    assert points(reader, "metrics-blocked")[("greenpools.connection.blocked", "")].value == 0


def test_timeout_counts_and_records_a_wait(reader: InMemoryMetricReader) -> None:
    pool = Pool(Thing, 1, name="metrics-timeout")
    r = pool.acquire()
    with pytest.raises(PoolTimeout):
        pool.acquire(True, 0.02)
    pts = points(reader, "metrics-timeout")
    assert pts[("db.client.connection.timeouts", "")].value == 1
    assert pts[("db.client.connection.wait_time", "")].count == 2
    assert pts[("db.client.connection.wait_time", "")].max >= 0.015
    pool.release(r)


def test_nothing_recorded_after_uninstrument() -> None:
    reader = InMemoryMetricReader()
    greenpools.instrument(MeterProvider(metric_readers=[reader]))
    pool = Pool(Thing, 1, name="metrics-off")
    pool.release(pool.acquire())
    before = points(reader, "metrics-off")[("db.client.connection.wait_time", "")].count
    greenpools.uninstrument()
    assert pool._lock_free
    pool.release(pool.acquire())
    with pytest.raises(PoolTimeout):
        held = pool.acquire()
        try:
            pool.acquire(True, 0.01)
        finally:
            pool.release(held)
    pts = points(reader, "metrics-off")
    assert ("db.client.connection.count", "idle") not in pts
    assert ("db.client.connection.timeouts", "") not in pts
    assert pts[("db.client.connection.wait_time", "")].count == before == 1


def test_create_time_of_real_rabbitmq_connections(
        reader: InMemoryMetricReader, amqp_url: str) -> None:  # noqa: F811
    pool = ConnectionPool(amqp_url, 2, name="metrics-amqp")
    a, b = pool.acquire(), pool.acquire()
    a.connect()
    b.connect()
    pool.release(a)
    pool.release(b)
    pts = points(reader, "metrics-amqp")
    assert pts[("db.client.connection.create_time", "")].count == 2
    assert pts[("db.client.connection.count", "idle")].value == 2
    pool.close()
    default = ConnectionPool(amqp_url, 1)
    assert "guest" not in default.name and "127.0.0.1:5672//" in default.name
    default.close()


def test_instrument_without_opentelemetry_says_what_to_install() -> None:
    result = run_python(
        "import sys; sys.modules['opentelemetry'] = None\n"
        "import greenpools\n"
        "try:\n    greenpools.instrument()\n"
        "except ImportError as e:\n    print(e)\n"
    )
    assert "pip install opentelemetry-api" in result.stdout, result.stderr


def test_prometheus_exporter_serves_the_metrics_to_a_scrape() -> None:
    from urllib.request import urlopen

    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import start_http_server

    provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    server, _thread = start_http_server(0, addr="127.0.0.1")
    try:
        greenpools.instrument(provider)
        pool = Pool(Thing, 2, name="scraped")
        held = pool.acquire()
        pool.release(pool.acquire())
        port = server.server_address[1]
        with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            text = response.read().decode()
        pool.release(held)
    finally:
        greenpools.uninstrument()
        server.shutdown()
        server.server_close()
        provider.shutdown()  # takes its collector out of prometheus_client's registry
    pool_label = 'db_client_connection_pool_name="scraped"'
    assert re.search(r'^db_client_connection_count\{' + pool_label
                     + r',db_client_connection_state="used",[^}]*\} 1\.0$', text, re.M), text
    assert re.search(r'^db_client_connection_wait_time_seconds_count\{' + pool_label
                     + r',[^}]*\} 2\.0$', text, re.M), text
    # Buckets fit seconds (the SDK's default ones start at 0, 5, 10 ...).
    bounds = re.findall(r'^db_client_connection_wait_time_seconds_bucket\{' + pool_label
                        + r',le="([^"]+)"', text, re.M)
    assert bounds[:4] == ["0.0001", "0.0005", "0.001", "0.005"], bounds


def buffered(pool: Any) -> dict[str, int]:
    """How many samples of ``pool`` wait for the next collection, by histogram."""
    from greenpools import otel

    assert otel._active is not None
    samples = otel._active._by_pool[pool]
    return {"create": len(samples.create), "wait": len(samples.wait), "use": len(samples.use)}


def test_collection_hands_over_every_sample_exactly(reader: InMemoryMetricReader) -> None:
    pool = Pool(Thing, 2, name="metrics-exact")
    seen: dict[str, list[float]] = {"checkout": [], "checkin": []}
    for event, log in seen.items():
        greenpools.listen(pool, event, lambda p, r, s, log=log: log.append(s))
    for _ in range(50):
        a = pool.acquire()
        b = pool.acquire()
        pool.release(a)
        pool.release(b)
    assert buffered(pool) == {"create": 2, "wait": 100, "use": 100}
    pts = points(reader, "metrics-exact")
    assert buffered(pool) == {"create": 0, "wait": 0, "use": 0}
    for name, log in (("wait_time", seen["checkout"]), ("use_time", seen["checkin"])):
        point = pts[(f"db.client.connection.{name}", "")]
        assert (point.count, point.sum) == (len(log), sum(log))
        assert (point.min, point.max) == (min(log), max(log))
    # A second collection adds only what came after the first.
    pool.release(pool.acquire())
    pts = points(reader, "metrics-exact")
    assert pts[("db.client.connection.wait_time", "")].count == 101


def test_a_full_buffer_records_at_once_and_loses_nothing(
        reader: InMemoryMetricReader, monkeypatch: pytest.MonkeyPatch) -> None:
    from greenpools import otel

    monkeypatch.setattr(otel, "BUFFER_LIMIT", 5)
    pool = Pool(Thing, 1, name="metrics-bound")
    seconds: list[float] = []
    greenpools.listen(pool, "checkout", lambda p, r, s: seconds.append(s))
    for _ in range(12):
        pool.release(pool.acquire())
    assert buffered(pool) == {"create": 1, "wait": 5, "use": 5}
    point = points(reader, "metrics-bound")[("db.client.connection.wait_time", "")]
    assert point.count == 12
    assert point.sum == pytest.approx(sum(seconds), rel=1e-12, abs=1e-15)  # order differs


def test_samples_of_a_pool_gone_before_collection_are_reported(
        reader: InMemoryMetricReader) -> None:
    import gc

    pool = Pool(Thing, 1, name="metrics-gone")
    pool.release(pool.acquire())
    pool.close()
    del pool
    gc.collect()
    pts = points(reader, "metrics-gone")
    assert pts[("db.client.connection.wait_time", "")].count == 1
    assert pts[("db.client.connection.use_time", "")].count == 1


def test_samples_taken_before_uninstrument_still_reach_the_provider() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    greenpools.instrument(provider)
    pool = Pool(Thing, 1, name="metrics-late")
    pool.release(pool.acquire())
    greenpools.uninstrument()
    pool.release(pool.acquire())
    try:
        pts = points(reader, "metrics-late")
        assert pts[("db.client.connection.wait_time", "")].count == 1
        assert pts[("db.client.connection.use_time", "")].count == 1
    finally:
        provider.shutdown()


def test_forked_child_does_not_report_the_parents_samples(
        reader: InMemoryMetricReader) -> None:
    pool = Pool(Thing, 1, name="metrics-fork")
    pool.release(pool.acquire())

    def child() -> dict[str, Any]:
        pts = points(reader, "metrics-fork")
        return {"waits": pts[("db.client.connection.wait_time", "")].count
                if ("db.client.connection.wait_time", "") in pts else 0}

    assert in_child(child) == {"waits": 0}
    assert points(reader, "metrics-fork")[("db.client.connection.wait_time", "")].count == 1


def test_a_new_pool_hands_over_the_samples_of_pools_gone(
        reader: InMemoryMetricReader) -> None:
    import gc

    from greenpools import otel

    pool = Pool(Thing, 1, name="metrics-gone-early")
    pool.release(pool.acquire())
    del pool
    gc.collect()
    new = Pool(Thing, 1)  # with no collection in between: nothing kept for the gone pool
    assert otel._active is not None
    assert all(s.pool() is not None for s in otel._active._samples)
    assert new.name in [s.attributes[otel.POOL_NAME] for s in otel._active._samples]
    pts = points(reader, "metrics-gone-early")
    assert pts[("db.client.connection.wait_time", "")].count == 1
