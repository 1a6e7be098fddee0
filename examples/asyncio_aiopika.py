"""asyncio tasks publishing with confirms through a greenpools.aio.Pool of aio-pika channels.

    pip install -e '.[aio-pika]'   # in the checkout
    BROKER_URL=amqp://guest:guest@127.0.0.1:5672/ QUEUE=orders MESSAGES=1000 \\
        python examples/asyncio_aiopika.py

Twenty tasks share one connection and at most five channels, each opened
with publisher confirms: a task takes a channel for each message, waits for
the broker's confirm and gives the channel back; the pool hands channels
out first come, first served, closes any that broke and opens new ones.
The script declares ``QUEUE`` (durable) and leaves the messages in it for
whoever consumes them.  Exits 0 only when the broker confirmed every one.

``BROKER_URL`` defaults to ``amqp://guest:guest@127.0.0.1:5672/``,
``QUEUE`` to ``greenpools-asyncio-example``, ``MESSAGES`` to 1000.
"""

import asyncio
import os
import sys
import urllib.parse

import aio_pika
import aio_pika.abc
import aio_pika.exceptions

import greenpools.aio

TASKS = 20
CHANNELS = 5  # on one connection, shared by every task


def messages_from_environment() -> int:
    text = os.environ.get("MESSAGES", "1000")
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        sys.exit(f"asyncio_aiopika.py: MESSAGES must be a non-negative int, got {text!r}")
    return count


def masked(url: str) -> str:
    """``url`` with its password hidden, for printing."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":**@", 1)).geturl()

async def publish_all(url: str, queue_name: str, messages: int) -> int:
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, durable=True)
        before = queue.declaration_result.message_count

        async def is_open(channel: aio_pika.abc.AbstractChannel) -> None:
            if channel.is_closed:
                raise ConnectionError("channel closed")

        pool = greenpools.aio.Pool(
            lambda: connection.channel(publisher_confirms=True), CHANNELS,
            close=lambda channel: channel.close(), check=is_open, timeout=30,
            connection_errors=(aio_pika.exceptions.AMQPError, ConnectionError),
            name="aio-pika channels",
        )
        confirmed = 0

        async def publisher(task: int) -> None:
            nonlocal confirmed
            for seq in range(task, messages, TASKS):  # the messages, dealt out
                body = f"task {task} message {seq}".encode()
                async with pool.acquired() as channel:
                    # Returns once the broker confirmed it; raises if it refused.
                    await channel.default_exchange.publish(
                        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=queue_name,
                    )
                confirmed += 1

        async with pool:
            results = await asyncio.gather(
                *(publisher(task) for task in range(TASKS)), return_exceptions=True)
            stats = pool.get_stats()
        queue = await channel.declare_queue(queue_name, durable=True, passive=True)
        in_queue = queue.declaration_result.message_count

    errors = [result for result in results if isinstance(result, BaseException)]
    print(f"broker:     {masked(url)}")
    print(f"published:  {messages} messages from {TASKS} tasks, {confirmed} confirmed")
    print(f"channels:   {stats['connections_num']} opened (limit {CHANNELS}) for "
          f"{stats['requests_num']} acquires, {stats['requests_queued']} of which waited")
    print(f"queue:      {queue_name} holds {in_queue} messages ({before} before)")
    for error in errors:
        print(f"error:      {error!r}")
    return 0 if confirmed == messages and not errors else 1


def main() -> int:
    url = os.environ.get("BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
    queue_name = os.environ.get("QUEUE", "greenpools-asyncio-example")
    messages = messages_from_environment()
    try:
        return asyncio.run(publish_all(url, queue_name, messages))
    except (OSError, asyncio.TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        sys.exit(f"asyncio_aiopika.py: cannot publish to {masked(url)}: {exc!r}")


if __name__ == "__main__":
    sys.exit(main())
