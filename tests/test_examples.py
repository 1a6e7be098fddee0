"""The single-file examples, run as a user runs them: ``python examples/NAME.py ...``.

Each runs in a fresh interpreter (it chooses its own backend), once per
suite, in the threading run; the assertions are on what it prints and on
what it leaves behind on the servers.  The gunicorn and Celery examples
have their own tests (test_e2e_gunicorn.py, test_e2e_celery.py).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e import support
from helpers import hiding, redis_url, require_amqp, require_redis

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 120.0


def once_per_suite(marker: Any) -> Any:
    """``marker`` (the service the test needs) in the threading run; a plain
    skip in the others, which under ``CI=true`` must not turn into a failure."""
    if support.BACKEND == "threading":
        return marker
    return pytest.mark.skip(reason=support.ONCE_PER_SUITE)


def run_example(name: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python examples/<name> <args>`` from the checkout's top, as the README shows."""
    return subprocess.run(
        [support.PYTHON, os.path.join("examples", name), *args], cwd=support.REPO_ROOT,
        env=support.example_env(**env), capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )


def printed(result: subprocess.CompletedProcess[str], label: str) -> str:
    """The rest of the line the example printed after ``label:``."""
    match = re.search(rf"^{label}:\s+(.*)$", result.stdout, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{result.stdout}\n{result.stderr}"
    return match.group(1)


def queue_exists(name: str) -> bool:
    try:
        support.queue_count(name)
    except Exception as exc:  # the broker answers a passive declare with 404
        if "NOT_FOUND" in str(exc) or "404" in str(exc):
            return False
        raise
    return True


@pytest.fixture
def amqp_queue() -> Iterator[str]:
    """A queue name of this test's own; deleted afterwards if the example left it."""
    require_amqp()
    name = support.unique_queue_name("example")
    try:
        yield name
    finally:
        if queue_exists(name):
            support.delete_queue(name)


@once_per_suite(pytest.mark.broker)
def test_threaded_publisher_delivers_every_message_once_and_deletes_its_queue(
    amqp_queue: str,
) -> None:
    result = run_example("threaded_publisher.py", "--queue", amqp_queue,
                         "--threads", "6", "--messages", "40")

    assert result.returncode == 0, result.stdout + result.stderr
    assert printed(result, "backend") == "threading"
    assert printed(result, "published") == "240 messages from 6 threads"
    assert printed(result, "consumed") == "240 distinct, 0 duplicates"
    made = re.match(r"(\d+) made \(limit 4\) for 240 acquires", printed(result, "producers"))
    assert made and 1 <= int(made.group(1)) <= 4, printed(result, "producers")
    assert "guest:**@" in printed(result, "broker")
    assert not queue_exists(amqp_queue)


@pytest.fixture
def redis_key() -> Iterator[str]:
    """A Redis key of this test's own; deleted afterwards if the example left it."""
    url = require_redis()
    import redis

    name = f"greenpools.test.example.{os.getpid()}.{uuid.uuid4().hex[:10]}"
    client = redis.Redis.from_url(url)
    try:
        yield name
    finally:
        client.delete(name)
        client.close()


@once_per_suite(pytest.mark.redis)
def test_generic_pool_counts_replaces_a_dead_client_and_times_out(redis_key: str) -> None:
    import redis

    result = run_example("generic_pool.py", "--redis", redis_url(), "--key", redis_key)

    assert result.returncode == 0, result.stdout + result.stderr
    assert printed(result, "counted") == "1000 from 20 threads through 4 clients"
    # The client whose connection Redis dropped failed its check and was
    # never handed out; the caller got a live one.
    check = re.match(r"client (\d+) lost its connection; the pool handed out client (\d+)",
                     printed(result, "check"))
    assert check and check.group(1) != check.group(2), printed(result, "check")
    assert "failed its check" in result.stdout
    gave_up = re.fullmatch(r"with all 4 clients lent, a caller gave up after ([\d.]+) s: "
                           r"PoolTimeout", printed(result, "timeout"))
    assert gave_up and float(gave_up.group(1)) < 30, printed(result, "timeout")
    assert printed(result, "stats").endswith("1 gave up")
    with redis.Redis.from_url(redis_url()) as client:
        assert not client.exists(redis_key)


def test_generic_pool_without_redis_is_one_line_and_a_non_zero_exit() -> None:
    """Nothing listens on the port (bound, never listening: the kernel refuses)."""
    if support.BACKEND != "threading":
        pytest.skip(support.ONCE_PER_SUITE)
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        result = run_example("generic_pool.py", "--redis", f"redis://:s3cret@127.0.0.1:{port}/0")

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == "", result.stdout
    [line] = result.stderr.splitlines()
    assert line.startswith("generic_pool.py: cannot use Redis: ConnectionError: "), line
    assert f"127.0.0.1:{port}" in line and "refused" in line, line


def test_quickstart_masks_the_password_it_prints() -> None:
    """On kombu's in-memory transport: no broker needed, so every backend's
    run may do it, but once is enough."""
    if support.BACKEND != "threading":
        pytest.skip(support.ONCE_PER_SUITE)
    result = run_example("quickstart.py", "--broker", "memory://guest:s3cret@localhost//")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "s3cret" not in result.stdout + result.stderr
    assert printed(result, "broker") == "memory://guest:**@localhost//"
    assert printed(result, "consumed") == "500"
    without_password = run_example("quickstart.py", "--broker", "memory://")
    assert printed(without_password, "broker") == "memory://"  # no ":**" for a password


@once_per_suite(pytest.mark.broker)
def test_quickstart_deletes_its_queue_and_exchange_from_the_broker() -> None:
    url = require_amqp()
    result = run_example("quickstart.py", "--broker", url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert printed(result, "consumed") == "500"
    name = printed(result, "queue").removesuffix(" (deleted)")
    assert name.startswith("greenpools-quickstart-"), name
    assert not queue_exists(name)
    assert not exchange_exists(name)


def exchange_exists(name: str) -> bool:
    from kombu import Connection

    with Connection(require_amqp()) as conn:
        try:
            conn.default_channel.exchange_declare(name, "direct", passive=True)
        except Exception as exc:  # the broker answers a passive declare with 404
            if "NOT_FOUND" in str(exc) or "404" in str(exc):
                return False
            raise
    return True


@pytest.mark.parametrize("example", ["quickstart.py", "threaded_publisher.py"])
def test_a_redis_url_without_the_redis_client_names_the_install(
    tmp_path: Path, example: str
) -> None:
    if support.BACKEND != "threading":
        pytest.skip(support.ONCE_PER_SUITE)
    result = run_example(example, "--broker", "redis://:s3cret@127.0.0.1:1/0",
                         **hiding(tmp_path, "redis", "packaging"))

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert output.splitlines() == [
        f"{example}: kombu cannot use this broker URL: ImportError: No module named "
        f"'packaging' (hidden by the test) (redis:// URLs need the redis client: "
        f"pip install 'kombu[redis]')"
    ], output


EXAMPLES_DIR = Path(support.REPO_ROOT) / "examples"


def public_names() -> dict[str, set[str]]:
    """The public modules of greenpools (what the README documents), each with
    the names it exports: ``greenpools.aio`` too once it exists."""
    import greenpools
    import greenpools.pools

    public = {"greenpools": {*greenpools.__all__, "__version__"},
              "greenpools.pools": set(greenpools.pools.__all__)}
    if importlib.util.find_spec("greenpools.aio") is not None:
        aio = importlib.import_module("greenpools.aio")
        public["greenpools.aio"] = set(getattr(aio, "__all__", ()))
    return public


def greenpools_names_used(path: Path) -> Iterator[tuple[str, str | None]]:
    """Each greenpools module ``path`` imports, with the name it takes from it
    (None for the module itself), and each ``greenpools.NAME`` it reads."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "greenpools":
                    yield alias.name, None
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "greenpools":
            for alias in node.names:
                yield str(node.module), alias.name
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == "greenpools":
            yield "greenpools", node.attr


def test_the_examples_use_only_public_greenpools_names() -> None:
    """Code copied from an example must not depend on greenpools' internals."""
    public = public_names()
    private = []
    examples = sorted(EXAMPLES_DIR.rglob("*.py"))
    assert len(examples) >= 6, examples
    for path in examples:
        for module, name in greenpools_names_used(path):
            if module not in public or (name is not None and name not in public[module]
                                        and f"{module}.{name}" not in public):
                shown = module if name is None else f"{module}: {name}"
                private.append(f"{path.relative_to(EXAMPLES_DIR)} uses {shown}")
    assert not private, "\n".join(private)


@once_per_suite(pytest.mark.broker)
@pytest.mark.parametrize("example", ["quickstart.py", "threaded_publisher.py"])
def test_a_wrong_password_is_one_line_and_a_non_zero_exit(example: str) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(require_amqp())
    wrong = f"amqp://guest:wrong-pw@{parts.hostname}:{parts.port or 5672}//"
    result = run_example(example, "--broker", wrong)

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output and "wrong-pw" not in output, output
    assert f"{example}: the broker at amqp://guest:**@" in output, output
    assert "ACCESS_REFUSED" in output and len(output.splitlines()) == 1, output



@once_per_suite(pytest.mark.broker)
def test_asyncio_aiopika_example_publishes_every_message_confirmed(amqp_queue: str) -> None:
    result = run_example("asyncio_aiopika.py", QUEUE=amqp_queue, MESSAGES="200")

    assert result.returncode == 0, result.stdout + result.stderr
    assert printed(result, "published") == "200 messages from 20 tasks, 200 confirmed"
    opened = re.match(r"(\d+) opened \(limit 5\) for 200 acquires", printed(result, "channels"))
    assert opened and 1 <= int(opened.group(1)) <= 5, printed(result, "channels")
    assert printed(result, "queue") == f"{amqp_queue} holds 200 messages (0 before)"
    assert support.queue_count(amqp_queue) == 200  # left for whoever consumes them


def test_asyncio_aiopika_example_refuses_a_bad_messages_count_in_one_line() -> None:
    result = run_example("asyncio_aiopika.py", MESSAGES="many")

    assert result.returncode != 0
    assert result.stderr.strip() == (
        "asyncio_aiopika.py: MESSAGES must be a non-negative int, got 'many'")
