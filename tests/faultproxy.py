"""A loopback TCP proxy that injects faults between the tests and a broker.

It runs in a process of its own (``python tests/faultproxy.py HOST PORT``),
so its sockets are never green, whatever the test process patched, and a
forked test process shares nothing with it but a pipe.  The test drives
it with :class:`FaultProxy`; each command is acknowledged on a line of its
own, so a test knows the fault is in place when the call returns.

Modes (for connections that arrive from then on, and what happens to the
open ones):

- ``pass``: forward both ways (the default).  Connections swallowed while
  in ``blackhole`` are reset: their streams lost bytes and cannot resume.
- ``refuse``: stop listening, so a connect fails with ``ECONNREFUSED``;
  open connections stay.  ``pass`` listens on the same port again.
- ``blackhole``: accept and never answer; bytes from either side of every
  connection, new or open, are read and dropped.

``cut`` resets every open connection (both sides) and keeps the mode.
``stall SECONDS`` stops reading from the clients of the open connections
for that long (the broker's side still flows), so that a client's large
write fills the socket buffers and has to wait: a green thread then
yields inside it, where a timeout can cut it.  Then reading resumes.
``close CODE`` plays a broker node that shuts down: every open connection
gets an AMQP ``Connection.Close`` with reply code ``CODE`` (541
INTERNAL_ERROR, 320 CONNECTION_FORCED) as if from the broker, and its
upstream side is closed; what the client sends then is dropped.  Only
while the broker sends nothing (between publishes), so that the frame
lands between two of the broker's.
The process listens on 127.0.0.1 only, connects only to its target, and
exits when its controller's pipe closes or after ``--lifetime`` seconds.
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import struct
import subprocess
import sys
import time
from typing import Any

BUFFER = 65536


# -- the proxy process ---------------------------------------------------------


def _reset(sock: socket.socket) -> None:
    """Close with RST, as a dropped network path or a crashed peer would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _connection_close(code: int) -> bytes:
    """An AMQP 0-9-1 ``Connection.Close`` frame (channel 0) with ``code``."""
    text = f"greenpools fault proxy: reply code {code}".encode()
    payload = struct.pack(">HHHB", 10, 50, code, len(text)) + text + struct.pack(">HH", 0, 0)
    return struct.pack(">BHI", 1, 0, len(payload)) + payload + b"\xce"


class _Pair:
    """One client connection and, unless swallowed, its upstream twin."""

    def __init__(self, client: socket.socket, upstream: socket.socket | None) -> None:
        self.client = client
        self.upstream = upstream
        self.swallowed = upstream is None


class _Proxy:
    def __init__(self, target: tuple[str, int], lifetime: float) -> None:
        self.target = target
        self.deadline = time.monotonic() + lifetime
        self.selector = selectors.DefaultSelector()
        self.mode = "pass"
        self.pairs: list[_Pair] = []
        self.accepted = 0
        self.port = 0
        self.listener: socket.socket | None = None
        self.stalled: list[_Pair] = []
        self.stall_ends = 0.0
        self._listen()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self.listener = listener
        self.selector.register(listener, selectors.EVENT_READ, ("accept", None))

    def _stop_listening(self) -> None:
        if self.listener is not None:
            self.selector.unregister(self.listener)
            self.listener.close()
            self.listener = None

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        self.accepted += 1
        upstream = None
        if self.mode == "pass":
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)  # the target is down: so is the proxy, for this client
                return
            upstream.setblocking(False)
        client.setblocking(False)
        pair = _Pair(client, upstream)
        self.pairs.append(pair)
        self.selector.register(client, selectors.EVENT_READ, ("client", pair))
        if upstream is not None:
            self.selector.register(upstream, selectors.EVENT_READ, ("upstream", pair))

    def _drop(self, pair: _Pair) -> None:
        for sock in (pair.client, pair.upstream):
            if sock is None:
                continue
            try:
                self.selector.unregister(sock)
            except (KeyError, ValueError):
                pass
            _reset(sock)
        if pair in self.pairs:
            self.pairs.remove(pair)

    def _forward(self, side: str, pair: _Pair) -> None:
        source = pair.client if side == "client" else pair.upstream
        sink = pair.upstream if side == "client" else pair.client
        assert source is not None
        try:
            data = source.recv(BUFFER)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(pair)
            return
        if pair.swallowed or sink is None:
            return
        try:
            sink.setblocking(True)  # loopback: a short wait at most, keeps order simple
            sink.settimeout(5)
            sink.sendall(data)
            sink.setblocking(False)
        except OSError:
            self._drop(pair)

    def _stall(self, seconds: float) -> None:
        self._resume()
        for pair in self.pairs:
            if not pair.swallowed:
                self.selector.unregister(pair.client)
                self.stalled.append(pair)
        self.stall_ends = time.monotonic() + seconds

    def _resume(self) -> None:
        for pair in self.stalled:
            if pair in self.pairs:  # not dropped meanwhile
                self.selector.register(pair.client, selectors.EVENT_READ, ("client", pair))
        self.stalled = []

    def _close_as_broker(self, code: int) -> None:
        frame = _connection_close(code)
        for pair in list(self.pairs):
            if pair.upstream is not None:
                self.selector.unregister(pair.upstream)
                _reset(pair.upstream)
                pair.upstream = None
            try:
                pair.client.setblocking(True)
                pair.client.settimeout(5)
                pair.client.sendall(frame)
                pair.client.setblocking(False)
            except OSError:
                self._drop(pair)

    def command(self, line: str) -> str:
        word, _, argument = line.strip().partition(" ")
        if word == "close":
            if not argument.isdigit():
                return f"error close needs a reply code, got {argument!r}"
            self._close_as_broker(int(argument))
            return f"ok mode={self.mode} accepted={self.accepted} open={len(self.pairs)}"
        if word == "stall":
            try:
                seconds = float(argument)
            except ValueError:
                return f"error stall needs seconds, got {argument!r}"
            self._stall(seconds)
            return f"ok mode={self.mode} accepted={self.accepted} open={len(self.pairs)}"
        if word == "pass":
            for pair in [p for p in self.pairs if p.swallowed]:
                self._drop(pair)
            if self.listener is None:
                self._listen()
        elif word == "refuse":
            self._stop_listening()
        elif word == "blackhole":
            if self.listener is None:
                self._listen()
            for pair in self.pairs:
                pair.swallowed = True
        elif word == "cut":
            for pair in list(self.pairs):
                self._drop(pair)
        elif word == "stats":
            pass
        else:
            return f"error unknown command {word!r}"
        self.mode = word if word in ("pass", "refuse", "blackhole") else self.mode
        return f"ok mode={self.mode} accepted={self.accepted} open={len(self.pairs)}"

    def run(self, commands: Any) -> None:
        os.set_blocking(commands.fileno(), False)
        self.selector.register(commands, selectors.EVENT_READ, ("commands", None))
        pending = b""
        print(f"port {self.port}", flush=True)
        while time.monotonic() < self.deadline:
            wait = 1.0
            if self.stalled:
                wait = self.stall_ends - time.monotonic()
                if wait <= 0:
                    self._resume()
                    wait = 1.0
            for key, _ in self.selector.select(timeout=wait):
                kind, pair = key.data
                if kind == "accept":
                    self._accept()
                elif kind == "commands":
                    try:
                        chunk = os.read(commands.fileno(), 4096)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        return  # the controller is gone
                    pending += chunk
                    while b"\n" in pending:
                        line, pending = pending.split(b"\n", 1)
                        if line.strip() == b"quit":
                            return
                        print(self.command(line.decode()), flush=True)
                elif pair in self.pairs:
                    self._forward(kind, pair)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--lifetime", type=float, default=900.0,
                        help="exit after this many seconds whatever happens")
    args = parser.parse_args()
    if not args.host.startswith("127.") and args.host != "localhost":
        parser.error(f"the target must be a loopback address, got {args.host!r}")
    proxy = _Proxy((args.host, args.port), args.lifetime)
    try:
        proxy.run(sys.stdin)
    finally:
        for pair in list(proxy.pairs):
            proxy._drop(pair)


# -- the controller, used by the tests --------------------------------------------


class FaultProxy:
    """Start a proxy process in front of ``host:port`` and drive it.

    ``with FaultProxy("127.0.0.1", 5672) as proxy:`` then connect to
    ``127.0.0.1:proxy.port`` (``proxy.url(url)`` rewrites a broker URL).
    Each method returns once the proxy has applied the change, with the
    proxy's counters: ``accepted`` connections so far and ``open`` ones.
    """

    def __init__(self, host: str, port: int, lifetime: float = 900.0) -> None:
        self._process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), host, str(port),
             "--lifetime", str(lifetime)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        first = self._read_line()
        if not first.startswith("port "):
            self.close()
            raise RuntimeError(f"fault proxy did not start: {first!r}")
        self.port = int(first.split()[1])
        self._owner = os.getpid()

    def _read_line(self) -> str:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("fault proxy exited")
        return line.strip()

    def _send(self, command: str) -> dict[str, Any]:
        if os.getpid() != self._owner:
            raise RuntimeError("a fault proxy is driven by the process that started it")
        assert self._process.stdin is not None
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        reply = self._read_line()
        if not reply.startswith("ok "):
            raise RuntimeError(f"fault proxy refused {command!r}: {reply}")
        fields = dict(item.split("=", 1) for item in reply.split()[1:])
        return {"mode": fields["mode"], "accepted": int(fields["accepted"]),
                "open": int(fields["open"])}

    def url(self, url: str) -> str:
        """``url`` (``scheme://user:password@host:port/vhost``) pointed at the proxy."""
        scheme, rest = url.split("://", 1)
        credentials, _, location = rest.rpartition("@")
        path = location[location.index("/"):] if "/" in location else "/"
        prefix = f"{credentials}@" if credentials else ""
        return f"{scheme}://{prefix}127.0.0.1:{self.port}{path}"

    def pass_through(self) -> dict[str, Any]:
        return self._send("pass")

    def refuse(self) -> dict[str, Any]:
        return self._send("refuse")

    def blackhole(self) -> dict[str, Any]:
        return self._send("blackhole")

    def cut(self) -> dict[str, Any]:
        return self._send("cut")

    def stall(self, seconds: float) -> dict[str, Any]:
        """Stop reading from the open connections' clients for ``seconds`` (see ``stall``)."""
        return self._send(f"stall {seconds}")

    def close_as_broker(self, code: int) -> dict[str, Any]:
        """Every open connection gets ``Connection.Close`` with ``code`` (see ``close``)."""
        return self._send(f"close {code}")

    def stats(self) -> dict[str, Any]:
        return self._send("stats")

    def close(self) -> None:
        """Stop the proxy: every connection through it is reset."""
        process = self._process
        if process.poll() is None:
            try:
                assert process.stdin is not None
                process.stdin.write("quit\n")
                process.stdin.flush()
            except (OSError, ValueError):
                pass
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


if __name__ == "__main__":
    main()
