"""The DuckDB file: migrations, views, the packaged data folders."""

from __future__ import annotations

import csv
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import numpy as np
import pytest

from musicdb.errors import MigrationError, StoreError
from musicdb.store import database as store
from musicdb.store.database import Migration, data_dir, load_migrations, migrate
from tests.conftest import REPO, SEED_CSV


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def _versions(con: duckdb.DuckDBPyConnection) -> list[int]:
    return [r[0] for r in con.execute("SELECT version FROM _migrations ORDER BY 1").fetchall()]


def _make_newer(db: Path, version: int = 9999) -> None:
    """A database as a future musicdb would leave it: a schema version this one does not know."""
    with store.connect(db, create=True) as con:
        con.execute("INSERT INTO _migrations (version, name, checksum) VALUES (?, 'future', 'x')",
                    [version])


# --- migrations ---------------------------------------------------------------------------


def test_packaged_migrations_are_numbered_and_load():
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "initial"
    assert migrations[0].sql == (REPO / "migrations" / "0001_initial.sql").read_text()


def test_migrating_twice_is_a_noop(db):
    known = len(load_migrations())
    con = duckdb.connect(str(db))
    try:
        assert migrate(con) == known
        assert _versions(con) == list(range(1, known + 1))
        tables = _tables(con)
        assert {"songs", "feature_sets", "feature_names", "features", "ingest_runs"} <= tables
        assert migrate(con) == 0
        assert _versions(con) == list(range(1, known + 1))
        assert _tables(con) == tables
    finally:
        con.close()
    # ...and across connections: store.connect migrates nothing on a second open.
    with store.connect(db, create=True) as con:
        assert migrate(con) == 0
        assert store.schema_version(con) == known


def test_each_migration_runs_in_its_own_transaction(db):
    migrations = [
        Migration(1, "first", "CREATE TABLE first_t (x INTEGER);"),
        # A good statement, then one that fails when it runs (not when it is parsed).
        Migration(2, "second", "CREATE TABLE second_t (x INTEGER NOT NULL);\n"
                               "INSERT INTO second_t VALUES (NULL);"),
        Migration(3, "third", "CREATE TABLE third_t (x INTEGER);"),
    ]
    con = duckdb.connect(str(db))
    try:
        with pytest.raises(MigrationError, match=r"0002_second failed"):
            migrate(con, migrations)
        tables = _tables(con)
        assert "first_t" in tables
        assert "second_t" not in tables  # rolled back, not half-applied
        assert "third_t" not in tables  # nothing after a failure runs
        assert _versions(con) == [1]
        # Fixing the broken migration lets the run finish where it stopped.
        fixed = [*migrations[:1], Migration(2, "second", "CREATE TABLE second_t (x INTEGER);"),
                 migrations[2]]
        assert migrate(con, fixed) == 2
        assert {"first_t", "second_t", "third_t"} <= _tables(con)
        assert _versions(con) == [1, 2, 3]
    finally:
        con.close()
    # The rollback is durable: a fresh connection sees the same.
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert _versions(con) == [1, 2, 3]
    finally:
        con.close()


def test_a_failing_first_migration_leaves_nothing(db):
    con = duckdb.connect(str(db))
    try:
        with pytest.raises(MigrationError):
            migrate(con, [Migration(1, "bad", "CREATE TABLE t1 (x INTEGER);\n"
                                              "SELECT * FROM no_such_table;")])
        assert "t1" not in _tables(con)
        assert _versions(con) == []
    finally:
        con.close()


def test_edited_migration_is_refused(db):
    original = Migration(1, "initial", "CREATE TABLE t (x INTEGER);")
    edited = Migration(1, "initial", "CREATE TABLE t (x INTEGER, y INTEGER);")
    assert original.checksum != edited.checksum
    con = duckdb.connect(str(db))
    try:
        assert migrate(con, [original]) == 1
        with pytest.raises(MigrationError, match=r"0001_initial was edited after it was applied"):
            migrate(con, [edited])
        # Refused means untouched: no new column, still one recorded version.
        assert [c[0] for c in con.execute("DESCRIBE t").fetchall()] == ["x"]
        assert _versions(con) == [1]
    finally:
        con.close()


def test_edited_packaged_migration_is_refused(db):
    with store.connect(db, create=True):
        pass
    real = load_migrations()
    tampered = [Migration(real[0].version, real[0].name, real[0].sql + "\n-- edited\n"), *real[1:]]
    con = duckdb.connect(str(db))
    try:
        with pytest.raises(MigrationError, match="edited after it was applied"):
            migrate(con, tampered)
    finally:
        con.close()


def test_newer_database_is_refused_by_a_writer(db):
    _make_newer(db)
    with (pytest.raises(MigrationError, match="newer musicdb") as info,
          store.connect(db, create=True)):
        pass
    assert "9999" in str(info.value)


def test_newer_database_is_refused_by_a_reader(db):
    _make_newer(db)
    with pytest.raises(MigrationError, match="newer musicdb"), store.connect(db, read_only=True):
        pass


def test_newer_database_is_refused_by_migrate_itself(db):
    con = duckdb.connect(str(db))
    try:
        migrate(con, [Migration(1, "a", "CREATE TABLE a (x INTEGER);"),
                      Migration(2, "b", "CREATE TABLE b (x INTEGER);")])
        with pytest.raises(MigrationError, match="newer musicdb"):
            migrate(con, [Migration(1, "a", "CREATE TABLE a (x INTEGER);")])
    finally:
        con.close()


def test_newer_database_is_refused_by_the_cli(db, run):
    _make_newer(db)
    for args in (["info"], ["export", str(db.parent / "out")],
                 ["import", str(SEED_CSV), "--feature-set", "study55"]):
        result = run(*args, "--db", db, code=1)
        assert "Error:" in result.output
        assert "newer musicdb" in result.output
        assert "Traceback" not in result.output
    # The writer did not touch it: still no songs, still the future version.
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM songs").fetchone()[0] == 0
        assert max(_versions(con)) == 9999
    finally:
        con.close()


def test_reader_refuses_a_missing_file_without_creating_it(db):
    with pytest.raises(StoreError, match="no database at"), store.connect(db, read_only=True):
        pass
    assert not db.exists()


def test_info_on_a_missing_database(db, run):
    before = sorted(db.parent.iterdir())
    result = run("info", "--db", db, code=1)
    assert "Error:" in result.output
    assert "no database at" in result.output
    assert "Traceback" not in result.output
    assert not db.exists()
    assert sorted(db.parent.iterdir()) == before  # no .wal or other leftovers either


def test_reader_refuses_a_duckdb_file_that_is_not_musicdb(db):
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE other (x INTEGER)")
    con.close()
    with pytest.raises(StoreError, match="not a musicdb database"), \
            store.connect(db, read_only=True):
        pass


# --- views ----------------------------------------------------------------------------------


def test_views_exist_in_the_file_for_the_duckdb_shell(db, shell):
    with store.connect(db, create=True):
        pass
    for view in ("song_labels", "library", "feature_set_summary"):
        assert shell(db, f"SELECT * FROM {view} LIMIT 0") == []
        assert shell(db, f"SELECT count(*) FROM {view}") == [["0"]]
    names = {r[0] for r in shell(db, "SELECT view_name FROM duckdb_views() WHERE NOT internal")}
    assert {"song_labels", "library", "feature_set_summary"} <= names


def _csv_rows() -> tuple[list[str], list[list[str]]]:
    with SEED_CSV.open(newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_wide_view_quotes_names_starting_with_a_digit(db, run, shell):
    run("import", SEED_CSV, "--feature-set", "study55", "--db", db)
    header, rows = _csv_rows()
    col = header.index("5band_rms_h0")
    first = rows[0]
    assert "," not in first[1]
    assert "'" not in first[1]
    expected = float(np.float32(first[col]))
    assert expected != 5.0

    got = shell(db, f"""SELECT "5band_rms_h0" FROM features_study55 """
                    f"""WHERE label = '{first[0]}' AND title = '{first[1]}'""")
    assert len(got) == 1
    assert float(got[0][0]) == pytest.approx(expected, rel=1e-6)

    # Every value of the column, not just one: the sum matches the CSV's.
    total = shell(db, 'SELECT count(*), sum("5band_rms_h0"::DOUBLE) FROM features_study55')
    csv_total = float(np.sum(np.array([r[col] for r in rows], dtype=np.float32), dtype=np.float64))
    assert int(total[0][0]) == len(rows)
    assert float(total[0][1]) == pytest.approx(csv_total, rel=1e-6)

    # Unquoted, the same text is the number 5 with an alias: the view must not be built that way.
    assert shell(db, "SELECT 5band_rms_h0 FROM features_study55 LIMIT 1") == [["5"]]


def test_wide_view_columns_follow_feature_names(db, run):
    run("import", SEED_CSV, "--feature-set", "study55", "--db", db)
    header, _ = _csv_rows()
    con = duckdb.connect(str(db), read_only=True)
    try:
        cols = [d[0] for d in con.execute("SELECT * FROM features_study55 LIMIT 0").description]
    finally:
        con.close()
    assert cols[-55:] == header[2:]
    assert {"song_id", "label", "title", "duration_s"} <= set(cols[:-55])


def test_wide_view_sql_quotes_every_name():
    sql = store.wide_view_sql("x", 3, ["5band", 'we"ird', "plain"])
    assert len(sql) == 2
    assert 'AS "5band"' in sql[0]
    assert 'AS "we""ird"' in sql[0]
    assert 'AS "plain"' in sql[0]
    assert 'VIEW "features_x"' in sql[0]
    assert 'VIEW "snippets_x"' in sql[1]
    assert "feature_set_id = 3" in sql[0]


# --- data folders and packaging -------------------------------------------------------------


def test_data_dir_finds_migrations_and_sql():
    migrations, sql = data_dir("migrations"), data_dir("sql")
    assert (migrations / "0001_initial.sql").is_file()
    assert (sql / "10_song_labels.sql").is_file()
    assert (sql / "20_library.sql").is_file()
    # The repository's copies, while running from a checkout.
    assert migrations.resolve() == (REPO / "migrations").resolve()
    assert sql.resolve() == (REPO / "sql").resolve()


def test_wheel_contains_migrations_and_sql(tmp_path):
    out = tmp_path / "wheel"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-cache-dir", "-q", "-w", str(out), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    wheels = list(out.glob("musicdb-*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as zf:
        listing = set(zf.namelist())
        expected = {f"musicdb/migrations/{p.name}" for p in (REPO / "migrations").glob("*.sql")}
        expected |= {f"musicdb/sql/{p.name}" for p in (REPO / "sql").glob("*.sql")}
        assert "musicdb/migrations/0001_initial.sql" in listing
        assert "musicdb/sql/10_song_labels.sql" in listing
        # what runs without a download: the musicnn weights and their licence, the server's page
        assert "musicdb/analysis/weights/msd_musicnn.npz" in listing
        assert "musicdb/analysis/weights/msd_musicnn.LICENSE.txt" in listing
        assert {"musicdb/serve/static/index.html", "musicdb/serve/static/app.js",
                "musicdb/serve/snapshot.sql"} <= listing
        assert expected <= listing
        assert zf.read("musicdb/migrations/0001_initial.sql").decode() == (
            REPO / "migrations" / "0001_initial.sql").read_text()
        installed = tmp_path / "site"
        zf.extractall(installed)

    # Installed (unpacked) elsewhere, the package finds its own copies, not the repository's.
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import musicdb.store.database as s; "
            "print(s.__file__); print(s.data_dir('migrations')); print(s.data_dir('sql')); "
            "print(len(s.load_migrations()))")
    proc = subprocess.run([sys.executable, "-c", code, str(installed)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    module, migrations, sql, n = proc.stdout.split("\n")[:4]
    assert Path(module).is_relative_to(installed)
    assert Path(migrations) == installed / "musicdb" / "migrations"
    assert Path(sql) == installed / "musicdb" / "sql"
    assert int(n) == len(load_migrations())
