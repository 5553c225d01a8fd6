"""The DuckDB file: connecting, views, similarity tables, feature-set registration.

Migrations and the checks of what a file holds live in musicdb.store.schema and
musicdb.store.dbfile; their public names are re-exported here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from musicdb.errors import StoreError
from musicdb.store import access, dbfile
from musicdb.store.schema import (  # noqa: F401  (re-exported: musicdb.store.database is where callers look)
    NO_EXTENSIONS,
    Migration,
    applied_migrations,
    check_musicdb,
    check_not_newer,
    data_dir,
    load_migrations,
    migrate,
    schema_version,
)
from musicdb.store.transaction import (  # noqa: F401  (re-exported)
    database_path,
    rollback,
    transaction,
    write_failure,
)

SET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def wide_view_sql(set_name: str, feature_set_id: int, names: list[str]) -> list[str]:
    """Two views: features_<set_name> (a row per song), snippets_<set_name> (a row per snippet)."""
    columns = ",\n       ".join(
        f"f.vals[{i}] AS {quote_ident(name)}" for i, name in enumerate(names, start=1)
    )
    select = (
        "SELECT l.song_id, l.label, l.artist, l.albumartist, l.album, l.title, l.genre, "
        "l.year, l.folder, l.status, l.path,\n       {extra}" + columns + "\nFROM features f "
        f"JOIN library l USING (song_id)\nWHERE f.feature_set_id = {int(feature_set_id)} "
        "AND f.snippet {cond}"
    )
    return [
        f"CREATE OR REPLACE VIEW {quote_ident('features_' + set_name)} AS\n"
        + select.format(extra="l.duration_s,\n       ", cond="= -1"),
        f"CREATE OR REPLACE VIEW {quote_ident('snippets_' + set_name)} AS\n"
        + select.format(extra="f.snippet, f.start_s, f.end_s,\n       ", cond=">= 0"),
    ]


def create_views(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create the views of sql/*.sql and the wide views of every feature-set version.

    features_<set> / snippets_<set> show the current version (latest_feature_sets: most songs,
    newest among equals); features_<set>_v<N> / snippets_<set>_v<N> keep every version
    queryable. Which version is current can change with an ingest: it ends by calling this.
    """
    for path in sorted(data_dir("sql").glob("*.sql")):
        con.execute(path.read_text())
    versions = con.execute(
        "SELECT name, version, feature_set_id, feature_set_id IN (SELECT feature_set_id FROM "
        "latest_feature_sets) FROM feature_sets ORDER BY name, version"
    ).fetchall()
    for name, version, set_id, latest in versions:
        names = feature_names(con, set_id)
        for view_name in [f"{name}_v{version}"] + ([name] if latest else []):
            for statement in wide_view_sql(view_name, set_id, names):
                con.execute(statement)


SIMILARITY_TABLES = ("feature_stats", "song_vectors", "artist_centroids")  # refill order


def refresh_similarity(con: duckdb.DuckDBPyConnection) -> None:
    """Refill the similarity tables from their *_computed views and clear the stale flag.

    One transaction: a kill or a full disk midway keeps the old tables and the flag.
    """
    with transaction(con, "the similarity tables (the data is saved; the next command "
                          "that writes rebuilds them)"):
        for table in reversed(SIMILARITY_TABLES):
            con.execute(f"DELETE FROM {table}")
        for table in SIMILARITY_TABLES:
            con.execute(f"INSERT INTO {table} SELECT * FROM {table}_computed")
        con.execute("UPDATE similarity_state SET stale = false, "
                    "refreshed_at = current_timestamp")


def mark_similarity_stale(con: duckdb.DuckDBPyConnection) -> None:
    """Record, inside the caller's open transaction, that the similarity tables lag the data.

    Committed with the rows that made them stale, so a kill before refresh_similarity ends
    leaves the flag set and the next writer rebuilds them.
    """
    con.execute("UPDATE similarity_state SET stale = true, marked_at = current_timestamp")


def similarity_stale(con: duckdb.DuckDBPyConnection) -> bool:
    """The flag of migration 0005; before it (a reader on an old file), features without stats."""
    if _has_table(con, "similarity_state"):
        return bool(con.execute("SELECT bool_or(stale) FROM similarity_state").fetchone()[0])
    if not _has_table(con, "feature_stats"):
        return False
    return con.execute("SELECT (SELECT count(*) FROM feature_stats) = 0 "
                       "AND EXISTS (SELECT 1 FROM features)").fetchone()[0]


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
                       [name]).fetchone()[0] > 0


@contextmanager
def connect(db: Path, *, read_only: bool = False, create: bool = False,
            patience: access.Patience = access.COMMAND,
            notify: access.Notify = access.stderr_notice) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database. Writers migrate it and refresh its views; readers only check it.

    Only a writer with `create` (ingest, import) makes a new file. Anything that is not a
    musicdb database (another format, another program's DuckDB file, a damaged or newer one,
    a read-only file for a writer) is refused with a StoreError before anything is written.
    A file another process holds is retried within `patience` (musicdb.store.access), with
    one `notify` line while it waits, then refused in one line naming the holder.
    """
    db = Path(db)
    new = dbfile.check_path(db, writer=not read_only, create=create)
    if not (new or read_only):
        _inspect(db, create=create, patience=patience, notify=notify)
    with reopen(db, read_only=read_only, patience=patience, notify=notify) as con:
        if read_only:
            check_musicdb(con, db, writer=False, create=False)
        else:
            _prepare_writer(con, db)
        yield con


@contextmanager
def reopen(db: Path, *, read_only: bool = False, patience: access.Patience = access.COMMAND,
           notify: access.Notify = access.stderr_notice, checkpoint: bool = True
           ) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open a database this process has opened with connect() before: no checks, no
    migrations, no views (an ingest's batches).

    Closing checkpoints the journal into the file, unless `checkpoint` is False: then DuckDB
    checkpoints only when its journal reaches `wal_autocheckpoint`, and whoever opens the file
    next replays the journal (readers see every commit either way). A checkpoint rewrites the
    row group an append touched: seconds at 100,000 songs (benchmarks/ingest.py --at-scale).
    """
    con = _open(db, read_only=read_only, patience=patience, notify=notify)
    if not (checkpoint or read_only):
        con.execute("PRAGMA disable_checkpoint_on_shutdown")
    failed = True
    try:
        yield con
        failed = False
    finally:
        _close(con, db, failed)


def _open(db: Path, *, read_only: bool, patience: access.Patience,
          notify: access.Notify) -> duckdb.DuckDBPyConnection:
    def attempt() -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(db), read_only=read_only, config=NO_EXTENSIONS)

    try:
        return access.opened(attempt, db, writer=not read_only, patience=patience,
                             notify=notify)
    except duckdb.Error as exc:
        raise dbfile.open_failure(db, str(exc), duckdb.__version__) from exc


def _inspect(db: Path, *, create: bool, patience: access.Patience,
             notify: access.Notify) -> None:
    """Judge an existing file for a writer on a read-only connection: a refusal writes nothing."""
    con = _open(db, read_only=True, patience=patience, notify=notify)
    try:
        check_musicdb(con, db, writer=True, create=create)
    finally:
        con.close()


def _prepare_writer(con: duckdb.DuckDBPyConnection, db: Path) -> None:
    try:
        migrate(con)
        create_views(con)
        # A run killed before (or during) its refresh. Not while an ingest updates the file:
        # it refreshes at its end, and a refresh here would hold the file for seconds.
        if similarity_stale(con) and access.ingest_holder(db) in (None, os.getpid()):
            refresh_similarity(con)
    except duckdb.Error as exc:
        raise write_failure(con, exc, "the schema and views") from exc


def _close(con: duckdb.DuckDBPyConnection, db: Path, failed: bool) -> None:
    """Close; a checkpoint that fails on a full disk is one line, unless an error is on its way."""
    try:
        con.close()
    except duckdb.Error as exc:
        if not failed:
            raise StoreError(dbfile.write_problem(str(exc), db, "the journal into the "
                                                  "database file")) from exc


@dataclass(frozen=True)
class FeatureSetDef:
    """What identifies a feature-set version: its name, its parameters and its columns.

    The library versions are the caller's to give: extraction passes the librosa and numpy it
    ran on (musicdb.analysis.like.library_versions()); an imported table ran on neither.
    """

    name: str
    kind: str  # 'extracted' or 'imported'
    params: dict
    names: list[str]
    descriptions: list[str]
    source: str | None = None
    librosa_version: str | None = None
    numpy_version: str | None = None

    @property
    def params_json(self) -> str:
        return json.dumps(self.params, sort_keys=True)


def find_feature_set(con: duckdb.DuckDBPyConnection, name: str) -> tuple[int, str] | None:
    """(id, kind) of the latest version of a set, or None."""
    row = con.execute(
        "SELECT feature_set_id, kind FROM feature_sets WHERE name = ? "
        "ORDER BY version DESC LIMIT 1",
        [name],
    ).fetchone()
    return (row[0], row[1]) if row else None


def resolve_feature_set(con: duckdb.DuckDBPyConnection, name: str | None) -> tuple[str, int]:
    """(name, id) of the latest version of a set; for None the view default_feature_set's."""
    if name is None:
        row = con.execute("SELECT feature_set, feature_set_id FROM default_feature_set").fetchone()
        if row is None:
            raise StoreError("the database holds no features yet: run `musicdb ingest` or "
                             "`musicdb import` first")
        return row[0], row[1]
    row = con.execute("SELECT feature_set, feature_set_id FROM latest_feature_sets "
                      "WHERE feature_set = ?", [name]).fetchone()
    if row is None:
        known = [r[0] for r in con.execute(
            "SELECT feature_set FROM latest_feature_sets ORDER BY 1").fetchall()]
        raise StoreError(f"no feature set {name!r}; known: {', '.join(known) or 'none'}")
    return row[0], row[1]


def feature_names(con: duckdb.DuckDBPyConnection, feature_set_id: int) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT name FROM feature_names WHERE feature_set_id = ? ORDER BY position",
        [feature_set_id],
    ).fetchall()]


def ensure_feature_set(con: duckdb.DuckDBPyConnection, fs: FeatureSetDef) -> int:
    """The id of the version matching these parameters, registering a new version if needed.

    Runs inside the caller's transaction when there is one.
    """
    if not SET_NAME.match(fs.name):
        raise StoreError(f"feature set name {fs.name!r}: use lower-case letters, digits and _")
    rows = con.execute(
        "SELECT feature_set_id, kind, params FROM feature_sets WHERE name = ? ORDER BY version",
        [fs.name],
    ).fetchall()
    for set_id, kind, params in rows:
        if kind != fs.kind:
            raise StoreError(f"feature set {fs.name!r} exists already as {kind}, not {fs.kind}")
        if params == fs.params_json and feature_names(con, set_id) == fs.names:
            if kind == "extracted":
                _update_descriptions(con, set_id, fs.descriptions)
            return set_id
    from musicdb import __version__

    set_id = con.execute("SELECT nextval('feature_set_id_seq')").fetchone()[0]
    con.execute(
        "INSERT INTO feature_sets (feature_set_id, name, version, kind, params, sample_rate, "
        "n_fft, hop_length, n_features, librosa_version, numpy_version, musicdb_version, source) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [set_id, fs.name, len(rows) + 1, fs.kind, fs.params_json, fs.params.get("sample_rate"),
         fs.params.get("n_fft"), fs.params.get("hop_length"), len(fs.names),
         fs.librosa_version, fs.numpy_version, __version__, fs.source],
    )
    insert_columns(con, "feature_names", {
        "feature_set_id": [set_id] * len(fs.names),
        "position": list(range(1, len(fs.names) + 1)),
        "name": fs.names,
        "description": fs.descriptions,
    })
    return set_id


def _update_descriptions(con: duckdb.DuckDBPyConnection, set_id: int,
                         descriptions: list[str]) -> None:
    """Rewrite an existing version's descriptions where today's text differs.

    Descriptions document a version, they do not identify it: an older musicdb wrote some
    wrongly (band edges at the default n_fft, "Hann-windowed" loudness), and this corrects them.
    """
    con.execute(
        "UPDATE feature_names f SET description = d.text FROM (SELECT unnest(?::VARCHAR[]) AS "
        "text, unnest(range(1, ? + 1)) AS position) d WHERE f.feature_set_id = ? "
        "AND f.position = d.position AND f.description IS DISTINCT FROM d.text",
        [descriptions, len(descriptions), set_id])


def insert_columns(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, list]) -> None:
    """Insert rows given as columns, in one statement through Arrow (not row by row)."""
    import pyarrow as pa

    if not next(iter(columns.values()), []):
        return
    con.register("_new_rows", pa.table(columns))
    try:
        con.execute(f"INSERT INTO {quote_ident(table)} BY NAME SELECT * FROM _new_rows")
    finally:
        con.unregister("_new_rows")
