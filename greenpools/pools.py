"""The public path of the kombu pools: ``greenpools.pools`` *is*
:mod:`greenpools.kombu.pools`.

Importing this module puts that module in its place in ``sys.modules``,
so both names give one module object: code that reads or sets its
globals (``set_limit``, ``use_global_limit``, ``connections``,
``producers``) through either name sees the same ones.
"""

import sys
from typing import TYPE_CHECKING

from .kombu import pools as _pools

if TYPE_CHECKING:
    from .kombu.pools import *  # noqa: F403  (the names, for type checkers)

sys.modules[__name__] = _pools
