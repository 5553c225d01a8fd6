"""`musicdb ingest` end to end on generated files: snippets, incremental runs, labels, bad files,
parallel workers and interrupted runs. Everything goes through the real CLI and is checked in the
database it writes."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

import musicdb.ingest.run
import musicdb.store.catalog
from musicdb.analysis.summaries import SEED55_NAMES
from musicdb.audio import synth
from musicdb.cli import app
from tests import crashing
from tests.executors import in_process

CENTROID = SEED55_NAMES.index("centroid_a") + 1  # 1-based, like features.vals[i] in SQL


# --- helpers ----------------------------------------------------------------------------------


def sql(db: Path, query: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(query, params or []).fetchall()


def last_run(db: Path) -> dict:
    cur_rows = sql(db, "SELECT n_new, n_changed, n_unchanged, n_moved, n_failed, n_missing "
                       "FROM ingest_runs ORDER BY run_id DESC LIMIT 1")
    keys = ("new", "changed", "unchanged", "moved", "failed", "missing")
    return dict(zip(keys, cur_rows[0], strict=True))


def summary_counts(output: str) -> dict:
    """The counts of the summary line the CLI prints."""
    text = " ".join(output.split())
    m = re.search(r"(\d+) files?: (\d+) new, (\d+) changed, (\d+) unchanged, (\d+) moved, "
                  r"(\d+) missing, (\d+) failed", text)
    assert m, output
    keys = ("found", "new", "changed", "unchanged", "moved", "missing", "failed")
    return dict(zip(keys, map(int, m.groups()), strict=True))


def songs(db: Path) -> dict[str, dict]:
    """Every song row by file name (names are unique within each test's library)."""
    with duckdb.connect(str(db), read_only=True) as con:
        cur = con.execute("SELECT * FROM songs")
        columns = [d[0] for d in cur.description]
        rows = [dict(zip(columns, r, strict=True)) for r in cur.fetchall()]
    by_name = {Path(r["path"]).name: r for r in rows}
    assert len(by_name) == len(rows), "two songs share a file name"
    return by_name


def feature_rows(db: Path) -> dict[tuple[str, int, int], tuple[int, list[float]]]:
    """(file name, feature set, snippet) -> (rowid, values): rowid shows whether a row was
    rewritten."""
    rows = sql(db, "SELECT s.path, f.feature_set_id, f.snippet, f.rowid, f.vals "
                   "FROM features f JOIN songs s USING (song_id)")
    out = {(Path(p).name, fs, k): (rowid, vals) for p, fs, k, rowid, vals in rows}
    assert len(out) == len(rows), "duplicate feature rows"
    return out


def assert_no_duplicates(db: Path) -> None:
    assert sql(db, "SELECT song_id, feature_set_id, snippet, count(*) FROM features "
                   "GROUP BY ALL HAVING count(*) > 1") == []
    assert sql(db, "SELECT path, count(*) FROM songs GROUP BY path HAVING count(*) > 1") == []
    assert sql(db, "SELECT content_hash, count(*) FROM songs WHERE status <> 'error' "
                   "GROUP BY ALL HAVING count(*) > 1") == []


def ingest(run, folder: Path, db: Path, *args: str, code: int = 0):
    # One feature set unless a test asks for others: row counts stay one per song or snippet.
    sets = () if "--feature-set" in args else ("--feature-set", "seed55")
    return run("ingest", folder, "--db", db, "--workers", "1", *sets, *args, code=code)


def write_library(root: Path) -> None:
    """Four short tagged files in three codecs, one in each sub-folder but two."""
    (root / "A").mkdir(parents=True)
    (root / "B").mkdir()
    synth.write_audio(root / "A" / "a.wav", synth.noise(20, sr=22050, seed=1), sr=22050)
    synth.tag(synth.write_audio(root / "A" / "b.flac", synth.tone(440, 2)), artist="Alpha")
    synth.tag(synth.write_audio(root / "B" / "c.ogg", synth.clicks(120, 4)), artist="Beta")
    synth.tag(synth.write_audio(root / "B" / "d.flac", synth.tone(880, 2)), artist="Old Artist",
              genre="Pop")


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> tuple[Path, Path, Path]:
    """The library written and ingested once (the real CLI, every file analysed once, in this
    process): (the library's path, a pristine copy of its files, its database). Each test
    gets the files back at the same path with the same sizes and mtimes, so the database's
    songs are the files it finds, and a copy of the database: what a first ingest of its own
    gave, without analysing the same four files again for every test."""
    folder = tmp_path_factory.mktemp("ingested")
    root, pristine, db = folder / "library", folder / "pristine", folder / "music.duckdb"
    write_library(root)
    analysed, real = [], musicdb.ingest.run.analyse_file
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(musicdb.ingest.run, "analyse_file",
                      lambda path, *a, **k: analysed.append(Path(path).name) or real(path, *a, **k))
        in_process(patch)
        result = CliRunner().invoke(app, ["ingest", str(root), "--db", str(db), "--workers", "1",
                                          "--feature-set", "seed55"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(analysed) == ["a.wav", "b.flac", "c.ogg", "d.flac"]
    assert not db.with_name(db.name + ".wal").exists()  # the one file is the whole database
    shutil.copytree(root, pristine)  # copy2: sizes and mtimes (to the ns) as they were
    return root, pristine, db


@pytest.fixture
def library(ingested) -> Path:
    """The four files of write_library, as the first ingest found them."""
    root, pristine, _ = ingested
    shutil.rmtree(root)
    shutil.copytree(pristine, root)
    return root


@pytest.fixture
def ingested_db(ingested) -> Path:
    return ingested[2]


def first_ingest(ingested_db: Path, db: Path) -> dict:
    """`db` as the first ingest of `library` left it (a copy of the module's)."""
    shutil.copyfile(ingested_db, db)
    return {"songs": songs(db), "features": feature_rows(db)}


# --- snippets ---------------------------------------------------------------------------------


def test_snippet_rows_of_95_and_110_second_files(run, db, tmp_path):
    root = tmp_path / "long"
    root.mkdir()
    synth.write_audio(root / "n95.wav", synth.noise(95, sr=22050), sr=22050)
    # Noise for 60 s, then a 500 Hz tone: snippets 0-1 and 2-3 must differ accordingly.
    y = np.concatenate([synth.noise(60, sr=22050, seed=2), synth.tone(500, 50, sr=22050)])
    synth.write_audio(root / "n110.flac", y, sr=22050)
    ingest(run, root, db, "--snippet-seconds", "30")

    rows = sql(db, "SELECT s.path, f.snippet, f.start_s, f.end_s, f.vals[?] FROM features f "
                   "JOIN songs s USING (song_id) ORDER BY s.path, f.snippet", [CENTROID])
    got = {}
    for path, snippet, start, end, centroid in rows:
        got.setdefault(Path(path).name, []).append((snippet, start, end, centroid))
    assert [r[:3] for r in got["n95.wav"]] == [(-1, 0, 95), (0, 0, 30), (1, 30, 60), (2, 60, 90)]
    assert [r[:3] for r in got["n110.flac"]] == [
        (-1, 0, 110), (0, 0, 30), (1, 30, 60), (2, 60, 90), (3, 90, 110)]
    whole, *parts = [r[3] for r in got["n110.flac"]]
    assert parts[2] == pytest.approx(500, rel=0.05)
    assert parts[3] == pytest.approx(500, rel=0.05)
    assert parts[0] > 4000
    assert parts[1] > 4000
    assert 500 < whole < parts[0]
    # The wide views split the same rows.
    assert sql(db, "SELECT count(*) FROM features_seed55") == [(2,)]
    assert sql(db, "SELECT regexp_extract(path, '[^/]*$'), count(*), max(end_s) "
                   "FROM snippets_seed55 GROUP BY ALL ORDER BY 1") == [
        ("n110.flac", 4, 110.0), ("n95.wav", 3, 90.0)]
    assert sql(db, "SELECT regexp_extract(path, '[^/]*$'), duration_s FROM songs ORDER BY 1") == [
        ("n110.flac", 110.0), ("n95.wav", 95.0)]


def test_snippet_seconds_zero_gives_whole_songs_only(run, db, tmp_path, calls):
    root = tmp_path / "lib"
    root.mkdir()
    synth.write_audio(root / "n20.wav", synth.noise(20, sr=22050), sr=22050)
    ingest(run, root, db, "--snippet-seconds", "0")
    assert sql(db, "SELECT snippet, start_s, end_s FROM features") == [(-1, 0.0, 20.0)]
    assert sql(db, "SELECT count(*) FROM snippets_seed55") == [(0,)]

    # Other snippets are another version of the set: the song gets it, its old rows stay.
    calls.clear()
    ingest(run, root, db, "--snippet-seconds", "15")
    assert calls == ["n20.wav"]
    assert sql(db, "SELECT version, count(*) FILTER (snippet = -1), "
                   "list(start_s ORDER BY start_s) FILTER (snippet >= 0) "
                   "FROM features JOIN feature_sets USING (feature_set_id) "
                   "GROUP BY version ORDER BY version") == [(1, 1, None), (2, 1, [0.0])]
    assert sql(db, "SELECT snippet, start_s, end_s FROM snippets_seed55") == [(0, 0.0, 15.0)]
    assert sql(db, "SELECT count(*) FROM songs") == [(1,)]


# --- incremental runs -------------------------------------------------------------------------


def test_second_ingest_changes_nothing(run, db, library, ingested_db, calls):
    before = first_ingest(ingested_db, db)
    result = ingest(run, library, db)
    assert calls == []
    assert summary_counts(result.output) == {"found": 4, "new": 0, "changed": 0, "unchanged": 4,
                                             "moved": 0, "missing": 0, "failed": 0}
    assert last_run(db) == {"new": 0, "changed": 0, "unchanged": 4, "moved": 0, "failed": 0,
                            "missing": 0}
    assert songs(db) == before["songs"]  # updated_at included: not one row was touched
    assert feature_rows(db) == before["features"]
    assert sql(db, "SELECT count(*) FROM ingest_runs") == [(2,)]


def test_similarity_tables_follow_changes_only(run, db, library, ingested_db, calls, monkeypatch):
    first_ingest(ingested_db, db)
    refreshes: list[int] = []
    real = musicdb.ingest.run.refresh_similarity
    monkeypatch.setattr(musicdb.ingest.run, "refresh_similarity",
                        lambda con: refreshes.append(1) or real(con))
    ingest(run, library, db)
    assert refreshes == []  # an unchanged re-scan rebuilds nothing
    d = library / "B" / "d.flac"
    old = d.stat()
    synth.tag(d, artist="New Artist")
    os.utime(d, ns=(old.st_atime_ns, old.st_mtime_ns))
    ingest(run, library, db)
    assert refreshes == [1]
    assert sql(db, "SELECT songs FROM artist_centroids WHERE label_from = 'auto' "
                   "AND label = 'New Artist'") == [(1,)]


def test_changed_file_alone_is_reextracted(run, db, library, ingested_db, calls):
    before = first_ingest(ingested_db, db)
    a = library / "A" / "a.wav"
    old = a.stat()
    assert any(k[0] == "a.wav" and k[2] == 0 for k in before["features"])  # a 20 s snippet
    # A 2 kHz tone of 3 s instead of 20 s of noise: other values, and no snippet any more.
    synth.write_audio(a, synth.tone(2000, 3, sr=22050), sr=22050)
    os.utime(a, ns=(old.st_atime_ns, old.st_mtime_ns + 5_000_000_000))

    ingest(run, library, db)
    assert calls == ["a.wav"]
    assert last_run(db) == {"new": 0, "changed": 1, "unchanged": 3, "moved": 0, "failed": 0,
                            "missing": 0}
    after_songs, after = songs(db), feature_rows(db)
    assert after_songs["a.wav"]["song_id"] == before["songs"]["a.wav"]["song_id"]
    assert after_songs["a.wav"]["content_hash"] != before["songs"]["a.wav"]["content_hash"]
    assert after_songs["a.wav"]["duration_s"] == pytest.approx(3.0)
    assert after_songs["a.wav"]["mtime_ns"] == old.st_mtime_ns + 5_000_000_000
    a_rows = {k: v for k, v in after.items() if k[0] == "a.wav"}
    assert [k[2] for k in a_rows] == [-1]  # the old snippet row is gone
    (_, vals), = a_rows.values()
    assert vals[CENTROID - 1] == pytest.approx(2000, rel=0.05)
    assert_no_duplicates(db)
    # The other songs keep their values (rowids may shift when DuckDB compacts the deletion).
    others = {k: v[1] for k, v in before["features"].items() if k[0] != "a.wav"}
    assert {k: v[1] for k, v in after.items() if k[0] != "a.wav"} == others
    assert {n: s for n, s in after_songs.items() if n != "a.wav"} == {
        n: s for n, s in before["songs"].items() if n != "a.wav"}


def test_moved_file_keeps_its_song(run, db, library, ingested_db, calls):
    before = first_ingest(ingested_db, db)
    (library / "C" / "sub").mkdir(parents=True)
    new_path = library / "C" / "sub" / "b2.flac"
    (library / "A" / "b.flac").rename(new_path)

    result = ingest(run, library, db)
    assert calls == []
    assert summary_counts(result.output)["moved"] == 1
    assert last_run(db) == {"new": 0, "changed": 0, "unchanged": 3, "moved": 1, "failed": 0,
                            "missing": 0}
    after = songs(db)
    assert set(after) == {"a.wav", "b2.flac", "c.ogg", "d.flac"}
    moved, was = after["b2.flac"], before["songs"]["b.flac"]
    assert (moved["song_id"], moved["content_hash"], moved["status"]) == (
        was["song_id"], was["content_hash"], "ok")
    assert (moved["path"], moved["folder"]) == (str(new_path), "C")
    # The other songs are untouched (a move once blanked their path, size, mtime and hash).
    assert {n: s for n, s in after.items() if n != "b2.flac"} == {
        n: s for n, s in before["songs"].items() if n != "b.flac"}
    assert {(n.replace("b.flac", "b2.flac"), fs, k): v
            for (n, fs, k), v in before["features"].items()} == feature_rows(db)
    assert_no_duplicates(db)

    ingest(run, library, db)  # and the next run finds everything where it is
    assert calls == []
    assert last_run(db)["unchanged"] == 4


def test_deleted_file_is_marked_missing(run, db, library, ingested_db, calls):
    before = first_ingest(ingested_db, db)
    (library / "B" / "c.ogg").unlink()
    ingest(run, library, db)
    assert calls == []
    assert last_run(db)["missing"] == 1
    after = songs(db)
    assert {n: s["status"] for n, s in after.items()} == {
        "a.wav": "ok", "b.flac": "ok", "c.ogg": "missing", "d.flac": "ok"}
    assert feature_rows(db) == before["features"]  # its values are kept
    ingest(run, library, db)  # already missing: not counted again
    assert last_run(db)["missing"] == 0
    assert songs(db)["c.ogg"]["status"] == "missing"


def test_tag_edit_updates_labels_without_reextraction(run, db, library, ingested_db, calls):
    before = first_ingest(ingested_db, db)
    d = library / "B" / "d.flac"
    old = d.stat()
    synth.tag(d, artist="New Artist", genre="Jazz")
    os.utime(d, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert (d.stat().st_size, d.stat().st_mtime_ns) == (old.st_size, old.st_mtime_ns)

    result = ingest(run, library, db)
    assert calls == []
    assert last_run(db)["changed"] == 0
    assert last_run(db)["unchanged"] == 4
    assert "1 song had new tags or labels" in " ".join(result.output.split())
    song = songs(db)["d.flac"]
    assert (song["artist"], song["genre"]) == ("New Artist", "Jazz")
    assert sql(db, "SELECT rule, label FROM song_labels WHERE song_id = ? ORDER BY rule",
               [song["song_id"]]) == [("artist", "New Artist"), ("auto", "New Artist"),
                                      ("folder", "B"), ("genre", "Jazz")]
    assert sql(db, "SELECT label FROM features_seed55 WHERE song_id = ?",
               [song["song_id"]]) == [("New Artist",)]
    assert feature_rows(db) == before["features"]


# --- labels -----------------------------------------------------------------------------------


def test_labels_under_each_rule(run, db, tmp_path, shell):
    root = tmp_path / "music"
    for sub in ("Guns", "Iceland", "Various", "SomeFolder/sub"):
        (root / sub).mkdir(parents=True)
    synth.tag(synth.write_audio(root / "Guns" / "paradise.flac", synth.tone(330, 2)),
              artist="Guns N' Roses", genre="Hard Rock")
    synth.tag(synth.write_audio(root / "Iceland" / "joga.ogg", synth.tone(660, 2)),
              artist="Björk", albumartist="Björk Guðmundsdóttir", genre="Électronique")
    synth.tag(synth.write_audio(root / "Various" / "hoppipolla.mp3", synth.tone(550, 2)),
              albumartist="Sigur Rós")
    synth.write_audio(root / "SomeFolder" / "sub" / "x.flac", synth.tone(440, 2))
    synth.write_audio(root / "loose.wav", synth.tone(220, 2))  # no tags, no folder
    ingest(run, root, db)

    labels: dict[str, dict[str, str]] = {}
    for path, rule, label in sql(db, "SELECT s.path, l.rule, l.label FROM song_labels l "
                                     "JOIN songs s USING (song_id)"):
        labels.setdefault(Path(path).name, {})[rule] = label
    assert labels == {
        "paradise.flac": {"artist": "Guns N' Roses", "genre": "Hard Rock", "folder": "Guns",
                          "auto": "Guns N' Roses"},
        "joga.ogg": {"artist": "Björk", "albumartist": "Björk Guðmundsdóttir",
                     "genre": "Électronique", "folder": "Iceland", "auto": "Björk"},
        "hoppipolla.mp3": {"albumartist": "Sigur Rós", "folder": "Various", "auto": "Sigur Rós"},
        "x.flac": {"folder": "SomeFolder", "auto": "SomeFolder"},
    }
    assert "loose.wav" in songs(db)

    # The same through the real duckdb shell, quotes and all. Its CSV quotes fields with
    # quotes or non-ASCII letters; the fixture only splits lines at commas.
    def csv_fields(rows: list[list[str]]) -> list[list[str]]:
        return [next(csv.reader([",".join(r)])) for r in rows]

    assert shell(db, "SELECT count(*) FROM song_labels "
                     "WHERE rule = 'artist' AND label = 'Guns N'' Roses'") == [["1"]]
    assert csv_fields(shell(db, "SELECT coalesce(label, '-'), coalesce(folder, '-') "
                                "FROM features_seed55 ORDER BY label")) == [
        ["Björk", "Iceland"], ["Guns N' Roses", "Guns"], ["Sigur Rós", "Various"],
        ["SomeFolder", "SomeFolder"], ["-", "-"]]  # loose.wav: no label under any rule
    assert shell(db, "SELECT s.folder FROM songs s JOIN song_labels l USING (song_id) "
                     "WHERE l.rule = 'albumartist' AND l.label = 'Björk Guðmundsdóttir'"
                 ) == [["Iceland"]]


# --- bad files --------------------------------------------------------------------------------


def write_bad_files(folder: Path) -> dict[str, str | None]:
    """The bad files; values: a word their reason must contain (None: any one-line reason)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.mp3").write_bytes(b"")
    (folder / "text.ogg").write_text("This is a text file, not an Ogg stream.\n")
    flac = synth.write_audio(folder / "truncated.flac", synth.noise(20, sr=22050), sr=22050)
    data = flac.read_bytes()
    flac.write_bytes(data[: int(len(data) * 0.3)])
    synth.write_audio(folder / "silent.wav", np.zeros(2 * 22050, np.float32), sr=22050)
    return {"empty.mp3": "0 bytes", "text.ogg": None, "truncated.flac": None,
            "silent.wav": "silent"}


@pytest.fixture
def no_ffmpeg(monkeypatch, tmp_path):
    """An empty PATH: the machine may have ffmpeg, these tests must not find it."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("ffmpeg") is None


def test_bad_files_become_error_rows(run, db, tmp_path, calls, no_ffmpeg):
    root = tmp_path / "mixed"
    expected = write_bad_files(root)
    (root / "garbage.m4a").write_bytes(np.random.default_rng(3).bytes(4000))
    expected["garbage.m4a"] = "ffmpeg"
    synth.write_audio(root / "good.flac", synth.tone(1000, 2))
    synth.write_audio(root / "good.mp3", synth.noise(2))
    # Mislabelled: flac data under another extension, or none; found by their first bytes.
    synth.write_audio(root / "mis.flac", synth.tone(660, 2)).rename(root / "mislabelled.dat")
    synth.write_audio(root / "bare.flac", synth.tone(1320, 2)).rename(root / "noextension")

    result = ingest(run, root, db)  # exit code 0: good files were ingested
    assert summary_counts(result.output) == {"found": 9, "new": 4, "changed": 0, "unchanged": 0,
                                             "moved": 0, "missing": 0, "failed": 5}
    assert "Some files need ffmpeg" in " ".join(result.output.split())
    rows = songs(db)
    assert set(rows) == set(expected) | {"good.flac", "good.mp3", "mislabelled.dat",
                                         "noextension"}
    for name, word in expected.items():
        row = rows[name]
        assert row["status"] == "error", name
        assert row["error"], name
        assert "\n" not in row["error"], (name, row["error"])
        if word:
            assert word in row["error"], (name, row["error"])
    for name in ("good.flac", "good.mp3", "mislabelled.dat", "noextension"):
        assert (rows[name]["status"], rows[name]["error"]) == ("ok", None), name
    assert rows["mislabelled.dat"]["codec"] == rows["noextension"]["codec"] == "flac/flac"
    centroids = dict(sql(db, "SELECT regexp_extract(path, '[^/]*$'), centroid_a "
                             "FROM features_seed55 WHERE status = 'ok'"))
    assert centroids.keys() == {"good.flac", "good.mp3", "mislabelled.dat", "noextension"}
    assert centroids["mislabelled.dat"] == pytest.approx(660, rel=0.05)
    assert centroids["noextension"] == pytest.approx(1320, rel=0.05)
    assert sql(db, "SELECT count(*) FROM features JOIN songs USING (song_id) "
                   "WHERE status = 'error'") == [(0,)]
    assert last_run(db)["failed"] == 5

    # Known failures are not retried unless asked to.
    calls.clear()
    ingest(run, root, db)
    assert calls == []
    ingest(run, root, db, "--retry-errors")
    assert sorted(calls) == sorted(expected)
    assert sorted(n for n, r in songs(db).items() if r["status"] == "error") == sorted(expected)


def test_folder_of_only_bad_files_fails(run, db, tmp_path, no_ffmpeg):
    root = tmp_path / "bad"
    expected = write_bad_files(root)
    result = ingest(run, root, db, code=1)
    assert summary_counts(result.output)["failed"] == len(expected)
    assert {n: r["status"] for n, r in songs(db).items()} == dict.fromkeys(expected, "error")


@pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                    reason="ffmpeg is not installed")
def test_m4a_through_ffmpeg(run, db, tmp_path):
    root = tmp_path / "m4a"
    root.mkdir()
    wav = synth.write_audio(tmp_path / "tone.wav", synth.tone(1000, 3))
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(wav), "-c:a", "aac",
                    str(root / "tone.m4a")], check=True, timeout=60)
    (root / "garbage.m4a").write_bytes(np.random.default_rng(4).bytes(4000))
    ingest(run, root, db)
    rows = songs(db)
    assert (rows["tone.m4a"]["status"], rows["tone.m4a"]["codec"]) == ("ok", "ffmpeg/aac")
    assert rows["tone.m4a"]["duration_s"] == pytest.approx(3, abs=0.1)
    assert sql(db, "SELECT centroid_a FROM features_seed55 WHERE status = 'ok'")[0][0] == (
        pytest.approx(1000, rel=0.05))
    assert rows["garbage.m4a"]["status"] == "error"
    assert rows["garbage.m4a"]["error"]
    assert "\n" not in rows["garbage.m4a"]["error"]


# --- workers and interruptions ----------------------------------------------------------------


def test_two_workers_give_the_same_values_as_one(run, tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    synth.write_audio(root / "tone.flac", synth.tone(1000, 5))
    synth.write_audio(root / "clicks.ogg", synth.clicks(120, 5))
    synth.write_audio(root / "noise.wav", synth.noise(5, sr=22050), sr=22050)
    synth.write_audio(root / "mix.mp3", synth.tone(200, 5) + synth.clicks(100, 5, amp=0.3))
    one, two = tmp_path / "one.duckdb", tmp_path / "two.duckdb"
    run("ingest", root, "--db", one, "--workers", "1", "--snippet-seconds", "2")
    result = run("ingest", root, "--db", two, "--workers", "2", "--snippet-seconds", "2")
    assert "2 workers" in " ".join(result.output.split())

    def values(db: Path) -> dict:
        return {(Path(p).name, k): (s, e, np.array(v)) for p, k, s, e, v in sql(
            db, "SELECT path, snippet, start_s, end_s, vals FROM features JOIN songs "
                "USING (song_id)")}

    a, b = values(one), values(two)
    assert len(a) == 4 * 4  # whole song + snippets 0-2, 2-4, 4-5 of each
    assert a.keys() == b.keys()
    for key in a:
        assert a[key][:2] == b[key][:2], key
        np.testing.assert_allclose(b[key][2], a[key][2], rtol=1e-5, atol=1e-6, err_msg=str(key))


def test_identical_files_are_analysed_once(run, db, tmp_path, calls):
    """A copy of a song already in the library, and two copies of a new one: one analysis each."""
    root = tmp_path / "lib"
    (root / "A").mkdir(parents=True)
    (root / "B").mkdir()
    first = synth.write_audio(root / "A" / "first.flac", synth.tone(440, 3))
    ingest(run, root, db, "--snippet-seconds", "1")
    assert calls == ["first.flac"]
    calls.clear()
    shutil.copy(first, root / "B" / "first-copy.flac")
    new = synth.write_audio(root / "A" / "new.ogg", synth.clicks(120, 3))
    shutil.copy(new, root / "B" / "new-copy.ogg")
    result = ingest(run, root, db, "--snippet-seconds", "1")
    assert len(calls) == 1
    assert calls[0] in ("new.ogg", "new-copy.ogg")
    assert summary_counts(result.output)["new"] == 3
    assert "2 files have the same content as another file" in " ".join(result.output.split())
    rows = songs(db)
    for a, b in [("first.flac", "first-copy.flac"), ("new.ogg", "new-copy.ogg")]:
        assert rows[a]["content_hash"] == rows[b]["content_hash"]
        assert (rows[b]["status"], rows[b]["codec"], rows[b]["duration_s"]) == (
            rows[a]["status"], rows[a]["codec"], rows[a]["duration_s"])
        values = {name: sql(db, "SELECT snippet, start_s, end_s, vals FROM features JOIN songs "
                                f"USING (song_id) WHERE path LIKE '%/{name}' ORDER BY snippet")
                  for name in (a, b)}
        assert len(values[a]) == 4  # the whole song and three 1-s snippets
        assert values[a] == values[b]
    assert sql(db, "SELECT song_id, feature_set_id, snippet FROM features "
                   "GROUP BY ALL HAVING count(*) > 1") == []


def test_a_copy_of_a_song_without_snippets_is_copied(run, db, tmp_path, calls):
    root = tmp_path / "lib"
    root.mkdir()
    first = synth.write_audio(root / "short.flac", synth.tone(440, 3))
    ingest(run, root, db, "--snippet-seconds", "0")
    shutil.copy(first, root / "short-copy.flac")
    ingest(run, root, db, "--snippet-seconds", "0")
    assert calls == ["short.flac"]
    values = sql(db, "SELECT regexp_extract(path, '[^/]*$'), snippet, vals FROM features "
                     "JOIN songs USING (song_id) ORDER BY 1")
    assert [(name, snippet) for name, snippet, _ in values] == [
        ("short-copy.flac", -1), ("short.flac", -1)]
    assert values[0][2] == values[1][2]


def test_a_result_that_cannot_be_sent_back_fails_its_job_only():
    import multiprocessing

    from musicdb.workers.executor import JobFailed
    from musicdb.workers.pool import run_in_workers

    jobs = [(i, (value,)) for i, value in enumerate(["a", "lock", "b", "c"])]
    results = dict(run_in_workers(crashing.echo_or_unpicklable, jobs, 2,
                                  multiprocessing.get_context("forkserver")))
    assert (results[0], results[2], results[3]) == ("a", "b", "c")
    assert isinstance(results[1], JobFailed)
    assert "cannot be sent back" in results[1].reason


def test_a_dask_cluster_gives_the_same_values_as_local_analysis(run, tmp_path, monkeypatch):
    """`--scheduler`: files analysed by Dask workers (two processes here), written here."""
    from distributed import LocalCluster

    root = tmp_path / "lib"
    root.mkdir()
    synth.write_audio(root / "tone.flac", synth.tone(1000, 4))
    synth.write_audio(root / "clicks.ogg", synth.clicks(120, 4))
    synth.write_audio(root / "mix.mp3", synth.tone(200, 4) + synth.clicks(100, 4, amp=0.3))
    synth.write_audio(root / "bug.flac", synth.tone(550, 2))  # unlike any other file
    local, dask = tmp_path / "local.duckdb", tmp_path / "dask.duckdb"
    sets = ("--feature-set", "seed55", "--snippet-seconds", "2")
    monkeypatch.setattr(musicdb.ingest.run, "analyse_file", crashing.analyse_or_crash)
    run("ingest", root, "--db", local, "--workers", "1", *sets)
    # A free port for the scheduler's web routes: dashboard_address=None still takes 8787,
    # which another cluster on the machine may hold.
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address="127.0.0.1:0") as cluster:
        result = run("ingest", root, "--db", dask, "--scheduler", cluster.scheduler_address,
                     *sets)
    counts = summary_counts(result.output)
    assert (counts["new"], counts["failed"]) == (3, 1)
    assert "2 workers" in " ".join(result.output.split())
    bug = songs(dask)["bug.flac"]
    assert (bug["status"], bug["error"]) == (
        "error", "on the Dask cluster: KeyError: 'a key no file should miss'")
    bug = songs(local)["bug.flac"]  # local workers: the same rule
    assert (bug["status"], bug["error"]) == ("error", "KeyError: 'a key no file should miss'")

    def values(db: Path) -> dict:
        return {(Path(p).name, k): np.array(v) for p, k, v in sql(
            db, "SELECT path, snippet, vals FROM features JOIN songs USING (song_id)")}

    a, b = values(local), values(dask)
    assert len(a) == 3 * 3  # whole song + snippets 0-2, 2-4
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-6, err_msg=str(key))


def test_an_unreachable_scheduler_is_a_clear_error(run, db, tmp_path, monkeypatch):
    monkeypatch.setattr("musicdb.workers.cluster.CONNECT_TIMEOUT_S", 1)
    synth.write_audio(tmp_path / "tone.flac", synth.tone(440, 1))
    result = run("ingest", tmp_path / "tone.flac", "--db", db, "--scheduler",
                 "tcp://127.0.0.1:9", code=1)
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in " ".join(
        result.output.split())


@pytest.mark.parametrize("attempt", [1, 2, 3])  # a hang at shutdown showed in 1 of 3 runs
def test_a_worker_that_dies_costs_its_file_not_the_run(run, db, tmp_path, monkeypatch, attempt):
    """A decoder segfault (simulated: tests/crashing.py) becomes that file's error row."""
    root = tmp_path / "lib"
    root.mkdir()
    for i in range(4):
        synth.write_audio(root / f"tone{i}.flac", synth.tone(300 + 100 * i, 2))
    synth.write_audio(root / "crash-first.flac", synth.tone(1000, 3))  # largest: taken first
    synth.write_audio(root / "crash-last.wav", synth.noise(1, sr=22050), sr=22050)
    synth.write_audio(root / "bug.flac", synth.tone(550, 2))  # unlike any other file
    monkeypatch.setattr(musicdb.ingest.run, "analyse_file", crashing.analyse_or_crash)
    sets = ("--feature-set", "seed55")
    result = run("ingest", root, "--db", db, "--workers", "2", *sets)
    counts = summary_counts(result.output)
    assert (counts["found"], counts["new"], counts["failed"]) == (7, 4, 3)
    rows = songs(db)
    for name in ("crash-first.flac", "crash-last.wav"):
        assert rows[name]["status"] == "error"
        assert "analysis process died" in rows[name]["error"]
        assert "SIGSEGV" in rows[name]["error"]
    assert (rows["bug.flac"]["status"], rows["bug.flac"]["error"]) == (
        "error", "KeyError: 'a key no file should miss'")
    assert sql(db, "SELECT count(*) FROM features_seed55 WHERE status = 'ok'") == [(4,)]
    # Retried, they fail again, and the run still ends (no hang) with the same rows.
    result = run("ingest", root, "--db", db, "--workers", "2", "--retry-errors", *sets)
    assert summary_counts(result.output)["failed"] == 3
    assert sorted(n for n, r in songs(db).items() if r["status"] == "error") == [
        "bug.flac", "crash-first.flac", "crash-last.wav"]
    assert_no_duplicates(db)


@pytest.mark.parametrize("batch_files", [1, 64])  # written as they finish / only at the end
def test_interrupted_ingest_resumes_without_duplicates(run, db, tmp_path, monkeypatch,
                                                       batch_files):
    root = tmp_path / "lib"
    root.mkdir()
    for i in range(5):
        synth.write_audio(root / f"{i}.flac", synth.tone(300 + 100 * i, 2))
    monkeypatch.setattr(musicdb.ingest.run, "BATCH_FILES", batch_files)
    real, seen = musicdb.ingest.run.analyse_file, []

    def interrupting(path: str, *args, **kwargs):
        seen.append(Path(path).name)
        if len(seen) == 3:
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    monkeypatch.setattr(musicdb.ingest.run, "analyse_file", interrupting)
    in_process(monkeypatch)
    result = ingest(run, root, db, code=130)
    assert "Interrupted" in result.output
    assert sorted(songs(db)) == ["0.flac", "1.flac"]
    assert sql(db, "SELECT count(*) FROM features_seed55 WHERE status = 'ok'") == [(2,)]
    assert last_run(db)["new"] == 2

    monkeypatch.setattr(musicdb.ingest.run, "analyse_file",
                        lambda path, *a, **k: seen.append(Path(path).name) or real(path, *a, **k))
    seen.clear()
    ingest(run, root, db)
    assert sorted(seen) == ["2.flac", "3.flac", "4.flac"]
    assert sorted(songs(db)) == [f"{i}.flac" for i in range(5)]
    assert_no_duplicates(db)
    centroids = sql(db, "SELECT regexp_extract(path, '[^/]*$'), centroid_a FROM features_seed55 "
                        "ORDER BY 1")
    assert [n for n, _ in centroids] == [f"{i}.flac" for i in range(5)]
    for i, (_, centroid) in enumerate(centroids):
        assert centroid == pytest.approx(300 + 100 * i, rel=0.05)


def test_interrupt_during_a_write_keeps_the_batch(run, db, tmp_path, monkeypatch):
    """Ctrl-C inside a batch's transaction: it is rolled back and written once more at the end."""
    root = tmp_path / "lib"
    root.mkdir()
    for i in range(4):
        synth.write_audio(root / f"{i}.flac", synth.tone(300 + 100 * i, 2))
    monkeypatch.setattr(musicdb.ingest.run, "BATCH_FILES", 1)
    real, writes = musicdb.store.catalog.replace_features, []

    def interrupting(con, rows):
        writes.append(list(rows.song_ids))
        if len(writes) == 2:  # the second file's batch, after its song row was inserted
            raise KeyboardInterrupt
        return real(con, rows)

    monkeypatch.setattr(musicdb.store.catalog, "replace_features", interrupting)
    in_process(monkeypatch)  # files in a known order
    result = ingest(run, root, db, code=130)
    assert "Interrupted" in result.output
    assert sorted(songs(db)) == ["0.flac", "1.flac"]
    assert sql(db, "SELECT count(*) FROM features_seed55 WHERE status = 'ok'") == [(2,)]
    assert_no_duplicates(db)

    monkeypatch.setattr(musicdb.store.catalog, "replace_features", real)
    ingest(run, root, db)
    assert sorted(songs(db)) == [f"{i}.flac" for i in range(4)]
    assert sql(db, "SELECT count(*) FROM features") == [(4,)]
    assert_no_duplicates(db)


# --- the executors and the plan ---------------------------------------------------------------


def test_every_executor_returns_a_failed_job_the_same_way():
    """In-process and the local pool: results by key, an exception as the same JobFailed (the
    Dask cluster's is checked end to end above)."""
    from musicdb.workers.executor import InProcess, JobFailed
    from musicdb.workers.pool import LocalPool

    jobs = [(i, (value,), 30.0) for i, value in enumerate(["a", "bug", "b"])]
    failed = JobFailed("KeyError: 'a key no file should miss'")
    for executor in (InProcess(), LocalPool(2)):
        executor.warm_up()
        assert dict(executor.run(crashing.echo_or_raise, jobs)) == {0: "a", 1: failed, 2: "b"}
    assert list(InProcess().run(crashing.echo_or_raise, jobs)) == [(0, "a"), (1, failed), (2, "b")]


def test_the_cli_warms_its_workers_up_once(run, db, library, monkeypatch):
    from musicdb.workers.pool import LocalPool

    warm_ups, real = [], LocalPool.warm_up

    def counting(self: LocalPool) -> None:
        warm_ups.append(self.slots)
        real(self)

    monkeypatch.setattr(LocalPool, "warm_up", counting)
    run("ingest", library, "--db", db, "--workers", "2", "--feature-set", "seed55")
    assert warm_ups == [2]
    assert sql(db, "SELECT count(*) FROM songs WHERE status = 'ok'") == [(4,)]


def test_the_plan_writes_nothing_and_apply_scan_writes_its_changes(run, db, library, ingested_db,
                                                                   calls):
    """A tag edit, a move and a deletion: plan() sees all three, the database is untouched
    until apply_scan."""
    from musicdb.ingest.plan import plan
    from musicdb.ingest.run import _Quiet
    from musicdb.ingest.write import apply_scan, register_sets
    from musicdb.store import database as store

    before = first_ingest(ingested_db, db)
    b = library / "A" / "b.flac"
    old = b.stat()
    synth.tag(b, artist="Renamed")
    os.utime(b, ns=(old.st_atime_ns, old.st_mtime_ns))  # the same file, new tags
    (library / "B" / "c.ogg").rename(library / "A" / "c.ogg")
    (library / "B" / "d.flac").unlink()
    everything = "SELECT * FROM songs ORDER BY song_id"
    rows = sql(db, everything)
    with store.connect(db) as con:
        set_ids = register_sets(con, ("seed55",), 30.0, musicdb.ingest.run.FrameParams())
        scan = plan(con, [library], set_ids, _Quiet(), retry_errors=False)
        assert (scan.found, scan.moved, len(scan.gone), scan.jobs) == (3, 1, 1, [])
        assert con.execute(everything).fetchall() == rows
        assert apply_scan(con, scan) == 2  # the retagged song and the moved one
    after = songs(db)
    assert after["b.flac"]["artist"] == "Renamed"
    assert after["c.ogg"]["song_id"] == before["songs"]["c.ogg"]["song_id"]
    assert Path(after["c.ogg"]["path"]).parent.name == "A"
    assert after["d.flac"]["status"] == "missing"
    assert calls == []
