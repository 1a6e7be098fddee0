"""Plain threads sharing greenpools' global pools: publish with confirms, then read back.

    python examples/threaded_publisher.py
    python examples/threaded_publisher.py --broker amqp://guest:guest@127.0.0.1:5672// \\
        --queue my-queue --threads 16 --messages 100

No gevent, no eventlet: OS threads share ``greenpools.connections`` and
``greenpools.producers`` exactly as they would share ``kombu.pools``'
groups.
Each thread publishes its messages with publisher confirms, then the script
consumes the queue, checks that every message arrived exactly once, and
deletes the queue.  Exits non-zero if a message was lost or duplicated.

``--broker`` defaults to ``BROKER_URL`` (else ``amqp://guest:guest@127.0.0.1:5672//``),
``--queue`` to ``QUEUE`` (else ``greenpools-threaded-example``).
"""

import argparse
import collections
import os
import sys
import threading

from kombu import Connection, Consumer, Queue

import greenpools
from greenpools.pools import connections, producers, set_limit

LIMIT = 4  # connections (and producers) per broker, shared by every thread


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default=os.environ.get(
        "BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"), help="kombu broker URL")
    parser.add_argument("--queue", default=os.environ.get(
        "QUEUE", "greenpools-threaded-example"), help="queue to publish to (deleted at the end)")
    parser.add_argument("--threads", type=positive_int, default=8, help="publishing threads (8)")
    parser.add_argument("--messages", type=positive_int, default=50,
                        help="messages per thread (50)")
    args = parser.parse_args()
    connection = connect_or_exit(args.broker, {"confirm_publish": True})

    set_limit(LIMIT)
    queue = Queue(args.queue, durable=False)
    with connections[connection].acquire(block=True, timeout=10) as conn:
        queue(conn.default_channel).declare()

    errors = []
    published = collections.Counter()

    def publish(thread: int) -> None:
        try:
            for seq in range(args.messages):
                # Blocks this thread (only) while all LIMIT producers are lent.
                with producers[connection].acquire(block=True, timeout=10) as producer:
                    producer.publish({"thread": thread, "seq": seq},
                                     routing_key=args.queue, serializer="json")
                published[thread] += 1  # confirmed by the broker
        except Exception as exc:  # report it below instead of a thread traceback
            errors.append(f"thread {thread}: {exc!r}")

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    received = collections.Counter()

    def on_message(body: dict, message: object) -> None:
        received[(body["thread"], body["seq"])] += 1
        message.ack()  # type: ignore[attr-defined]

    expected = sum(published.values())
    try:
        with connections[connection].acquire(block=True, timeout=10) as conn:
            with Consumer(conn, queues=[queue], callbacks=[on_message], accept=["json"]):
                while sum(received.values()) < expected:
                    conn.drain_events(timeout=5)
    except TimeoutError:
        pass  # nothing arrived for 5 s: report what did
    finally:
        with connections[connection].acquire(block=True, timeout=10) as conn:
            queue(conn.default_channel).delete()

    stats = producers[connection].get_stats()
    duplicates = sum(count - 1 for count in received.values() if count > 1)
    print(f"broker:     {connection.as_uri()}")  # the password masked
    print(f"backend:    {greenpools.get_backend().name}")
    print(f"published:  {expected} messages from {args.threads} threads")
    print(f"consumed:   {len(received)} distinct, {duplicates} duplicates")
    print(f"producers:  {stats['connections_num']} made (limit {LIMIT}) for "
          f"{stats['requests_num']} acquires, {stats['requests_queued']} of which waited")
    for error in errors:
        print(f"error:      {error}")
    complete = expected == args.threads * args.messages == len(received)
    return 0 if complete and not errors and not duplicates else 1


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    value = int(text)  # argparse reports a ValueError as an invalid value
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def connect_or_exit(url: str, transport_options: dict[str, object]) -> Connection:
    """A connection to ``url`` that connected once; a wrong URL, a missing
    client library or a wrong password is one line and exit status 1, not
    kombu's retries and a traceback."""
    try:  # kombu loads the URL's transport (and its client library) here
        connection = Connection(url, transport_options=transport_options)
    except Exception as exc:
        needs = ""
        if url.startswith("redis"):  # kombu's redis transport needs redis-py and packaging
            needs = " (redis:// URLs need the redis client: pip install 'kombu[redis]')"
        sys.exit(f"threaded_publisher.py: kombu cannot use this broker URL: "
                 f"{type(exc).__name__}: {exc}{needs}")
    try:
        connection.ensure_connection(max_retries=0, timeout=5)
    except Exception as exc:
        sys.exit(f"threaded_publisher.py: the broker at {connection.as_uri()} cannot be used: "
                 f"{type(exc).__name__}: {exc}")
    return connection


if __name__ == "__main__":
    sys.exit(main())
