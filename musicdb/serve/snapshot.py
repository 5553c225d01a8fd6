"""What the server answers from: an in-memory copy of the database, reloaded when it changes.

The server holds no connection to the file, so it never keeps an ingest from writing. A
snapshot ATTACHes the file READ_ONLY into an in-memory DuckDB as `src` (retrying while an
ingest writes a batch, as every read command does: musicdb.store.access), runs snapshot.sql
(tables `tracks`, `albums`, `artists`, ... copied from src), loads the VectorIndex of the default
feature set, and DETACHes: the file is held only for that copy. Requests read the copy through
`Snapshot.cursor()`, one cursor each, and look songs up by id in `Snapshot.tracks` (the tracks
rows in Arrow, musicdb.serve.tracks) without a query. A watcher thread stats the file and its
journal at most once a second and builds a new snapshot at most every RELOAD_SECONDS when they
change; the new one replaces the old in one assignment, and a failed reload keeps the old one
(one log line).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from musicdb.errors import StoreError
from musicdb.serve.search import NameSearch, SongSearch
from musicdb.serve.tracks import TrackTable
from musicdb.similarity.functions import FUNCTIONS
from musicdb.store import access, dbfile
from musicdb.store.database import NO_EXTENSIONS, check_musicdb
from musicdb.store.schema import data_dir

RELOAD_SECONDS = 5.0  # the README: "data as of the last batch, within a few seconds"
STAT_SECONDS = 1.0
SNAPSHOT_SQL = Path(__file__).with_name("snapshot.sql")
INDEX_MODULE = "musicdb.similarity.index"
# A reload gives an ingest's batch time to finish; a shell holding the file is not waited for.
RELOAD_PATIENCE = access.Patience(musicdb_s=10.0, other_s=0.0, notice_after_s=3600.0)

# What VectorIndex.load reads, copied while the file is attached, so that turning a million
# FLOAT[] lists into a matrix (seconds) happens after DETACH: at 1,000,000 songs the file is
# held ~5 s instead of ~12 s. Only the default set's vectors.
VECTORS = "vectors"
VECTOR_TABLES = {
    "default_feature_set": "SELECT * FROM src.default_feature_set",
    "latest_feature_sets": "SELECT * FROM src.latest_feature_sets",
    "song_vectors": "SELECT feature_set_id, song_id, z, label FROM src.song_vectors "
                    "WHERE feature_set_id IN (SELECT feature_set_id FROM src.default_feature_set)",
    "songs": "SELECT song_id, content_hash FROM src.songs",
}

log = logging.getLogger("musicdb.serve")


@dataclass
class Snapshot:
    db: Path
    loaded_at: float
    roots: list[Path]
    feature_set: str | None
    index: Any  # musicdb.similarity.index.VectorIndex | None
    con: duckdb.DuckDBPyConnection = field(repr=False)
    tracks: TrackTable = field(repr=False)  # the tracks rows, for lookups by id
    search: SongSearch = field(repr=False)  # search3's songs without a scan
    artist_search: NameSearch = field(repr=False)  # and its artists and albums
    album_search: NameSearch = field(repr=False)
    songs: int = 0  # tracks in the copy
    held_seconds: float = 0.0  # how long the file was attached for this copy

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self.con.cursor()


def load(db: Path, *, patience: access.Patience = access.COMMAND,
         notify: access.Notify = access.stderr_notice) -> Snapshot:
    """Copy the database into memory. A missing, empty or foreign file is a StoreError (one
    line); a file an ingest is writing is retried within `patience`."""
    db = Path(db)
    con = _attached(db, patience, notify)
    try:
        attached = time.perf_counter()
        try:
            roots = _copy(con)
        finally:
            con.execute("USE memory")
            con.execute("DETACH src")
        held = time.perf_counter() - attached
        index = _load_index(con)  # from the copied vectors: the file is free meanwhile
        tracks = TrackTable.load(con)
        return Snapshot(db=db, loaded_at=time.time(), roots=roots,
                        feature_set=index.feature_set if index is not None else None,
                        index=index, con=con, tracks=tracks, search=SongSearch.load(con),
                        artist_search=NameSearch.load(con, "artists"),
                        album_search=NameSearch.load(con, "albums"),
                        songs=len(tracks),
                        held_seconds=held)
    except BaseException:
        con.close()
        raise


def probe(db: Path, *, patience: access.Patience = access.COMMAND,
          notify: access.Notify = access.stderr_notice) -> int:
    """The tracks a snapshot of the file would hold, with the checks load() makes (a missing,
    empty or foreign file is a StoreError), without copying anything: what `musicdb serve
    --workers N` checks before its workers each load their own snapshot."""
    con = _attached(Path(db), patience, notify)
    try:
        return con.execute("SELECT count(*) FROM src.library "
                           "WHERE status = 'ok' AND path IS NOT NULL").fetchone()[0]
    finally:
        con.close()


def _attached(db: Path, patience: access.Patience,
              notify: access.Notify) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with the file attached read-only as `src`, checked to be a
    musicdb database; a StoreError (the connection closed) when it is not."""
    dbfile.check_path(db, writer=False, create=False)
    con = duckdb.connect(":memory:", config=NO_EXTENSIONS)
    try:
        _attach(con, db, patience, notify)
        con.execute("USE src")
        check_musicdb(con, db, writer=False, create=False)
        con.execute("USE memory")
    except BaseException:
        con.close()
        raise
    return con


def _attach(con: duckdb.DuckDBPyConnection, db: Path, patience: access.Patience,
            notify: access.Notify) -> None:
    literal = "'" + str(db.resolve()).replace("'", "''") + "'"  # ATTACH takes no parameter

    def attempt() -> None:
        con.execute(f"ATTACH {literal} AS src (READ_ONLY)")

    try:
        access.opened(attempt, db, writer=False, patience=patience, notify=notify)
    except duckdb.Error as exc:
        raise dbfile.open_failure(db, str(exc), duckdb.__version__) from exc


def _copy(con: duckdb.DuckDBPyConnection) -> list[Path]:
    """Everything the snapshot needs from src, as plain tables; the library roots."""
    roots = [Path(r[0]).resolve() for r in con.execute(
        "SELECT DISTINCT root FROM src.songs WHERE root IS NOT NULL ORDER BY root").fetchall()]
    con.execute(SNAPSHOT_SQL.read_text())
    # label_key & co. in the copy itself, so every request's cursor has them (search3's words
    # are keyed with label_key) without creating them per request (~1 ms each time).
    con.execute((data_dir("sql") / FUNCTIONS).read_text(encoding="utf-8"))
    con.execute(f"CREATE SCHEMA {VECTORS}")
    for table, query in VECTOR_TABLES.items():
        con.execute(f"CREATE TABLE {VECTORS}.{table} AS {query}")
    return roots


def _load_index(con: duckdb.DuckDBPyConnection) -> Any:
    """H1's VectorIndex of the default set (None when the library has no vectors), built from
    the copied tables, which are dropped once it holds the vectors."""
    try:
        if importlib.util.find_spec(INDEX_MODULE) is None:
            return None
        index = importlib.import_module(INDEX_MODULE).VectorIndex.load(con, prefix=f"{VECTORS}.")
    finally:
        con.execute(f"DROP SCHEMA {VECTORS} CASCADE")
    if index is not None:
        # Exact answers until the approximate index is built (seconds at a million songs):
        # one line says when it answers, how fast it was built and its measured recall.
        index.start_ann(on_done=_log_ann)
    return index


def _log_ann(info: dict) -> None:
    """The approximate index is ready. A reload that reuses the last one (REUSE_NEW_SONGS:
    an ingest adding songs) says nothing, or a long ingest would log every few seconds."""
    if not info.get("reused"):
        log.warning("musicdb serve: similar songs: %s", ", ".join(
            f"{key} {value}" for key, value in info.items()))


def _signature(db: Path) -> tuple:
    """What changes when anything is written: the file's and its journal's mtime and size."""
    parts = []
    for path in (db, db.with_name(db.name + ".wal")):
        try:
            info = path.stat()
            parts.append((info.st_mtime_ns, info.st_size))
        except FileNotFoundError:
            parts.append(None)
    return tuple(parts)


class Snapshots:
    """The current snapshot and the watcher that replaces it when the file changes."""

    def __init__(self, db: Path, *, reload_seconds: float = RELOAD_SECONDS) -> None:
        self.db = Path(db)
        self.reload_seconds = reload_seconds
        self._signature = _signature(self.db)
        self.current = load(self.db)  # the start: a problem is one line, before serving
        self._last_failure: str | None = None
        self._next_try = 0.0  # after a failed reload, the next waits RELOAD_SECONDS too
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="musicdb-snapshot",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _watch(self) -> None:
        while not self._stop.wait(STAT_SECONDS):
            signature = _signature(self.db)
            now = time.time()
            due = now - self.current.loaded_at >= self._spacing() and now >= self._next_try
            if signature != self._signature and due:
                self.reload(signature)

    def _spacing(self) -> float:
        """Seconds between reloads: RELOAD_SECONDS, or longer when a copy holds the file
        long (a big library), so an ingest has the file at least two thirds of the time."""
        return max(self.reload_seconds, 2 * self.current.held_seconds)

    def reload(self, signature: tuple | None = None) -> bool:
        """Build a new snapshot and swap it in; on failure keep the old one and log once."""
        signature = signature or _signature(self.db)
        try:
            fresh = load(self.db, patience=RELOAD_PATIENCE, notify=log.info)
        except (StoreError, duckdb.Error) as exc:
            line = dbfile.first_line(str(exc))
            if line != self._last_failure:
                log.warning("musicdb serve: could not reload %s (%s); still answering from "
                            "the data of %s", self.db.name, line,
                            time.strftime("%H:%M:%S", time.localtime(self.current.loaded_at)))
            self._last_failure = line
            self._next_try = time.time() + self.reload_seconds
            return False
        self.current, self._signature = fresh, signature
        if self._last_failure is not None:
            log.warning("musicdb serve: reloaded %s (%d songs)", self.db.name, fresh.songs)
            self._last_failure = None
        return True
