"""Figures and aligned tables as the reports print them."""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Sequence
from typing import IO, Any

#: How wide the tables may be when the output is not a terminal.
DEFAULT_WIDTH = 100


def output_width(stream: IO[str] | None = None) -> int:
    """How many columns the tables may take on ``stream`` (default: stdout).

    A terminal's own width; 100 when the output is not a terminal.
    """
    stream = sys.stdout if stream is None else stream
    if getattr(stream, "isatty", lambda: False)():
        return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    return DEFAULT_WIDTH


def fmt(value: Any) -> str:
    """A figure as the reports print it (``-`` when missing)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return yes_no(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    return str(value)


def yes_no(value: Any) -> str:
    """``yes``, ``no``, or ``-`` when missing."""
    return "-" if value is None else ("yes" if value else "no")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool = False,
          width: int | None = None) -> str:
    """Rows as an aligned text table, or as a Markdown table.

    A text table wider than ``width`` columns (default: :func:`output_width`)
    is cut into several, each repeating the first column; a row with
    nothing in one of them (only blanks and ``-``) is left out of it.
    """
    if markdown:
        lines = ["| " + " | ".join(headers) + " |",
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    width = output_width() if width is None else width
    text = [[str(cell) for cell in row] for row in (headers, *rows)]
    widths = [max(len(cell) for cell in column) for column in zip(*text, strict=True)]
    blocks = []
    for group in _column_groups(widths, width):
        lines = []
        for index, row in enumerate(text):
            if index and all(row[i] in ("", "-") for i in group):
                continue
            cells = [row[0].ljust(widths[0]), *(row[i].rjust(widths[i]) for i in group)]
            lines.append("  ".join(cells).rstrip())
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _column_groups(widths: Sequence[int], width: int) -> list[list[int]]:
    """The columns after the first, in runs that fit in ``width`` beside it
    (at least one column in each)."""
    groups: list[list[int]] = [[]]
    used = widths[0]
    for index in range(1, len(widths)):
        if groups[-1] and used + 2 + widths[index] > width:
            groups.append([])
            used = widths[0]
        groups[-1].append(index)
        used += 2 + widths[index]
    return groups


def wrap(line: str, width: int | None = None, indent: str = "") -> str:
    """``line`` folded to ``width`` columns (default: :func:`output_width`),
    continuation lines indented two more than ``indent``."""
    width = output_width() if width is None else width
    return textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_on_hyphens=False)
