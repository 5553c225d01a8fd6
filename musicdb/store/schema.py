"""Numbered migrations, and whether a DuckDB file holds musicdb's schema (intact, not newer)."""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from musicdb.errors import MigrationError, StoreError
from musicdb.store import dbfile
from musicdb.store.transaction import transaction

MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Every connection: a database file must never make DuckDB download or load an extension.
NO_EXTENSIONS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def data_dir(name: str) -> Path:
    """`migrations/` or `sql/`: inside the installed package, else at the repository root."""
    package = Path(__file__).resolve().parents[1]  # musicdb/, above musicdb/store/
    packaged = package / name
    return packaged if packaged.is_dir() else package.parent / name


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
        what = f"migration {m.version:04d}_{m.name}"
        with transaction(con, what, other=lambda exc, what=what: MigrationError(
                f"{what} failed: {exc}")):
            con.execute(m.sql)
            con.execute(
                "INSERT INTO _migrations (version, name, checksum) VALUES (?, ?, ?)",
                [m.version, m.name, m.checksum],
            )
        ran += 1
    return ran


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    return max(applied_migrations(con), default=0)


# The oldest schema read commands work on without a writer migrating it first. Raise it when a
# migration adds something they read (0005 only adds the stale flag, which they can do without).
READABLE_FROM = 4


def check_musicdb(con: duckdb.DuckDBPyConnection, db: Path, *, writer: bool,
                  create: bool) -> None:
    """Refuse a file that is not musicdb's, is newer, or lost tables; a writer may adopt an
    empty DuckDB file only when it may `create` a database."""
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
                         "of its folders, or `musicdb import` of a table) to upgrade it in place")
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


_CREATES_TABLE = re.compile(r"^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)",
                            re.IGNORECASE | re.MULTILINE)


@functools.cache
def _expected_tables(versions: tuple[int, ...]) -> frozenset[str]:
    """The tables these migrations create, read from their CREATE TABLE statements.

    Running them on an in-memory database cost every command 40-80 ms of CPU. Migrations only
    add tables (tests/test_schema_tables.py checks the two ways agree).
    """
    return frozenset({"_migrations"}).union(
        name for m in load_migrations() if m.version in versions
        for name in _CREATES_TABLE.findall(m.sql))
