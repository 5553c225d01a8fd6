"""VectorIndex (musicdb/similarity/index.py): nearest songs in memory give the similar_songs
macro's answer (same ids, same order, same distances) on an ingested library with copies of
files and on an imported one full of ties; exclusions, unknown songs, an empty library, and the
faiss backend's recall."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from musicdb.audio import synth
from musicdb.cli import app
from musicdb.errors import StoreError
from musicdb.similarity import index as vector_index
from musicdb.similarity.index import VectorIndex
from musicdb.store import database as store


def cli(*args) -> None:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def audio_db(tmp_path_factory) -> tuple[Path, Path]:
    """Six short generated songs, one file copied twice and another once (same content at
    other paths), and one song re-tagged (same sound, other bytes: a tie, not a copy)."""
    tmp = tmp_path_factory.mktemp("audio")
    lib = tmp / "lib"
    lib.mkdir()
    makers = [lambda: synth.tone(220, 3), lambda: synth.tone(440, 3),
              lambda: synth.clicks(100, 3) + synth.tone(330, 3),
              lambda: synth.noise(3, seed=1), lambda: synth.clicks(140, 3),
              lambda: synth.tone(880, 3) + synth.noise(3, amp=0.05, seed=2)]
    for i, make in enumerate(makers):
        synth.write_audio(lib / f"s{i}.flac", make())
    (lib / "copies").mkdir()
    shutil.copy(lib / "s0.flac", lib / "copies" / "s0-a.flac")
    shutil.copy(lib / "s0.flac", lib / "copies" / "s0-b.flac")
    shutil.copy(lib / "s3.flac", lib / "copies" / "s3-a.flac")
    shutil.copy(lib / "s4.flac", lib / "s4-tagged.flac")
    synth.tag(lib / "s4-tagged.flac", artist="Someone", title="Other bytes")
    db = tmp / "audio.duckdb"
    cli("ingest", lib, "--db", db, "--workers", "1", "--snippet-seconds", "0")
    return db, lib


@pytest.fixture(scope="module")
def ties_db(tmp_path_factory) -> Path:
    """300 imported songs whose features take only three values: many equal distances."""
    tmp = tmp_path_factory.mktemp("ties")
    rng = np.random.default_rng(3)
    table = tmp / "ties.csv"
    with table.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["label", "file", "f0", "f1", "f2", "f3"])
        for n in range(300):
            out.writerow([f"artist{n % 7}", f"song {n}", *rng.integers(0, 3, 4)])
    db = tmp / "ties.duckdb"
    cli("import", table, "--feature-set", "ties", "--db", db)
    return db


def macro(con: duckdb.DuckDBPyConnection, song_id: int, k: int) -> list[tuple[int, float]]:
    return con.execute("SELECT song_id, distance FROM similar_songs(?, ?)",
                       [song_id, k]).fetchall()


def assert_same(got: list[tuple[int, float]], expected: list[tuple[int, float]]) -> None:
    assert [s for s, _ in got] == [s for s, _ in expected]
    assert [d for _, d in got] == pytest.approx([d for _, d in expected], abs=1e-5)


@pytest.mark.parametrize("which", ["audio_db", "ties_db"])
def test_the_ranking_is_the_macros(request, which):
    found = request.getfixturevalue(which)
    db = found[0] if isinstance(found, tuple) else found
    con = duckdb.connect(str(db), read_only=True)
    index = VectorIndex.load(con)
    n = len(index)
    assert n == con.execute("SELECT count(*) FROM song_vectors WHERE feature_set_id = ?",
                            [index.feature_set_id]).fetchone()[0]
    ties = 0
    for song in index.song_ids[: min(n, 60)]:
        for k in (1, 5, n):
            expected = macro(con, int(song), k)
            assert_same(index.nearest(int(song), k), expected)
        distances = [d for _, d in expected]
        ties += len(distances) - len(set(distances))
    assert ties > 0  # the libraries do hold equal distances, ordered by song_id


def test_copies_are_never_neighbours_but_a_retagged_file_ties(audio_db):
    db, lib = audio_db
    con = duckdb.connect(str(db), read_only=True)
    index = VectorIndex.load(con)
    ids = dict(con.execute("SELECT path, song_id FROM songs").fetchall())
    s0, s3, s4 = (ids[str((lib / f"s{i}.flac").resolve())] for i in (0, 3, 4))
    s0_copies = sorted(ids[str((lib / "copies" / f"s0-{c}.flac").resolve())] for c in "ab")
    assert sorted(index.copies_of(s0)) == s0_copies
    assert index.copies_of(s3) == [ids[str((lib / "copies" / "s3-a.flac").resolve())]]
    assert index.copies_of(s4) == []  # other bytes: no copy
    everything = index.nearest(s0, len(index))
    assert not {s for s, _ in everything} & {s0, *s0_copies}
    assert len(everything) == len(index) - 3
    # From another song, s0 and its copies are equally near, in song_id order.
    from_s4 = index.nearest(s4, len(index))
    group = [(s, d) for s, d in from_s4 if s in {s0, *s0_copies}]
    assert [s for s, _ in group] == sorted([s0, *s0_copies])
    assert len({d for _, d in group}) == 1
    tagged = ids[str((lib / "s4-tagged.flac").resolve())]
    assert from_s4[0] == (tagged, 0.0)


def test_exclude_leaves_songs_out_and_keeps_the_order(ties_db):
    con = duckdb.connect(str(ties_db), read_only=True)
    index = VectorIndex.load(con)
    song = int(index.song_ids[10])
    full = index.nearest(song, 40)
    dropped = {full[0][0], full[3][0], full[7][0], 10**9}  # an unknown id is ignored
    assert index.nearest(song, 30, exclude=dropped) == [
        r for r in full if r[0] not in dropped][:30]
    # nearest_to a stored song's vector: the song itself first, at distance 0.
    first = index.nearest_to(index.z[index.row(song)], 5)
    assert first[0] == (song, 0.0)
    assert index.nearest_to(index.z[index.row(song)], 5, exclude={song})[0][1] >= 0.0


def test_an_unknown_song_is_a_key_error(ties_db):
    index = VectorIndex.load(duckdb.connect(str(ties_db), read_only=True))
    with pytest.raises(KeyError):
        index.nearest(10**9, 5)
    with pytest.raises(KeyError):
        index.row(-1)


def test_a_library_without_vectors_has_no_index(tmp_path):
    db = tmp_path / "empty.duckdb"
    with store.connect(db, create=True) as con:
        assert VectorIndex.load(con) is None
    con = duckdb.connect()
    con.execute(f"ATTACH '{db}' AS src (READ_ONLY)")  # ATTACH takes no parameters
    assert VectorIndex.load(con, prefix="src.") is None


def test_an_attached_file_loads_the_same_and_an_unknown_set_is_an_error(ties_db):
    direct = VectorIndex.load(duckdb.connect(str(ties_db), read_only=True), "ties")
    con = duckdb.connect()
    con.execute(f"ATTACH '{ties_db}' AS src (READ_ONLY)")
    attached = VectorIndex.load(con, prefix="src.")
    assert attached.feature_set == "ties"
    assert np.array_equal(attached.song_ids, direct.song_ids)
    assert np.array_equal(attached.z, direct.z)
    assert list(attached.labels) == list(direct.labels)
    with pytest.raises(StoreError, match="no feature set 'nope'"):
        VectorIndex.load(con, "nope", prefix="src.")


def clustered(n: int, d: int = 32, clusters: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (clusters, d))
    return centres[rng.integers(0, clusters, n)] + rng.normal(0, 0.35, (n, d))


def test_the_ann_backend_finds_the_exact_neighbours(tmp_path):
    z = clustered(20_000)
    ids = np.arange(1, 20_001) * 3
    exact = VectorIndex.from_arrays(ids, z)
    ann = VectorIndex.from_arrays(ids, z)
    assert ann.describe()["backend"] == "exact"
    told: list[dict] = []
    thread = ann.start_ann(min_songs=0, on_done=told.append)
    thread.join(timeout=300)
    info = ann.describe()
    assert told == [info]
    assert info["backend"] == "ann"
    assert info["recall@10"] >= 0.95
    rng = np.random.default_rng(1)
    hits = 0
    for song in rng.choice(ids, 100, replace=False):
        got, truth = ann.nearest(int(song), 10), exact.nearest(int(song), 10)
        hits += len({s for s, _ in got} & {s for s, _ in truth})
        assert int(song) not in {s for s, _ in got}
        # what it returns is in the exact order, with the exact distances
        assert got == sorted(got, key=lambda r: (r[1], r[0]))
        for s, d in got:
            assert d == exact.distances(exact.z[exact.row(int(song))],
                                        np.array([exact.row(s)]))[0]
    assert hits / 1000 >= 0.95
    assert ann.start_ann(min_songs=10**9) is None  # below the size: stays exact


def test_a_new_snapshot_reuses_the_ann_index_and_searches_added_songs_exactly(monkeypatch):
    monkeypatch.setattr(vector_index, "REUSE_NEW_SONGS", 1_000)
    z = clustered(20_000, seed=4)
    ids = np.arange(1, 20_001)
    first = VectorIndex.from_arrays(ids, z, feature_set="reuse")
    assert first.build_ann(min_songs=0)
    assert first.describe()["reused"] is False
    # The next snapshot: 300 songs gone, 500 added (each a near twin of a kept song), and
    # every vector moved a little (the library's statistics changed).
    rng = np.random.default_rng(5)
    gone = set(rng.choice(ids, 300, replace=False).tolist())
    twins_of = rng.choice(sorted(set(ids.tolist()) - gone), 500, replace=False)
    kept = np.array([i for i in ids if i not in gone])
    new_ids = np.concatenate([kept, np.arange(30_001, 30_501)])
    new_z = np.concatenate([z[kept - 1], z[twins_of - 1] + 1e-3]) * 1.001
    second = VectorIndex.from_arrays(new_ids, new_z, feature_set="reuse")
    assert second.build_ann(min_songs=0)
    info = second.describe()
    assert info["reused"] is True
    assert info["songs_searched_exactly_beside"] == 500
    exact = VectorIndex.from_arrays(new_ids, new_z, feature_set="reuse-exact")
    for twin, of in zip(range(30_001, 30_051), twins_of[:50], strict=True):
        got = second.nearest(int(of), 10)
        assert got[0][0] == twin  # an added song is found
        assert not {s for s, _ in got} & gone
        truth = exact.nearest(int(of), 10)
        assert len({s for s, _ in got} & {s for s, _ in truth}) >= 9
    # A library that grew by more than REUSE_SHARE gets a fresh index.
    grown_ids = np.arange(1, 40_001)
    grown = VectorIndex.from_arrays(grown_ids, clustered(40_000, seed=4), feature_set="reuse")
    assert grown.build_ann(min_songs=0)
    assert grown.describe()["reused"] is False


def test_distances_are_duckdbs_list_distance_bit_for_bit():
    rng = np.random.default_rng(9)
    z = (rng.normal(0, 1, (2_000, 131)) * rng.uniform(0.1, 30, 131)).astype(np.float32)
    index = VectorIndex.from_arrays(np.arange(2_000), z)
    q = z[0]
    con = duckdb.connect()
    con.register("vectors", pa.table({"i": np.arange(len(z)), "v": pa.FixedSizeListArray
                                      .from_arrays(pa.array(z.ravel()), z.shape[1])}))
    expected = con.execute("SELECT list_distance(?::FLOAT[], v::FLOAT[]) AS d FROM vectors "
                           "ORDER BY i", [q.tolist()]).fetchnumpy()["d"]
    assert expected.dtype == np.float32
    assert np.array_equal(index.distances(q, np.arange(2_000)), expected)
    # float64 arithmetic would not be: the equality above is no accident of rounding
    in_float64 = np.sqrt(((z.astype(np.float64) - q) ** 2).sum(axis=1)).astype(np.float32)
    assert not np.array_equal(in_float64, expected)
