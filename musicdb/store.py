"""The DuckDB file: connecting, numbered migrations, views, feature-set registration."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

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
            con.rollback()
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
    """Refill the similarity tables from their *_computed views, in one transaction."""
    con.begin()
    try:
        for table in reversed(SIMILARITY_TABLES):
            con.execute(f"DELETE FROM {table}")
        for table in SIMILARITY_TABLES:
            con.execute(f"INSERT INTO {table} SELECT * FROM {table}_computed")
    except BaseException:
        con.rollback()
        raise
    con.commit()


def _similarity_stale(con: duckdb.DuckDBPyConnection) -> bool:
    """Features but no statistics: a file from before the similarity tables existed."""
    return con.execute("SELECT (SELECT count(*) FROM feature_stats) = 0 "
                       "AND EXISTS (SELECT 1 FROM features)").fetchone()[0]


@contextmanager
def connect(db: Path, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database. Writers migrate it and refresh its views; readers only check it."""
    db = Path(db)
    if read_only and not db.exists():
        raise StoreError(f"no database at {db}; create one with `musicdb ingest` or "
                         "`musicdb import`")
    try:
        con = duckdb.connect(str(db), read_only=read_only)
    except duckdb.Error as exc:
        raise StoreError(f"cannot open {db}: {exc}") from exc
    try:
        if read_only:
            applied = applied_migrations(con)
            check_not_newer(applied, load_migrations())
            if not applied:
                raise StoreError(f"{db} is not a musicdb database (no schema recorded)")
        else:
            migrate(con)
            create_views(con)
            if _similarity_stale(con):
                refresh_similarity(con)
        yield con
    finally:
        con.close()


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
