"""The fault proxy does what the fault tests rely on, against the real broker."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from brokers import amqp_url  # noqa: F401  (fixture)
from faultproxy import FaultProxy

AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
pytestmark = pytest.mark.broker


@pytest.fixture
def proxy(amqp_url: str) -> Iterator[FaultProxy]:  # noqa: F811
    parts = urlsplit(amqp_url)
    with FaultProxy(parts.hostname or "127.0.0.1", parts.port or 5672) as proxy:
        yield proxy


def _connect(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=5)


def _broker_answers(sock: socket.socket) -> bool:
    """Send AMQP's protocol header; the broker answers with a method frame."""
    sock.sendall(AMQP_HEADER)
    return sock.recv(1) == b"\x01"


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether the peer ended the connection (eventlet reads a reset as EOF)."""
    sock.settimeout(5)  # a connection still open would time out: the test fails
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return True


def test_pass_forwards_to_the_broker(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        assert _broker_answers(sock)
    assert proxy.stats()["accepted"] == 1


def test_cut_resets_open_connections(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        assert _broker_answers(sock)
        assert proxy.cut()["open"] == 0
        assert _closed_by_peer(sock)
    with _connect(proxy) as sock:  # and still accepts new ones
        assert _broker_answers(sock)


def test_refuse_then_pass_listens_on_the_same_port(proxy: FaultProxy) -> None:
    port = proxy.port
    proxy.refuse()
    with pytest.raises(ConnectionRefusedError):
        _connect(proxy)
    proxy.pass_through()
    assert proxy.port == port
    with _connect(proxy) as sock:
        assert _broker_answers(sock)


def test_blackhole_accepts_and_never_answers(proxy: FaultProxy) -> None:
    with _connect(proxy) as open_before:
        proxy.blackhole()
        with _connect(proxy) as sock:
            sock.settimeout(0.5)
            with pytest.raises(socket.timeout):
                _broker_answers(sock)
        open_before.settimeout(0.5)
        with pytest.raises(socket.timeout):  # open connections fall silent too
            _broker_answers(open_before)
        # Healed: the swallowed connections are reset, new ones pass.
        proxy.pass_through()
        assert _closed_by_peer(open_before)
    with _connect(proxy) as sock:
        assert _broker_answers(sock)


def test_stall_holds_what_open_clients_send_then_passes_it_on(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        proxy.stall(3.0)
        sock.settimeout(0.5)
        with pytest.raises(socket.timeout):  # the header waits in the proxy's buffers
            _broker_answers(sock)
        with pytest.raises(socket.timeout):  # a large write fills them and has to wait
            sock.sendall(b"\0" * (64 << 20))
    with _connect(proxy) as sock:  # a new connection is not stalled
        assert _broker_answers(sock)
    with _connect(proxy) as sock:
        proxy.stall(0.2)
        sock.settimeout(10)  # once the stall ends, what was held goes on
        assert _broker_answers(sock)


def test_url_points_at_the_proxy(proxy: FaultProxy) -> None:
    url = proxy.url("amqp://guest:secret@127.0.0.1:5672//")
    assert url == f"amqp://guest:secret@127.0.0.1:{proxy.port}//"
    assert proxy.url("redis://127.0.0.1:6379/0") == f"redis://127.0.0.1:{proxy.port}/0"
