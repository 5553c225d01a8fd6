"""`musicdb similar` for a new user (issue 16): names under another label rule, files that do
not exist, exact titles, output for pipes and scripts, options that do not apply, the
"analysing" notice, and filtered distance queries that cost what they return."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

from musicdb.audio import synth
from tests.test_similar import N_FEATURES, write_table

MUSICDB = str(Path(sys.executable).with_name("musicdb"))
LONG = "The Unusually Long Name Of An Orchestra That Plays " + "Very " * 25 + "Slowly"


def musicdb(*args: str | Path) -> subprocess.CompletedProcess:
    """The real command in a process of its own: stdout a pipe, as in `musicdb ... | cat`."""
    return subprocess.run([MUSICDB, *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def one_error_line(proc: subprocess.CompletedProcess, code: int) -> str:
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def table_db(tmp_path_factory) -> Path:
    """Imported songs: a label whose name would wrap any table, and titles close to 'Stairs'."""
    from typer.testing import CliRunner

    from musicdb.cli import app

    tmp = tmp_path_factory.mktemp("similar-names")
    zero = np.zeros(N_FEATURES)
    table = write_table(tmp / "t.csv", {"A": zero, "B": zero + 0.5, LONG: zero + 1.0,
                                        "Stairsy": zero + 2.0, "Zed": zero - 1.0,
                                        "AC/DC": zero - 2.0}, songs=4)
    with table.open(newline="") as f:
        rows = list(csv.reader(f))
    for row in rows:  # one song of Zed is called exactly what a user will type
        if row[1] == "Zed song 2":
            row[1] = "Stairs"
    with table.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    db = tmp / "t.duckdb"
    result = CliRunner().invoke(app, ["import", str(table), "--feature-set", "geo",
                                      "--db", str(db)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return db


# --- names -----------------------------------------------------------------------------------

def test_a_file_that_does_not_exist_says_so(table_db, tmp_path):
    for missing in ("/no/such/file.ogg", str(tmp_path / "gone.mp3"), "relative/missing.flac",
                    "~/nowhere/at/all.opus"):
        line = one_error_line(musicdb("similar", missing, "--songs", "--db", table_db), 1)
        assert line == f"Error: file {missing!r} does not exist", line
    folder = one_error_line(musicdb("similar", tmp_path, "--songs", "--db", table_db), 1)
    assert "is not a file" in folder
    # A name with a slash inside is still a name, with suggestions.
    name = one_error_line(musicdb("similar", "AC/DC - AC/DC song", "--songs",
                                  "--db", table_db), 1)
    assert "no song 'AC/DC - AC/DC song'" in name
    assert "did you mean 'AC/DC - AC/DC song 0'" in name


def test_a_file_without_songs_is_told_to_add_songs(table_db, tmp_path):
    real = synth.write_audio(tmp_path / "x.flac", synth.tone(440, 1.0))
    for query in ("/no/such/file.ogg", str(real)):
        line = one_error_line(musicdb("similar", query, "--db", table_db), 1)
        assert line == (f"Error: {query!r} looks like a file, not a label: add --songs for the "
                        "songs nearest it"), line


def test_an_exact_title_is_suggested_first(table_db):
    line = one_error_line(musicdb("similar", "Stairs", "--songs", "--db", table_db), 1)
    # 'Stairsy - ...' names are closer spelled in full; the song called Stairs comes first.
    assert "did you mean 'Zed - Stairs', 'Stairsy - Stairsy song" in line, line
    assert json.loads(musicdb("similar", "Zed - Stairs", "--songs", "--json",
                              "--db", table_db).stdout)["query"] == "Zed - Stairs"


# --- output for pipes and scripts ------------------------------------------------------------

def test_piped_output_is_every_value_in_full(table_db):
    answer = json.loads(musicdb("similar", "A", "--json", "--db", table_db).stdout)
    names = [r["name"] for r in answer["results"]]
    assert LONG in names

    piped = musicdb("similar", "A", "--db", table_db)
    assert piped.returncode == 0, piped.stderr
    lines = piped.stdout.splitlines()
    assert lines[0] == "rank\tname\tdistance\tsongs"
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[1] for r in rows] == names  # the 160-character name unbroken, on one line
    assert [float(r[2]) for r in rows] == [r["distance"] for r in answer["results"]]
    assert [int(r[0]) for r in rows] == list(range(1, len(names) + 1))

    as_csv = list(csv.DictReader(io.StringIO(musicdb("similar", "A", "--csv",
                                                     "--db", table_db).stdout)))
    assert [r["name"] for r in as_csv] == names
    assert [float(r["distance"]) for r in as_csv] == [r["distance"]
                                                      for r in answer["results"]]
    songs = list(csv.DictReader(io.StringIO(musicdb(
        "similar", "A - A song 0", "--songs", "--csv", "--explain", "-n", "3",
        "--db", table_db).stdout)))
    assert list(songs[0]) == ["rank", "artist", "title", "distance", "path", "song_id",
                              "closest", "apart"]
    assert songs[0]["artist"] == "A"
    assert songs[0]["closest"].count(" vs ") == 3

    both = one_error_line(musicdb("similar", "A", "--json", "--csv", "--db", table_db), 2)
    assert "--json / --csv" in both


def test_options_that_do_not_apply_are_refused_in_one_line(table_db, tmp_path):
    method = one_error_line(musicdb("similar", "A - A song 0", "--songs", "--method", "songs",
                                    "--db", table_db), 2)
    assert "--method" in method
    assert "only for artists" in method
    assert "--min-songs" in one_error_line(musicdb(
        "similar", "A - A song 0", "--songs", "--min-songs", "3", "--db", table_db), 2)
    assert "--no-same-artist" in one_error_line(musicdb(
        "similar", "A", "--no-same-artist", "--db", table_db), 2)
    assert "--playlist" in one_error_line(musicdb(
        "similar", "A", "--playlist", tmp_path / "p.m3u8", "--db", table_db), 2)
    assert not (tmp_path / "p.m3u8").exists()


# --- distances for chosen labels -------------------------------------------------------------

def rows_of(con: duckdb.DuckDBPyConnection, sql: str) -> set[tuple]:
    return set(con.execute(sql).fetchall())


def test_artist_distances_for_gives_the_views_rows_for_every_method(shell, table_db):
    columns = ("feature_set, label_from, artist, other, artist_songs, other_songs, euclidean, "
               "cosine, song_rms")
    view = shell(table_db, f"SELECT {columns} FROM artist_distances WHERE artist IN ('A', 'Zed') "
                           "AND other IN ('B', 'Zed', 'Stairsy') AND label_from = 'auto' "
                           "ORDER BY ALL")
    macro = shell(table_db, f"SELECT {columns} FROM artist_distances_for(['A', 'Zed'], "
                            "others := ['B', 'Zed', 'Stairsy'], label_rule := 'auto', "
                            "set_name := 'geo') ORDER BY ALL")
    assert len(view) == 5  # A-B, A-Zed, A-Stairsy, Zed-B, Zed-Stairsy (never a label itself)
    assert macro == view  # the same numbers to the last digit, all three methods
    assert len({r[6] for r in view} | {r[7] for r in view} | {r[8] for r in view}) == 15
    # A list from a query, as a table of chosen labels gives it; NULL = every label.
    chosen = shell(table_db, "SELECT count(*) FROM artist_distances_for("
                             "(SELECT list(DISTINCT label) FROM song_labels WHERE label < 'B'),"
                             " label_rule := 'imported')")
    assert chosen == [["10"]]  # A and AC/DC, each against the 5 other labels
    assert shell(table_db, "SELECT count(*) FROM artist_distances_for(NULL)") == shell(
        table_db, "SELECT count(*) FROM artist_distances") == [[str(2 * 6 * 5)]]


def operator_rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[str, int]]:
    """(operator, rows it produced) for every step of a query, from DuckDB's own profile."""
    plan = json.loads(con.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}").fetchall()[0][1])
    steps = []

    def walk(node: dict) -> None:
        if "operator_name" in node:
            steps.append((node["operator_name"], node["operator_cardinality"]))
        for child in node.get("children", []):
            walk(child)

    walk(plan)
    return steps


def test_chosen_labels_are_picked_before_the_pairs_are_formed(table_db):
    """What 'costs what it returns' means, without a stopwatch: with the macro no step of the
    query handles more rows than there are labels (the table is read once, the chosen pairs
    formed); the view filtered by a subquery forms the pairs of every label first."""
    labels = 6 * 2  # six labels under two rules (auto, imported)
    with duckdb.connect(str(table_db), read_only=True) as con:
        con.execute("CREATE TEMP TABLE chosen AS SELECT unnest(['A', 'B']) AS label")
        macro = operator_rows(con, "SELECT * FROM artist_distances_for((SELECT list(label) "
                                   "FROM chosen), others := (SELECT list(label) FROM chosen))")
        assert max(rows for _, rows in macro) <= labels, macro
        assert next(rows for op, rows in macro if op == "PROJECTION") == 4  # A-B, B-A, twice
        view = operator_rows(con, "SELECT * FROM artist_distances WHERE artist IN (SELECT "
                                  "label FROM chosen) AND other IN (SELECT label FROM chosen)")
        assert max(rows for _, rows in view) > labels, view
        # A plain filter on the view reaches the table: one artist under one rule is read.
        plain = operator_rows(con, "SELECT * FROM artist_distances WHERE artist = 'A' "
                                   "AND label_from = 'auto'")
        assert min(rows for op, rows in plain if "SCAN" in op) == 1, plain


# --- a folder-organised library (real audio) -------------------------------------------------

@pytest.fixture(scope="module")
def folder_db(tmp_path_factory) -> tuple[Path, Path]:
    """Game soundtracks: a folder per game, each song tagged with its composer."""
    from typer.testing import CliRunner

    from musicdb.cli import app

    tmp = tmp_path_factory.mktemp("folders")
    lib = tmp / "lib"
    games = {"Wesnoth": (220.0, ("Doug Kaufman", "Ryan Reilly")),
             "Nexuiz": (330.0, ("Lee Vermeulen",)), "HyperRogue": (880.0, ("Shawn Parrotte",))}
    deep = lib / "Nexuiz" / ("a folder name long enough to wrap any terminal table " * 3).strip()
    for game, (hz, composers) in games.items():
        for i in range(3):
            folder = deep if game == "Nexuiz" and i == 0 else lib / game
            folder.mkdir(parents=True, exist_ok=True)
            path = synth.write_audio(folder / f"{game} {i}.flac",
                                     synth.tone(hz * (1 + 0.02 * i), 3.0)
                                     + synth.noise(3.0, amp=0.05, seed=i))
            synth.tag(path, artist=composers[i % len(composers)], title=f"{game} theme {i}")
    db = tmp / "games.duckdb"
    result = CliRunner().invoke(app, ["ingest", str(lib), "--db", str(db), "--workers", "1",
                                      "--snippet-seconds", "0"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return db, lib


def test_a_folder_label_is_answered_under_auto_and_named_under_another_rule(run, shell,
                                                                            folder_db):
    db, _ = folder_db
    result = run("similar", "wesnoth", "--json", "--db", db)
    answer = json.loads(result.stdout)
    assert answer["query"] == "Wesnoth"
    assert answer["label_from"] == "folder"
    assert {r["name"] for r in answer["results"]} == {"Nexuiz", "HyperRogue"}
    assert "a folder label: answering among folder labels" in result.stderr
    # The shell's macro answers the same way, with the same numbers.
    macro = shell(db, "SELECT name, distance FROM similar_artists('wesnoth', 10)")
    assert [(n, float(d)) for n, d in macro] == [(r["name"], r["distance"])
                                                 for r in answer["results"]]
    # An auto label (the composer's tag) stays an auto answer.
    assert json.loads(run("similar", "Doug Kaufman", "--json", "--db", db).stdout)[
        "label_from"] == "auto"
    # A rule given explicitly is kept, and the error says which rule has the name.
    line = one_error_line(musicdb("similar", "Wesnoth", "--label-from", "artist",
                                  "--db", db), 1)
    assert line == ("Error: no label 'Wesnoth' under the 'artist' rule, but 'Wesnoth' is a "
                    "folder label: use --label-from folder")
    # Typos under auto are offered names of every rule.
    assert "did you mean 'Wesnoth'" in one_error_line(musicdb("similar", "Wesnot",
                                                              "--db", db), 1)


def test_the_rule_hint_other_commands_share(folder_db):
    """choices.other_rules_hint: the same sentence for map --labels or experiment --labels."""
    from musicdb.choices import other_rules_hint

    db, _ = folder_db
    with duckdb.connect(str(db), read_only=True) as con:
        assert other_rules_hint(con, "wesnoth", "artist") == (
            ", but 'Wesnoth' is a folder label: use --label-from folder")
        assert other_rules_hint(con, "DOUG KAUFMAN", "folder") == (
            ", but 'Doug Kaufman' is an auto and artist label: use --label-from auto")
        assert other_rules_hint(con, "Wesnoth", "folder") == ""
        assert other_rules_hint(con, "nobody", "auto") == ""


def test_map_and_experiment_labels_name_the_rule_that_has_them(folder_db):
    db, _ = folder_db
    line = one_error_line(musicdb("map", "--labels", "Wesnoth", "--db", db), 1)
    assert line.endswith("but 'Wesnoth' is a folder label: use --label-from folder"), line
    line = one_error_line(musicdb("experiment", "create", "games", "--labels",
                                  "Wesnoth,Nexuiz", "--db", db), 1)
    assert "'Wesnoth' is a folder label: use --label-from folder" in line, line
    assert "'Nexuiz' is a folder label" in line, line
    line = one_error_line(musicdb("experiment", "create", "games", "--labels",
                                  "Wesnoth,Nobody", "--db", db), 1)
    assert "'Wesnoth' is a folder label" in line and "for 'Nobody', did you mean" in line, line


def test_piped_song_paths_are_whole(folder_db):
    db, lib = folder_db
    query = str(next((lib / "Nexuiz").glob("*.flac")).resolve())
    piped = musicdb("similar", query, "--songs", "-n", "8", "--db", db)
    assert piped.returncode == 0, piped.stderr
    header, *rows = (line.split("\t") for line in piped.stdout.splitlines())
    paths = [row[header.index("path")] for row in rows]
    assert len(paths) == 8
    assert all(Path(p).is_file() for p in paths)
    assert any(len(p) > 200 for p in paths)  # the deep one, unbroken


def test_a_file_being_analysed_is_announced(run, folder_db, tmp_path):
    db, _ = folder_db
    outsider = tmp_path / "new song.flac"
    synth.write_audio(outsider, synth.tone(225.0, 3.0))
    result = run("similar", outsider, "--songs", "-n", "2", "--json", "--db", db)
    assert f"Analysing {outsider.resolve()} (not in the library)" in result.stderr
    assert len(json.loads(result.stdout)["results"]) == 2
    explained = json.loads(run("similar", outsider, "--songs", "-n", "2", "--explain",
                               "--json", "--db", db).stdout)["results"]
    assert all(len(r["explain"]["closest"]) == 3 for r in explained)  # its own values
    assert "Analysing" not in run("similar", "Ryan Reilly - Wesnoth theme 1", "--songs",
                                  "--db", db).stderr


def test_a_song_whose_file_went_missing(run, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for i, hz in enumerate((220, 330, 440)):
        synth.write_audio(lib / f"tone{i}.flac", synth.tone(hz, 2))
    db = tmp_path / "m.duckdb"
    run("ingest", lib, "--db", db, "--workers", "1", "--snippet-seconds", "0")
    gone = (lib / "tone0.flac").resolve()
    gone.unlink()
    run("ingest", lib, "--db", db, "--workers", "1", "--snippet-seconds", "0")
    line = one_error_line(musicdb("similar", gone, "--songs", "--db", db), 1)
    assert line == (f"Error: file {str(gone)!r} does not exist; the library lists it as "
                    "missing (moved or deleted since the last ingest)")


# --- start-up --------------------------------------------------------------------------------

def test_similar_loads_no_numerical_library(table_db):
    """Most of a `similar` call is start-up (issue 16: 0.9-1.2 s): numpy alone costs ~0.1 s.
    Asking for nearest artists imports none of numpy, scipy, pandas, pyarrow, sklearn,
    librosa or plotly (--explain and a file analysed now import what they need)."""
    heavy = ("numpy", "scipy", "pandas", "pyarrow", "sklearn", "librosa", "plotly", "numba")
    code = ("import sys\n"
            "from musicdb.cli import main\n"
            f"sys.argv = ['musicdb', 'similar', 'A', '--db', {str(table_db)!r}]\n"
            "try:\n    main()\nexcept SystemExit as done:\n    assert done.code == 0, done\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr
