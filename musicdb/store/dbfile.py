"""What a --db path holds, judged before DuckDB opens it: opening is not harmless.

DuckDB opening a SQLite file tries to install the sqlite extension (a download); a writer
adds musicdb's tables to whatever DuckDB file it is given. So the path is checked first, by
its bytes and permissions, and refused with one line that says what it is and what to do.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

from musicdb.errors import StoreError
from musicdb.store import access

DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB file, after the header's checksum
HEADER_SIZE = 4096  # DuckDB's main header block: checksum, magic, storage version, flags...
FOREIGN_MAGIC = {  # other formats people pass as --db by mistake
    b"SQLite format 3\x00": "a SQLite database",
    b"PAR1": "a Parquet file",
    b"\x1f\x8b": "a gzip file",
    b"PK\x03\x04": "a zip file",
}
CREATE_HINT = "create one with `musicdb ingest` or `musicdb import`"
NEW_DB_HINT = ("pass --db a musicdb database (`musicdb ingest` or `musicdb import` with a new "
               "file name creates one)")


def check_path(db: Path, *, writer: bool, create: bool) -> bool:
    """Refuse what cannot be a musicdb database, touching nothing. True if db is to be created."""
    try:
        info = db.stat()
    except FileNotFoundError:
        if not (writer and create):
            raise StoreError(f"no database at {db}; {CREATE_HINT}") from None
        _check_folder(db)
        return True
    except OSError as exc:
        raise StoreError(f"cannot read {db}: {exc.strerror}") from exc
    if stat.S_ISDIR(info.st_mode):
        raise StoreError(f"{db} is a folder, not a database file; {NEW_DB_HINT}")
    if not stat.S_ISREG(info.st_mode):  # a FIFO would block the read below forever
        raise StoreError(f"{db} is not a regular file (a pipe, socket or device); {NEW_DB_HINT}")
    if info.st_size == 0:
        raise StoreError(f"{db} is empty (0 bytes): not a database, or a copy that did not "
                         f"finish. musicdb leaves it alone: delete it, then {CREATE_HINT}")
    _check_duckdb_bytes(db)
    if writer:
        _check_writable(db)
    return False


def _check_folder(db: Path) -> None:
    folder = db.parent
    if not folder.is_dir():
        raise StoreError(f"no folder {folder} for the database {db.name}: create the folder "
                         "first, or pass --db a path in an existing one")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(f"cannot create {db}: the folder {folder} is read-only; pass --db a "
                         "path in a folder you can write to")


def _check_writable(db: Path) -> None:
    if not os.access(db, os.W_OK):
        raise StoreError(f"{db} is read-only, and this command writes to it: make it writable "
                         f"(chmod u+w), or work on a copy; reading commands (info, similar, "
                         "export, ...) still work on it")
    if not os.access(db.parent, os.W_OK | os.X_OK):
        raise StoreError(f"the folder holding {db} is read-only, and DuckDB writes its journal "
                         f"({db.name}.wal) beside the database: make the folder writable, or "
                         "work on a copy elsewhere; reading commands still work on it")


def read_header(db: Path) -> bytes:
    with db.open("rb") as f:
        return f.read(HEADER_SIZE)


def _check_duckdb_bytes(db: Path) -> None:
    try:
        head = read_header(db)
    except OSError as exc:
        raise StoreError(f"cannot read {db}: {exc.strerror}") from exc
    if head[8:12] == DUCKDB_MAGIC:
        return
    what = next((name for magic, name in FOREIGN_MAGIC.items() if head.startswith(magic)), None)
    if what is None:
        what = "a text file" if _looks_like_text(head) else "not a DuckDB file (unknown content)"
    raise StoreError(f"{db} is {what}, not a musicdb (DuckDB) database; musicdb leaves it "
                     f"alone: {NEW_DB_HINT}")


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:  # a multi-byte character cut at the end of the block is text too
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(c.isprintable() or c in "\t\n\r" for c in text)


def header_library_version(db: Path) -> str | None:
    """The DuckDB release named in the header (e.g. 'v1.5.6'), when it names one."""
    try:
        raw = read_header(db)[52:84].split(b"\x00", 1)[0]
    except OSError:
        return None
    text = raw.decode("ascii", errors="replace")
    return text if re.fullmatch(r"v\d+\.\d+\.\d+\S*", text) else None


STORAGE_VERSION = re.compile(r"version number (\d+), but we can only read versions? (?:between "
                             r"(\d+) and (\d+)|(\d+))")


def open_failure(db: Path, message: str, duckdb_version: str) -> StoreError:
    """DuckDB's error on opening db, as one line saying what the file is and what to do."""
    first = first_line(message)
    version = STORAGE_VERSION.search(message)
    if version:
        stored = int(version[1])
        newest = int(version[3] or version[4])
        written_by = header_library_version(db) or "another DuckDB release"
        if stored > newest:
            return StoreError(
                f"{db} was written by a newer DuckDB ({written_by}, storage version {stored}) "
                f"than the DuckDB {duckdb_version} this musicdb uses (storage up to {newest}): "
                "upgrade musicdb and duckdb (pip install -U musicdb duckdb)")
        return StoreError(
            f"{db} was written by an old DuckDB (storage version {stored}) that DuckDB "
            f"{duckdb_version} cannot read: open it with the DuckDB that wrote it, EXPORT "
            "DATABASE, and IMPORT DATABASE into a new file")
    holder = access.lock_holder(message, db)
    if holder is not None:  # connect() retries first (musicdb.store.access); this is its end
        return StoreError(access.refusal(db, holder))
    if "checksum" in message or "Corrupt" in message or "not a valid DuckDB" in message:
        why = "a checksum does not match its content" if "checksum" in message else first
        return StoreError(f"{db} is a damaged DuckDB file ({why}): restore it from a backup, "
                          "or start a new database with --db NEW.duckdb")
    if os.strerror(errno.EACCES) in message or os.strerror(errno.EROFS) in message:
        return StoreError(f"cannot open {db}: {first}; check its permissions and its folder's")
    return StoreError(f"cannot open {db}: {first}")


DISK_FULL = os.strerror(errno.ENOSPC)  # "No space left on device"
FILE_TOO_LARGE = os.strerror(errno.EFBIG)  # "File too large": `ulimit -f`, or the filesystem's


def write_problem(message: str, db: Path | str, what: str) -> str:
    """One line for a failed write: the disk is full, a file size limit, or DuckDB's first line."""
    kept = "free space and run the same command again; everything written before is kept"
    if DISK_FULL in message:
        return f"the disk holding {db} is full ({DISK_FULL}) while writing {what}: {kept}"
    if FILE_TOO_LARGE in message:
        return (f"{db} cannot grow: a file size limit stopped the write of {what} "
                f"({FILE_TOO_LARGE}; see `ulimit -f`, or the filesystem's largest file): "
                "raise the limit or move the database, and run the same command again; "
                "everything written before is kept")
    return f"could not write {what} to {db}: {first_line(message)}"


# "IO Error: ", "TransactionContext Error: ": DuckDB's kinds, before the text that matters.
DUCKDB_ERROR_KIND = re.compile(r"^(?:[A-Z][A-Za-z ]*)?Error: ")


def first_line(message: str) -> str:
    """DuckDB's first line without its 'IO Error: ' kind: ours is the one 'Error:' shown."""
    line = next((line for line in message.splitlines() if line.strip()), "unknown error")
    while DUCKDB_ERROR_KIND.match(line):
        line = DUCKDB_ERROR_KIND.sub("", line, count=1)
    return line


def is_write_problem(message: str) -> bool:
    """The disk is full or the file may not grow: the user's to fix, not a bug."""
    return DISK_FULL in message or FILE_TOO_LARGE in message
