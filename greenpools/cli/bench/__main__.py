"""``python -m greenpools.cli.bench``: the same as ``python -m greenpools bench``."""

import sys

from . import main

sys.exit(main())
