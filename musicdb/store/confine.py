"""User-written SQL (`musicdb sql`, `--where`): one read-only query that sees only the database.

Two layers, so neither has to be perfect. DuckDB's own settings, locked so no statement can
change them back, keep files, extensions and the network out of reach (the database file is
still readable: DuckDB allows what it has attached). And a check of the parsed statement lets
through a single SELECT only: that refuses COPY, EXPORT, ATTACH, DETACH, USE, SET, PRAGMA,
CHECKPOINT, CREATE TEMP ... and `EXPLAIN ANALYZE COPY`, which the settings alone would not stop
from writing inside a folder the user allowed to be read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from musicdb.errors import QueryRefused

# What the parser calls SELECT includes SHOW, DESCRIBE, SUMMARIZE, VALUES, FROM-first queries,
# PIVOT and PRAGMA table_info (DuckDB rewrites those into selects).
ALLOWED = {duckdb.StatementType.SELECT}

# enable_external_access covers every file, ATTACH, INSTALL and LOAD of non-built-in
# extensions; the autoload pair stops a query from pulling an extension in by itself.
SETTINGS = (
    ("enable_external_access", False),
    # A table name must not reach Python objects of the calling frame (DuckDB's replacement
    # scans of Arrow tables and data frames): the query sees the database only.
    ("python_enable_replacements", False),
    ("autoinstall_known_extensions", False),
    ("autoload_known_extensions", False),
    ("lock_configuration", True),  # last: after it, SET and RESET fail
)

FILES_HINT = ("musicdb sql and --where read only the database; `musicdb sql --allow-files DIR` "
              "lets a query read files under DIR")


def lock(con: duckdb.DuckDBPyConnection, allow_files: Sequence[Path] = ()) -> None:
    """Confine the connection for good: no file outside the database except under allow_files.

    Idempotent. The settings belong to the database instance, so every cursor of it is
    confined too; anything that must read files through DuckDB runs before this.
    """
    if _locked(con):
        return
    allowed = [_allowed_entry(Path(p)) for p in allow_files]
    con.execute("SET allowed_directories = ?", [[p for p in allowed if p.endswith("/")]])
    con.execute("SET allowed_paths = ?", [[p for p in allowed if not p.endswith("/")]])
    for name, value in SETTINGS:
        con.execute(f"SET {name} = {str(value).lower()}")


def _locked(con: duckdb.DuckDBPyConnection) -> bool:
    return con.execute("SELECT current_setting('lock_configuration')").fetchone()[0]


def _allowed_entry(path: Path) -> str:
    """A folder as DuckDB's allowed_directories wants it (trailing '/'), or a file's path."""
    real = path.expanduser().resolve()
    if real.is_dir():
        return str(real).rstrip("/") + "/"
    if real.is_file():
        return str(real)
    raise QueryRefused(f"--allow-files {path}: no such file or folder")


def single_select(con: duckdb.DuckDBPyConnection, query: str) -> str:
    """The query itself if it is exactly one SELECT-like statement; else QueryRefused."""
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise QueryRefused(first_line(exc)) from exc
    if len(statements) != 1:
        raise QueryRefused(f"musicdb sql runs exactly one statement, not {len(statements)}")
    kind = statements[0].type
    if kind not in ALLOWED:
        raise QueryRefused(f"musicdb sql is read-only: it runs SELECT queries (also SHOW, "
                           f"DESCRIBE, SUMMARIZE), not {kind.name}")
    return query


def where_clause(where: str) -> str:
    """A --where condition as one SQL expression, rendered back by DuckDB's parser.

    The rendering is what gets pasted into our query: a comment or a closing parenthesis in
    the user's text cannot end our statement and start another one.
    """
    try:
        return str(duckdb.SQLExpression(where))
    except duckdb.Error as exc:
        raise QueryRefused(f"--where {where!r} is not one SQL condition: "
                           f"{first_line(exc)}") from exc


def first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def refusal(exc: duckdb.Error, what: str) -> QueryRefused | None:
    """DuckDB's permission errors as one line that says how to allow files; None otherwise."""
    if isinstance(exc, duckdb.PermissionException):
        return QueryRefused(f"{what}: {first_line(exc)} ({FILES_HINT})")
    return None
