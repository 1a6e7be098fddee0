"""gunicorn settings for app.py: two gevent workers, the app loaded before forking.

    gunicorn -c gunicorn.conf.py app:app

``BIND`` sets the address (default ``127.0.0.1:8000``).
"""

import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
worker_class = "gevent"
# The master imports app.py (and declares the queue) once, then forks the
# workers; each gevent worker monkey-patches after the fork, and greenpools
# follows that patching on its own (see the README).
preload_app = True
workers = 2
