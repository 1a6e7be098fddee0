"""Send ``e2e.fanout`` tasks to the end-to-end Celery app, concurrently.

    python celery_client.py COUNT [THREADS]

Sends tasks 0..COUNT-1 with ``apply_async`` from THREADS threads through
the app's (greenpools) producer pool, confirmed by the broker, then prints
``sent COUNT <describe()>`` and exits 0; any error exits 1.
"""

from __future__ import annotations

import sys
import threading

from celery_app import describe, fanout


def main(count: int, threads: int) -> int:
    numbers = iter(range(count))
    lock = threading.Lock()
    errors: list[str] = []
    sent = [0]

    def sender() -> None:
        while True:
            with lock:
                number = next(numbers, None)
            if number is None:
                return
            try:
                fanout.apply_async(args=(number,))
            except Exception as exc:
                with lock:
                    errors.append(f"task {number}: {exc!r}")
                return
            with lock:
                sent[0] += 1

    workers = [threading.Thread(target=sender, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    if errors or sent[0] != count or any(worker.is_alive() for worker in workers):
        print(f"sent {sent[0]} of {count}; errors: {errors[:5]}", file=sys.stderr)
        return 1
    print(f"sent {count} {describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 4))
