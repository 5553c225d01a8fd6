"""Similarity: standardised centroids and distances in SQL, `musicdb similar` agreeing with the
shell macros, filters, names, playlists, and a song not yet in the library."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from musicdb.audio import synth
from tests.conftest import SEED_CSV

N_FEATURES = 6


def write_table(path: Path, artists: dict[str, np.ndarray], *, songs: int = 8,
                scale_first: float = 1.0, seed: int = 0) -> Path:
    """A CSV of songs whose features scatter around each artist's centre."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["label", "file"] + [f"f{i}" for i in range(N_FEATURES)])
        for artist, centre in artists.items():
            for n in range(songs):
                values = centre + rng.normal(0, 0.3, N_FEATURES)
                values[0] *= scale_first
                out.writerow([artist, f"{artist} song {n}"] + [f"{v:.6f}" for v in values])
    return path


def geometry() -> dict[str, np.ndarray]:
    a = np.zeros(N_FEATURES)
    return {"A": a, "B": a + 0.5, "C": a + 4.0, "Guns N' Roses": a - 3.0, "Sigur Rós": a + 2.0,
            "x'; DROP TABLE songs; --": a - 5.0}


def similar_json(run, db: Path, *args: str) -> dict:
    return json.loads(run("similar", *args, "--json", "--db", db).stdout)


@pytest.fixture
def geo_db(run, tmp_path) -> Path:
    db = tmp_path / "geo.duckdb"
    run("import", write_table(tmp_path / "geo.csv", geometry()), "--feature-set", "geo",
        "--db", db)
    return db


def test_nearest_artist_in_the_cli_and_in_the_shell(run, shell, geo_db):
    answer = similar_json(run, geo_db, "A", "-n", "3")
    assert answer["query"] == "A"
    assert answer["label_from"] == "auto"
    assert answer["feature_set"] == "geo"
    assert answer["method"] == "centroid"
    assert [r["name"] for r in answer["results"]] == ["B", "Sigur Rós", "Guns N' Roses"]
    assert all(r["songs"] == 8 for r in answer["results"])
    macro = shell(geo_db, "SELECT name, round(distance, 6) FROM similar_artists('A', 3)")
    assert [r[0] for r in macro] == ["B", "Sigur Rós", "Guns N' Roses"]
    assert [float(r[1]) for r in macro] == pytest.approx(
        [r["distance"] for r in answer["results"]], abs=1e-5)
    # artist_distances holds every ordered pair, with the same numbers.
    assert shell(geo_db, "SELECT count(*) FROM artist_distances WHERE label_from = 'auto'") == [
        ["30"]]
    pair = shell(geo_db, "SELECT round(euclidean, 6) FROM artist_distances "
                         "WHERE label_from = 'auto' AND artist = 'A' AND other = 'B'")
    assert float(pair[0][0]) == pytest.approx(answer["results"][0]["distance"], abs=1e-5)


def test_standardisation_makes_units_irrelevant(run, tmp_path):
    rankings = []
    for scale in (1.0, 1000.0):
        db = tmp_path / f"s{scale:g}.duckdb"
        run("import", write_table(tmp_path / f"s{scale:g}.csv", geometry(), scale_first=scale),
            "--feature-set", "geo", "--db", db)
        answer = similar_json(run, db, "A", "-n", "5")
        rankings.append([(r["name"], round(r["distance"], 4)) for r in answer["results"]])
    assert rankings[0] == rankings[1]


def test_names_with_quotes_accents_and_sql_are_plain_parameters(run, shell, geo_db):
    assert similar_json(run, geo_db, "guns n' roses", "-n", "1")["query"] == "Guns N' Roses"
    assert similar_json(run, geo_db, "SIGUR ROS", "-n", "1")["query"] == "Sigur Rós"
    hostile = similar_json(run, geo_db, "x'; DROP TABLE songs; --", "-n", "1")
    assert hostile["query"] == "x'; DROP TABLE songs; --"
    assert hostile["results"][0]["name"] == "Guns N' Roses"
    assert shell(geo_db, "SELECT count(*) FROM songs") == [["48"]]
    assert shell(geo_db, "SELECT name FROM similar_artists('sigur ros', 1)") == [["B"]]


def test_unknown_names_get_suggestions_and_exit_1(run, geo_db):
    result = run("similar", "Sigur", "--db", geo_db, code=1)
    assert "did you mean 'Sigur Rós'" in result.output
    assert "Traceback" not in result.output
    assert "known: geo" in run("similar", "A", "--feature-set", "nope", "--db", geo_db,
                               code=1).output
    assert "'mood' is not one of 'auto', 'artist'" in run("similar", "A", "--label-from", "mood",
                                                           "--db", geo_db, code=2).output


def test_filters_methods_and_min_songs(run, tmp_path):
    db = tmp_path / "f.duckdb"
    table = write_table(tmp_path / "f.csv", {"A": np.zeros(N_FEATURES),
                                            "B": np.full(N_FEATURES, 0.5),
                                            "C": np.full(N_FEATURES, 1.0)})
    with table.open(newline="") as f:
        rows = list(csv.reader(f))
    few = [r for r in rows if r[0] != "B" or r[1] in ("B song 0", "B song 1")]  # B: 2 songs
    with table.open("w", newline="") as f:
        csv.writer(f).writerows(few)
    run("import", table, "--feature-set", "geo", "--db", db)
    names = lambda *a: [r["name"] for r in similar_json(run, db, "A", *a)["results"]]  # noqa: E731
    assert names() == ["B", "C"]
    assert names("--min-songs", "3") == ["C"]
    assert names("--exclude-label", "b") == ["C"]
    assert names("--where", "title LIKE 'C song%'") == ["C"]
    for method in ("cosine", "songs"):
        answer = similar_json(run, db, "A", "--method", method)
        assert answer["method"] == method
        assert len(answer["results"]) == 2
    bad = run("similar", "A", "--where", "no_such_column = 1", "--db", db, code=1)
    assert "--where" in bad.output


def test_the_study_table_taylor_swift(run, shell, tmp_path):
    db = tmp_path / "study.duckdb"
    run("import", SEED_CSV, "--feature-set", "study55", "--db", db)
    answer = similar_json(run, db, "TaylorSwift", "-n", "3")
    assert answer["feature_set"] == "study55"
    assert answer["results"][0]["name"] == "AvrilLavigne"
    # The study's way, raw Euclidean distance between unstandardised means, says otherwise:
    # spectral features in Hz drown out everything else.
    raw = shell(db, """
        WITH cells AS (
            SELECT l.label, unnest(range(1, 56)) AS i, unnest(f.vals) AS v
            FROM features f JOIN library l USING (song_id) WHERE f.snippet = -1),
        means AS (SELECT label, list(avg_v ORDER BY i) AS m
                  FROM (SELECT label, i, avg(v) AS avg_v FROM cells GROUP BY ALL) GROUP BY label)
        SELECT b.label FROM means a JOIN means b ON a.label = 'TaylorSwift' AND b.label <> a.label
        ORDER BY list_distance(a.m, b.m) LIMIT 1""")
    assert raw == [["MichaelJackson"]]
    explained = json.loads(run("similar", "TaylorSwift", "-n", "1", "--explain", "--json",
                               "--db", db).stdout)["results"][0]["explain"]
    assert len(explained["closest"]) == 3
    assert len(explained["apart"]) == 3
    assert explained["closest"][0]["z_gap"] <= explained["apart"][0]["z_gap"]


@pytest.fixture(scope="module")
def audio_db(tmp_path_factory) -> tuple[Path, Path]:
    from typer.testing import CliRunner

    from musicdb.cli import app

    tmp = tmp_path_factory.mktemp("similar-audio")
    synth.demo_library(tmp / "lib", songs_per_artist=3, seconds=20.0)
    db = tmp / "m.duckdb"
    result = CliRunner().invoke(app, ["ingest", str(tmp / "lib"), "--db", str(db),
                                      "--workers", "1", "--snippet-seconds", "0"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return db, tmp / "lib"


def test_songs_playlist_and_filters(run, shell, audio_db, tmp_path):
    db, _lib = audio_db
    query = "Click Machine - Song 1"
    answer = similar_json(run, db, query, "--songs", "-n", "4")
    assert answer["feature_set"] == "default"
    first = answer["results"][0]
    assert set(first) == {"song_id", "path", "title", "artist", "distance"}
    assert first["artist"] == "Click Machine"  # its own album mates are nearest
    assert query.split(" - ")[1] not in [r["title"] for r in answer["results"]
                                         if r["artist"] == "Click Machine"]
    macro = shell(db, f"SELECT song_id FROM similar_songs('{query}', 4)")
    assert [int(r[0]) for r in macro] == [r["song_id"] for r in answer["results"]]

    other = similar_json(run, db, query, "--songs", "--no-same-artist")["results"]
    assert other
    assert all(r["artist"] != "Click Machine" for r in other)
    no_album = similar_json(run, db, query, "--songs", "--no-same-album")["results"]
    assert all(r["artist"] != "Click Machine" for r in no_album)  # one album per artist
    excluded = similar_json(run, db, query, "--songs", "--exclude-label", "noise garden")
    assert all(r["artist"] != "Noise Garden" for r in excluded["results"])

    playlist = tmp_path / "mix.m3u8"
    run("similar", query, "--songs", "-n", "5", "--playlist", playlist, "--db", db)
    lines = playlist.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#EXTM3U"
    entries = [line for line in lines if not line.startswith("#")]
    assert len(entries) == 5
    assert all(Path(e).is_absolute() and Path(e).is_file()
                                     for e in entries)


def test_a_file_not_in_the_library_is_analysed(run, audio_db, tmp_path):
    db, lib = audio_db
    outsider = tmp_path / "new.flac"
    source = next((lib / "Drone Choir").rglob("*.flac"))
    outsider.write_bytes(source.read_bytes())  # same audio, new path: nearest is the original
    answer = similar_json(run, db, str(outsider), "--songs", "-n", "1")
    assert answer["query"] == str(outsider.resolve())
    assert Path(answer["results"][0]["path"]) == source.resolve()
    assert answer["results"][0]["distance"] == pytest.approx(0.0, abs=1e-3)


def test_a_copy_of_the_song_is_not_its_nearest_neighbour(run, shell, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for i, hz in enumerate((220, 330, 440, 660)):
        synth.write_audio(lib / f"tone{i}.flac", synth.tone(hz, 4))
    shutil.copy(lib / "tone0.flac", lib / "tone0-copy.flac")
    db = tmp_path / "m.duckdb"
    run("ingest", lib, "--db", db, "--workers", "1", "--snippet-seconds", "0")
    query = str((lib / "tone0.flac").resolve())
    answer = similar_json(run, db, query, "--songs", "-n", "4")
    names = [Path(r["path"]).name for r in answer["results"]]
    assert sorted(names) == ["tone1.flac", "tone2.flac", "tone3.flac"]  # no tone0-copy.flac
    assert [r[0] for r in shell(db, f"SELECT path FROM similar_songs('{query}', 4)")] == [
        r["path"] for r in answer["results"]]
