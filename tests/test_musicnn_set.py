"""The `musicnn` feature set through the real CLI: added to an ingested library, queried in the
duckdb shell, and used by `musicdb similar`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from musicdb.analysis.analyse import analyse_file
from musicdb.audio import synth
from musicdb.cli import app
from tests.test_key_tempo import query

SNIPPET_S = 2.0


def _library(root: Path) -> Path:
    folder = root / "music"
    folder.mkdir()
    synth.write_audio(folder / "tone.wav", synth.tone(330, 4))
    synth.write_audio(folder / "noise.wav", synth.noise(4))
    synth.write_audio(folder / "clicks.wav", synth.clicks(120, 4))
    synth.write_audio(folder / "short.wav", synth.tone(440, 1))  # shorter than one patch
    return folder


def _ingest(folder: Path, db: Path, sets: str) -> str:
    result = CliRunner().invoke(app, ["ingest", str(folder), "--db", str(db), "--workers", "1",
                                      "--feature-set", sets, "--snippet-seconds", str(SNIPPET_S)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str, list]:
    folder = _library(tmp_path_factory.mktemp("musicnn_library"))
    db = folder.parent / "musicnn.duckdb"
    _ingest(folder, db, "seed55")
    before = query(db, "SELECT title, rmseP_a, bpm FROM features_seed55 ORDER BY title")
    second = _ingest(folder, db, "seed55,musicnn")
    return folder, db, second, before


def test_adding_musicnn_extracts_only_that_set(library):
    _, db, output, before = library
    assert "4 files got a missing feature set" in output
    assert query(db, "SELECT title, rmseP_a, bpm FROM features_seed55 ORDER BY title") == before
    rows = query(db, "SELECT name, version, n_features, songs FROM feature_set_summary "
                     "ORDER BY name")
    assert rows == [["musicnn", "1", "450", "4"], ["seed55", "1", "55", "4"]]


def test_analysis_of_musicnn_alone(library):
    folder = library[0]
    result = analyse_file(str(folder / "noise.wav"), ("musicnn",), SNIPPET_S)
    assert result.ok, result.error
    assert set(result.values) == {"musicnn"}
    values = result.values["musicnn"]
    assert values.whole.shape == (450,)
    assert values.snippets.shape == (2, 450)
    assert np.isfinite(values.snippets).all()


def test_tags_are_named_columns_in_sql(library):
    db = library[1]
    rows = query(db, "SELECT title, tag_female_vocalists, tag_rock, emb_mean_0, emb_std_199 "
                     "FROM features_musicnn ORDER BY title")
    assert [r[0] for r in rows] == ["clicks", "noise", "short", "tone"]
    for row in rows:
        values = [float(v) for v in row[1:]]
        assert all(np.isfinite(values))
        assert 0 <= values[0] <= 1
        assert 0 <= values[1] <= 1
    tags = {r[0]: float(r[1]) for r in rows}
    assert len(set(tags.values())) == 4  # different sounds, different tags
    described = query(db, "SELECT n.description FROM feature_names n JOIN feature_sets s "
                          "USING (feature_set_id) WHERE s.name = 'musicnn' "
                          "AND n.name = 'tag_female_vocalists'")
    assert "female vocalists" in described[0][0]


def test_similar_songs_on_musicnn(library):
    folder, db, _, _ = library
    result = CliRunner().invoke(app, ["similar", "--songs", str(folder / "tone.wav"),
                                      "--feature-set", "musicnn", "-n", "3", "--db", str(db)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.output.strip().splitlines()[1:]]
    assert len(lines) == 3
    assert {line[2] for line in lines} == {"short", "clicks", "noise"}
