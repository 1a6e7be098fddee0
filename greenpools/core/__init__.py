"""The pool core: the pool algorithm and what builds on it, for any resource.

It sits on the backends (:mod:`greenpools.backends`) and knows nothing of
kombu's pools or the command line.  :mod:`~greenpools.core.waiting` and
:mod:`~greenpools.core.slotpool` are compiled by Cython when a compiler is
at hand (see :mod:`greenpools._build`); :mod:`~greenpools.core.resource`
is the public ``Resource`` and ``Pool``, :mod:`~greenpools.core.lifecycle`
their upkeep, :mod:`~greenpools.core.stats` their counters and
:mod:`~greenpools.core.events` their listeners.
"""
