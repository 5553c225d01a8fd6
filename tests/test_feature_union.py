"""Experiments on a union of feature sets (`--feature-set default,musicnn`) through the real CLI,
on a generated library ingested with default, seed55, tonal and musicnn in one pass."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest

from musicdb.audio import synth
from musicdb.ml import experiments as ex

SETS = "default,seed55,tonal,musicnn"
N_DEFAULT, N_MUSICNN = 131, 450


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two folders (the labels): tones and noises, 3 s each, 2 s snippets; then one more
    tone ingested with the default set only (no musicnn features)."""
    from typer.testing import CliRunner

    from musicdb.cli import app

    root = tmp_path_factory.mktemp("union")
    for folder in ("tones", "noises"):
        (root / "music" / folder).mkdir(parents=True)
    for i in range(4):
        synth.write_audio(root / "music" / "tones" / f"tone{i}.wav",
                          synth.tone(220 * (i + 1), 3) + synth.noise(3, amp=0.01, seed=i))
        synth.write_audio(root / "music" / "noises" / f"noise{i}.wav",
                          synth.noise(3, amp=0.1 + 0.1 * i, seed=10 + i))
    db = root / "union.duckdb"

    def ingest(sets: str) -> None:
        result = CliRunner().invoke(app, ["ingest", str(root / "music"), "--db", str(db),
                                          "--workers", "1", "--feature-set", sets,
                                          "--snippet-seconds", "2"], catch_exceptions=False)
        assert result.exit_code == 0, result.output

    ingest(SETS)
    synth.write_audio(root / "music" / "tones" / "late.wav", synth.tone(550, 3))
    ingest("default")
    return root, db


def _create(run, db: Path, name: str, *extra: str) -> dict:
    run("experiment", "create", name, "--labels", "tones,noises", "--label-from", "folder",
        "--model", "logreg", *extra, "--db", db)
    return json.loads(run("experiment", "show", name, "--db", db).stdout)


def test_union_is_stored_by_its_members_names(run, library) -> None:
    db = library[1]
    shown = _create(run, db, "tn-union", "--feature-set", " default , musicnn,default")
    assert shown["feature_set"] == "default,musicnn"
    with duckdb.connect(str(db), read_only=True) as con:
        union = ex.label_counts(con, ex.get(con, "tn-union"))
        default = ex.label_counts(con, ex.Experiment("x", ["tones", "noises"], "folder",
                                                     "default"))
    # The late tone has no musicnn features: the union leaves it out, default keeps it.
    assert union == {"noises": 4, "tones": 4}
    assert default == {"tones": 5, "noises": 4}


def test_union_columns_are_the_members_side_by_side(run, library) -> None:
    db = library[1]
    _create(run, db, "tn-cols", "--feature-set", "default,musicnn")
    with duckdb.connect(str(db), read_only=True) as con:
        exp = ex.get(con, "tn-cols")
        both = ex.dataset(con, exp)
        default = ex.dataset(con, exp, "default")
        musicnn = ex.dataset(con, exp, "musicnn")
    assert both.X.shape == (8, N_DEFAULT + N_MUSICNN)
    assert both.feature_set == "default,musicnn"
    assert both.feature_names[0] == "default." + default.feature_names[0]
    assert both.feature_names[N_DEFAULT:] == ["musicnn." + n for n in musicnn.feature_names]
    assert "musicnn.tag_female_vocalists" in both.feature_names
    assert len(set(both.feature_names)) == len(both.feature_names)
    late = set(default.song_ids.tolist()) - set(musicnn.song_ids.tolist())
    assert len(late) == 1
    keep = ~np.isin(default.song_ids, list(late))
    assert (both.song_ids == default.song_ids[keep]).all()
    assert (both.X[:, :N_DEFAULT] == default.X[keep]).all()
    assert (both.X[:, N_DEFAULT:] == musicnn.X).all()


def test_evaluate_and_predict_a_union(run, library) -> None:
    root, db = library
    _create(run, db, "tn-eval", "--feature-set", "default,musicnn")
    result = json.loads(run("evaluate", "--experiment", "tn-eval", "--cv", "2", "--no-prune",
                            "--json", "--db", db).stdout)
    assert result["feature_set"] == "default,musicnn"
    assert result["n_features"] == N_DEFAULT + N_MUSICNN
    assert result["n_songs"] == 8
    assert {i["feature"].split(".")[0] for i in result["importances"]} == {"default", "musicnn"}
    listed = json.loads(run("evaluations", "--experiment", "tn-eval", "--json",
                            "--db", db).stdout)
    assert [e["feature_set"] for e in listed] == ["default,musicnn"]
    with duckdb.connect(str(db), read_only=True) as con:
        versions = json.loads(con.execute("SELECT versions FROM evaluations WHERE experiment "
                                          "= 'tn-eval'").fetchone()[0])
        ids = dict(con.execute("SELECT feature_set, feature_set_id FROM latest_feature_sets"
                               ).fetchall())
        song = con.execute("SELECT song_id FROM songs WHERE path LIKE '%tone1.wav'").fetchone()[0]
    assert versions["feature_set_ids"] == {"default": ids["default"], "musicnn": ids["musicnn"]}

    stored = json.loads(run("predict", str(song), "--experiment", "tn-eval", "--json",
                            "--db", db).stdout)[0]
    analysed = json.loads(run("predict", root / "music" / "tones" / "tone1.wav", "--experiment",
                              "tn-eval", "--json", "--db", db).stdout)[0]
    # The file analysed now reads like its stored row: the columns line up set by set.
    assert [x["label"] for x in analysed["labels"]] == [x["label"] for x in stored["labels"]]
    for a, s in zip(analysed["labels"], stored["labels"], strict=True):
        assert a["probability"] == pytest.approx(s["probability"], abs=1e-3)
    assert sum(x["probability"] for x in stored["labels"]) == pytest.approx(1)
    rows = json.loads(run("sql", "SELECT regexp_extract(path, '(\\w+)\\.wav', 1) AS title, "
                          "predict_label('tn-eval', song_id) AS guess FROM songs", "--json",
                          "--db", db).stdout)
    guesses = {r["title"]: r["guess"] for r in rows}
    assert guesses["late"] is None  # no musicnn features: the union's model cannot score it
    assert set(guesses.values()) - {None} <= {"tones", "noises"}


def test_snippets_of_a_union(run, library) -> None:
    db = library[1]
    _create(run, db, "tn-snip", "--feature-set", "musicnn,default", "--unit", "snippet")
    result = json.loads(run("evaluate", "--experiment", "tn-snip", "--json", "--db", db,
                            "--cv", "2", "--no-prune").stdout)
    with duckdb.connect(str(db), read_only=True) as con:
        snippets = con.execute(
            "SELECT count(*) FROM features f JOIN latest_feature_sets s USING (feature_set_id) "
            "JOIN songs USING (song_id) WHERE s.feature_set = 'musicnn' AND f.snippet >= 0"
        ).fetchone()[0]
        rows = con.execute("SELECT n_rows FROM evaluations WHERE experiment = 'tn-snip'"
                           ).fetchone()[0]
    assert result["n_features"] == N_MUSICNN + N_DEFAULT
    assert result["importances"][0]["feature"].split(".")[0] in {"musicnn", "default"}
    assert rows == snippets == 8 * 2  # 3 s songs cut into a 2 s snippet and the rest


def test_evaluate_overrides_with_a_union_and_bad_members_are_one_line(run, library) -> None:
    db = library[1]
    _create(run, db, "tn-plain")
    result = json.loads(run("evaluate", "--experiment", "tn-plain", "--feature-set",
                            "seed55,musicnn", "--json", "--db", db).stdout)
    assert result["feature_set"] == "seed55,musicnn"
    assert result["n_features"] == 55 + N_MUSICNN
    plain = json.loads(run("evaluate", "--experiment", "tn-plain", "--json", "--db", db).stdout)
    assert plain["feature_set"] == "default"
    assert plain["n_features"] == N_DEFAULT
    assert not any("." in name for name in plain["kept_features"])
    bad = run("experiment", "create", "tn-bad", "--labels", "tones,noises", "--label-from",
              "folder", "--feature-set", "default,nope", "--db", db, code=1)
    assert "no feature set 'nope'" in bad.output
    assert "Traceback" not in bad.output
    empty = run("experiment", "create", "tn-bad", "--labels", "tones,noises", "--feature-set",
                ",", "--db", db, code=1)
    assert "name a set" in empty.output
