"""An ingest's hold on the database: the file is open only while something is written.

DuckDB lets one process write a file or many read it. An ingest that kept its connection for
the whole run would lock every reader out for hours; this one opens the file for each batch
and closes it after, and reads its plan on a read-only connection that readers can share.
Between batches the file is free. A batch's close does not checkpoint (DuckDB does, every
16 MB of journal; the run's last write does): readers replay the journal, and a checkpoint
at every close cost ~4 s a batch at 100,000 songs (benchmarks/ingest.py --at-scale).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import duckdb

from musicdb.errors import StoreError
from musicdb.store import access, dbfile
from musicdb.store.database import connect, reopen
from musicdb.store.transaction import statements_interruptible


class Writer:
    """The database an ingest writes, opened for each write (or, with `hold`, once).

    `with Writer(db) as w:` takes the ingest lock (one ingest per database); the first
    `w.writing()` opens through connect() (checks, migrations, views), later ones only open.
    `hold=True` keeps the first connection for the whole run, as before (benchmarks/ingest.py
    compares the two). `notify` shows the wait lines; each is shown once.
    """

    def __init__(self, db: Path, *, create: bool = True, hold: bool = False,
                 notify: access.Notify = access.stderr_notice) -> None:
        self.db, self.create, self.hold = Path(db), create, hold
        self._notify, self._shown = notify, ""
        self._stack = ExitStack()
        self._held: duckdb.DuckDBPyConnection | None = None
        self._prepared = False
        self._blocked_since: float | None = None
        # seconds each write connection took to open and close (its checkpoint included);
        # the first also migrates and makes the views
        self.open_close_s: list[float] = []

    def __enter__(self) -> Writer:
        dbfile.check_path(self.db, writer=True, create=self.create)  # before the lock file
        self._stack.enter_context(access.ingest_lock(self.db))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()  # the held connection first, then the ingest lock

    def notify(self, line: str) -> None:
        """Show a line, unless it is the one shown last (a wait retried is one wait)."""
        if line != self._shown:
            self._shown = line
            self._notify(line)

    @contextmanager
    def writing(self, patience: access.Patience = access.FOREVER, *, checkpoint: bool = False
                ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-write connection for one write; waits for other processes within
        `patience` (a StoreError past it). Its close leaves the checkpoint to DuckDB (when
        its journal reaches 16 MB) unless `checkpoint`: a checkpoint costs seconds in a
        large library, and readers see the commit without one (they replay the journal)."""
        if self._held is not None:
            yield self._held
            return
        t0 = time.perf_counter()
        if not self._prepared:
            opening = connect(self.db, create=self.create, patience=patience,
                              notify=self.notify)
        else:
            opening = reopen(self.db, patience=patience, notify=self.notify,
                             checkpoint=checkpoint)
        with ExitStack() as scope:
            con = (self._stack if self.hold else scope).enter_context(opening)
            self._prepared = True
            opened_s = time.perf_counter() - t0
            if self.hold:
                self._held = con
            with statements_interruptible():
                yield con
            t1 = time.perf_counter()
        self.open_close_s.append(opened_s + time.perf_counter() - t1)
        self._shown = ""  # written: a later wait is a new one, worth its line

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection that only reads (the plan): other readers may share the file."""
        if self._held is not None or not self._prepared:
            with self.writing() as con:
                yield con
            return
        with reopen(self.db, read_only=True, patience=access.FOREVER,
                    notify=self.notify) as con, statements_interruptible():
            yield con

    def attempt(self, write: Callable[[duckdb.DuckDBPyConnection], None], *,
                checkpoint: bool = False) -> bool:
        """write(con) if the file is free now or within half a second; False if another
        process holds it (the waiting line once it has held it for a second). While that
        wait lasts, later attempts try once and return at once."""
        patience = access.BRIEF if self._blocked_since is None else access.ONCE
        try:
            with self.writing(patience, checkpoint=checkpoint) as con:
                write(con)
        except StoreError as error:
            holder = access.held_by(error)
            if holder is None:
                raise
            now = time.monotonic()
            self._blocked_since = self._blocked_since or now
            if now - self._blocked_since >= access.COMMAND.notice_after_s:
                self.notify(access.waiting_line(self.db, holder, writer=True))
            return False
        self._blocked_since = None
        return True
