"""The waiting client: one caller queued for a resource, and the queue of them.

A caller that finds the pool at its limit becomes a :class:`WaitingClient`
at the back of the pool's :class:`WaitQueue` and parks on its backend's
waiter.  Whoever frees something serves the oldest client directly, under
the pool's lock, with one of three transitions, each made once and before
the wake-up:

- :meth:`WaitingClient.grant`: here is a resource (a slot, lent to it);
- :meth:`WaitingClient.allow_create`: here is a place, create one;
- :meth:`WaitingClient.refuse`: the pool closed.

A client whose wait ended without one (timeout, exception, kill) calls
:meth:`WaitingClient.withdraw` under the lock: it refuses every later
transition and returns what had reached it, so that the pool can leave
the queue (still ``WAITING``), pass an unwanted grant on (``GRANTED``) or
give the place back (``MAY_CREATE``).  A transition on a client that is no
longer waiting returns False and changes nothing.

Compiled by Cython when built (see ``waiting.pxd``); plain Python otherwise.
"""

from __future__ import annotations

from typing import Any

try:
    import cython
except ImportError:  # Cython is needed to build greenpools, not to run it
    from .. import _nocython as cython  # type: ignore[no-redef]

if not cython.compiled:  # compiled, waiting.pxd declares them as a C enum
    #: The states of a waiting client; every state but WAITING is final.
    WAITING, GRANTED, MAY_CREATE, REFUSED = 0, 1, 2, 3


class WaitingClient:
    """One caller queued for a resource; whoever frees one fills it in."""

    def __init__(self, waiter: Any, since: float, forks: int) -> None:
        self.waiter = waiter
        self.since = since
        # The pool's fork count: a green thread waiting at fork() lives on,
        # copied, in the child, whose pool counts one more.
        self.forks = forks
        self.state = WAITING
        self.slot: Any = None
        self.stall_warned = False

    def grant(self, slot: Any) -> bool:
        """Hand ``slot`` (already lent) to this client and wake it."""
        return self._serve(GRANTED, slot)

    def allow_create(self) -> bool:
        """Give this client a place under the limit to create a resource in."""
        return self._serve(MAY_CREATE, None)

    def refuse(self) -> bool:
        """Tell this client the pool closed."""
        return self._serve(REFUSED, None)

    def _serve(self, state: int, slot: Any) -> bool:
        """Move a waiting client to ``state`` (with ``slot``) and wake it;
        False, changing nothing, if it no longer waits."""
        if self.state != WAITING:
            return False
        self.slot = slot
        self.state = state
        self.waiter.wake()
        return True

    def withdraw(self) -> int:
        """The caller stopped waiting: refuse anything more, and return the
        state it was in (what reached it, if anything)."""
        state = self.state
        self.state = REFUSED
        return state


def new_client(waiter: Any, since: float, forks: int) -> WaitingClient:
    """A client in state WAITING (made without a Python-level constructor call)."""
    client = WaitingClient.__new__(WaitingClient)
    client.waiter = waiter
    client.since = since
    client.forks = forks
    client.state = WAITING
    client.slot = None
    client.stall_warned = False
    return client


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
