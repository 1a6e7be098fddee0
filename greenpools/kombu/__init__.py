"""The kombu layer: kombu's pools built on the pool core.

:mod:`~greenpools.kombu.pools` is ``kombu.pools`` on greenpools' pools
(public as ``greenpools.pools``), :mod:`~greenpools.kombu.install` puts it
in kombu's and Celery's place, :mod:`~greenpools.kombu.fork` lets a forked
child drop the parent's connections, :mod:`~greenpools.kombu.placement`
spreads connections over a connection's hosts.  Importing this package
imports nothing else: in here, ``kombu`` is the library, not this package.
"""
