"""Song paths (issue 15): `musicdb path A B`, the song_path SQL macro in the real duckdb shell,
and its numpy twin over the vectors in memory, on a generated library whose songs lie along
known lines in feature space."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pytest

from musicdb.audio import synth
from musicdb.similarity.index import VectorIndex
from musicdb.similarity.paths import song_path, use_path_macro
from tests.test_similar_names import musicdb
from tests.test_similar_names import one_error_line as similar_error_line

SECONDS = 2.5
STEPS = 8  # noise low-passed ever more: its brightness falls step by step
WIDTHS = [1 + 2 * k for k in range(STEPS)]  # moving-average widths of the Steps songs
TWIN_WIDTHS = (6, 10)  # one artist, two songs between the steps
PULSES = 6  # one artist's click tracks, 60 to 160 bpm
OTHERS = ("Drone Choir", "Click Machine", "Björk-ish Bleeps")  # far from both lines
FIRST, LAST = "Step 0 - Width 1", f"Step {STEPS - 1} - Width {WIDTHS[-1]}"


def low_passed(width: int) -> np.ndarray:
    """The same noise through a moving average of `width` samples, at the same peak."""
    y = np.convolve(synth.noise(SECONDS + 0.1, amp=0.5, seed=5), np.ones(width) / width,
                    mode="same")[: int(SECONDS * synth.SR)]
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def write_song(path: Path, y: np.ndarray, artist: str, title: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    synth.write_audio(path, np.clip(y, -1, 1).astype(np.float32))
    synth.tag(path, artist=artist, title=title)


def make_library(lib: Path) -> None:
    for k, width in enumerate(WIDTHS):  # a different artist each: nothing stops a step
        write_song(lib / "Steps" / f"step{k}.flac", low_passed(width), f"Step {k}",
                   f"Width {width}")
    for width in TWIN_WIDTHS:
        write_song(lib / "Twin" / f"twin{width}.flac", low_passed(width), "Twin",
                   f"Width {width}")
    for k in range(PULSES):
        write_song(lib / "Pulse" / f"clicks{k}.flac", synth.clicks(60 + 20 * k, SECONDS),
                   "Pulse", f"Clicks {k}")
    rng = np.random.default_rng(3)
    for artist in OTHERS:
        for j in range(3):
            write_song(lib / artist / f"{j}.flac", synth.DEMO_ARTISTS[artist](rng, SECONDS),
                       artist, f"Song {j}")
    (lib / "Copies").mkdir()
    shutil.copy(lib / "Steps" / "step3.flac", lib / "Copies" / "step3.flac")  # same bytes


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> tuple[Path, Path]:
    from typer.testing import CliRunner

    from musicdb.cli import app

    tmp = tmp_path_factory.mktemp("paths")
    make_library(tmp / "lib")
    db = tmp / "paths.duckdb"
    result = CliRunner().invoke(app, ["ingest", str(tmp / "lib"), "--db", str(db), "--workers",
                                      "1", "--snippet-seconds", "0", "--feature-set", "default"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return db, tmp / "lib"


@pytest.fixture(scope="module")
def index(library) -> VectorIndex:
    with duckdb.connect(str(library[0]), read_only=True) as con:
        return VectorIndex.load(con)


def path_json(run, db: Path, *args) -> list[dict]:
    return json.loads(run("path", *args, "--json", "--db", db).stdout)


def one_error_line(proc: subprocess.CompletedProcess, code: int) -> str:
    """similar's one-line check, and nothing on stdout (no half-printed path)."""
    line = similar_error_line(proc, code)
    assert proc.stdout == ""
    return line


def width(song: dict) -> int | None:
    """A low-passed song's filter width, from its title ('Width 5'); None for the others."""
    kind, _, number = song["title"].partition(" ")
    return int(number) if kind == "Width" else None


# --- the path --------------------------------------------------------------------------------
def test_a_path_follows_the_line_from_a_to_b(run, library):
    db, _lib = library
    path = path_json(run, db, "step 0 - WIDTH 1", LAST, "-n", "5")  # case does not matter
    assert [song["position"] for song in path] == [1, 2, 3, 4, 5]
    assert (path[0]["artist"], path[0]["title"]) == ("Step 0", "Width 1")
    assert (path[-1]["artist"], path[-1]["title"]) == ("Step 7", f"Width {WIDTHS[-1]}")
    widths = [width(song) for song in path]
    assert None not in widths, path  # the clicks and tones lie far from this line
    assert widths == sorted(widths), widths  # in order, from A to B
    assert len(set(widths)) == 5, widths
    assert set(path[0]) == {"position", "song_id", "path", "title", "artist", "label",
                            "to_target", "step"}
    assert path[0]["to_target"] == path[-1]["to_target"] == 0
    assert path[0]["step"] is None
    assert all(song["step"] > 0 and song["to_target"] >= 0 for song in path[1:])
    assert all(Path(song["path"]).is_file() for song in path)


def test_the_duckdb_shell_macro_gives_the_commands_path(run, shell, library):
    db, lib = library
    cli = path_json(run, db, FIRST, LAST, "-n", "6")
    rows = shell(db, f"SELECT position, song_id, title, to_target, step FROM song_path("
                     f"'{FIRST.upper()}', '{LAST}', n := 6)")
    assert [int(r[1]) for r in rows] == [song["song_id"] for song in cli]
    assert [r[2] for r in rows] == [song["title"] for song in cli]
    assert [float(r[3]) for r in rows] == pytest.approx([s["to_target"] for s in cli])
    by_path = shell(db, f"SELECT song_id FROM song_path('{(lib / 'Steps/step0.flac').resolve()}'"
                        f", {cli[-1]['song_id']}, n := 6, set_name := 'default')")
    assert [int(r[0]) for r in by_path] == [song["song_id"] for song in cli]


def test_one_song_per_artist_while_another_artist_is_left(run, library, index):
    db, _lib = library
    path = path_json(run, db, "Pulse - Clicks 0", f"Pulse - Clicks {PULSES - 1}", "-n", "4")
    assert all(song["artist"] != "Pulse" for song in path[1:-1]), path
    # ... although Pulse's own clicks lie nearest the line between its two ends:
    first, last = (index.z[index.row(path[i]["song_id"])].astype(np.float64) for i in (0, -1))
    target = first + (last - first) / 3
    nearest, _distance = index.nearest_to(target, 1, exclude={path[0]["song_id"],
                                                              path[-1]["song_id"]})[0]
    assert index.labels[index.row(nearest)] == "Pulse"


def test_a_path_longer_than_the_library_uses_every_song_once(run, library, index):
    db, _lib = library
    result = run("path", FIRST, LAST, "-n", "100", "--json", "--db", db)
    path = json.loads(result.stdout)
    distinct = len(index) - 1  # the copy of step3.flac counts once
    assert len(path) == distinct
    assert f"only {distinct} songs a path can use" in result.stderr
    ids = [song["song_id"] for song in path]
    assert len(set(ids)) == len(ids)
    names = [Path(song["path"]).parent.name + "/" + Path(song["path"]).name for song in path]
    assert ("Steps/step3.flac" in names) != ("Copies/step3.flac" in names)  # one of the two
    # An artist comes back only once every artist is on the path (A's and B's count).
    artists = set(index.labels)
    seen = {path[0]["label"], path[-1]["label"]}
    for song in path[1:-1]:
        assert song["label"] not in seen or seen == artists, (song, seen)
        seen.add(song["label"])


def test_a_copy_of_a_or_b_is_never_on_its_path(run, library):
    db, lib = library
    copy = (lib / "Copies" / "step3.flac").resolve()
    path = path_json(run, db, str((lib / "Steps" / "step3.flac").resolve()), LAST, "-n", "30")
    assert str(copy) not in [song["path"] for song in path]
    assert path[0]["path"].endswith("Steps/step3.flac")


# --- the twin --------------------------------------------------------------------------------
@pytest.mark.parametrize(("a", "b", "n"), [
    (FIRST, LAST, 5), (FIRST, LAST, 12), ("Pulse - Clicks 0", "Pulse - Clicks 5", 4),
    ("Drone Choir - Song 0", "Click Machine - Song 2", 7), (LAST, FIRST, 100),
    ("Step 3 - Width 7", "Twin - Width 10", 2), ("Twin - Width 6", "Pulse - Clicks 2", 3)])
def test_the_numpy_twin_gives_the_macros_path(library, index, a, b, n):
    with duckdb.connect(str(library[0]), read_only=True) as con:
        use_path_macro(con)
        rows = con.execute("SELECT song_id, label, to_target, step FROM song_path(?, ?, n := ?)",
                           [a, b, n]).fetchall()
    twin = song_path(index, rows[0][0], rows[-1][0], n)
    assert [s.position for s in twin] == list(range(1, len(rows) + 1))
    assert [(s.song_id, s.label) for s in twin] == [(r[0], r[1]) for r in rows]
    assert [s.to_target for s in twin] == pytest.approx([r[2] for r in rows], abs=1e-9)
    assert twin[0].step is None
    assert rows[0][3] is None
    assert [s.step for s in twin[1:]] == pytest.approx([r[3] for r in rows[1:]], abs=1e-9)


def test_a_path_from_a_song_to_its_copy_is_its_nearest_songs(library, index):
    """A line of length 0: every target is A, so the path is A's nearest songs, then B."""
    db, lib = library
    a, b = (str((lib / folder / "step3.flac").resolve()) for folder in ("Steps", "Copies"))
    with duckdb.connect(str(db), read_only=True) as con:
        use_path_macro(con)
        rows = con.execute("SELECT song_id FROM song_path(?, ?, n := 4)", [a, b]).fetchall()
    ids = [r[0] for r in rows]
    assert len(ids) == 4
    assert [s.song_id for s in song_path(index, ids[0], ids[-1], 4)] == ids
    assert ids[1] == index.nearest(ids[0], 1)[0][0]  # the song nearest A (not its copy)
    labels = [index.labels[index.row(song)] for song in ids]
    assert len(set(labels[1:3])) == 2
    assert "Step 3" not in labels[1:3]


def test_the_twin_refuses_what_the_macro_gives_no_rows_for(index):
    a, b = (int(x) for x in index.song_ids[:2])
    assert song_path(index, a, a, 5) == []
    assert song_path(index, a, b, 1) == []
    with pytest.raises(KeyError):
        song_path(index, a, 10**9, 5)


# --- output ----------------------------------------------------------------------------------
def test_playlist_csv_and_pipe(run, library, tmp_path):
    db, _lib = library
    playlist = tmp_path / "path.m3u8"
    result = run("path", FIRST, LAST, "-n", "4", "--playlist", playlist, "--csv", "--db", db)
    lines = result.stdout.splitlines()
    assert lines[0] == "position,song_id,path,title,artist,label,to_target,step"
    assert len(lines) == 5
    assert f"Wrote 4 songs to {playlist}" in result.stderr
    entries = playlist.read_text(encoding="utf-8").splitlines()
    assert entries[0] == "#EXTM3U"
    assert entries[1] == "#EXTINF:-1,Step 0 - Width 1"
    files = [line for line in entries if not line.startswith("#")]
    assert files == [song["path"] for song in path_json(run, db, FIRST, LAST, "-n", "4")]
    piped = run("path", FIRST, LAST, "-n", "4", "--db", db).stdout.splitlines()
    assert piped[0].split("\t") == lines[0].split(",")
    assert piped[1].split("\t")[:2] == ["1", lines[1].split(",")[1]]


# --- errors ----------------------------------------------------------------------------------
def test_an_unknown_song_gets_suggestions(library):
    db, _lib = library
    line = one_error_line(musicdb("path", "Step 0 - Widht 1", LAST, "--db", db), 1)
    assert "no song 'Step 0 - Widht 1'" in line
    assert "did you mean 'Step 0 - Width 1'" in line
    line = one_error_line(musicdb("path", FIRST, "./no/such.flac", "--db", db), 1)
    assert "does not exist" in line


def test_bad_requests_are_one_line(library, tmp_path):
    db, lib = library
    line = one_error_line(musicdb("path", FIRST, LAST, "-n", "1", "--db", db), 2)
    assert "-n" in line
    assert "musicdb path --help" in line
    line = one_error_line(musicdb("path", FIRST, "step 0 - width 1", "--db", db), 1)
    assert "same song" in line
    outsider = tmp_path / "new.flac"
    shutil.copy(lib / "Pulse" / "clicks0.flac", outsider)
    line = one_error_line(musicdb("path", str(outsider), LAST, "--db", db), 1)
    assert "not in the library" in line  # refused before anything analyses it
    line = one_error_line(musicdb("path", FIRST, LAST, "--json", "--csv", "--db", db), 2)
    assert "--json / --csv" in line


def test_the_macro_gives_no_rows_for_a_bad_request(shell, library):
    db, _lib = library
    for call in (f"'nobody - nothing', '{LAST}'", f"'{FIRST}', '{FIRST}'",
                 f"'{FIRST}', '{LAST}', n := 1", f"'{FIRST}', '{LAST}', set_name := 'nope'",
                 "NULL, NULL"):
        assert shell(db, f"SELECT count(*) FROM song_path({call})") == [["0"]], call
    assert shell(db, f"SELECT count(*) FROM song_path('{FIRST}', '{LAST}', n := 2)") == [["2"]]
