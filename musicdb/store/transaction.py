"""Transactions: one context manager for every write, and failed writes as one line."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import duckdb

from musicdb.errors import StoreError, interrupted_statement
from musicdb.store import dbfile


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection, what: str, *,
                other: Callable[[duckdb.Error], Exception] | None = None) -> Iterator[None]:
    """The block in one transaction: committed at its end, rolled back on any exception
    (Ctrl-C included, so an interrupted write can be done again whole).

    `what` names what is written ("a batch of 64 files"). A DuckDB error becomes one line
    through write_failure; with `other`, errors that are not a full disk or a size limit are
    turned into the caller's own exception instead.
    """
    con.begin()
    try:
        with statements_interruptible():
            yield
            con.commit()  # the journal is written here: a full disk can fail the commit
    except duckdb.Error as exc:
        rollback(con)
        if other is not None and not dbfile.is_write_problem(str(exc)):
            raise other(exc) from exc
        raise write_failure(con, exc, what) from exc
    except BaseException:
        rollback(con)
        raise


@contextmanager
def statements_interruptible() -> Iterator[None]:
    """Ctrl-C (or ingest's SIGTERM) in the middle of one of the block's statements leaves it
    as the KeyboardInterrupt it is, not as DuckDB's RuntimeError (interrupted_statement): an
    interrupted ingest then stops and resumes as it does between statements."""
    try:
        yield
    except RuntimeError as exc:
        if interrupted_statement(exc):
            raise KeyboardInterrupt from exc
        raise


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Undo the open transaction, if the failure left one to undo."""
    # After a failed commit, or a write error that invalidated the database, there is no
    # transaction left (or no usable connection): the error being raised is the one to show.
    with contextlib.suppress(duckdb.Error):
        con.rollback()


def write_failure(con: duckdb.DuckDBPyConnection, exc: BaseException, what: str) -> StoreError:
    """A failed write as one line: a full disk or a file size limit says so and what to do.

    `what` names what was being written ("a batch of 64 files"). Raise the result `from exc`.
    """
    return StoreError(dbfile.write_problem(str(exc), database_path(con), what))


def database_path(con: duckdb.DuckDBPyConnection) -> str:
    """The connection's file, for messages."""
    try:
        row = con.execute("SELECT path FROM duckdb_databases() "
                          "WHERE database_name = current_database()").fetchone()
    except duckdb.Error:  # a failed write can leave the connection unusable
        return "the database"
    return row[0] if row and row[0] else "the database"
