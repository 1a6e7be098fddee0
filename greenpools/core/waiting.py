"""The queue of callers waiting for a resource, oldest first.

A caller that finds the pool at its limit queues its backend's waiter
itself at the back of the pool's :class:`WaitQueue` and parks on it: the
waiter is its *waiting client*.  The client's fields, its states
(``WAITING``, ``WOKEN``, ``GRANTED``, ``MAY_CREATE``, ``REFUSED``) and
its transitions (``grant``, ``allow_create``, ``refuse``,
``wake_to_compete``, ``withdraw``) are
part of the backend interface, defined once on
:class:`greenpools.backends.base.Waiter` (one object per wait, whatever the
backend); this module re-exports them under the names the pool uses
(compiled, the states are C constants, for ``cimport`` only), and holds
the queue.  Whoever frees something pops the oldest client and
serves it under the pool's lock; a client that stops waiting withdraws
under the lock and is taken off the queue wherever it is.

Compiled by Cython when built (see ``waiting.pxd``); plain Python otherwise.
"""

from __future__ import annotations

from typing import Any

try:
    import cython
except ImportError:  # Cython is needed to build greenpools, not to run it
    from .. import _nocython as cython  # type: ignore[no-redef]

from ..backends.base import Waiter

if not cython.compiled:  # compiled, waiting.pxd cimports the C enum
    from ..backends.base import GRANTED, MAY_CREATE, REFUSED, WAITING, WOKEN

#: A waiting client: the backend's waiter itself.
WaitingClient = Waiter

__all__ = ["WaitQueue", "WaitingClient"]
if not cython.compiled:  # compiled, the states are C constants, not attributes
    __all__ += ["GRANTED", "MAY_CREATE", "REFUSED", "WAITING", "WOKEN"]


class WaitQueue:
    """The clients of one pool, oldest first."""

    def __init__(self) -> None:
        self._clients: list[WaitingClient] = []
        self._head = 0  # _clients[:_head] are served, kept until compacted
        #: How many clients are queued (a field: compiled, reading it is free).
        self.length = 0

    def __len__(self) -> int:
        return self.length

    def __bool__(self) -> bool:
        return self.length > 0

    def __getitem__(self, index: int) -> WaitingClient:
        return self.snapshot()[index]

    def __iter__(self) -> Any:
        return iter(self.snapshot())

    def push(self, client: WaitingClient) -> None:
        """Queue ``client`` at the back."""
        self._clients.append(client)
        self.length += 1

    def pop_oldest(self) -> WaitingClient | None:
        """Take the oldest client off the queue (None if it is empty)."""
        clients = self._clients
        head = self._head
        if head >= len(clients):
            return None
        client: WaitingClient = clients[head]
        clients[head] = None  # type: ignore[call-overload]
        head += 1
        if head == len(clients):
            del clients[:]
            head = 0
        elif head >= 64 and head * 2 >= len(clients):  # amortised: O(1) a pop
            del clients[:head]
            head = 0
        self._head = head
        self.length -= 1
        return client

    def oldest(self) -> WaitingClient | None:
        """The oldest client, left on the queue (None if it is empty)."""
        if self._head >= len(self._clients):
            return None
        return self._clients[self._head]

    def replace(self, client: WaitingClient, successor: WaitingClient) -> bool:
        """Put ``successor`` where ``client`` is, in its turn; False if
        ``client`` was not on the queue."""
        clients = self._clients
        for index in range(self._head, len(clients)):
            if clients[index] is client:
                clients[index] = successor
                return True
        return False

    def remove(self, client: WaitingClient) -> bool:
        """Take ``client`` off the queue wherever it is; False if it was not on it."""
        clients = self._clients
        for index in range(self._head, len(clients)):
            if clients[index] is client:
                del clients[index]
                self.length -= 1
                if self._head == len(clients):
                    del clients[:]
                    self._head = 0
                return True
        return False

    def snapshot(self) -> list[WaitingClient]:
        """The queued clients now, oldest first."""
        return self._clients[self._head:]

    def take_all(self) -> list[WaitingClient]:
        """Empty the queue; returns its clients, oldest first."""
        clients = self._clients[self._head:]
        del self._clients[:]
        self._head = 0
        self.length = 0
        return clients
