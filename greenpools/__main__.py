"""``python -m greenpools``: the command line (:mod:`greenpools.cli`)."""

import sys

from greenpools.cli import main

if __name__ == "__main__":
    sys.exit(main())
