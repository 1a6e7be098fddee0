"""A greenpools.Pool of redis-py clients, with a health check, a lifetime and a timeout.

    python examples/generic_pool.py
    python examples/generic_pool.py --redis redis://127.0.0.1:6379/0 --key my-counter

``greenpools.Pool`` pools anything, not only kombu connections: here
redis-py clients, each on one dedicated connection.  The script

1. counts to 1,000 from 20 threads through 4 pooled clients;
2. has Redis drop the connection of the client the pool will hand out next
   (``CLIENT KILL``): the ``check`` (a ``PING`` before every hand-out)
   fails, the pool discards that client and hands out a new one, and the
   caller never sees the dead connection;
3. lends all 4 clients and shows a fifth caller giving up after ``timeout``
   seconds with ``greenpools.PoolTimeout`` instead of waiting forever;
4. deletes its key and closes the pool.

``--redis`` defaults to ``REDIS_URL`` (else ``redis://127.0.0.1:6379/0``),
``--key`` to ``greenpools-example-counter``.  Needs ``pip install redis``.
"""

import argparse
import logging
import os
import sys
import threading
import time

import greenpools

try:
    import redis
except ImportError:
    sys.exit("generic_pool.py needs redis-py: pip install redis")

THREADS, INCREMENTS, LIMIT, TIMEOUT = 20, 50, 4, 0.5


class BriefFormatter(logging.Formatter):
    """Log records with the error's message instead of its traceback."""

    def formatException(self, exc_info) -> str:
        return f"            because of {type(exc_info[1]).__name__}: {exc_info[1]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default=os.environ.get(
        "REDIS_URL", "redis://127.0.0.1:6379/0"), help="Redis URL")
    parser.add_argument("--key", default="greenpools-example-counter",
                        help="key to count in (deleted at the end)")
    args = parser.parse_args()
    # greenpools logs a warning for each client that fails its check.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(BriefFormatter("log:        %(levelname)s %(message)s"))
    logging.basicConfig(handlers=[handler])

    pool = greenpools.Pool(
        lambda: redis.Redis.from_url(args.redis, single_connection_client=True),
        limit=LIMIT,
        close=lambda client: client.close(),
        # Before each hand-out of an idle client: a client that fails is
        # closed and another one is handed out (a new one if none is idle).
        check=lambda client: client.ping(),
        # Replace each client after about 10 minutes (with some jitter, so
        # they do not all reconnect at once).
        max_lifetime=600,
        # Wait at most this long for a free client, then raise PoolTimeout.
        timeout=TIMEOUT,
        # Errors that, raised inside `with pool.acquired()`, mean the client
        # is broken: it is closed and replaced instead of going back.
        connection_errors=(redis.ConnectionError, redis.TimeoutError),
        name="redis",
    )
    try:  # Redis not there or the URL wrong: one line, not a traceback per thread
        with pool.acquired() as client:
            client.ping()
    except (redis.RedisError, ValueError) as exc:
        pool.close()
        sys.exit(f"generic_pool.py: cannot use Redis: {type(exc).__name__}: {exc}")
    try:
        count(pool, args.key)
        survive_a_dropped_connection(pool, args.redis)
        time_out(pool)
    finally:
        with pool.acquired() as client:
            client.delete(args.key)
        pool.close()
    stats = pool.get_stats()
    print(f"stats:      {stats['connections_num']} clients made, "
          f"{stats['requests_num']} acquires, {stats['requests_queued']} waited, "
          f"{stats['requests_errors']} gave up")
    return 0


def count(pool: greenpools.Pool, key: str) -> None:
    def work() -> None:
        for _ in range(INCREMENTS):
            with pool.acquired() as client:  # goes back to the pool on exit
                client.incr(key)

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with pool.acquired() as client:
        total = int(client.get(key))
    print(f"counted:    {total} from {THREADS} threads through {LIMIT} clients")


def survive_a_dropped_connection(pool: greenpools.Pool, url: str) -> None:
    with pool.acquired() as client:
        victim = client.client_id()
    # The idle client reused next is the one released last: the victim.
    with redis.Redis.from_url(url) as admin:
        admin.client_kill_filter(_id=victim)
    with pool.acquired() as client:
        replacement = client.client_id()
        client.ping()
    print(f"check:      client {victim} lost its connection; the pool handed out "
          f"client {replacement} instead")


def time_out(pool: greenpools.Pool) -> None:
    held = [pool.acquire(block=True) for _ in range(LIMIT)]
    started = time.monotonic()
    try:
        pool.acquire(block=True)
    except greenpools.PoolTimeout as exc:
        print(f"timeout:    with all {LIMIT} clients lent, a caller gave up after "
              f"{time.monotonic() - started:.1f} s: {type(exc).__name__}")
    else:
        raise AssertionError("acquire did not time out")
    finally:
        for client in held:
            pool.release(client)


if __name__ == "__main__":
    sys.exit(main())
