"""gunicorn settings for the end-to-end test: 2 gevent workers, --preload.

``E2E_PORT`` is the port on 127.0.0.1; each worker writes its pid to the
pipe ``E2E_READY_FD`` once it is ready to serve, so the test waits on an
event rather than polling the port.
"""

import os

bind = f"127.0.0.1:{int(os.environ['E2E_PORT'])}"
workers = 2
worker_class = "gevent"
preload_app = True
timeout = 60
graceful_timeout = 15
loglevel = "info"
errorlog = "-"
capture_output = True


def post_worker_init(worker):  # gunicorn hook, runs in each worker
    os.write(int(os.environ["E2E_READY_FD"]), f"{os.getpid()}\n".encode())
