"""How listing commands print rows: a table for people, full values for pipes, JSON or CSV.

A command gives column names and rows (tuples in column order) to `print_rows`, with the
format `output_format` chose from its `--json`/`--csv` flags:

    def evaluations(..., as_json: AsJson = False, as_csv: AsCsv = False) -> None:
        fmt = output_format(as_json, as_csv)         # before any work: a usage error is cheap
        ...
        print_rows(["experiment", "songs", "accuracy"], rows, fmt,
                   terminal={"songs": count, "accuracy": "{:.1%}".format})

- no flag, stdout a terminal: a rich table; `terminal` formats a column's values for the eye
  (rounding, units). Rich may wrap or shorten cells to fit the window.
- no flag, stdout not a terminal (`| cat`, `> file`): tab-separated lines under a header line,
  every value in full (no rounding, no "…"); a tab, newline or backslash in a value shows as
  \\t, \\n, \\\\ so each row stays one line.
- `--json`: ONE JSON array of objects (column name -> value), indented, not JSON Lines: every
  listing here is small enough to hold, and `jq '.[]'` gives lines when wanted. NaN and
  infinities become null (they are not JSON).
- `--csv`: Python's csv module, a header row, then the rows; None is an empty field.
"""

from __future__ import annotations

import csv
import json
import math
import numbers
import sys
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from musicdb.cli.app import out
from musicdb.terminal import one_line


class OutputFormat(Enum):
    TABLE = "table"  # rich table on a terminal, tab-separated full values otherwise
    JSON = "json"
    CSV = "csv"


AsJson = Annotated[bool, typer.Option(
    "--json", help="Print a JSON array of objects, one per row (not with --csv).")]
AsCsv = Annotated[bool, typer.Option(
    "--csv", help="Print CSV with a header row (not with --json).")]


def output_format(as_json: bool, as_csv: bool) -> OutputFormat:
    """The format the two flags ask for; both at once is a usage error (exit 2, one line)."""
    if as_json and as_csv:
        raise typer.BadParameter("use one of them, not both", param_hint="--json / --csv")
    if as_json:
        return OutputFormat.JSON
    return OutputFormat.CSV if as_csv else OutputFormat.TABLE


def print_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: OutputFormat, *,
               terminal: Mapping[str, Callable[[Any], str]] | None = None,
               title: str | None = None, console: Console | None = None) -> None:
    """Print rows (tuples in the order of `columns`) in `fmt`; `terminal` maps a column name to
    how its values look in the terminal table only (pipes, JSON and CSV get the values)."""
    if fmt is OutputFormat.JSON:
        print_json([dict(zip(columns, row, strict=True)) for row in rows])
    elif fmt is OutputFormat.CSV:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
    else:
        console = console or out
        if console.is_terminal:
            console.print(_table(columns, rows, terminal or {}, title))
        else:
            _print_plain(columns, rows)


def print_json(value: Any) -> None:
    """Any JSON-able value (dates and paths as text), indented, NaN as null."""
    print(json.dumps(_finite(value), indent=2, default=str, ensure_ascii=False))


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]],
           terminal: Mapping[str, Callable[[Any], str]], title: str | None) -> Table:
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(columns):
        numeric = bool(rows) and all(_is_number(row[i]) or row[i] is None for row in rows)
        table.add_column(name, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(one_line(terminal[name](v) if name in terminal else _for_eye(v))
                        for name, v in zip(columns, row, strict=True)))
    return table


def _print_plain(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    lines = ["\t".join(columns)]
    lines += ["\t".join(_plain(v) for v in row) for row in rows]
    sys.stdout.write("\n".join(lines) + "\n")


def count(value: int | None) -> str:
    """A `terminal` formatter for counts: thousands separators (2,333). Not the default, which
    would write ids and years as 1,024 and 2,026."""
    return "" if value is None else f"{value:,}"


def _for_eye(value: Any) -> str:
    """Default look in the terminal: three decimals, blank for None, integers as they are."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}"
    return str(value)


def _plain(value: Any) -> str:
    """A value in full on one line of a tab-separated row."""
    if value is None:
        return ""
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace(
        "\r", "\\r")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: Any) -> Any:
    """JSON-ready: numpy's scalars as Python numbers (not their str), NaN and inf as null."""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
