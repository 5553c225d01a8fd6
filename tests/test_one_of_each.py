"""One of each helper (issue 12): one label normaliser shared by the shell and the CLI, one
distance formula per method, one suggestion helper, all error classes in errors.py, and
read-only commands that never create or lock a file for writing."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pytest
import soundfile as sf

import musicdb
from musicdb import errors
from musicdb.ml.models import mean_per_song
from tests.test_similar import N_FEATURES, write_table

MUSICDB = str(Path(sys.executable).with_name("musicdb"))
# Labels whose matching needs more than lower(): ß folds to ss, accents drop.
LABELS = {"Straße": 0.0, "Beyoncé": 1.5, "Zero 7": -2.0, "Sigur Rós": 3.0}
METHOD_COLUMN = {"centroid": "euclidean", "cosine": "cosine", "songs": "song_rms"}


@pytest.fixture(scope="module")
def label_db(tmp_path_factory) -> Path:
    """Four imported labels of 6 songs each, through the real CLI."""
    from typer.testing import CliRunner

    from musicdb.cli import app

    tmp = tmp_path_factory.mktemp("one-of-each")
    centres = {name: np.full(N_FEATURES, c) + np.arange(N_FEATURES) * (i + 1) * 0.1
               for i, (name, c) in enumerate(LABELS.items())}
    table = write_table(tmp / "labels.csv", centres, songs=6, seed=3)
    db = tmp / "labels.duckdb"
    result = CliRunner().invoke(app, ["import", str(table), "--feature-set", "lab",
                                      "--db", str(db)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return db


def musicdb_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([MUSICDB, *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


# --- one label normaliser --------------------------------------------------------------------

def test_strasse_finds_strasse_in_similar_map_and_the_shell(run, shell, label_db, tmp_path):
    answer = json.loads(run("similar", "Strasse", "--json", "--db", label_db).stdout)
    assert answer["query"] == "Straße"
    assert answer["results"]
    mapped = json.loads(run("similar", "STRASSE", "--json", "--db", label_db).stdout)
    assert mapped["query"] == "Straße"

    page = tmp_path / "map.html"
    run("map", "--labels", "strasse,beyonce", "--method", "svd", "-o", page, "--db", label_db)
    assert page.is_file()
    with duckdb.connect(str(label_db), read_only=True) as con:
        drawn = con.execute("SELECT labels FROM map_runs ORDER BY run_id DESC LIMIT 1"
                            ).fetchone()[0]
    assert sorted(drawn) == ["Beyoncé", "Straße"]

    # The shell matches through the same macro, so it agrees with both commands.
    assert shell(label_db, "SELECT label_key('Straße') = label_key('strasse'), "
                           "label_key('Sigur Rós') = label_key('SIGUR ROS')") == [["true",
                                                                                   "true"]]
    assert shell(label_db, "SELECT count(*) FROM similar_artists('strasse', 10)") == [["3"]]


def test_exclude_label_uses_the_same_normaliser(run, label_db):
    answer = json.loads(run("similar", "Zero 7", "--json", "--exclude-label", "strasse",
                            "--db", label_db).stdout)
    assert "Straße" not in [r["name"] for r in answer["results"]]
    songs = json.loads(run("similar", "--songs", "Straße - Straße song 0", "--json", "-n", "50",
                           "--exclude-label", "STRASSE", "--db", label_db).stdout)
    assert songs["results"]
    assert all(r["artist"] != "Straße" for r in songs["results"])


# --- one distance formula per method ---------------------------------------------------------

def numpy_distances(db: Path, label: str, method: str) -> dict[str, float]:
    """The definition, written out in numpy from the stored centroids: what all three match."""
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT label, centroid, variance FROM artist_centroids "
                           "WHERE label_from = 'auto'").fetchall()
    c = {name: (np.asarray(v), var) for name, v, var in rows}
    a, a_var = c[label]
    out = {}
    for name, (b, b_var) in c.items():
        if name == label:
            continue
        if method == "centroid":
            out[name] = float(np.linalg.norm(a - b))
        elif method == "cosine":
            out[name] = float(1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        else:
            out[name] = float(np.sqrt(np.sum((a - b) ** 2) + a_var + b_var))
    return out


@pytest.mark.parametrize("method", ["centroid", "cosine", "songs"])
def test_view_macro_and_cli_agree_for_every_method(run, shell, label_db, method):
    column = METHOD_COLUMN[method]
    view = {r[0]: float(r[1]) for r in shell(
        label_db, f"SELECT other, {column} FROM artist_distances WHERE artist = 'Beyoncé' "
                  "AND label_from = 'auto'")}
    macro = {r[0]: float(r[1]) for r in shell(
        label_db, f"SELECT name, distance FROM similar_artists('Beyoncé', 10, "
                  f"method := '{method}')")}
    cli = {r["name"]: r["distance"] for r in json.loads(run(
        "similar", "Beyoncé", "--method", method, "--json", "--db", label_db).stdout)["results"]}
    expected = numpy_distances(label_db, "Beyoncé", method)
    assert set(view) == set(macro) == set(cli) == set(expected) == set(LABELS) - {"Beyoncé"}
    for name, d in expected.items():
        # The same SQL expression everywhere: equal to the last bit (the shell prints
        # shortest round-trip decimals); numpy within float rounding.
        assert view[name] == macro[name] == cli[name], name
        assert view[name] == pytest.approx(d, rel=1e-6, abs=1e-9), name


def test_the_methods_give_different_numbers(shell, label_db):
    rows = shell(label_db, "SELECT euclidean, cosine, song_rms FROM artist_distances "
                           "WHERE artist = 'Beyoncé' AND other = 'Zero 7'")
    euclidean, cosine, song_rms = map(float, rows[0])
    assert len({euclidean, cosine, song_rms}) == 3
    assert song_rms > euclidean > 0


# --- one suggestion helper -------------------------------------------------------------------

def test_suggestions_name_only_usable_names_and_never_the_typed_one(run, label_db):
    label = run("similar", "Strase", "--db", label_db, code=1)
    assert "did you mean 'Straße'" in label.output
    assert "Traceback" not in label.output
    mapped = run("map", "--labels", "Beyonse", "--method", "svd", "--db", label_db, code=1)
    assert "did you mean 'Beyoncé'" in mapped.output
    song = run("similar", "--songs", "Zero 7 - Zero 7 song", "--db", label_db, code=1)
    assert "did you mean 'Zero 7 - Zero 7 song" in song.output


def write_tone(path: Path, freq_hz: float, seconds: float = 2.0, sr: int = 22050) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, 0.5 * np.sin(2 * np.pi * freq_hz * t), sr)
    return path


def test_a_failed_song_is_never_suggested(run, tmp_path):
    """A newcomer typed the name of a file that failed to decode and was offered it back."""
    lib = tmp_path / "lib"
    (lib / "Misc").mkdir(parents=True)
    for i, freq in enumerate((220.0, 330.0, 440.0)):
        write_tone(lib / "Misc" / f"tone {i}.wav", freq)
    (lib / "Misc" / "jpeg.mp3").write_bytes(b"\xff\xd8\xff\xe0 this is a JPEG, not audio" * 50)
    db = tmp_path / "m.duckdb"
    run("ingest", lib, "--db", db, "--workers", "1", "--snippet-seconds", "0")
    with duckdb.connect(str(db), read_only=True) as con:
        failed = con.execute("SELECT coalesce(artist, label) || ' - ' || title FROM library "
                             "WHERE status = 'error'").fetchall()
    assert failed == [("Misc - jpeg",)]
    result = run("similar", "--songs", "Misc - jpeg", "--db", db, code=1)
    assert "no song 'Misc - jpeg'" in result.output
    assert "did you mean" in result.output  # the three good songs are close names
    assert "'Misc - jpeg'?" not in result.output
    assert "'Misc - jpeg'," not in result.output


# --- errors ----------------------------------------------------------------------------------

def test_every_error_class_lives_in_errors_py():
    for info in pkgutil.walk_packages(musicdb.__path__, "musicdb."):
        if not info.name.endswith("__main__"):  # that one runs the CLI
            importlib.import_module(info.name)
    found = {cls.__qualname__: cls.__module__ for cls in _subclasses(errors.MusicdbError)}
    assert {"MapError", "ExperimentError", "ModelFileError"} <= set(found)
    elsewhere = {name: module for name, module in found.items() if module != "musicdb.errors"}
    assert elsewhere == IN_FLIGHT

# Work in progress in another change of issue 12 (analyse_file's error handling), defined
# outside errors.py for now: move it there, then empty this.
IN_FLIGHT: dict[str, str] = {}


def _subclasses(cls: type) -> set[type]:
    direct = set(cls.__subclasses__())
    return direct.union(*(_subclasses(c) for c in direct))


def test_unknown_model_is_an_experiment_error():
    from musicdb.ml.models import build

    with pytest.raises(errors.ExperimentError, match="unknown model 'tree'"):
        build("tree")
    assert inspect.getmodule(errors.ExperimentError) is errors


# --- per-song probability averaging ----------------------------------------------------------

def test_mean_per_song_averages_each_songs_rows():
    ids = np.array([7, 3, 7, 7])
    proba = np.array([[1.0, 0.0], [0.2, 0.8], [0.0, 1.0], [0.5, 0.5]])
    songs, means = mean_per_song(ids, proba)
    assert songs.tolist() == [3, 7]
    np.testing.assert_allclose(means, [[0.2, 0.8], [0.5, 0.5]])


# --- read-only commands ----------------------------------------------------------------------

def test_experiment_show_on_a_missing_database_creates_nothing(tmp_path):
    proc = musicdb_cli("experiment", "show", "xmas", "--db", "nowhere.duckdb", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert proc.stderr.startswith("Error: no database at nowhere.duckdb")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [
    ["experiment", "list"], ["experiment", "show", "xmas"], ["evaluations"], ["info"],
    ["similar", "A"], ["map", "--from-run", "1"], ["export", "{out}"],
    ["heatmap", "-o", "{out}.html"],
])
def test_read_only_commands_never_create_a_database(run, tmp_path, command):
    db = tmp_path / "typo.duckdb"
    args = [a.format(out=tmp_path / "out") for a in command]
    result = run(*args, "--db", db, code=1)
    assert "no database at" in result.output
    assert not db.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@contextmanager
def holding(db: Path, *, read_only: bool) -> Iterator[int]:
    """A second process holding a DuckDB connection to db; yields its PID."""
    script = ("import duckdb, sys, time\n"
              f"con = duckdb.connect(sys.argv[1], read_only={read_only})\n"
              "print('holding', flush=True)\n"
              "time.sleep(600)\n")
    with subprocess.Popen([sys.executable, "-c", script, str(db)], stdout=subprocess.PIPE,
                          text=True) as proc:
        try:
            assert proc.stdout.readline().strip() == "holding"
            yield proc.pid
        finally:
            proc.kill()


def test_experiment_list_beside_another_reader_and_while_a_writer_holds_the_lock(label_db,
                                                                             tmp_path):
    db = tmp_path / "copy.duckdb"
    shutil.copy(label_db, db)
    before = db.read_bytes()
    with holding(db, read_only=True):  # e.g. a `duckdb -readonly` shell left open
        listed = musicdb_cli("experiment", "list", "--json", "--db", db)
        shown = musicdb_cli("experiment", "show", "xmas", "--db", db)
    assert listed.returncode == 0, listed.stderr
    assert "xmas" in [e["name"] for e in json.loads(listed.stdout)]
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["name"] == "xmas"
    assert db.read_bytes() == before  # read-only: not a byte written

    # DuckDB lets no other process in while one holds the write lock (not even a reader):
    # the command says who holds it, in one line, and leaves the file as it was.
    with holding(db, read_only=False) as writer:
        blocked = musicdb_cli("experiment", "list", "--db", db)
    assert blocked.returncode == 1
    assert blocked.stderr.strip().count("\n") == 0, blocked.stderr
    assert "is open for writing in python (PID" in blocked.stderr
    assert f"PID {writer}" in blocked.stderr


def test_playlist_without_songs_is_refused_before_any_work(run, label_db, tmp_path):
    playlist = tmp_path / "p.m3u"
    result = run("similar", "Straße", "--playlist", playlist, "--db", label_db, code=2)
    assert "add --songs" in result.output
    assert not playlist.exists()
    proc = musicdb_cli("similar", "Straße", "--playlist", playlist, "--db", label_db)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0, proc.stderr


# --- one place for model files ---------------------------------------------------------------

def test_model_files_live_in_one_folder_and_a_tampered_path_deletes_nothing(run, label_db,
                                                                            tmp_path):
    from musicdb.ml.models import models_dir

    db = tmp_path / "m.duckdb"
    shutil.copy(label_db, db)
    run("experiment", "create", "pair", "--labels", "Straße,Beyoncé", "--feature-set", "lab",
        "--model", "logreg", "--test-fraction", "0.5", "--db", db)
    result = json.loads(run("evaluate", "--experiment", "pair", "--no-prune", "--json",
                            "--db", db).stdout)
    written = db.parent / result["model_path"]
    assert written.parent == models_dir(db) == tmp_path / "m.duckdb.models"
    assert written.is_file()
    labels = json.loads(run("predict", "1", "--experiment", "pair", "--json", "--db", db
                            ).stdout)[0]["labels"]
    assert sum(x["probability"] for x in labels) == pytest.approx(1.0)

    # A models row pointing outside models/ (a tampered file) is refused, and never deleted.
    victim = tmp_path / "victim.txt"
    victim.write_text("not musicdb's")
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE models SET path = 'models/../victim.txt' WHERE experiment = 'pair'")
    refused = run("predict", "1", "--experiment", "pair", "--db", db, code=1)
    assert "points outside" in refused.output
    run("experiment", "delete", "pair", "--db", db)
    assert victim.read_text() == "not musicdb's"


def test_an_unwritable_report_is_one_line_and_keeps_the_evaluation(run, label_db, tmp_path):
    db = tmp_path / "m.duckdb"
    shutil.copy(label_db, db)
    run("experiment", "create", "pair", "--labels", "Straße,Zero 7", "--feature-set", "lab",
        "--model", "logreg", "--test-fraction", "0.5", "--db", db)
    blocker = tmp_path / "a-file"
    blocker.write_text("a file, not a folder")
    result = run("evaluate", "--experiment", "pair", "--no-prune", "--html",
                 blocker / "report.html", "--db", db, code=1)
    assert "Traceback" not in result.output
    assert "is stored, but" in result.output
    stored = json.loads(run("evaluations", "--experiment", "pair", "--json", "--db", db).stdout)
    assert len(stored) == 1


def test_readers_work_on_a_database_whose_views_predate_the_shared_functions(run, label_db,
                                                                             tmp_path):
    """A database from before sql/00_functions.sql, read without a write command first."""
    db = tmp_path / "old.duckdb"
    shutil.copy(label_db, db)
    with duckdb.connect(str(db)) as con:
        con.execute("DROP MACRO label_key")
        con.execute("DROP MACRO label_distance")
    before = db.read_bytes()
    answer = json.loads(run("similar", "strasse", "--method", "songs", "--json",
                            "--db", db).stdout)
    assert answer["query"] == "Straße"
    assert len(answer["results"]) == 3
    run("heatmap", "-o", tmp_path / "h.html", "--method", "cosine", "--db", db)
    assert db.read_bytes() == before
