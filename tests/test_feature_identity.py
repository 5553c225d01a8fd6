"""One feature-set identity: a file analysed "like stored set X" gets X's own values, a set this
musicdb cannot reproduce is refused, descriptions follow the set's parameters, library versions
come from whoever computed the values, and `features` has its (song, set, snippet) key."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import duckdb
import librosa
import numpy as np
import pytest

from musicdb.analysis.features import (
    FEATURE_CODE_VERSION,
    ROW,
    SAMPLE_RATE,
    FrameParams,
    frame_features,
)
from musicdb.analysis.like import analyse_like, reproducible_params
from musicdb.analysis.summaries import FEATURE_SETS
from musicdb.audio import synth
from musicdb.errors import MusicdbError
from musicdb.store.database import load_migrations, migrate

BIG = ("--n-fft", "4096", "--hop-length", "512")
SEED55 = FEATURE_SETS["seed55"].names
OLD_LOUDNESS = ("mean over frames of frame RMS level in dB full scale (Hann-windowed frame; "
                "floor -100 dB)")  # what musicdb wrote before


def sql(db: Path, query: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(query, params or []).fetchall()


def write_sql(db: Path, query: str, params: list | None = None) -> None:
    with duckdb.connect(str(db)) as con:
        con.execute(query, params or [])


def one_error_line(result, *expected: str) -> str:
    assert "Traceback" not in result.output
    assert result.output.count("Error:") == 1, result.output
    text = " ".join(result.output.split())
    for words in expected:
        assert words in text, text
    return text


@pytest.fixture(scope="module")
def big_fft_db(tmp_path_factory) -> tuple[Path, Path]:
    """Three 6 s songs ingested as `default` with --n-fft 4096 --hop-length 512 only."""
    from typer.testing import CliRunner

    from musicdb.cli import app

    tmp = tmp_path_factory.mktemp("identity")
    lib = tmp / "lib"
    lib.mkdir()
    synth.write_audio(lib / "low.flac", synth.tone(220, 6) + synth.clicks(120, 6) * 0.3)
    synth.write_audio(lib / "high.flac", synth.tone(1760, 6) + synth.noise(6, amp=0.05))
    synth.write_audio(lib / "beat.flac", synth.clicks(90, 6) + synth.tone(440, 6, amp=0.1))
    db = tmp / "m.duckdb"
    result = CliRunner().invoke(app, ["ingest", str(lib), "--db", str(db), "--workers", "1",
                                      "--feature-set", "default", "--snippet-seconds", "0",
                                      *BIG], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return db, lib


def stored_set(db: Path) -> tuple[int, str, dict]:
    set_id, kind, params = sql(db, "SELECT feature_set_id, kind, params FROM feature_sets "
                                   "WHERE name = 'default'")[0]
    return set_id, kind, json.loads(params)


def stored_values(db: Path, path: Path) -> np.ndarray:
    (vals,), = sql(db, "SELECT f.vals FROM features f JOIN songs s USING (song_id) "
                       "WHERE s.path = ? AND f.snippet = -1", [str(path.resolve())])
    return np.asarray(vals, dtype=np.float32)


# --- analysing a file like a stored set -----------------------------------------------------


def test_a_file_analysed_like_a_4096_set_has_the_values_ingest_stored(big_fft_db, tmp_path):
    db, lib = big_fft_db
    _set_id, kind, params = stored_set(db)
    assert (params["n_fft"], params["hop_length"]) == (4096, 512)
    source = lib / "low.flac"
    outsider = shutil.copy(source, tmp_path / "outsider.flac")
    stored = stored_values(db, source)

    like = analyse_like(Path(outsider), "default", kind, params).whole
    assert like.dtype == np.float32
    # The same code and parameters; ingest ran it in a worker process, whose BLAS threads may
    # round a float32 sum in another order (seen: 1 ulp in 11 of 131 values).
    np.testing.assert_allclose(like, stored, rtol=1e-6, atol=1e-9)
    # The test can tell: the default parameters give other numbers for the same file.
    default = analyse_like(Path(outsider), "default", kind,
                           params | FrameParams().as_dict()).whole
    assert not np.allclose(default, stored, rtol=1e-3)


def test_similar_songs_of_a_file_finds_its_copy_at_distance_zero(run, big_fft_db, tmp_path):
    db, lib = big_fft_db
    outsider = shutil.copy(lib / "high.flac", tmp_path / "outsider.flac")
    answer = json.loads(run("similar", outsider, "--songs", "-n", "1", "--json",
                            "--db", db).stdout)  # stderr says it is analysing the file
    assert answer["feature_set"] == "default"
    nearest = answer["results"][0]
    assert Path(nearest["path"]) == (lib / "high.flac").resolve()
    assert nearest["distance"] == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize(("change", "expected"), [
    ({"code_version": FEATURE_CODE_VERSION + 1},
     f"feature code version {FEATURE_CODE_VERSION + 1}, this musicdb computes version "
     f"{FEATURE_CODE_VERSION}"),
    ({"code_version": 1}, "feature code version 1"),
    ({"window": "hamming"}, "parameters this musicdb cannot reproduce (window)"),
    ({"n_fft": 16}, "parameters this musicdb cannot use"),
])
def test_a_set_this_musicdb_cannot_reproduce_is_refused(run, big_fft_db, tmp_path, change,
                                                        expected):
    source_db, lib = big_fft_db
    db = shutil.copy(source_db, tmp_path / "changed.duckdb")
    set_id, _kind, params = stored_set(db)
    write_sql(db, "UPDATE feature_sets SET params = ? WHERE feature_set_id = ?",
              [json.dumps(params | change, sort_keys=True), set_id])
    outsider = shutil.copy(lib / "low.flac", tmp_path / "outsider.flac")
    result = run("similar", outsider, "--songs", "--db", db, code=1)
    one_error_line(result, expected, "re-ingest the library")


def test_an_imported_set_cannot_be_reproduced():
    with pytest.raises(MusicdbError, match="imported, not extracted"):
        reproducible_params("study55", "imported", {"imported": True, "columns": 55})


def test_every_parameter_is_checked_not_only_the_known_ones():
    params = json.loads(json.dumps(FrameParams().as_dict() | {"summary": "seed55",
                                                               "snippet_seconds": 30.0}))
    assert reproducible_params("seed55", "extracted", params) == FrameParams()
    for key in ("snippet_seconds", "code_version", "hpss_kernel", "extra"):
        del_one = {k: v for k, v in params.items() if k != key}
        with pytest.raises(MusicdbError, match="re-ingest"):
            reproducible_params("seed55", "extracted", del_one)
    bands = params | {"band_edges": [1, 9, 44, 211, 999]}  # not what n_fft 2048 derives
    assert reproducible_params("seed55", "extracted", bands).band_edges == (1, 9, 44, 211, 999)


# --- descriptions ---------------------------------------------------------------------------


def descriptions(db: Path, n_fft: int) -> dict[str, str]:
    return dict(sql(db, "SELECT n.name, n.description FROM feature_names n JOIN feature_sets s "
                        "USING (feature_set_id) WHERE s.name = 'default' AND s.n_fft = ?",
                    [n_fft]))


def test_descriptions_at_n_fft_4096_name_that_fft_s_bins(big_fft_db):
    db, _lib = big_fft_db
    text = descriptions(db, 4096)
    # Edges 2, 18, 88, 422, 2000 at 4096 (1, 9, 44, 211, 1000 at 2048): the same Hz.
    assert text["5band_rms_h0"].endswith("n_fft 4096) in bins 2-17 (11-97 Hz)")
    assert text["5band_kurtosis_p1"].endswith("n_fft 4096) in bins 18-87 (97-474 Hz)")
    assert text["5band_std_h3"].endswith("in bins 422-1999 (2272-10767 Hz)")
    for name in ("loudness_mean_db", "rmseP_a", "rmseH_std"):
        assert "plain (rectangular, not Hann-windowed) 4096-sample (186 ms) frame" in text[name]
    assert not any("Hann-windowed frame" in t for t in text.values())


def test_descriptions_follow_the_parameters_they_are_built_from():
    at = {n: FEATURE_SETS["default"].describe(FrameParams(n_fft=n)) for n in (1024, 2048)}
    names = FEATURE_SETS["default"].names
    h1 = names.index("5band_rms_h1")
    assert at[2048][h1].endswith("n_fft 2048) in bins 9-43 (97-474 Hz)")
    assert at[1024][h1].endswith("n_fft 1024) in bins 4-21 (86-474 Hz)")  # 4.5 rounds to 4
    assert FEATURE_SETS["seed55"].describe(FrameParams()) == at[2048][: len(SEED55)]
    assert len(set(at[2048])) == len(names)  # every column says something of its own


def test_an_existing_version_s_old_descriptions_are_corrected_by_the_next_ingest(run, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    synth.write_audio(lib / "a.flac", synth.tone(330, 3))
    db = tmp_path / "m.duckdb"
    ingest = ("ingest", lib, "--db", db, "--workers", "1", "--feature-set", "default",
              "--snippet-seconds", "0")
    run(*ingest)
    write_sql(db, "UPDATE feature_names SET description = ? WHERE name = 'loudness_mean_db'",
              [OLD_LOUDNESS])
    values = sql(db, "SELECT song_id, vals FROM features ORDER BY ALL")
    synth.write_audio(lib / "b.flac", synth.tone(660, 3))
    run(*ingest)
    assert sql(db, "SELECT count(*) FROM feature_sets") == [(1,)]  # the same version
    text = descriptions(db, 2048)
    assert text == dict(zip(FEATURE_SETS["default"].names,
                            FEATURE_SETS["default"].describe(FrameParams()), strict=True))
    assert text["loudness_mean_db"] != OLD_LOUDNESS
    assert sql(db, "SELECT song_id, vals FROM features ORDER BY ALL")[:1] == values


def test_loudness_is_in_plain_frame_units_as_described():
    """A steady sine of amplitude a: plain-frame RMS a/sqrt(2); a Hann window would give less."""
    amp = 0.5
    y = synth.tone(440, 3, sr=SAMPLE_RATE, amp=amp)
    frames = frame_features(y)
    middle = frames[ROW["rms"], 20:-20]
    assert np.median(middle) == pytest.approx(amp / np.sqrt(2), rel=0.01)
    plain = librosa.feature.rms(y=y, frame_length=2048, hop_length=441)[0, 20:-20]
    assert np.median(middle) == pytest.approx(np.median(plain), rel=0.01)


# --- library versions -----------------------------------------------------------------------


def write_small_csv(path: Path) -> Path:
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["label", "file", "a", "b"])
        for i in range(6):
            out.writerow(["X" if i % 2 else "Y", f"song{i}", i, 10 * i])
    return path


def test_an_imported_set_records_no_library_versions(run, tmp_path, big_fft_db):
    db = tmp_path / "m.duckdb"
    run("import", write_small_csv(tmp_path / "t.csv"), "--feature-set", "small", "--db", db)
    assert sql(db, "SELECT kind, librosa_version, numpy_version, musicdb_version IS NOT NULL "
                   "FROM feature_sets") == [("imported", None, None, True)]
    # An extracted set records the libraries that computed its values.
    extracted, _lib = big_fft_db
    assert sql(extracted, "SELECT DISTINCT librosa_version, numpy_version FROM feature_sets") \
        == [(librosa.__version__, np.__version__)]


# --- the key of `features` ------------------------------------------------------------------


def key_columns(db: Path) -> list[list[str]]:
    return [r[0] for r in sql(db, "SELECT constraint_column_names FROM duckdb_constraints() "
                                  "WHERE table_name = 'features' "
                                  "AND constraint_type = 'PRIMARY KEY'")]


def test_features_has_its_key(big_fft_db):
    db, _lib = big_fft_db
    assert key_columns(db) == [["song_id", "feature_set_id", "snippet"]]
    with duckdb.connect(str(db)) as con, pytest.raises(duckdb.ConstraintException):
        con.execute("INSERT INTO features SELECT * FROM features LIMIT 1")


def schema_5_database(db: Path) -> None:
    """A database as the release before 0006 left it, with an extracted set's rows."""
    with duckdb.connect(str(db)) as con:
        migrate(con, [m for m in load_migrations() if m.version <= 5])
        con.execute("INSERT INTO feature_sets (feature_set_id, name, version, kind, params, "
                    "n_features) VALUES (nextval('feature_set_id_seq'), 'old', 1, 'imported', "
                    "'{}', 2)")
        con.execute("INSERT INTO feature_names VALUES (1, 1, 'a', NULL), (1, 2, 'b', NULL)")
        for i in range(3):
            con.execute("INSERT INTO songs (song_id, source, status, title, imported_label) "
                        "VALUES (nextval('song_id_seq'), 'import', 'ok', ?, 'L')", [f"t{i}"])
            for snippet, start in ((-1, 0.0), (0, 0.0), (1, 30.0)):
                con.execute("INSERT INTO features VALUES (?, 1, ?, ?, ?, ?)",
                            [i + 1, snippet, start, start + 30, [float(i), snippet / 2]])


def test_an_old_database_migrates_to_the_key_with_every_row(run, tmp_path):
    db = tmp_path / "old.duckdb"
    schema_5_database(db)
    before = sql(db, "SELECT * FROM features ORDER BY ALL")
    assert len(before) == 9
    assert key_columns(db) == []
    run("import", write_small_csv(tmp_path / "t.csv"), "--feature-set", "small", "--db", db)
    assert max(r[0] for r in sql(db, "SELECT version FROM _migrations")) >= 6
    assert key_columns(db) == [["song_id", "feature_set_id", "snippet"]]
    assert sql(db, "SELECT * FROM features WHERE feature_set_id = 1 ORDER BY ALL") == before
    # Re-importing replaces the rows of each key in one transaction: the key allows it.
    run("import", tmp_path / "t.csv", "--feature-set", "small", "--db", db)
    assert sql(db, "SELECT count(*) FROM features") == [(15,)]
