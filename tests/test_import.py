"""`musicdb import` and `musicdb export`: the study's tables, checked against the CSV itself."""

from __future__ import annotations

import csv
import gzip
import shutil
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

from musicdb.analysis.analyse import EXTRACTORS, set_params
from musicdb.cli import app
from musicdb.store import database as store
from musicdb.store.database import FeatureSetDef, ensure_feature_set
from tests.conftest import SEED_CSV, SEED_CSV_247

# The study's label counts (from its write-up); checked against the CSV as well below.
STUDY_LABELS = {
    "AvrilLavigne": 91, "BoardsOfCanada": 214, "Classical": 467, "FooFighters": 99,
    "ImogenHeap": 61, "MichaelJackson": 60, "PinkFloyd": 107, "REM": 111, "TaylorSwift": 95,
    "TheFlashbulb": 560, "TommyEmmanuel": 114, "Xmas": 323, "Zero7": 31,
}
N_SONGS = 2333


def cli(*args, code: int | None = 0, env: dict | None = None):
    """The real CLI, usable from module-scoped fixtures (the `run` fixture is per test)."""
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False, env=env)
    if code is not None:
        assert result.exit_code == code, result.output
    return result


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def seed():
    return read_table(SEED_CSV)


@pytest.fixture(scope="module")
def seed247():
    return read_table(SEED_CSV_247)


@pytest.fixture(scope="module")
def imported_dir(tmp_path_factory) -> Path:
    """A database with study55 imported from the CSV, then study247 from the .csv.gz."""
    folder = tmp_path_factory.mktemp("imported")
    cli("import", SEED_CSV, "--feature-set", "study55", "--db", folder / "one.duckdb")
    shutil.copy(folder / "one.duckdb", folder / "both.duckdb")
    cli("import", SEED_CSV_247, "--feature-set", "study247", "--db", folder / "both.duckdb")
    return folder


@pytest.fixture
def db55(imported_dir, tmp_path) -> Path:
    """A private copy of the study55 database, free to change."""
    return Path(shutil.copy(imported_dir / "one.duckdb", tmp_path / "music.duckdb"))


def query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


SNAPSHOT = {
    "songs": "SELECT count(*), max(song_id), max(updated_at) FROM songs",
    "sets": "SELECT feature_set_id, name, version, kind, n_features FROM feature_sets ORDER BY 1",
    "names": "SELECT count(*) FROM feature_names",
    # An exact, order-independent fingerprint of the values (a float sum is neither).
    "features": "SELECT feature_set_id, count(*), sum(hash(song_id, snippet, vals)) "
                "FROM features GROUP BY 1 ORDER BY 1",
    "views": "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1",
}


def snapshot(db: Path) -> dict:
    """Everything an import may change, to compare before and after a refused one (one
    connection for all of it: opening this file costs more than the queries)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {key: con.execute(sql).fetchall() for key, sql in SNAPSHOT.items()}
    finally:
        con.close()


def assert_values_match(db: Path, set_name: str, header: list[str], rows: list[list[str]]):
    """Every value of the set equals the table's, as float32, matched by (label, file)."""
    names = header[2:]
    cols = ", ".join(store.quote_ident(n) for n in names)
    stored = {(r[0], r[1]): r[2:] for r in query(
        db, f"SELECT label, title, {cols} FROM {store.quote_ident('features_' + set_name)}")}
    assert len(stored) == len(rows) == N_SONGS
    keys = [(r[0], r[1]) for r in rows]
    assert set(stored) == set(keys)
    got = np.array([stored[k] for k in keys], dtype=np.float64)
    want = np.array([r[2:] for r in rows], dtype=np.float64).astype(np.float32)
    assert got.shape == want.shape == (N_SONGS, len(names))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want.astype(np.float64), rtol=1e-6, atol=0)
    # Same float32 value, except at most a rounding step apart for a handful of values.
    assert (got == want).mean() > 0.999


# --- the study's CSV --------------------------------------------------------------------------


def test_csv_itself_has_the_study_labels(seed):
    header, rows = seed
    assert header[:2] == ["label", "file"]
    assert len(header) == 57
    assert Counter(r[0] for r in rows) == STUDY_LABELS


def test_import_songs_and_labels(imported_dir, seed):
    db = imported_dir / "one.duckdb"
    assert query(db, "SELECT count(*), count(DISTINCT song_id) FROM songs") == [(N_SONGS, N_SONGS)]
    assert query(db, "SELECT DISTINCT source, status FROM songs") == [("import", "ok")]
    assert query(db, "SELECT count(*) FROM songs WHERE path IS NOT NULL") == [(0,)]
    for rule in ("imported", "auto"):
        counts = dict(query(db, "SELECT label, count(*) FROM song_labels WHERE rule = ? "
                                "GROUP BY label", [rule]))
        assert counts == STUDY_LABELS, rule
    assert query(db, "SELECT DISTINCT rule FROM song_labels ORDER BY 1") == [("auto",),
                                                                            ("imported",)]
    # Each song is the CSV's (label, file) pair.
    pairs = set(query(db, "SELECT imported_label, title FROM songs"))
    assert pairs == {(r[0], r[1]) for r in seed[1]}
    assert query(db, "SELECT count(*) FROM library WHERE label IS NULL") == [(0,)]


def test_import_values_equal_the_csv(imported_dir, seed):
    header, rows = seed
    assert_values_match(imported_dir / "one.duckdb", "study55", header, rows)


def test_import_feature_names_are_the_header(imported_dir, seed):
    db = imported_dir / "one.duckdb"
    (set_id, kind, n, version), = query(
        db, "SELECT feature_set_id, kind, n_features, version FROM feature_sets "
            "WHERE name = 'study55'")
    assert (kind, n, version) == ("imported", 55, 1)
    names = [r[0] for r in query(db, "SELECT name FROM feature_names WHERE feature_set_id = ? "
                                     "ORDER BY position", [set_id])]
    assert names == seed[0][2:]
    positions = [r[0] for r in query(db, "SELECT position FROM feature_names "
                                         "WHERE feature_set_id = ? ORDER BY 1", [set_id])]
    assert positions == list(range(1, 56))
    assert query(db, "SELECT DISTINCT len(vals) FROM features WHERE feature_set_id = ?",
                 [set_id]) == [(55,)]


def test_second_table_attaches_to_the_same_songs(imported_dir, seed, seed247):
    db = imported_dir / "both.duckdb"
    header, rows = seed247
    assert len(header) == 249
    assert {(r[0], r[1]) for r in rows} == {(r[0], r[1]) for r in seed[1]}
    assert query(db, "SELECT count(*) FROM songs") == [(N_SONGS,)]
    assert query(db, "SELECT name, n_features, songs FROM feature_set_summary ORDER BY 1") == [
        ("study247", 247, N_SONGS), ("study55", 55, N_SONGS)]
    both = query(db, "SELECT count(*) FROM (SELECT song_id FROM features WHERE snippet = -1 "
                     "GROUP BY song_id HAVING count(DISTINCT feature_set_id) = 2)")
    assert both == [(N_SONGS,)]
    names = [r[0] for r in query(
        db, "SELECT n.name FROM feature_names n JOIN feature_sets s USING (feature_set_id) "
            "WHERE s.name = 'study247' ORDER BY position")]
    assert names == header[2:]
    assert_values_match(db, "study247", header, rows)
    # The first set is untouched by the second import.
    assert_values_match(db, "study55", *seed)


def test_reimport_changes_nothing(db55, seed, run):
    before = snapshot(db55)
    result = run("import", SEED_CSV, "--feature-set", "study55", "--db", db55)
    text = flat(result.output)
    assert f"Imported {N_SONGS:,} songs" in text
    assert "0 new songs" in text
    assert "0 with changed values" in text
    after = snapshot(db55)
    for key in ("sets", "names", "features", "views"):
        assert after[key] == before[key], key
    assert after["songs"][0][:2] == before["songs"][0][:2]
    assert_values_match(db55, "study55", *seed)


def test_import_reports_changed_values(db55, seed, tmp_path, run):
    header, rows = seed
    edited = [list(r) for r in rows]
    col = header.index("bpm")
    edited[0][col] = str(float(rows[0][col]) + 1)
    path = tmp_path / "edited.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *edited])
    result = run("import", path, "--feature-set", "study55", "--db", db55)
    assert "0 new songs, 1 with changed values" in flat(result.output)
    assert_values_match(db55, "study55", header, edited)


def test_reimport_with_columns_in_another_order(db55, seed, tmp_path, run):
    header, rows = seed
    order = [0, 1, *reversed(range(2, len(header)))]  # features last to first
    path = tmp_path / "reversed.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([[r[i] for i in order] for r in [header, *rows]])
    before = snapshot(db55)
    result = run("import", path, "--feature-set", "study55", "--db", db55)
    assert "0 new songs, 0 with changed values" in flat(result.output)
    assert snapshot(db55)["features"] == before["features"]
    assert_values_match(db55, "study55", header, rows)


def test_songs_are_identified_by_label_and_title(tmp_path, run):
    path = tmp_path / "tiny.csv"
    path.write_text("label,file,a,b\nX,same.mp3,1,2\nY,same.mp3,3,4\nX,other.mp3,5,6\n")
    db = tmp_path / "tiny.duckdb"
    run("import", path, "--feature-set", "tiny", "--db", db)
    assert sorted(query(db, "SELECT label, title, a, b FROM features_tiny")) == [
        ("X", "other.mp3", 5.0, 6.0), ("X", "same.mp3", 1.0, 2.0), ("Y", "same.mp3", 3.0, 4.0)]
    # A second table with one more song under a known title: one new song, the rest attached.
    more = tmp_path / "more.csv"
    more.write_text("label,file,c\nY,same.mp3,7\nZ,same.mp3,8\nX,same.mp3,9\nX,other.mp3,0\n")
    result = run("import", more, "--feature-set", "more", "--db", db)
    assert "1 new song, " in flat(result.output)
    assert sorted(query(db, "SELECT label, title, c FROM features_more")) == [
        ("X", "other.mp3", 0.0), ("X", "same.mp3", 9.0), ("Y", "same.mp3", 7.0),
        ("Z", "same.mp3", 8.0)]
    assert query(db, "SELECT count(*) FROM songs") == [(4,)]


def test_import_into_an_extracted_set_is_refused(db55, run):
    with store.connect(db55) as con:
        ex = EXTRACTORS["seed55"]
        con.begin()
        ensure_feature_set(con, FeatureSetDef("seed55", "extracted", set_params("seed55", 30.0),
                                              ex.names, ex.descriptions))
        con.commit()
        store.create_views(con)
    assert query(db55, "SELECT kind FROM feature_sets WHERE name = 'seed55'") == [("extracted",)]
    before = snapshot(db55)
    result = run("import", SEED_CSV, "--feature-set", "seed55", "--db", db55, code=1)
    text = flat(result.output)
    assert "Error:" in text
    assert "'seed55' is an extracted feature set" in text
    assert "Traceback" not in result.output
    assert snapshot(db55) == before


def test_import_rejects_a_bad_set_name(db55, run):
    before = snapshot(db55)
    result = run("import", SEED_CSV, "--feature-set", "Study-55", "--db", db55, code=1)
    assert "Error:" in result.output
    assert "'Study-55'" in flat(result.output)
    assert snapshot(db55) == before


# --- broken tables: exit 1, one clear line, nothing changed ---------------------------------


def write_variant(tmp_path: Path, seed, name: str, *, drop: str | None = None,
                  add: str | None = None, cell: tuple[int, str, str] | None = None,
                  rename: tuple[str, str] | None = None, dup_first: bool = False) -> Path:
    header, rows = seed
    header, rows = list(header), [list(r) for r in rows]
    if drop:
        i = header.index(drop)
        header.pop(i)
        for r in rows:
            r.pop(i)
    if add:
        header.append(add)
        for n, r in enumerate(rows):
            r.append(str(n * 0.5))
    if cell:
        row, column, value = cell
        rows[row][header.index(column)] = value
    if rename:
        header[header.index(rename[0])] = rename[1]
    if dup_first:
        rows.append(list(rows[0]))
    path = tmp_path / name
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output  # one line, even when longer than the terminal
    assert lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("set_name", ["study55", "fresh"])
def test_non_numeric_value_is_named(db55, seed, tmp_path, run, set_name):
    path = write_variant(tmp_path, seed, "bad.csv", cell=(1500, "centroid_std", "n/a"))
    before = snapshot(db55)
    line = error_line(run("import", path, "--feature-set", set_name, "--db", db55, code=1))
    assert "'centroid_std'" in line
    assert "'n/a'" in line
    assert "1 values" in line
    assert snapshot(db55) == before


@pytest.mark.parametrize(("cell", "set_name", "said"), [
    ((7, "5band_rms_h0", ""), "study55", "'5band_rms_h0'"),  # an empty value is named
    ((3, "label", ""), "partial", "1 rows without a 'label'"),  # so are rows without a label
])
def test_an_empty_cell_is_named_and_nothing_changes(db55, seed, tmp_path, run, cell, set_name,
                                                     said):
    path = write_variant(tmp_path, seed, "empty.csv", cell=cell)
    before = snapshot(db55)
    line = error_line(run("import", path, "--feature-set", set_name, "--db", db55, code=1))
    assert said in line
    assert snapshot(db55) == before


def test_missing_label_column(db55, seed, tmp_path, run):
    path = write_variant(tmp_path, seed, "nolabel.csv", rename=("label", "artist"))
    before = snapshot(db55)
    line = error_line(run("import", path, "--feature-set", "other", "--db", db55, code=1))
    assert "no column 'label'" in line
    assert "--label-column" in line
    assert snapshot(db55) == before
    # ...which --label-column then fixes, onto the same songs.
    result = run("import", path, "--feature-set", "other", "--label-column", "artist",
                 "--db", db55)
    assert "0 new songs" in flat(result.output)
    assert query(db55, "SELECT count(*) FROM songs") == [(N_SONGS,)]


def test_file_name_with_brackets_is_shown_as_is(db55, seed, tmp_path, run):
    # Rich markup would swallow '[v2]' (and raise on a closing tag like '[/v2]').
    path = write_variant(tmp_path, seed, "study [v2] [bold].csv", rename=("label", "artist"))
    line = error_line(run("import", path, "--feature-set", "other", "--db", db55, code=1))
    assert "study [v2] [bold].csv has no column 'label'" in line


@pytest.mark.parametrize(("variant", "said"), [
    ({"drop": "bpm"}, ["does not match feature set 'study55'", "1 column (bpm) missing",
                       "no columns extra"]),
    ({"add": "loudness"}, ["does not match feature set 'study55'", "no columns missing",
                           "1 column (loudness) extra"]),
])
def test_columns_that_do_not_match_an_existing_set(db55, seed, tmp_path, run, variant, said):
    path = write_variant(tmp_path, seed, "columns.csv", **variant)
    before = snapshot(db55)
    line = error_line(run("import", path, "--feature-set", "study55", "--db", db55, code=1))
    for words in said:
        assert words in line
    assert snapshot(db55) == before


def test_repeated_song_rolls_back_a_new_set(db55, seed, tmp_path, run):
    # Caught inside the write transaction, after the new set was registered: all of it goes.
    path = write_variant(tmp_path, seed, "dupes.csv", dup_first=True)
    before = snapshot(db55)
    line = error_line(run("import", path, "--feature-set", "dupes", "--db", db55, code=1))
    assert "must be unique" in line
    assert "01 Girlfriend.mp3" in line
    assert snapshot(db55) == before
    assert query(db55, "SELECT count(*) FROM feature_sets WHERE name = 'dupes'") == [(0,)]


def test_not_a_table(db55, tmp_path, run):
    path = tmp_path / "features.json"
    path.write_text("{}")
    before = snapshot(db55)
    line = error_line(run("import", path, "--feature-set", "x", "--db", db55, code=1))
    assert ".csv" in line
    assert ".parquet" in line
    assert snapshot(db55) == before


# --- parquet --------------------------------------------------------------------------------


def test_parquet_import(tmp_path, seed, run):
    parquet = tmp_path / "seed.parquet"
    con = duckdb.connect()
    try:
        con.execute(f"COPY (SELECT * FROM read_csv('{SEED_CSV}', header = true)) "
                    f"TO '{parquet}' (FORMAT parquet)")
        types = {r[0]: r[1] for r in con.execute(
            f"DESCRIBE SELECT * FROM read_parquet('{parquet}')").fetchall()}
    finally:
        con.close()
    assert types["bpm"] == "DOUBLE"  # a real numeric parquet, not text
    db = tmp_path / "music.duckdb"
    result = run("import", parquet, "--feature-set", "study55", "--db", db)
    assert f"{N_SONGS:,} new songs" in flat(result.output)
    assert query(db, "SELECT count(*) FROM songs") == [(N_SONGS,)]
    assert dict(query(db, "SELECT label, count(*) FROM song_labels WHERE rule = 'auto' "
                          "GROUP BY 1")) == STUDY_LABELS
    assert_values_match(db, "study55", *seed)
    # The same data as CSV afterwards: the same songs, no new ones.
    result = run("import", SEED_CSV, "--feature-set", "study55", "--db", db)
    assert "0 new songs" in flat(result.output)
    assert query(db, "SELECT count(*) FROM songs") == [(N_SONGS,)]


# --- export ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("option", "fmt"), [("flat-parquet", "parquet"), ("csv", "csv")])
def test_export(imported_dir, tmp_path, seed, run, option, fmt):
    db = imported_dir / "one.duckdb"
    out_dir = tmp_path / "out"
    result = run("export", out_dir, "--format", option, "--db", db)
    files = {p.name for p in out_dir.iterdir()}
    assert {f"library.{fmt}", f"song_labels.{fmt}", f"features_study55.{fmt}"} <= files
    assert f"snippets_study55.{fmt}" not in files  # imported sets have no snippets

    reader = "read_parquet" if fmt == "parquet" else "read_csv"
    con = duckdb.connect()
    try:
        def count(name: str) -> int:
            return con.execute(f"SELECT count(*) FROM {reader}(?)",
                               [str(out_dir / f"{name}.{fmt}")]).fetchone()[0]

        expected = {
            "library": query(db, "SELECT count(*) FROM library")[0][0],
            "song_labels": query(db, "SELECT count(*) FROM song_labels")[0][0],
            "features_study55": query(db, "SELECT count(*) FROM features_study55")[0][0],
        }
        assert expected == {"library": N_SONGS, "song_labels": 2 * N_SONGS,
                            "features_study55": N_SONGS}
        for name, n in expected.items():
            assert count(name) == n, name
            assert f"{n:,} rows" in flat(result.output)

        # The exported wide table still carries the CSV's values and column names.
        header, rows = seed
        exported = con.execute(
            f"SELECT label, title, \"5band_rms_h0\", bpm FROM {reader}(?)",
            [str(out_dir / f"features_study55.{fmt}")]).fetchall()
        labels = dict(con.execute(
            f"SELECT label, count(*) FROM {reader}(?) WHERE rule = 'auto' GROUP BY 1",
            [str(out_dir / f"song_labels.{fmt}")]).fetchall())
    finally:
        con.close()
    assert labels == STUDY_LABELS
    by_key = {(r[0], r[1]): r[2:] for r in exported}
    i, j = header.index("5band_rms_h0"), header.index("bpm")
    got = np.array([by_key[(r[0], r[1])] for r in rows], dtype=np.float64)
    want = np.array([[r[i], r[j]] for r in rows], dtype=np.float64).astype(np.float32)
    np.testing.assert_allclose(got, want.astype(np.float64), rtol=1e-6)


def test_export_rejects_an_unknown_format(imported_dir, tmp_path, run):
    result = run("export", tmp_path / "out", "--format", "xlsx", "--db",
                 imported_dir / "one.duckdb", code=2)
    assert "'xlsx' is not one of 'parquet', 'csv'" in flat(result.output)
    assert not (tmp_path / "out").exists()
