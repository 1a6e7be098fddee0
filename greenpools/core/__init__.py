"""The pool core: the pool algorithm and what builds on it, for any resource.

It sits on the backends (:mod:`greenpools.backends`) and imports nothing of
the kombu layer or the command line.  One thing of kombu's reaches it all
the same: its errors (:mod:`greenpools.exceptions`) subclass kombu's
``LimitExceeded``, so that ``except`` clauses written for kombu's pools
keep working (kombu is a required dependency).  Layers above tell the core
what it must know of them (pool groups as listener targets, their modules'
frames to leave out of leak reports) by registering, never by being named.

:mod:`~greenpools.core.waiting` (the queue of waiting clients) and
:mod:`~greenpools.core.slotpool` (the state machine, the only writer of a
pool's state) are compiled by Cython when a compiler is at hand (see
:mod:`greenpools._build`); :mod:`~greenpools.core.resource` is the public
``Resource`` and ``Pool`` that configure it, :mod:`~greenpools.core.lifecycle`
their upkeep, :mod:`~greenpools.core.stats` their counters,
:mod:`~greenpools.core.events` their listeners and
:mod:`~greenpools.core.registry` the open pools.
"""
