"""Tables for the terminal (returns strings; printing happens in the CLI): plain text, or
drawn by ``rich`` for a terminal."""

from __future__ import annotations

import io
import shutil
from collections.abc import Sequence

__all__ = ["format_table", "human_bytes", "rich_table"]


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "-" if value is None else str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell; numbers right-aligned, text left-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    numeric = [
        all(isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for row in rows)
        if rows else False
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)
        ).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def rich_table(headers: Sequence[str], rows: Sequence[Sequence[object]],
               title: str | None = None) -> str:
    """The table drawn by ``rich`` for a terminal of the current width (ANSI styles)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(*headers, title=title, title_justify="left", header_style="bold")
    for header, column in zip(headers, table.columns):
        column.justify = "right" if rows and all(
            isinstance(row[headers.index(header)], (int, float))
            and not isinstance(row[headers.index(header)], bool) for row in rows) else "left"
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    out = io.StringIO()
    Console(file=out, force_terminal=True, width=shutil.get_terminal_size().columns).print(table)
    return out.getvalue().rstrip("\n")


def human_bytes(value: int) -> str:
    """1536 -> '1.5 KiB'."""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
