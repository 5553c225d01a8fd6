"""`musicdb evaluate`, stored evaluations, skops models, `predict` and `sql` on real data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

from musicdb.cli import app
from musicdb.ml import models
from tests.conftest import import_study
from tests.executors import in_process
from tests.smaller_models import FEWER_TREES, fewer_trees

FAST = ("--model", "logreg", "--cv", "3")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = import_study(tmp_path_factory.mktemp("evaluate"))
    return db


def _synthetic(path: Path, *, shuffle: bool) -> Path:
    """Three labels of 60 songs; 6 features, the first 3 separating the labels by 4 std."""
    rng = np.random.default_rng(7)
    labels = np.repeat(["A", "B", "C"], 60)
    X = rng.normal(size=(180, 6))
    X[:, :3] += 4 * (labels[:, None] == np.array(["A", "B", "C"]))
    if shuffle:
        labels = rng.permutation(labels)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "file"] + [f"f{i}" for i in range(6)])
        w.writerows([lab, f"song{i}", *row] for i, (lab, row) in enumerate(zip(labels, X,
                                                                                strict=True)))
    return path


@pytest.mark.parametrize(("shuffle", "low", "high"), [(False, 0.95, 1.0), (True, 0.0, 0.5)])
def test_separable_problem_and_shuffled_control(run, tmp_path: Path, shuffle: bool, low: float,
                                                high: float) -> None:
    db = tmp_path / "s.duckdb"
    run("import", _synthetic(tmp_path / "s.csv", shuffle=shuffle), "--feature-set", "synth",
        "--db", db)
    run("experiment", "create", "abc", "--labels", "A,B,C", "--db", db)
    r = json.loads(run("evaluate", "--experiment", "abc", *FAST, "--json", "--db", db).stdout)
    assert low <= r["accuracy"] <= high  # chance is 1/3
    if not shuffle:
        assert r["macro_f1"] >= 0.95
        assert r["kept_features"][:3] == ["f0", "f1", "f2"]


def test_same_seed_same_metrics_and_stored_rows_match_json(run, study: Path,
                                                          monkeypatch) -> None:
    fewer_trees(monkeypatch)  # two runs agree, and match their rows, at any forest size
    args = ("evaluate", "--experiment", "classical-vs-taylor", *FAST, "--seed", "5", "--json",
            "--db", study)
    a, b = (json.loads(run(*args).stdout) for _ in range(2))
    keys = ("accuracy", "balanced_accuracy", "macro_f1", "log_loss", "per_class", "confusion",
            "kept_features", "importances")
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
    assert b["evaluation_id"] == a["evaluation_id"] + 1
    con = duckdb.connect(str(study), read_only=True)
    eid = a["evaluation_id"]
    row = con.execute("SELECT accuracy, balanced_accuracy, macro_f1, log_loss, kept_features, "
                      "cv, n_songs FROM evaluations WHERE evaluation_id = ?", [eid]).fetchone()
    assert row == (a["accuracy"], a["balanced_accuracy"], a["macro_f1"], a["log_loss"],
                   a["kept_features"], 3, 467 + 95)
    classes = con.execute('SELECT label, "precision", recall, f1, support FROM '
                          "evaluation_classes WHERE evaluation_id = ? ORDER BY label",
                          [eid]).fetchall()
    assert [dict(zip(("label", "precision", "recall", "f1", "support"), c, strict=True))
            for c in classes] == a["per_class"]
    cells = con.execute("SELECT true_label, predicted_label, songs FROM evaluation_confusion "
                        "WHERE evaluation_id = ?", [eid]).fetchall()
    assert {(t, p): n for t, p, n in cells} == {
        (t, p): n for t, row in a["confusion"].items() for p, n in row.items()}
    assert sum(n for *_, n in cells) == 467 + 95  # every song scored once, out of fold
    con.close()
    listed = run("evaluations", "--experiment", "classical-vs-taylor", "--json", "--db", study)
    assert [r["evaluation_id"] for r in json.loads(listed.stdout)][-2:] == [eid, eid + 1]
    # Without --keep only the latest model file stays.
    assert sorted(p.name for p in models.models_dir(study).glob("classical-vs-taylor-*")) == [
        f"classical-vs-taylor-{eid + 1}.skops"]


def test_holdout_split_and_table(run, study: Path) -> None:
    text = run("evaluate", "--experiment", "taylor-vs-avril", "--model", "logreg",
               "--no-prune", "--db", study).stdout
    assert "train/test split" in text
    assert "55/55 features" in text
    assert "TaylorSwift" in text


@pytest.fixture(scope="module")
def trained(study: Path) -> Path:
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as patch:  # predict and sql read whatever was kept
        fewer_trees(patch)
        for args in (["experiment", "create", "xm", "--labels", "Classical,Xmas,REM",
                      "--model", "logreg", "--db", str(study)],
                     ["evaluate", "--experiment", "xm", "--db", str(study)]):
            result = runner.invoke(app, args, catch_exceptions=False)
            assert result.exit_code == 0, result.output
    return study


def test_predict_agrees_with_sql_udfs(run, trained: Path) -> None:
    ids = ["1", "2", "500", "2000"]
    predicted = json.loads(run("predict", *ids, "--experiment", "xm", "--json", "--db",
                               trained).stdout)
    rows = json.loads(run("sql", "SELECT song_id, predict_label('xm', song_id) AS label, "
                          "predict_proba('xm', song_id, 'Xmas') AS p_xmas FROM songs "
                          "WHERE song_id IN (1, 2, 500, 2000) ORDER BY song_id", "--json",
                          "--db", trained).stdout)
    assert [r["label"] for r in rows] == [p["labels"][0]["label"] for p in predicted]
    for r, p in zip(rows, predicted, strict=True):
        assert r["p_xmas"] == pytest.approx({x["label"]: x["probability"]
                                             for x in p["labels"]}.get("Xmas", r["p_xmas"]))
    table = run("sql", "SELECT predict_label('xm', song_id) AS l, count(*) AS n FROM songs "
                "GROUP BY l ORDER BY n DESC", "--db", trained).stdout
    assert "Classical" in table


def _model_file(db: Path) -> Path:
    with duckdb.connect(str(db), read_only=True) as con:
        return db.parent / con.execute("SELECT path FROM models WHERE experiment = 'xm'"
                                       ).fetchone()[0]


def test_tampered_or_untrusted_model_is_refused(run, trained: Path) -> None:
    path = _model_file(trained)
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\0")
        result = run("predict", "1", "--experiment", "xm", "--db", trained, code=1)
        assert "changed since it was written" in result.output
        import skops.io as sio
        from sklearn.neighbors import KNeighborsClassifier

        sio.dump(KNeighborsClassifier().fit([[0.0], [1.0]], ["a", "b"]), path)
        with duckdb.connect(str(trained)) as con:
            con.execute("UPDATE models SET sha256 = ? WHERE experiment = 'xm'",
                        [models.sha256(path)])
        result = run("sql", "SELECT predict_label('xm', 1)", "--db", trained, code=1)
        assert "untrusted types" in result.output
        assert "KNeighborsClassifier" in result.output
    finally:
        path.write_bytes(original)
        with duckdb.connect(str(trained)) as con:
            con.execute("UPDATE models SET sha256 = ? WHERE experiment = 'xm'",
                        [models.sha256(path)])
    run("predict", "1", "--experiment", "xm", "--db", trained)


def test_study_models_are_configured_as_documented() -> None:
    rf = models.build("rf").named_steps["model"]
    assert (rf.n_estimators, rf.class_weight) == (1000, "balanced")
    ens = models.build("ensemble").named_steps["model"]
    assert [n for n, _ in ens.estimators] == ["svc", "hgb", "rf", "logreg"]
    assert ens.voting == "soft"
    assert ens.estimators[2][1].n_estimators == 300


def test_html_report_opens_without_errors(run, study: Path, tmp_path: Path,
                                         monkeypatch) -> None:
    from tests.browser import chromium

    fewer_trees(monkeypatch)  # the page, not the forest, is what this checks
    page = tmp_path / "report.html"
    run("evaluate", "--experiment", "taylor-vs-avril", *FAST, "--html", page, "--db", study)
    assert page.stat().st_size > 1_000_000  # plotly.js inside: works offline
    with chromium() as browser:
        browser.open(page)
        assert browser.js("return document.querySelectorAll('.plotly-graph-div').length") == 1
        assert browser.errors() == []


def test_predict_a_file_needs_an_extracted_set(run, trained: Path, tmp_path: Path) -> None:
    song = tmp_path / "song.wav"
    song.write_bytes(b"RIFF")
    result = run("predict", song, "--experiment", "xm", "--db", trained, code=1)
    assert "imported, not extracted" in result.output
    missing = run("predict", "nope.mp3", "--experiment", "xm", "--db", trained, code=1)
    assert "neither a song id nor an audio file" in missing.output
    none = run("predict", "1", "--experiment", "artists", "--db", trained, code=1)
    assert "no stored model for experiment 'artists'" in none.output


@pytest.mark.parametrize("n_classes", [2, 3])
def test_every_model_saves_only_trusted_types(tmp_path: Path, n_classes: int) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 4))
    y = np.array(["a", "b", "c"])[np.arange(90) % n_classes]
    for name in ("ensemble", "rf", "hgb", "svc", "logreg"):
        path = tmp_path / f"{name}.skops"
        model = models.build(name)
        # The same types as 1,000 (rf) or 300 (the ensemble's) trees and 100 boosting
        # iterations, in a fraction of the time (most of it went on the ensemble's forest).
        model.set_params(**FEWER_TREES.get(name, {}))
        fitted = model.fit(X, y)
        digest = models.save(fitted, path)
        assert models.types_in(path) <= set(models.TRUSTED), name
        loaded = models.load(path, digest)
        assert np.array_equal(loaded.predict_proba(X), fitted.predict_proba(X)), name


def test_predict_an_audio_file_like_its_stored_song(run, tmp_path: Path, monkeypatch) -> None:
    from musicdb.audio.synth import demo_library

    fewer_trees(monkeypatch)  # a file and its stored song agree whatever the model kept
    in_process(monkeypatch)  # predict analyses the file here: the ingest does so too
    demo_library(tmp_path / "lib", songs_per_artist=2, seconds=12.0)
    db = tmp_path / "demo.duckdb"
    run("ingest", tmp_path / "lib", "--workers", "1", "--snippet-seconds", "0", "--db", db)
    with duckdb.connect(str(db), read_only=True) as con:
        labels = sorted({r[0] for r in con.execute("SELECT label FROM library").fetchall()})
        song_id, path = con.execute("SELECT song_id, path FROM library ORDER BY song_id"
                                    ).fetchone()
    run("experiment", "create", "demo", "--labels", ",".join(labels), "--feature-set",
        "seed55", "--model", "logreg", "--test-fraction", "0.3", "--db", db)
    run("evaluate", "--experiment", "demo", "--no-prune", "--db", db)
    by_id, by_file = json.loads(run("predict", str(song_id), path, "--experiment", "demo",
                                    "--top", "10", "--json", "--db", db).stdout)
    assert by_file["song_id"] is None
    assert by_file["query"] == path
    assert [x["label"] for x in by_id["labels"]] == [x["label"] for x in by_file["labels"]]
    assert [x["probability"] for x in by_file["labels"]] == pytest.approx(
        [x["probability"] for x in by_id["labels"]], abs=1e-3)
