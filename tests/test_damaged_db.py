"""Damaged and foreign databases, a full disk, a kill during the similarity refresh.

Each refusal is one line, and the file is left exactly as it was: same bytes, same mtime, no
journal (.wal) or other file created beside it.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import shlex
import shutil
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

from musicdb.cli import app
from musicdb.store import database as store
from musicdb.store import dbfile
from musicdb.store.database import load_migrations, migrate
from musicdb.store.info import library_info
from tests.cli_batch import db_state
from tests.conftest import REPO

MUSICDB = str(Path(sys.executable).with_name("musicdb"))
MIB = 1 << 20


# --- helpers --------------------------------------------------------------------------------


def state(path: Path) -> tuple:
    """What a refusal must not change: the file's bytes and mtime, and its folder's listing
    (as the batch process reports it after each of its commands)."""
    return tuple(db_state(path))


def flat(text: str) -> str:
    return " ".join(text.split())


def refused(run, *args, expect: str) -> str:
    """Run a command that must fail with one Error line mentioning `expect`."""
    result = run(*args, code=1)
    assert "Traceback" not in result.output
    assert result.output.count("Error:") == 1, result.output
    assert expect in flat(result.output), result.output
    return flat(result.output)


def write_table(path: Path, rows: int, columns: int, seed: int = 0) -> Path:
    """A feature table as `musicdb import` reads it: label, file, then numeric columns."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, columns))
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["label", "file", *(f"f{i}" for i in range(columns))])
        for i, row in enumerate(values):
            out.writerow([f"artist{i % 7}", f"song{i}.mp3", *(f"{v:.6g}" for v in row)])
    return path


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    return write_table(tmp_path / "small.csv", rows=60, columns=8)


def _import_small(folder: Path) -> None:
    table = write_table(folder / "small.csv", rows=60, columns=8)  # small_csv's table
    result = CliRunner().invoke(app, ["import", str(table), "--feature-set", "small", "--db",
                                      str(folder / "music.duckdb")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert not (folder / "music.duckdb.wal").exists()  # so the one file is the whole database


@pytest.fixture
def musicdb_file(tmp_path: Path, built_once) -> Path:
    """A real musicdb database with one imported feature set, in its own folder: a private
    copy of one imported once per run (every test that uses it damages or locks its own)."""
    db = tmp_path / "lib" / "music.duckdb"
    db.parent.mkdir()
    shutil.copyfile(built_once("damaged-db-small", _import_small) / "music.duckdb", db)
    return db


def cli(*args: str | Path, limit_bytes: int | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    """The real musicdb in its own process, optionally with a file size limit."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run(
        [MUSICDB, *map(str, args)], capture_output=True, text=True, timeout=timeout,
        preexec_fn=limit if limit_bytes is not None else None,
        env={**os.environ, "COLUMNS": "200"},
    )


def one_line_error(proc: subprocess.CompletedProcess, expect: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, proc.stderr
    assert expect in errors[0], proc.stderr
    return errors[0]


def sql(db: Path, query: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(query).fetchall()


SIMILARITY_KEYS = {"feature_stats": "feature_set_id", "song_vectors": "feature_set_id, song_id",
                   "artist_centroids": "feature_set_id, label_from, label"}


def similarity_matches_computed(db: Path) -> None:
    """The materialised similarity tables hold what their *_computed views compute now.

    Row for row; numbers to rounding, since DuckDB's parallel sums add in no fixed order.
    """
    with duckdb.connect(str(db), read_only=True) as con:
        for table, keys in SIMILARITY_KEYS.items():
            stored = con.execute(f"FROM {table} ORDER BY {keys}").fetchall()
            computed = con.execute(f"FROM {table}_computed ORDER BY {keys}").fetchall()
            assert stored, table
            assert len(stored) == len(computed), table
            for row, fresh in zip(stored, computed, strict=True):
                for value, expected in zip(row, fresh, strict=True):
                    if isinstance(value, (list, float)):
                        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
                    else:
                        assert value == expected, (table, row[:3])
        assert con.execute("SELECT stale FROM similarity_state").fetchall() == [(False,)]


# --- not a DuckDB file ----------------------------------------------------------------------


def _sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE songs (title TEXT)")
    con.execute("INSERT INTO songs VALUES ('mine')")
    con.commit()
    con.close()


FOREIGN_FILES = {
    "random bytes": (lambda p: p.write_bytes(np.random.default_rng(1).bytes(20_000)),
                     "is not a DuckDB file (unknown content)"),
    "text": (lambda p: p.write_text("label,file\nA,a.mp3\nnaïve, ünïcode ✓\n" * 50),
             "is a text file"),
    "sqlite": (_sqlite, "is a SQLite database"),
}
# `experiment create` since `experiment list` became a reading command (issue 12)
CREATE_EXPERIMENT = ["experiment", "create", "mine", "--labels", "artist0,artist1"]
WRITERS = (["import", "{csv}", "--feature-set", "x"], CREATE_EXPERIMENT, ["ingest", "{dir}"])


@pytest.mark.parametrize("kind", FOREIGN_FILES)
def test_a_file_that_is_not_duckdb_is_refused_untouched(kind, tmp_path, small_csv, run):
    make, expect = FOREIGN_FILES[kind]
    db = tmp_path / "db" / "music.duckdb"
    db.parent.mkdir()
    make(db)
    before = state(db)
    for args in (["info"], ["similar", "x"], *WRITERS):
        args = [a.format(csv=small_csv, dir=tmp_path) for a in args]
        refused(run, *args, "--db", db, expect=expect)
        assert state(db) == before, args


def test_connections_never_load_or_install_extensions(musicdb_file, tmp_path):
    """What opening a SQLite file did before: DuckDB reached for its sqlite extension."""
    sqlite_file = tmp_path / "other.sqlite"
    _sqlite(sqlite_file)
    for read_only in (True, False):
        with store.connect(musicdb_file, read_only=read_only) as con:
            settings = con.execute(
                "SELECT current_setting('autoinstall_known_extensions'), "
                "current_setting('autoload_known_extensions')").fetchone()
            assert settings == (False, False)
            with pytest.raises(duckdb.Error, match="sqlite") as info:
                con.execute("SELECT * FROM sqlite_scan(?, 'songs')", [str(sqlite_file)])
            assert "autoload" in str(info.value).lower() or "not loaded" in str(info.value)


# --- DuckDB files that are not (or no longer) musicdb's -------------------------------------


def test_another_programs_duckdb_file_gets_no_musicdb_tables(tmp_path, small_csv, run):
    db = tmp_path / "db" / "theirs.duckdb"
    db.parent.mkdir()
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE orders (id INTEGER, total DOUBLE)")
        con.execute("INSERT INTO orders VALUES (1, 9.5), (2, 20)")
        con.execute("CREATE VIEW big AS SELECT * FROM orders WHERE total > 10")
    before = state(db)
    for args in (["info"], *WRITERS):
        args = [a.format(csv=small_csv, dir=tmp_path) for a in args]
        message = refused(run, *args, "--db", db, expect="not a musicdb database but another "
                          "program's DuckDB file")
        assert "big, orders" in message
        assert state(db) == before, args
    assert {r[0] for r in sql(db, "SELECT table_name FROM duckdb_tables()")} == {"orders"}


def test_an_empty_duckdb_file_becomes_a_database_only_by_import(tmp_path, small_csv, run):
    db = tmp_path / "empty.duckdb"
    duckdb.connect(str(db)).close()  # a valid DuckDB file without a single table
    before = state(db)
    refused(run, "info", "--db", db, expect="empty DuckDB database")
    refused(run, "experiment", "list", "--db", db, expect="empty DuckDB database")
    assert state(db) == before
    run("import", small_csv, "--feature-set", "small", "--db", db)
    assert sql(db, "SELECT count(*) FROM songs") == [(60,)]


def refused_by_reader_and_writers(run, db: Path, small_csv: Path, expect: str) -> list[str]:
    """info, import and experiment list each refuse `db` with `expect` and leave it untouched;
    returns their messages."""
    before, messages = state(db), []
    for args in (["info"], ["import", small_csv, "--feature-set", "small"],
                 ["experiment", "list"]):
        messages.append(refused(run, *args, "--db", db, expect=expect))
        assert state(db) == before, args
    return messages


def test_a_dropped_table_is_named(musicdb_file, small_csv, run):
    with duckdb.connect(str(musicdb_file)) as con:
        con.execute("DROP TABLE feature_names")
        con.execute("DROP TABLE song_vectors")
    for message in refused_by_reader_and_writers(run, musicdb_file, small_csv,
                                                 "tables feature_names, song_vectors missing"):
        assert "restore it from a backup" in message


def test_a_newer_musicdb_schema_is_refused_untouched(musicdb_file, small_csv, run):
    with duckdb.connect(str(musicdb_file)) as con:
        con.execute("INSERT INTO _migrations (version, name, checksum) VALUES (99, 'x', 'x')")
    before = state(musicdb_file)
    for args in (["info"], ["import", small_csv, "--feature-set", "other"]):
        refused(run, *args, "--db", musicdb_file, expect="newer musicdb (schema 99")
        assert state(musicdb_file) == before


def _duckdb_checksum(block: bytes) -> int:
    """DuckDB's block checksum (storage/checksum.cpp): XOR of each 8-byte word times a prime."""
    words = struct.iter_unpack("<Q", block[: len(block) // 8 * 8])
    total = 5381
    for (word,) in words:
        total ^= (word * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    return total


def make_future_duckdb(db: Path, storage_version: int, release: bytes) -> None:
    """Rewrite a real file's main header as a later DuckDB would write it.

    The header's layout (DuckDB's MainHeader, unchanged since storage version 64): an 8-byte
    checksum of the rest of the 4,096-byte block, b"DUCK", the storage version (uint64), four
    flag words, then the writing release ("v1.5.6") and its source id. A 2.x file differs from
    a 1.x one exactly where this rewrites it: a storage version above what this DuckDB reads,
    its own release string and the checksum over both. This DuckDB then fails as it would on
    the real file: "Trying to read a database file with version number N ...".
    """
    raw = bytearray(db.read_bytes())
    assert raw[8:12] == b"DUCK"
    assert raw[52:58] == b"v" + duckdb.__version__.encode()  # where the release is written
    raw[12:20] = struct.pack("<Q", storage_version)
    raw[52:84] = release.ljust(32, b"\x00")
    raw[0:8] = struct.pack("<Q", _duckdb_checksum(bytes(raw[8:dbfile.HEADER_SIZE])))
    db.write_bytes(bytes(raw))


def test_checksum_matches_the_one_duckdb_writes(musicdb_file):
    raw = musicdb_file.read_bytes()
    assert struct.unpack("<Q", raw[:8])[0] == _duckdb_checksum(raw[8:dbfile.HEADER_SIZE])


def test_a_file_written_by_duckdb_2_is_refused_untouched(musicdb_file, small_csv, run):
    make_future_duckdb(musicdb_file, 99, b"v2.0.0")
    for message in refused_by_reader_and_writers(
            run, musicdb_file, small_csv, "written by a newer DuckDB (v2.0.0, storage version 99)"):
        assert "upgrade musicdb and duckdb" in message


def test_a_damaged_header_is_refused(musicdb_file, run):
    raw = bytearray(musicdb_file.read_bytes())
    raw[100] ^= 0xFF  # one flipped byte inside the checksummed header
    musicdb_file.write_bytes(bytes(raw))
    before = state(musicdb_file)
    refused(run, "info", "--db", musicdb_file, expect="is a damaged DuckDB file")
    refused(run, "experiment", "list", "--db", musicdb_file, expect="is a damaged DuckDB file")
    assert state(musicdb_file) == before


def test_an_empty_file_is_refused_by_every_command(tmp_path, small_csv, run):
    db = tmp_path / "db" / "music.duckdb"
    db.parent.mkdir()
    db.touch()
    before = state(db)
    for args in (["info"], *WRITERS):
        args = [a.format(csv=small_csv, dir=tmp_path) for a in args]
        refused(run, *args, "--db", db, expect="is empty (0 bytes)")
        assert state(db) == before


def test_only_ingest_and_import_create_a_database(tmp_path, small_csv, run):
    db = tmp_path / "new.duckdb"
    for args in (["info"], ["experiment", "list"], ["similar", "x"]):
        refused(run, *args, "--db", db, expect=f"no database at {db}")
        assert not db.exists()
        assert sorted(tmp_path.iterdir()) == [small_csv]
    run("import", small_csv, "--feature-set", "small", "--db", db)
    assert db.exists()
    run("info", "--db", db)


# --- read-only files and folders ------------------------------------------------------------


# Root may write any file whatever its mode, so as root the test makes things read-only the way
# root cannot get around: a read-only bind mount, in a private mount namespace.
RO_MOUNTS = {
    "file": ["mount --bind -o ro {db} {db}"],
    "folder": ["mount --bind -o ro {folder} {folder}", "mount --bind {db} {db}",
               "mount -o remount,bind,rw {db}"],
    "both": ["mount --bind -o ro {folder} {folder}"],
}
RO_MODES = {"file": (0o444, 0o755), "folder": (0o644, 0o555), "both": (0o444, 0o555)}


def run_read_only(case: str, db: Path, *commands: list[str | Path]
                  ) -> list[tuple[subprocess.CompletedProcess, tuple]]:
    """The CLI with db, its folder or both read-only for it (case 'file', 'folder', 'both'):
    each command, and the state of db after it. One process runs them all (tests.cli_batch),
    read-only for that process as a separate `musicdb` would be."""
    batch = [sys.executable, "-m", "tests.cli_batch", str(db),
             *(json.dumps([str(a) for a in args]) for args in commands)]
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO)}
    if os.geteuid() != 0:
        file_mode, folder_mode = RO_MODES[case]
        db.chmod(file_mode)
        db.parent.chmod(folder_mode)
        try:
            proc = subprocess.run(batch, capture_output=True, text=True, timeout=300, env=env)
        finally:
            db.parent.chmod(0o755)
            db.chmod(0o644)
    else:
        if shutil.which("unshare") is None:
            pytest.skip("as root, needs `unshare -m` for a read-only bind mount")
        names = {"db": shlex.quote(str(db)), "folder": shlex.quote(str(db.parent))}
        steps = [step.format(**names) for step in RO_MOUNTS[case]]
        script = " && ".join([*steps, shlex.join(batch)])
        proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                              text=True, timeout=300, env=env)
        if "mount:" in proc.stderr:
            pytest.skip(f"cannot bind-mount read-only here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr  # the batch itself ran to its end
    return [(subprocess.CompletedProcess(args, r["code"], r["stdout"], r["stderr"]),
             tuple(r["state"])) for args, r in zip(commands, json.loads(proc.stdout),
                                                   strict=True)]


@pytest.mark.parametrize("case", ["file", "folder", "both"])
def test_read_only_file_or_folder(case, musicdb_file, small_csv):
    before = state(musicdb_file)
    expect = "the folder holding" if case == "folder" else "is read-only, and this command writes"
    new = musicdb_file.with_name("new.duckdb")
    writes = (["import", small_csv, "--feature-set", "other"], CREATE_EXPERIMENT)
    commands = [*([*args, "--db", musicdb_file] for args in writes),
                ["info", "--db", musicdb_file], ["experiment", "list", "--db", musicdb_file]]
    if case != "file":  # nor can a new database be made in a read-only folder
        commands.append(["import", small_csv, "--feature-set", "small", "--db", new])
    results = run_read_only(case, musicdb_file, *commands)
    refused_writes, (info, after_info), (listed, after_list) = results[:2], *results[2:4]
    creating = results[4:]
    for proc, after in refused_writes:
        message = one_line_error(proc, expect)
        assert "reading commands" in message
        assert after == before
    assert info.returncode == 0, info.stderr  # readers work
    assert "60 imported" in info.stdout
    assert listed.returncode == 0, listed.stderr
    assert "\nxmas\tTrue\t" in listed.stdout  # a pipe gets the listing as full values
    assert after_info == after_list == before
    assert state(musicdb_file) == before
    for proc, _ in creating:
        one_line_error(proc, "the folder")
        assert not new.exists()
    assert len(creating) == (case != "file")


# --- full disk --------------------------------------------------------------------------------


def test_a_file_size_limit_mid_import_is_one_line_and_loses_nothing(musicdb_file, tmp_path,
                                                                     run):
    big = write_table(tmp_path / "big.csv", rows=1000, columns=100, seed=2)
    songs_before = sql(musicdb_file, "SELECT song_id, title, imported_label FROM songs")
    # No file may pass 256 KiB, the journal (.wal) the import commits to first included: what
    # `ulimit -f` does. The import's values alone are 1000 x 100 float32s, 0.4 MB.
    proc = cli("import", big, "--feature-set", "big", "--db", musicdb_file,
               limit_bytes=MIB // 4)
    line = one_line_error(proc, "cannot grow: a file size limit stopped the write of")
    assert "File too large" in line
    assert "everything written before is kept" in line
    # It still opens, with what it held before and no trace of the failed import.
    assert sql(musicdb_file, "SELECT song_id, title, imported_label FROM songs") == songs_before
    assert sql(musicdb_file, "SELECT name FROM feature_sets") == [("small",)]
    # Without the limit the same command completes (in this process: no limit to set).
    run("import", big, "--feature-set", "big", "--db", musicdb_file)
    assert sql(musicdb_file, "SELECT count(*) FROM features_big") == [(1000,)]
    similarity_matches_computed(musicdb_file)


def _can_mount_tmpfs(folder: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c",
                            f"mount -t tmpfs -o size=1m tmpfs '{folder}'"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


def test_a_full_disk_mid_import_is_one_line_and_loses_nothing(musicdb_file, tmp_path, run):
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _can_mount_tmpfs(disk):
        pytest.skip("needs root and `unshare -m` to mount a small tmpfs")
    big = write_table(tmp_path / "big.csv", rows=1000, columns=100, seed=2)
    saved = tmp_path / "saved"
    saved.mkdir()
    size_kib = musicdb_file.stat().st_size // 1024 + 128
    # A private mount: a tmpfs only 128 KiB larger than the database, which the import
    # fills. The database (and any journal) is copied out before the mount goes away.
    script = (f"mount -t tmpfs -o size={size_kib}k tmpfs '{disk}' && "
              f"cp '{musicdb_file}' '{disk}/music.duckdb' && "
              f"'{MUSICDB}' import '{big}' --feature-set big --db '{disk}/music.duckdb'; "
              f"rc=$?; cp '{disk}'/music.duckdb* '{saved}/'; exit $rc")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    line = one_line_error(proc, "the disk holding")
    assert "is full (No space left on device)" in line
    assert "free space and run the same command again" in line
    db = saved / "music.duckdb"
    assert sql(db, "SELECT name FROM feature_sets") == [("small",)]
    assert sql(db, "SELECT count(*) FROM songs") == [(60,)]
    run("import", big, "--feature-set", "big", "--db", db)  # space freed: completes
    assert sql(db, "SELECT count(*) FROM features_big") == [(1000,)]
    similarity_matches_computed(db)


# --- stale similarity tables ------------------------------------------------------------------


def test_a_kill_during_the_similarity_refresh_is_repaired_by_the_next_run(
        musicdb_file, tmp_path, run):
    second = write_table(tmp_path / "second.csv", rows=60, columns=8, seed=5)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.dying_refresh", "import", str(second), "--feature-set",
         "second", "--db", str(musicdb_file)],
        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 137, proc.stderr  # died inside the refresh, as a kill would
    # The import itself is committed; the similarity tables are the old ones, flagged stale.
    assert sql(musicdb_file, "SELECT count(*) FROM features_second") == [(60,)]
    assert sql(musicdb_file, "SELECT DISTINCT feature_set_id FROM song_vectors") == \
        sql(musicdb_file, "SELECT feature_set_id FROM feature_sets WHERE name = 'small'")
    assert sql(musicdb_file, "SELECT stale FROM similarity_state") == [(True,)]
    with store.connect(musicdb_file, read_only=True) as con:
        assert library_info(con).similarity_stale
    # The same command again changes no values, and still leaves the tables right.
    result = run("import", second, "--feature-set", "second", "--db", musicdb_file)
    assert "0 new songs, 0 with changed values" in flat(result.output)
    similarity_matches_computed(musicdb_file)
    assert len(sql(musicdb_file, "SELECT DISTINCT feature_set_id FROM song_vectors")) == 2


def test_any_writer_rebuilds_stale_tables(musicdb_file, run):
    with duckdb.connect(str(musicdb_file)) as con:
        con.execute("DELETE FROM song_vectors")  # as a killed refresh might leave them
        con.execute("UPDATE similarity_state SET stale = true")
    run(*CREATE_EXPERIMENT, "--db", musicdb_file)
    similarity_matches_computed(musicdb_file)


# --- an old database --------------------------------------------------------------------------


def first_migration_only(db: Path) -> None:
    """A database as musicdb's first release left it: migration 0001 and some imported songs."""
    first = load_migrations()[0]
    assert first.sql == (REPO / "migrations" / "0001_initial.sql").read_text()
    with duckdb.connect(str(db)) as con:
        migrate(con, [first])
        con.execute(
            "INSERT INTO feature_sets (feature_set_id, name, version, kind, params, n_features) "
            "VALUES (nextval('feature_set_id_seq'), 'old', 1, 'imported', '{}', 2)")
        con.execute("INSERT INTO feature_names VALUES (1, 1, 'a', NULL), (1, 2, 'b', NULL)")
        for i, (label, title) in enumerate([("X", "one"), ("X", "two"), ("Y", "three")]):
            con.execute("INSERT INTO songs (song_id, source, status, title, imported_label) "
                        "VALUES (nextval('song_id_seq'), 'import', 'ok', ?, ?)", [title, label])
            con.execute("INSERT INTO features VALUES (?, 1, -1, 0, 0, ?)",
                        [i + 1, [float(i), 10.0 * i]])


def test_a_first_migration_database_is_migrated_in_place(tmp_path, small_csv, run):
    db = tmp_path / "old.duckdb"
    first_migration_only(db)
    songs = sql(db, "SELECT * FROM songs ORDER BY song_id")
    features = sql(db, "SELECT * FROM features ORDER BY song_id")
    newest = max(m.version for m in load_migrations())
    # A reader cannot migrate: it says how to upgrade, and leaves the file alone.
    before = state(db)
    refused(run, "info", "--db", db, expect="has musicdb schema 1, older than this musicdb reads")
    assert state(db) == before
    # Any writer upgrades it, keeping every row; its songs get similarity vectors too.
    run("import", small_csv, "--feature-set", "small", "--db", db)
    assert [r[0] for r in sql(db, "SELECT version FROM _migrations ORDER BY 1")] == \
        list(range(1, newest + 1))
    assert sql(db, "SELECT * FROM songs WHERE song_id <= 3 ORDER BY song_id") == songs
    assert sql(db, "SELECT * FROM features WHERE feature_set_id = 1 ORDER BY song_id") == features
    assert sql(db, "SELECT label, title, a, b FROM features_old ORDER BY title") == [
        ("X", "one", 0.0, 0.0), ("Y", "three", 2.0, 20.0), ("X", "two", 1.0, 10.0)]
    assert sql(db, "SELECT count(*) FROM songs") == [(63,)]
    similarity_matches_computed(db)
    info = run("info", "--db", db)
    assert f"schema version {newest}" in info.output


def test_a_foreign_migrations_table_is_not_mistaken_for_musicdb(tmp_path, small_csv, run):
    db = tmp_path / "tool.duckdb"
    with duckdb.connect(str(db)) as con:  # another tool's bookkeeping under the same name
        con.execute("CREATE TABLE _migrations (id INTEGER, applied VARCHAR)")
        con.execute("INSERT INTO _migrations VALUES (1, 'init')")
    before = state(db)
    for args in (["info"], ["import", small_csv, "--feature-set", "small"]):
        refused(run, *args, "--db", db, expect="its _migrations table is not musicdb's")
        assert state(db) == before


def test_a_first_run_killed_before_its_first_migration_is_resumed(tmp_path, small_csv, run):
    db = tmp_path / "music.duckdb"
    with duckdb.connect(str(db)) as con:  # what store.migrate commits before migration 0001
        con.execute("CREATE TABLE _migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
                    "checksum VARCHAR NOT NULL, applied_at TIMESTAMP DEFAULT current_timestamp)")
    refused(run, "info", "--db", db, expect="empty DuckDB database")
    run("import", small_csv, "--feature-set", "small", "--db", db)
    assert sql(db, "SELECT count(*) FROM features_small") == [(60,)]


def test_a_database_in_use_by_another_writer_is_one_line(musicdb_file, run):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, duckdb; con = duckdb.connect(sys.argv[1]); "
         "print('ready', flush=True); sys.stdin.read()", str(musicdb_file)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "ready\n"
        for args in (["info"], ["experiment", "list"]):
            message = refused(run, *args, "--db", musicdb_file,
                              expect="is open for writing in python (PID")
            assert f"PID {holder.pid})" in message
    finally:
        holder.communicate("", timeout=60)
    run("info", "--db", musicdb_file)
