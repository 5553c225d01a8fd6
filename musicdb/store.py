"""The DuckDB file: connecting, numbered migrations, views, feature-set registration."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from musicdb import dbfile
from musicdb.errors import MigrationError, StoreError

MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
SET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def data_dir(name: str) -> Path:
    """`migrations/` or `sql/`: inside the installed package, else at the repository root."""
    packaged = Path(__file__).parent / name
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / name


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(folder: Path | None = None) -> list[Migration]:
    folder = folder or data_dir("migrations")
    migrations = []
    for path in sorted(folder.glob("*.sql")):
        match = MIGRATION_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_snake_case.sql")
        migrations.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a version number: {versions}")
    return migrations


def applied_migrations(con: duckdb.DuckDBPyConnection) -> dict[int, str]:
    """version -> checksum of what the file has applied; empty for a new file."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = '_migrations'"
    ).fetchone()[0]
    if not exists:
        return {}
    return dict(con.execute("SELECT version, checksum FROM _migrations").fetchall())


def check_not_newer(applied: dict[int, str], known: list[Migration]) -> None:
    newest_known = max((m.version for m in known), default=0)
    newest_applied = max(applied, default=0)
    if newest_applied > newest_known:
        raise MigrationError(
            f"this database was written by a newer musicdb (schema {newest_applied}; this "
            f"musicdb knows up to {newest_known}). Upgrade musicdb to use it."
        )


def migrate(con: duckdb.DuckDBPyConnection, migrations: list[Migration] | None = None) -> int:
    """Apply pending migrations, each in its own transaction. Returns how many ran."""
    migrations = load_migrations() if migrations is None else migrations
    con.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
        "checksum VARCHAR NOT NULL, applied_at TIMESTAMP DEFAULT current_timestamp)"
    )
    applied = applied_migrations(con)
    check_not_newer(applied, migrations)
    ran = 0
    for m in migrations:
        if m.version in applied:
            if applied[m.version] != m.checksum:
                raise MigrationError(
                    f"migration {m.version:04d}_{m.name} was edited after it was applied; "
                    "add a new migration instead"
                )
            continue
        # A multi-statement string is not atomic by itself: wrap it explicitly.
        con.begin()
        try:
            con.execute(m.sql)
            con.execute(
                "INSERT INTO _migrations (version, name, checksum) VALUES (?, ?, ?)",
                [m.version, m.name, m.checksum],
            )
        except duckdb.Error as exc:
            rollback(con)
            if dbfile.is_write_problem(str(exc)):
                raise write_failure(con, exc, f"migration {m.version:04d}_{m.name}") from exc
            raise MigrationError(f"migration {m.version:04d}_{m.name} failed: {exc}") from exc
        con.commit()
        ran += 1
    return ran


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    return max(applied_migrations(con), default=0)


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

    features_<set> / snippets_<set> show the latest version; features_<set>_v<N> /
    snippets_<set>_v<N> keep every version queryable.
    """
    for path in sorted(data_dir("sql").glob("*.sql")):
        con.execute(path.read_text())
    versions = con.execute(
        "SELECT name, version, feature_set_id, version = max(version) OVER (PARTITION BY name) "
        "FROM feature_sets ORDER BY name, version"
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
    con.begin()
    try:
        for table in reversed(SIMILARITY_TABLES):
            con.execute(f"DELETE FROM {table}")
        for table in SIMILARITY_TABLES:
            con.execute(f"INSERT INTO {table} SELECT * FROM {table}_computed")
        con.execute("UPDATE similarity_state SET stale = false, "
                    "refreshed_at = current_timestamp")
        con.commit()
    except duckdb.Error as exc:
        rollback(con)
        raise write_failure(con, exc, "the similarity tables (the data is saved; the next "
                                      "command that writes rebuilds them)") from exc
    except BaseException:
        rollback(con)
        raise


def rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Undo the open transaction, if the failure left one to undo."""
    # After a failed commit, or a write error that invalidated the database, there is no
    # transaction left (or no usable connection): the error being raised is the one to show.
    with contextlib.suppress(duckdb.Error):
        con.rollback()


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


def write_failure(con: duckdb.DuckDBPyConnection, exc: BaseException, what: str) -> StoreError:
    """A failed write as one line: a full disk or a file size limit says so and what to do.

    `what` names what was being written ("a batch of 64 files"). Raise the result `from exc`.
    """
    return StoreError(dbfile.write_problem(str(exc), _database_path(con), what))


def _database_path(con: duckdb.DuckDBPyConnection) -> str:
    try:
        row = con.execute("SELECT path FROM duckdb_databases() "
                          "WHERE database_name = current_database()").fetchone()
    except duckdb.Error:  # a failed write can leave the connection unusable
        return "the database"
    return row[0] if row and row[0] else "the database"


# The oldest schema read commands work on without a writer migrating it first. Raise it when a
# migration adds something they read (0005 only adds the stale flag, which they can do without).
READABLE_FROM = 4

# Every connection: a database file must never make DuckDB download or load an extension.
NO_EXTENSIONS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


@contextmanager
def connect(db: Path, *, read_only: bool = False,
            create: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database. Writers migrate it and refresh its views; readers only check it.

    Only a writer with `create` (ingest, import) makes a new file. Anything that is not a
    musicdb database (another format, another program's DuckDB file, a damaged or newer one,
    a read-only file for a writer) is refused with a StoreError before anything is written.
    """
    db = Path(db)
    new = dbfile.check_path(db, writer=not read_only, create=create)
    if not new:
        _inspect(db, writer=not read_only, create=create)
    con = _open(db, read_only=read_only)
    failed = True
    try:
        if read_only:
            _check_musicdb(con, db, writer=False, create=False)
        else:
            _prepare_writer(con)
        yield con
        failed = False
    finally:
        _close(con, db, failed)


def _open(db: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(db), read_only=read_only, config=NO_EXTENSIONS)
    except duckdb.Error as exc:
        raise dbfile.open_failure(db, str(exc), duckdb.__version__) from exc


def _inspect(db: Path, *, writer: bool, create: bool) -> None:
    """Judge an existing file on a read-only connection, so a refusal writes nothing."""
    con = _open(db, read_only=True)
    try:
        _check_musicdb(con, db, writer=writer, create=create)
    finally:
        con.close()


def _check_musicdb(con: duckdb.DuckDBPyConnection, db: Path, *, writer: bool,
                   create: bool) -> None:
    try:
        applied = applied_migrations(con)
    except duckdb.Error as exc:  # a `_migrations` table of some other program
        raise StoreError(f"{db} is not a musicdb database but another program's DuckDB file "
                         f"(its _migrations table is not musicdb's); musicdb leaves it alone: "
                         f"{dbfile.NEW_DB_HINT}") from exc
    known = load_migrations()
    check_not_newer(applied, known)
    if not applied:
        _check_empty(con, db, adopt=writer and create)
        return
    if not writer and max(applied) < READABLE_FROM:  # views and tables readers need are missing
        raise StoreError(f"{db} has musicdb schema {max(applied)}, older than this musicdb reads "
                         f"({READABLE_FROM}): run a writing command once (e.g. `musicdb ingest` "
                         "of its folders, or `musicdb experiment list`) to upgrade it in place")
    missing = sorted(_expected_tables(tuple(sorted(applied))) - _tables(con))
    if missing:
        raise StoreError(
            f"{db} is a damaged musicdb database: table{'s' * (len(missing) > 1)} "
            f"{', '.join(missing)} missing (dropped outside musicdb?); restore it from a "
            "backup, or start a new database with --db NEW.duckdb and ingest again")


def _check_empty(con: duckdb.DuckDBPyConnection, db: Path, *, adopt: bool) -> None:
    """No musicdb schema: another program's DuckDB file, or an empty one that ingest may fill."""
    # _migrations alone: a first run killed before its first migration committed.
    objects = [name for name in _user_objects(con) if name != "_migrations"]
    if objects:
        shown = ", ".join(objects[:5]) + (", ..." if len(objects) > 5 else "")
        raise StoreError(f"{db} is not a musicdb database but another program's DuckDB file "
                         f"(it holds {shown}; no musicdb schema); musicdb adds nothing to it: "
                         f"{dbfile.NEW_DB_HINT}")
    if not adopt:
        raise StoreError(f"{db} is an empty DuckDB database, not a musicdb one yet; "
                         f"{dbfile.CREATE_HINT}")


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
    ).fetchall()}


def _user_objects(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT name FROM (SELECT table_name AS name, database_name FROM duckdb_tables() "
        "UNION ALL SELECT view_name, database_name FROM duckdb_views() WHERE NOT internal "
        "UNION ALL SELECT sequence_name, database_name FROM duckdb_sequences() "
        "UNION ALL SELECT function_name, database_name FROM duckdb_functions() "
        "WHERE NOT internal AND function_type IN ('macro', 'table_macro')) "
        "WHERE database_name = current_database() ORDER BY name").fetchall()]


@functools.cache
def _expected_tables(versions: tuple[int, ...]) -> frozenset[str]:
    """The tables these migrations create, found by running them on an empty in-memory file."""
    con = duckdb.connect(config=NO_EXTENSIONS)
    try:
        migrate(con, [m for m in load_migrations() if m.version in versions])
        return frozenset(_tables(con))
    finally:
        con.close()


def _prepare_writer(con: duckdb.DuckDBPyConnection) -> None:
    try:
        migrate(con)
        create_views(con)
        if similarity_stale(con):  # a run killed before (or during) its refresh
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
    """What identifies a feature-set version: its name, its parameters and its columns."""

    name: str
    kind: str  # 'extracted' or 'imported'
    params: dict
    names: list[str]
    descriptions: list[str]
    source: str | None = None

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
            return set_id
    import librosa
    import numpy

    from musicdb import __version__

    set_id = con.execute("SELECT nextval('feature_set_id_seq')").fetchone()[0]
    con.execute(
        "INSERT INTO feature_sets (feature_set_id, name, version, kind, params, sample_rate, "
        "n_fft, hop_length, n_features, librosa_version, numpy_version, musicdb_version, source) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [set_id, fs.name, len(rows) + 1, fs.kind, fs.params_json, fs.params.get("sample_rate"),
         fs.params.get("n_fft"), fs.params.get("hop_length"), len(fs.names),
         librosa.__version__, numpy.__version__, __version__, fs.source],
    )
    insert_columns(con, "feature_names", {
        "feature_set_id": [set_id] * len(fs.names),
        "position": list(range(1, len(fs.names) + 1)),
        "name": fs.names,
        "description": fs.descriptions,
    })
    return set_id


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
