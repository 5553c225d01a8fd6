"""Who holds the database file, how long to wait for it, and the ingest's own lock.

DuckDB lets one process write a file, or any number read it, never both at once: a process
that opens it while another holds a conflicting lock gets "Could not set lock on file ...
Conflicting lock is held in /path/program (PID N)". That message names the holder, and says
"you would be able to open this database in read-only mode" when the holder only reads.
Here it becomes a Holder ("the duckdb shell (PID 4242)", "musicdb ingest (PID 17)"), and a
Patience says how long a command retries before it gives one line saying what to do.

An ingest holds the file only while it writes a batch, so commands meeting it retry briefly;
a shell or another program will not let go by itself, so they get the line at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import duckdb

from musicdb.errors import StoreError

LOCK_HOLDER = re.compile(r"lock is held in (.+?) \(PID (\d+)\)")
HOLDER_ONLY_READS = "would be able to open this database in read-only mode"
INGEST_LOCK_SUFFIX = ".ingest-lock"
PROBE_S = 1.0  # how long a probe of the ingest lock may make an ingest starting wait

T = TypeVar("T")
Notify = Callable[[str], None]


@dataclass(frozen=True)
class Holder:
    """The process holding the database file, as DuckDB's lock message and /proc name it."""

    pid: int | None
    program: str  # "the duckdb shell", "musicdb ingest", "python", or the program's file name
    writing: bool  # it has the file open for writing (else it only reads)

    @property
    def is_musicdb(self) -> bool:
        return self.program.startswith("musicdb")

    @property
    def is_ingest(self) -> bool:
        return self.program == "musicdb ingest"

    @property
    def is_shell(self) -> bool:
        return self.program == "the duckdb shell"

    def __str__(self) -> str:
        return f"{self.program} (PID {self.pid})" if self.pid else self.program


def lock_holder(message: str, db: Path | None = None) -> Holder | None:
    """The holder DuckDB's error names, or None when the error is not a lock conflict."""
    if "Could not set lock" not in message:
        return None
    found = LOCK_HOLDER.search(message)
    pid = int(found[2]) if found else None
    fallback = Path(found[1]).name if found else "another process"
    program = process_name(pid, fallback, db)
    return Holder(pid, program, writing=HOLDER_ONLY_READS not in message)


def process_name(pid: int | None, fallback: str, db: Path | None = None) -> str:
    """What a person calls the process: its command line, when /proc shows it."""
    if pid is not None and db is not None and ingest_holder(db) == pid:
        return "musicdb ingest"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except (OSError, TypeError):  # another user's process under hidepid, not Linux, no PID
        argv = [fallback]
    return name_of(argv) if argv and argv[0] else fallback


def name_of(argv: list[str]) -> str:
    """'musicdb ingest', 'the duckdb shell', 'python', or the program's file name."""
    words = [w for w in argv if w]
    if Path(words[0]).name.startswith("python"):  # an entry-point script, or python -m
        words = words[2:] if words[1:2] == ["-m"] else words[1:]
        if not words or Path(words[0]).name not in ("musicdb", "duckdb"):
            return "python"
    program = Path(words[0]).name
    if program == "duckdb":
        return "the duckdb shell"
    if program == "musicdb":
        command = next((w for w in words[1:] if not w.startswith("-")), None)
        return f"musicdb {command}" if command else "musicdb"
    return program


@dataclass(frozen=True)
class Patience:
    """How long a command retries a database another process holds, before giving up.

    `musicdb_s` for a musicdb process (an ingest writes a batch in well under a second, a
    command reads for a second or two); `other_s` for anything else: a shell or a program
    will not let go by itself. None waits as long as it takes (Ctrl-C stops it).
    """

    musicdb_s: float | None = 30.0
    other_s: float | None = 1.0
    notice_after_s: float = 1.0  # a wait shorter than this is not worth a line
    poll_s: float = 0.2

    def limit(self, holder: Holder) -> float | None:
        return self.musicdb_s if holder.is_musicdb else self.other_s


COMMAND = Patience()  # every command but ingest
FOREVER = Patience(musicdb_s=None, other_s=None)  # an ingest with results to write
# An ingest's batch: a short grace for a reader that is about to let go (a command, a query
# from `duckdb -c`), then one try per retry while it waits, so its analysis goes on.
BRIEF = Patience(musicdb_s=0.5, other_s=0.5, poll_s=0.05)
ONCE = Patience(musicdb_s=0.0, other_s=0.0)


def busy(message: str, holder: Holder) -> StoreError:
    """The database is held by another process past a command's patience: the one line, and
    the holder for a caller that retries later (held_by)."""
    error = StoreError(message)
    error.holder = holder  # type: ignore[attr-defined]  # errors.py is the place for a class
    return error


def held_by(error: StoreError) -> Holder | None:
    """The holder, when `error` is a database held by another process (busy())."""
    return getattr(error, "holder", None)


def stderr_notice(text: str) -> None:
    """The default wait notice: one line on stderr. Every command opens the database before
    it prints anything, so the line stands alone; a library caller passes its own `notify`."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def opened(attempt: Callable[[], T], db: Path, *, writer: bool, patience: Patience = COMMAND,
           notify: Notify = stderr_notice) -> T:
    """attempt() until it stops failing on DuckDB's lock, within `patience`.

    Any other failure is raised at once. One notice per holder, after notice_after_s.
    """
    started, noticed = time.monotonic(), None
    while True:
        try:
            return attempt()
        except duckdb.Error as exc:
            holder = lock_holder(str(exc), db)
            if holder is None:
                raise
            waited, limit = time.monotonic() - started, patience.limit(holder)
            if limit is not None and waited >= limit:
                raise busy(refusal(db, holder, waited=waited), holder) from exc
            if waited >= patience.notice_after_s and holder != noticed:
                notify(waiting_line(db, holder, writer=writer))
                noticed = holder
        time.sleep(patience.poll_s)


def waiting_line(db: Path, holder: Holder, *, writer: bool) -> str:
    """The one line a waiting command shows."""
    if holder.is_ingest and not writer:
        return f"waiting for {holder} to finish writing a batch to {db.name} ..."
    if holder.is_musicdb:
        return f"waiting for {holder} to release {db.name} ..."
    return (f"waiting for {holder} to release {db.name} (close it: this goes on as soon as "
            "it is closed) ...")


def refusal(db: Path, holder: Holder, *, waited: float = 0.0) -> str:
    """One line: the database, the program holding it and its PID, and what to do."""
    if holder.is_musicdb:
        return (f"{db} is in use by {holder}, still after {waited:.0f} s: wait for it to "
                "finish, then run the same command again")
    if holder.writing:
        advice = ("close it, or open the shell with -readonly" if holder.is_shell else
                  "close that connection, or open it read-only, then run the same command again")
        return f"{db} is open for writing in {holder}: {advice}"
    # Only a writer is kept out by a reader.
    return (f"{db} is open in {holder}, and DuckDB lets no process write while another reads: "
            "close it, then run the same command again")


# --- the ingest's lock: one ingest per database at a time ----------------------------------


def ingest_lock_path(db: Path) -> Path:
    return db.with_name(db.name + INGEST_LOCK_SUFFIX)


@contextlib.contextmanager
def ingest_lock(db: Path) -> Iterator[None]:
    """Hold `<db>.ingest-lock` for a whole ingest, so that a second one cannot interleave
    (both would analyse the same files).

    A separate file, not a lock on the database: DuckDB locks the database with POSIX fcntl
    locks, which the kernel drops for the whole process when any descriptor of that file is
    closed. flock on a file of our own cannot disturb them. The file holds the PID, and is
    removed when the run ends; one left by a killed run holds no lock and is taken over.
    """
    path = ingest_lock_path(db)
    fd = _take(path, db)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # still holding it: whoever opens it next finds it gone, and retries
        os.close(fd)


def _take(path: Path, db: Path) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if not _flock_within(fd, PROBE_S):
            pid = _read_pid(fd)
            os.close(fd)
            who = f"musicdb ingest (PID {pid})" if pid else "another musicdb ingest"
            raise StoreError(f"{who} is updating {db} already: let it finish, then run "
                                "this again (it does what the first did not)")
        if _same_file(fd, path):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)  # removed by the run that held it while we waited: take a fresh one


def _flock_within(fd: int, seconds: float) -> bool:
    """Take the exclusive lock, retrying for `seconds`: ingest_holder() in another command
    takes a shared lock for an instant, which must not pass for a running ingest."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def ingest_holder(db: Path) -> int | None:
    """The PID of the ingest updating db now, or None (no lock file, or nobody holds it)."""
    try:
        fd = os.open(ingest_lock_path(db), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or -1
        return None  # a file a killed run left: nobody holds it
    finally:
        os.close(fd)  # also drops the shared lock just taken
