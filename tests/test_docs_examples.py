"""Every Python code block of the documentation and the README runs, as written.

A block is a ``.. code-block:: python`` directive in ``docs/**/*.rst`` or a
```` ```python ```` fence in ``README.md``.  Each runs alone, in a fresh
interpreter at the checkout's top, and must exit 0.  A block that cannot
run here says so just before it: the RST comment ``.. fragment: <reason>``
or, in the README, ``<!-- fragment: <reason> -->``.  A block that talks to
RabbitMQ at the default URL runs against the test broker
(``GREENPOOLS_TEST_AMQP_URL``), and is skipped without one.

The blocks run once per suite, in the threading run.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import textwrap
from dataclasses import dataclass

import amqp.exceptions
import pytest
from e2e import support
from helpers import DEFAULT_AMQP_URL, require_amqp

pytestmark = pytest.mark.slow

RUN_TIMEOUT = 120.0
DOCS_DIR = os.path.join(support.REPO_ROOT, "docs")
README = os.path.join(support.REPO_ROOT, "README.md")

_RST_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. code-block:: python\s*$")
_RST_FRAGMENT = re.compile(r"^\s*\.\. fragment: \S")
_MD_FENCE = re.compile(r"^```python\s*$")
_MD_FRAGMENT = re.compile(r"^<!-- fragment: \S.*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One code block: where it is, its code, and the fragment reason if any."""

    path: str
    line: int
    code: str
    fragment: bool

    @property
    def id(self) -> str:
        return f"{os.path.relpath(self.path, support.REPO_ROOT)}:{self.line}"


def _previous_text_line(lines: list[str], index: int) -> str:
    """The last non-blank line before ``lines[index]``."""
    for line in reversed(lines[:index]):
        if line.strip():
            return line
    return ""


def rst_blocks(path: str) -> list[Block]:
    """The ``code-block:: python`` directives of one RST file."""
    with open(path, encoding="utf-8") as source:
        lines = source.read().splitlines()
    blocks = []
    for index, line in enumerate(lines):
        match = _RST_DIRECTIVE.match(line)
        if not match:
            continue
        indent = len(match.group("indent"))
        body: list[str] = []
        for following in lines[index + 1:]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following)
        # Options (":linenos:") come first, then a blank line, then the code.
        while body and (not body[0].strip() or body[0].strip().startswith(":")):
            body.pop(0)
        fragment = bool(_RST_FRAGMENT.match(_previous_text_line(lines, index)))
        blocks.append(Block(path, index + 1, textwrap.dedent("\n".join(body)), fragment))
    return blocks


def markdown_blocks(path: str) -> list[Block]:
    """The ```` ```python ```` fences of one Markdown file."""
    with open(path, encoding="utf-8") as source:
        lines = source.read().splitlines()
    blocks = []
    for index, line in enumerate(lines):
        if not _MD_FENCE.match(line):
            continue
        end = lines.index("```", index + 1)
        fragment = bool(_MD_FRAGMENT.match(_previous_text_line(lines, index)))
        blocks.append(Block(path, index + 1, "\n".join(lines[index + 1:end]), fragment))
    return blocks


def all_blocks() -> list[Block]:
    rst_files = sorted(glob.glob(os.path.join(DOCS_DIR, "**", "*.rst"), recursive=True))
    rst_files = [f for f in rst_files if os.sep + "_build" + os.sep not in f]
    return [b for f in rst_files for b in rst_blocks(f)] + markdown_blocks(README)


BLOCKS = all_blocks()


#: ``queue_declare("name"`` in an example: a queue it leaves on the broker.
QUEUE_DECLARED = re.compile(r"""queue_declare\(\s*["']([^"']+)["']""")


def queue_exists(name: str) -> bool:
    try:
        support.queue_count(name)
    except amqp.exceptions.NotFound:
        return False
    return True


def run_block(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as a script in a fresh interpreter at the checkout's top."""
    return subprocess.run(
        [support.PYTHON, "-c", code], cwd=support.REPO_ROOT, env=support.example_env(),
        capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )


def test_blocks_are_found() -> None:
    """The extraction finds the blocks this test exists for (an empty list passes nothing)."""
    pages = {os.path.relpath(b.path, support.REPO_ROOT) for b in BLOCKS}
    expected = {"README.md", os.path.join("docs", "quickstart.rst"),
                os.path.join("docs", "index.rst")}
    assert expected <= pages
    assert sum(not b.fragment for b in BLOCKS) >= 20


@pytest.mark.skipif(support.BACKEND != "threading", reason=support.ONCE_PER_SUITE)
@pytest.mark.parametrize("block", [b for b in BLOCKS if not b.fragment], ids=lambda b: b.id)
def test_block_runs(block: Block) -> None:
    code = block.code
    made: list[str] = []
    if DEFAULT_AMQP_URL in code:
        require_amqp()
        code = code.replace(DEFAULT_AMQP_URL, support.AMQP_URL)
        # The queues the example makes go afterwards; one that was there
        # before (a queue of someone else's on the broker) stays.
        made = [name for name in QUEUE_DECLARED.findall(code) if not queue_exists(name)]
    try:
        result = run_block(code)
    finally:
        for name in made:
            support.delete_queue(name)
    assert result.returncode == 0, (
        f"{block.id} exited {result.returncode}:\n{block.code}\n--- stdout\n{result.stdout}"
        f"\n--- stderr\n{result.stderr}"
    )


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.fragment], ids=lambda b: b.id)
def test_fragment_compiles(block: Block) -> None:
    """A fragment need not run here, but it must still be Python."""
    compile(block.code, block.id, "exec")
