"""The kombu layer: kombu's pools built on the pool core.

:mod:`~greenpools.kombu.pools` is ``kombu.pools`` on greenpools' pools
(public as ``greenpools.pools``): the global limit and groups, and every
public name.  Its classes live by idea: :mod:`~greenpools.kombu.base`
(what the pools share), :mod:`~greenpools.kombu.connections`,
:mod:`~greenpools.kombu.channels`, :mod:`~greenpools.kombu.producers`
(the pools) and :mod:`~greenpools.kombu.groups` (pools per connection
parameters).  :mod:`~greenpools.kombu.install` puts them in kombu's and
Celery's place, :mod:`~greenpools.kombu.fork` lets a forked child drop
the parent's connections, :mod:`~greenpools.kombu.placement` spreads
connections over a connection's hosts.  Importing this package imports
nothing else: in here, ``kombu`` is the library, not this package.
"""
