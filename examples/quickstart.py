"""Quick start: many green threads publish through greenpools' pools, then consume.

    python examples/quickstart.py
    python examples/quickstart.py --broker amqp://guest:guest@127.0.0.1:5672//

Runs on gevent when it is installed (patched on the first lines, as every
gevent program does), on plain threads otherwise, and on kombu's
in-memory transport unless given a broker URL.  `python -m greenpools
demo` is the fuller version of this script.
"""

try:
    from gevent import monkey
except ImportError:  # no gevent: the threads below are OS threads
    pass
else:
    monkey.patch_all()

import argparse
import sys
import threading
import time
import uuid

from kombu import Connection, Consumer, Exchange, Queue

import greenpools
from greenpools.pools import connections, producers, set_limit

TASKS = 50
MESSAGES_PER_TASK = 10


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="memory://", help="kombu broker URL")
    args = parser.parse_args()
    # polling_interval only matters to the in-memory transport, which polls.
    connection = connect_or_exit(args.broker, {"polling_interval": 0.01})

    # At most 5 connections, and 5 producers, per broker; kombu's default is 10.
    set_limit(5)
    # Names of this run's own, deleted at the end: a shared broker keeps nothing.
    name = f"greenpools-quickstart-{uuid.uuid4().hex[:8]}"
    exchange = Exchange(name, type="direct", durable=False)
    queue = Queue(name, exchange, routing_key="quickstart", durable=False)

    # A pooled connection: declare the exchange, the queue and the binding.
    with connections[connection].acquire(block=True) as conn:
        queue(conn.default_channel).declare()

    def publish(task: int) -> None:
        for seq in range(MESSAGES_PER_TASK):
            # Waits (cooperatively under gevent) while all 5 producers are busy.
            with producers[connection].acquire(block=True, timeout=30) as producer:
                producer.publish(
                    {"task": task, "seq": seq}, exchange=exchange, routing_key="quickstart"
                )
                time.sleep(0)  # other work a real task does here lets the others run

    publishers = [threading.Thread(target=publish, args=(task,)) for task in range(TASKS)]
    for thread in publishers:
        thread.start()
    for thread in publishers:
        thread.join()

    received = []

    def on_message(body: dict[str, int], message: object) -> None:
        received.append(body)
        message.ack()  # type: ignore[attr-defined]

    expected = TASKS * MESSAGES_PER_TASK
    with connections[connection].acquire(block=True) as conn:
        with Consumer(conn, queues=[queue], callbacks=[on_message], accept=["json"]):
            try:
                while len(received) < expected:
                    conn.drain_events(timeout=5)
            except TimeoutError:
                pass  # nothing more arrived: report what did
        queue(conn.default_channel).delete()
        exchange(conn.default_channel).delete()

    print(f"backend:   {greenpools.get_backend().name}")
    # as_uri() masks the password, and shows ":**" even where there is none.
    print(f"broker:    {connection.as_uri() if connection.password else args.broker}")
    print(f"queue:     {name} (deleted)")
    print(f"published: {expected} messages from {TASKS} tasks")
    print(f"consumed:  {len(received)}")
    stats = producers[connection].get_stats()
    print(
        f"producers: {stats['connections_num']} made for {stats['requests_num']} "
        f"acquires, {stats['requests_queued']} of which waited for a free one"
    )
    return 0 if len(received) == expected else 1


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
        sys.exit(f"quickstart.py: kombu cannot use this broker URL: "
                 f"{type(exc).__name__}: {exc}{needs}")
    try:
        connection.ensure_connection(max_retries=0, timeout=5)
    except Exception as exc:
        sys.exit(f"quickstart.py: the broker at {connection.as_uri()} cannot be used: "
                 f"{type(exc).__name__}: {exc}")
    return connection


if __name__ == "__main__":
    sys.exit(main())
