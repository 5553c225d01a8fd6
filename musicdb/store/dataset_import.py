"""`musicdb import DIR`: a dataset written by `musicdb export --format parquet` becomes a database.

Ids are kept (songs, feature sets, evaluations, maps, runs), so the dataset's own joins and any
id a person wrote down stay valid; that is why it loads only into a database that holds nothing
yet: merging would have to renumber. The sequences are advanced past every imported id, so the
next ingest, import or evaluation never collides with one. All or nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from musicdb.errors import ImportTableError
from musicdb.store.database import (
    create_views,
    mark_similarity_stale,
    quote_ident,
    refresh_similarity,
    transaction,
    write_failure,
)
from musicdb.store.dataset import FORMAT, FORMAT_VERSION, KEY_COLUMNS, MANIFEST, TABLES
from musicdb.store.schema import schema_version

# Each id sequence and the column whose largest value it must pass.
SEQUENCES = {"song_id_seq": ("songs", "song_id"),
             "feature_set_id_seq": ("feature_sets", "feature_set_id"),
             "evaluation_id_seq": ("evaluations", "evaluation_id"),
             "map_run_id_seq": ("map_runs", "run_id"),
             "ingest_run_id_seq": ("ingest_runs", "run_id")}
SET_NAME = re.compile(r"[a-z0-9_]+")  # what ensure_feature_set allows: a safe folder name
# Tables a database may hold rows in and still count as empty: migrations fill them.
FILLED_BY_MIGRATIONS = {"experiments": "NOT preset"}


@dataclass
class DatasetImport:
    tables: dict[str, int]
    feature_sets: int
    feature_rows: int


def is_dataset(folder: Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def read_manifest(folder: Path, current_schema: int) -> dict:
    """The manifest, or one line saying why this folder is not a dataset this musicdb reads."""
    path = folder / MANIFEST
    if not path.is_file():
        raise ImportTableError(
            f"{folder} is not a musicdb dataset (no {MANIFEST}); `musicdb export --format "
            f"parquet DIR` writes one, and `musicdb import FILE --feature-set NAME` takes a table")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportTableError(f"{path}: not a readable dataset manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ImportTableError(f"{path} is not a musicdb dataset manifest")
    if manifest.get("format_version") != FORMAT_VERSION or not isinstance(
            manifest.get("schema_version"), int) or manifest["schema_version"] > current_schema:
        raise ImportTableError(
            f"{folder} was written by musicdb {manifest.get('musicdb_version', '?')} (dataset "
            f"format {manifest.get('format_version')!r}, schema {manifest.get('schema_version')!r}"
            f"); this musicdb reads format {FORMAT_VERSION} up to schema {current_schema}")
    _check_entries(path, manifest)
    return manifest


def _check_entries(path: Path, manifest: dict) -> None:
    """The parts import reads: tables with row counts, set versions with safe folder names."""
    tables, sets = manifest.get("tables"), manifest.get("feature_sets")
    ok = isinstance(tables, dict) and all(
        isinstance(n, int) for n in tables.values()) and isinstance(sets, list)
    for entry in sets if ok else []:
        ok = ok and isinstance(entry, dict) and isinstance(entry.get("feature_set_id"), int) \
            and isinstance(entry.get("version"), int) and isinstance(entry.get("rows"), int) \
            and isinstance(entry.get("name"), str) and SET_NAME.fullmatch(entry["name"])
    if not ok:
        raise ImportTableError(f"{path}: a damaged manifest (its tables or feature_sets are not "
                               f"what `musicdb export` writes)")


def check_empty(con: duckdb.DuckDBPyConnection, db: Path) -> None:
    """Refuse a database that holds anything a person made: ids would collide."""
    held = []
    for table in [*TABLES, "feature_stats"]:
        where = FILLED_BY_MIGRATIONS.get(table, "true")
        n = con.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]
        if n:
            held.append(f"{n:,} {table}")
    if held:
        raise ImportTableError(
            f"{db} already holds {', '.join(held[:3])}: a dataset keeps its ids, so it is "
            f"imported into a new database only (give --db NEW.duckdb)")


def _source(folder: Path, name: str) -> str:
    files = sorted((folder / name).glob("*.parquet"))
    if not files:
        raise ImportTableError(f"{folder} is an incomplete dataset: no Parquet files in {name}/")
    return str(folder / name / "*.parquet")


def _columns(con: duckdb.DuckDBPyConnection, sql_from: str, params: list) -> list[str]:
    return [d[0] for d in con.execute(f"SELECT * FROM {sql_from} LIMIT 0", params).description]


def _load_table(con: duckdb.DuckDBPyConnection, folder: Path, table: str, rows: int) -> None:
    """Insert the folder's rows by column name; a column this schema lacks is refused."""
    source = _source(folder, table)
    theirs = _columns(con, "read_parquet(?)", [source])
    ours = _columns(con, table, [])
    extra = [c for c in theirs if c not in ours]
    if extra:
        raise ImportTableError(f"{table}/ has columns this musicdb does not know: {extra[:5]}")
    cols = ", ".join(quote_ident(c) for c in theirs)
    if table == "experiments":  # the presets a new database starts with give way to the dataset's
        con.execute("DELETE FROM experiments WHERE name IN (SELECT name FROM read_parquet(?))",
                    [source])
    con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM read_parquet(?)", [source])
    _check_count(con, f"{table}/", "SELECT count(*) FROM read_parquet(?)", [source], rows)


def _check_count(con: duckdb.DuckDBPyConnection, what: str, sql: str, params: list,
                 expected: int) -> None:
    found = con.execute(sql, params).fetchone()[0]
    if found != expected:
        raise ImportTableError(f"{what} holds {found:,} rows, its manifest says {expected:,}: "
                               f"an incomplete copy of the dataset?")


def _load_features(con: duckdb.DuckDBPyConnection, folder: Path, entry: dict) -> int:
    """One set version's wide files back into features.vals, in feature_names order."""
    set_id, name, version = entry["feature_set_id"], entry["name"], entry["version"]
    stored = con.execute("SELECT name, version FROM feature_sets WHERE feature_set_id = ?",
                         [set_id]).fetchone()
    if stored != (name, version):
        raise ImportTableError(f"{MANIFEST}: feature set {set_id} is {stored} in feature_sets/, "
                               f"not ({name!r}, {version})")
    source = _source(folder, f"features/feature_set={name}/version={version}")
    names = [r[0] for r in con.execute("SELECT name FROM feature_names WHERE feature_set_id = ? "
                                       "ORDER BY position", [set_id]).fetchall()]
    present = {c.lower() for c in _columns(con, "read_parquet(?)", [source])}
    missing = [c for c in [*KEY_COLUMNS, *names] if c.lower() not in present]
    if missing:
        raise ImportTableError(f"features of {name!r} version {version}: columns {missing[:5]} "
                               f"are missing")
    vals = ", ".join(f"CAST({quote_ident(c)} AS FLOAT)" for c in names)
    con.execute(
        f"INSERT INTO features (song_id, feature_set_id, snippet, start_s, end_s, vals) "
        f"SELECT song_id, ?, snippet, start_s, end_s, CAST([{vals}] AS FLOAT[]) "
        f"FROM read_parquet(?)", [set_id, source])
    _check_count(con, f"features of {name!r} version {version}",
                 "SELECT count(*) FROM read_parquet(?)", [source], entry["rows"])
    return entry["rows"]


def advance_sequences(con: duckdb.DuckDBPyConnection) -> None:
    """Draw each sequence up to its table's largest id, so the next id is the one after it
    (DuckDB has no ALTER SEQUENCE ... RESTART, and re-creating a sequence would break the column
    defaults that use it). Ids the exported database drew for writes it rolled back are not
    skipped: they were never stored anywhere."""
    for seq, (table, column) in SEQUENCES.items():
        top = con.execute(f"SELECT coalesce(max({column}), 0) FROM {table}").fetchone()[0]
        # Draw one to learn where the sequence stands (duckdb_sequences().last_value means the
        # last drawn value in one session and the next one after a reopen), then the rest.
        drawn = con.execute(f"SELECT nextval('{seq}')").fetchone()[0]
        if top > drawn:
            con.execute(f"SELECT max(nextval('{seq}')) FROM range(?)", [top - drawn])


def import_dataset(con: duckdb.DuckDBPyConnection, folder: Path, db: Path) -> DatasetImport:
    """Load the dataset into the (empty) database in one transaction, then refresh views and
    the similarity tables."""
    folder = Path(folder)
    manifest = read_manifest(folder, schema_version(con))
    check_empty(con, db)
    tables = {t: n for t, n in manifest.get("tables", {}).items() if t in TABLES}
    for required in ("songs", "feature_sets", "feature_names"):
        if required not in tables:
            raise ImportTableError(f"{folder / MANIFEST} names no {required}/ table")

    def refused(exc: duckdb.Error) -> ImportTableError:
        return ImportTableError(f"import of {folder} failed: {str(exc).splitlines()[0]}")

    with transaction(con, f"the import of {folder}", other=refused):
        for table in TABLES:  # in dependency order
            if table in tables:
                _load_table(con, folder, table, tables[table])
        feature_rows = sum(_load_features(con, folder, e) for e in manifest["feature_sets"])
        _check_count(con, f"{MANIFEST}'s feature sets", "SELECT ?", [len(manifest[
            "feature_sets"])], tables["feature_sets"])
        advance_sequences(con)
        mark_similarity_stale(con)
    try:
        create_views(con)
    except duckdb.Error as exc:
        raise write_failure(con, exc, "the views (the import is saved)") from exc
    refresh_similarity(con)
    return DatasetImport(tables, len(manifest["feature_sets"]), feature_rows)
