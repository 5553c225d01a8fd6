"""Experiments as data and the pure-SQL `splits` view: presets, definitions, no leakage."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest

from musicdb.ml import experiments as ex
from musicdb.ml.evaluate import folds
from musicdb.store import database as store
from tests.conftest import import_study
from tests.smaller_models import fewer_trees

PRESETS = {"classical-vs-taylor", "taylor-vs-avril", "artists", "with-boc", "xmas"}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """study55 imported; every song gets an album (8 per label) and 3 fake snippets."""
    db = import_study(tmp_path_factory.mktemp("experiments"))
    con = duckdb.connect(str(db))
    con.execute("UPDATE songs SET album = 'Album ' || (song_id % 8)")
    con.execute("INSERT INTO features SELECT f.song_id, f.feature_set_id, s.i, s.i * 30.0, "
                "s.i * 30.0 + 30, list_transform(f.vals, v -> v * (1 + 0.01 * s.i))::FLOAT[] "
                "FROM features f, range(3) s(i) WHERE f.snippet = -1")
    con.close()
    return db


def test_presets_are_listed_and_shown(run, study: Path) -> None:
    listed = json.loads(run("experiment", "list", "--json", "--db", study).stdout)
    assert {e["name"] for e in listed if e["preset"]} == PRESETS
    assert "classical-vs-taylor" in run("experiment", "list", "--db", study).stdout
    xmas = json.loads(run("experiment", "show", "xmas", "--db", study).stdout)
    assert len(xmas["labels"]) == 13
    assert xmas["feature_set"] is None
    assert xmas["preset"]
    with_boc = json.loads(run("experiment", "show", "with-boc", "--db", study).stdout)
    assert set(xmas["labels"]) - set(with_boc["labels"]) == {"Xmas"}


def test_create_show_delete(run, study: Path) -> None:
    run("experiment", "create", "cl-xm", "--labels", "Classical,Xmas", "--unit", "snippet",
        "--split", "album", "--test-fraction", "0.25", "--seed", "3", "--db", study)
    shown = json.loads(run("experiment", "show", "cl-xm", "--db", study).stdout)
    assert shown | {"labels": None} == {
        "name": "cl-xm", "labels": None, "label_from": "auto", "feature_set": None,
        "unit": "snippet", "split": "album", "test_fraction": 0.25, "seed": 3,
        "model": "ensemble", "preset": False}
    assert shown["labels"] == ["Classical", "Xmas"]
    again = run("experiment", "create", "cl-xm", "--labels", "A,B", "--db", study, code=1)
    assert "exists already" in again.output
    bad = run("experiment", "create", "x", "--labels", "A,B", "--unit", "bar", "--db", study,
              code=2)
    assert "'bar' is not one of 'song', 'snippet'" in bad.output
    run("experiment", "delete", "cl-xm", "--db", study)
    assert "no experiment 'cl-xm'" in run("experiment", "show", "cl-xm", "--db", study,
                                          code=1).output


def test_missing_labels_are_named(run, study: Path) -> None:
    refused = run("experiment", "create", "nobody", "--labels", "Classical,Nobody,Ghost",
                  "--db", study, code=1)
    assert "no labels 'Nobody', 'Ghost' under the 'auto' rule" in refused.output
    assert "no experiment 'nobody'" in run("experiment", "show", "nobody", "--db", study,
                                           code=1).output
    # A preset whose labels the library lacks still says so when evaluated.
    with duckdb.connect(str(study)) as con:
        con.execute("INSERT INTO experiments (name, labels, label_from, unit, split, "
                    "test_fraction, seed, model, preset) VALUES ('nobody', "
                    "['Classical', 'Nobody', 'Ghost'], 'auto', 'song', 'hash', 0.4, 0, "
                    "'ensemble', false)")
    result = run("evaluate", "--experiment", "nobody", "--db", study, code=1)
    assert "Nobody, Ghost" in result.output
    assert "musicdb experiment create" in result.output


def test_splits_view_is_deterministic_sql(shell, study: Path) -> None:
    sql = ("SELECT side, count(*) FROM splits WHERE experiment = 'xmas' GROUP BY side "
           "ORDER BY side")
    first = dict(shell(study, sql))
    assert first == dict(shell(study, sql))
    test, train = int(first["test"]), int(first["train"])
    assert test + train == 2333
    assert 0.36 < test / 2333 < 0.44  # --test-fraction 0.4


def _data(db: Path, name: str, **spec) -> ex.Dataset:
    with store.connect(db) as con:
        if spec:
            ex.create(con, ex.Experiment(name, ["Classical", "Xmas", "REM"], **spec))
        return ex.dataset(con, ex.get(con, name))


def test_snippets_follow_their_songs(study: Path) -> None:
    data = _data(study, "snip", unit="snippet")
    assert len(data.y) == 3 * data.n_songs  # three snippets a song, no whole-song rows
    test_songs, train_songs = set(data.song_ids[data.test]), set(data.song_ids[~data.test])
    assert test_songs
    assert train_songs
    assert not test_songs & train_songs
    for train, test in folds(data, 3, seed=0):
        assert not set(data.song_ids[train]) & set(data.song_ids[test])


def test_album_split_keeps_albums_on_one_side(study: Path, shell) -> None:
    data = _data(study, "albums", split="album")
    with duckdb.connect(str(study), read_only=True) as con:
        album = dict(con.execute("SELECT song_id, album FROM songs").fetchall())
    sides = shell(study, "SELECT split_group, count(DISTINCT side) FROM splits "
                         "WHERE experiment = 'albums' GROUP BY 1")
    assert len(sides) == 8 * 3
    assert all(n == "1" for _, n in sides)
    for train, test in folds(data, 3, seed=1):
        train_albums = {(data.y[i], album[data.song_ids[i]]) for i in train}
        test_albums = {(data.y[i], album[data.song_ids[i]]) for i in test}
        assert test_albums
        assert not train_albums & test_albums
    assert np.unique(data.groups).size == 24


def test_evaluate_snippets_scores_songs(run, study: Path, monkeypatch) -> None:
    fewer_trees(monkeypatch)  # the pruning forest's size is not what this checks
    run("experiment", "create", "snip-cv", "--labels", "Classical,TaylorSwift", "--unit",
        "snippet", "--model", "logreg", "--db", study)
    r = json.loads(run("evaluate", "--experiment", "snip-cv", "--cv", "3", "--json",
                       "--db", study).stdout)
    assert r["unit"] == "snippet"
    assert r["n_test"] == r["n_songs"] == 467 + 95
    assert r["accuracy"] > 0.9


def test_album_effect_is_measured(run, study: Path, monkeypatch) -> None:
    # Four evaluations, 18 fits: with 200 trees the pruning forest took most of the time.
    fewer_trees(monkeypatch)
    r = json.loads(run("evaluate", "--experiment", "classical-vs-taylor", "--model", "logreg",
                       "--cv", "3", "--album-effect", "--json", "--db", study).stdout)
    effect = r["album_effect"]
    assert effect["albums"] == 2 * 8
    assert effect["accuracy_inflation"] == pytest.approx(
        r["accuracy"] - effect["accuracy_album_folds"])
    # Measured without asking, since these songs carry album tags; stored with the run.
    auto = json.loads(run("evaluate", "--experiment", "classical-vs-taylor", "--model", "logreg",
                          "--cv", "3", "--json", "--db", study).stdout)
    assert auto["album_effect"] == effect
    with duckdb.connect(str(study), read_only=True) as con:
        stored = con.execute("SELECT album_effect FROM evaluations WHERE evaluation_id = ?",
                             [auto["evaluation_id"]]).fetchone()[0]
    assert json.loads(stored) == effect
    off = json.loads(run("evaluate", "--experiment", "classical-vs-taylor", "--model", "logreg",
                         "--cv", "3", "--no-album-effect", "--json", "--db", study).stdout)
    assert "album_effect" not in off
    no_cv = run("evaluate", "--experiment", "classical-vs-taylor", "--model", "logreg",
                "--album-effect", "--db", study, code=1)
    assert "--album-effect needs --cv K" in no_cv.output
