"""`musicdb evaluate`: cross-validate or split, prune by forest importance, score, store.

Scores are always per song: with unit 'snippet' the model is trained on snippets and a song's
probabilities are the mean of its snippets' ("mini songs"). scikit-learn is imported lazily.
"""

from __future__ import annotations

import json
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import duckdb
import numpy as np

from musicdb.errors import ExperimentError
from musicdb.ml import models
from musicdb.ml.experiments import Dataset, Experiment, dataset
from musicdb.store.database import insert_columns
from musicdb.store.transaction import transaction

METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "log_loss")


class Progress(Protocol):
    """What a long evaluation reports: how many fits, each fit as it starts, warnings."""

    def start(self, total: int) -> None: ...
    def fitting(self, what: str) -> None: ...
    def warn(self, text: str) -> None: ...


class _Quiet:
    def start(self, total: int) -> None:
        pass

    def fitting(self, what: str) -> None:
        pass

    def warn(self, text: str) -> None:
        pass


def n_songs(n: int) -> str:
    return f"{n:,} song{'' if n == 1 else 's'}"


@dataclass
class Evaluation:
    """One run's results, as printed, stored and written to --json."""

    experiment: str
    feature_set: str
    model: str
    cv: int
    seed: int
    prune: bool
    unit: str
    split: str
    n_songs: int
    n_rows: int
    n_test: int
    n_features: int
    metrics: dict[str, float]
    stds: dict[str, float | None]
    per_class: list[dict]
    confusion: dict[str, dict[str, int]]
    importances: list[dict]
    kept_features: list[str]
    wall_s: float = 0.0
    evaluation_id: int | None = None
    model_path: str | None = None
    extra: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"experiment": self.experiment, "feature_set": self.feature_set,
                "model": self.model, "cv": self.cv, "seed": self.seed, "prune": self.prune,
                "unit": self.unit, "split": self.split, **self.metrics,
                **{f"{k}_std": v for k, v in self.stds.items()},
                "n_songs": self.n_songs, "n_test": self.n_test, "n_features": self.n_features,
                "per_class": self.per_class, "confusion": self.confusion,
                "importances": self.importances, "kept_features": self.kept_features,
                "evaluation_id": self.evaluation_id, "model_path": self.model_path,
                "wall_s": self.wall_s, **self.extra}


def folds(data: Dataset, cv: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, test rows) pairs: grouped stratified K folds, or the stored split.

    Groups are the split groups (a song, or an album), so no song and no album straddles a
    fold, and a song's snippets always sit with their song.
    """
    if cv == 0:
        train, test = np.flatnonzero(~data.test), np.flatnonzero(data.test)
        if len(train) == 0 or len(test) == 0:
            raise ExperimentError("the split left one side empty: change --test-fraction")
        return [(train, test)]
    _check_cv(data, cv)
    from sklearn.model_selection import StratifiedGroupKFold

    if cv < 2:
        raise ExperimentError(f"--cv {cv}: use at least 2 folds (or 0 for the train/test split)")
    splitter = StratifiedGroupKFold(n_splits=cv, shuffle=True, random_state=seed)
    return list(splitter.split(data.X, data.y, data.groups))


def _check_cv(data: Dataset, cv: int) -> None:
    """K folds need K split groups, and K of every label (each fold tests each label)."""
    n_groups = len(np.unique(data.groups))
    if n_groups < cv:
        raise ExperimentError(f"--cv {cv}: only {n_groups} split groups")
    per_label = Counter(label for label, _ in set(zip(data.y.tolist(), data.groups.tolist(),
                                                      strict=True)))
    label, fewest = min(per_label.items(), key=lambda item: (item[1], item[0]))
    if fewest < cv:
        unit = "albums (split groups)" if data.groups_are_albums else "songs"
        what = (f"use --cv {fewest} or fewer" if fewest >= 2
                else "use --cv 0 (the train/test split), or add songs")
        raise ExperimentError(f"--cv {cv}: label {label!r} has only {fewest} {unit}, and every "
                              f"fold needs one of each label: {what}")


def split_warnings(data: Dataset, classes: list[str]) -> list[str]:
    """Labels that the train/test split leaves without a training or a test song."""
    train = set(data.y[~data.test].tolist())
    test = set(data.y[data.test].tolist())
    how = ("whole albums go to one side" if data.groups_are_albums else "songs are hashed")
    found = []
    for label in classes:
        if label not in train:
            found.append(f"label {label!r} has 0 training songs ({how}): the model cannot "
                         "predict it; lower --test-fraction, or change --split or --seed")
        elif label not in test:
            found.append(f"label {label!r} has no test songs: its scores are missing")
    return found


def fit(X: np.ndarray, y: np.ndarray, *, model: str, prune: bool, seed: int):
    """(fitted model, kept column indices, forest importances of all columns)."""
    importances = models.ranker(seed=seed).fit(X, y).feature_importances_
    # SelectFromModel's default: keep the features at least as important as the mean.
    kept = np.flatnonzero(importances >= importances.mean()) if prune else np.arange(X.shape[1])
    calibration = _calibration_folds(y, model)
    with models.one_openmp_thread():
        fitted = models.build(model, seed=seed, calibration_folds=calibration)
        return fitted.fit(X[:, kept], y), kept, importances


def _calibration_folds(y: np.ndarray, model: str) -> int:
    """The SVC's Platt scaling cross-validates inside the training rows: 5 folds, fewer when
    a label has fewer rows (scikit-learn refuses more folds than a class has members)."""
    per_label = Counter(y.tolist())
    if len(per_label) < 2:
        raise ExperimentError(
            f"every training song is {next(iter(per_label))!r}: a model needs two labels to "
            "tell apart; lower --test-fraction, or change --split or --seed")
    fewest_label, fewest = min(per_label.items(), key=lambda item: (item[1], item[0]))
    if model in models.CALIBRATED and fewest < 2:
        raise ExperimentError(
            f"label {fewest_label!r} has only 1 training song here, and the {model} model "
            "needs 2 per label (its SVC calibrates on internal folds): add songs, or use "
            "--model rf, hgb or logreg")
    return min(models.CALIBRATION_FOLDS, fewest)


def song_probabilities(fitted, X: np.ndarray, song_ids: np.ndarray,
                       classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(song ids, probabilities (songs, classes)): snippets' probabilities averaged per song."""
    proba = np.zeros((len(X), len(classes)))
    columns = [classes.index(c) for c in fitted.classes_]
    with models.one_openmp_thread():
        proba[:, columns] = fitted.predict_proba(X)
    return models.mean_per_song(song_ids, proba)


def _scores(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict[str, float]:
    from sklearn import metrics as m

    y_pred = np.asarray(classes)[proba.argmax(axis=1)]
    with warnings.catch_warnings():
        # A small test side may lack a class: balanced accuracy is then over those present.
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
        balanced = m.balanced_accuracy_score(y_true, y_pred)
    return {"accuracy": m.accuracy_score(y_true, y_pred),
            "balanced_accuracy": balanced,
            "macro_f1": m.f1_score(y_true, y_pred, labels=classes, average="macro",
                                   zero_division=0),
            "log_loss": m.log_loss(y_true, np.clip(proba, 1e-15, 1), labels=classes)}


def run(data: Dataset, exp: Experiment, *, cv: int, prune: bool, seed: int,
        model: str, progress: Progress | None = None, final: bool = True,
        stage: str = "fold") -> tuple[Evaluation, object, np.ndarray]:
    """Evaluate; returns the evaluation, the model to keep and its column indices.

    With CV and `final`, the model kept is fitted again on every song; `stage` names the
    folds in the progress display."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    progress = progress or _Quiet()
    started = time.perf_counter()
    classes = sorted(set(data.y.tolist()))
    label_of = dict(zip(data.song_ids.tolist(), data.y.tolist(), strict=False))
    fold_scores, pooled_true, pooled_proba, importances = [], [], [], []
    fitted = kept = None
    pairs = folds(data, cv, seed)
    if cv == 0:
        for text in split_warnings(data, classes):
            progress.warn(text)
    for k, (train, test) in enumerate(pairs, start=1):
        absent = sorted(set(classes) - set(data.y[train].tolist())) if cv else []
        for label in absent:
            progress.warn(f"{stage} {k}/{len(pairs)}: label {label!r} has 0 training songs "
                          "(its songs are all in this fold's test side)")
        progress.fitting(f"{stage} {k}/{len(pairs)} · {model}" if cv else
                         f"train side ({n_songs(len(np.unique(data.song_ids[train])))}) · {model}")
        fitted, kept, imp = fit(data.X[train], data.y[train], model=model, prune=prune,
                                seed=seed)
        songs, proba = song_probabilities(fitted, data.X[test][:, kept], data.song_ids[test],
                                          classes)
        y_true = np.array([label_of[s] for s in songs.tolist()])
        fold_scores.append(_scores(y_true, proba, classes))
        pooled_true.append(y_true)
        pooled_proba.append(proba)
        importances.append(imp)
    if cv and final:  # the model to keep is trained on every song of the experiment
        progress.fitting(f"the model kept, on all {n_songs(data.n_songs)} · {model}")
        fitted, kept, _ = fit(data.X, data.y, model=model, prune=prune, seed=seed)
    y_true = np.concatenate(pooled_true)
    y_pred = np.asarray(classes)[np.concatenate(pooled_proba).argmax(axis=1)]
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=classes,
                                                 zero_division=0)
    cells = confusion_matrix(y_true, y_pred, labels=classes)
    mean_imp = np.mean(importances, axis=0)
    order = np.argsort(-mean_imp, kind="stable")
    kept_set = set(kept.tolist())
    evaluation = Evaluation(
        experiment=exp.name, feature_set=data.feature_set, model=model, cv=cv, seed=seed,
        prune=prune, unit=exp.unit, split=exp.split, n_songs=data.n_songs, n_rows=len(data.y),
        n_test=len(y_true), n_features=data.X.shape[1],
        metrics={k: float(np.mean([fs[k] for fs in fold_scores])) for k in METRICS},
        stds={k: (float(np.std([fs[k] for fs in fold_scores])) if cv else None)
              for k in METRICS},
        per_class=[{"label": c, "precision": float(p[i]), "recall": float(r[i]),
                    "f1": float(f[i]), "support": int(s[i])} for i, c in enumerate(classes)],
        confusion={t: {c: int(cells[i, j]) for j, c in enumerate(classes)}
                   for i, t in enumerate(classes)},
        importances=[{"feature": data.feature_names[i], "importance": float(mean_imp[i]),
                      "rank": rank, "kept": int(i) in kept_set}
                     for rank, i in enumerate(order.tolist(), start=1)],
        kept_features=[data.feature_names[i] for i in kept.tolist()],
    )
    evaluation.wall_s = time.perf_counter() - started
    return evaluation, fitted, kept


def _versions(data: Dataset) -> dict:
    """The software that made the model; for a union of sets, the member versions too
    (predict reads its rows from exactly those)."""
    import numpy
    import sklearn
    import skops

    from musicdb import __version__

    found = {"musicdb": __version__, "scikit-learn": sklearn.__version__,
             "numpy": numpy.__version__, "skops": skops.__version__, "duckdb": duckdb.__version__}
    if len(data.feature_set_ids) > 1:
        names = data.feature_set.split(",")
        found["feature_set_ids"] = dict(zip(names, data.feature_set_ids, strict=True))
    return found


def _params(fitted) -> str:
    plain = {k: v for k, v in fitted.get_params(deep=True).items()
             if isinstance(v, str | int | float | bool | type(None))}
    return json.dumps(plain, sort_keys=True)


def store(con: duckdb.DuckDBPyConnection, ev: Evaluation, data: Dataset, exp: Experiment,
          fitted, kept: np.ndarray, db: Path, *, keep: bool = False) -> Evaluation:
    """Insert the evaluation and its details; write the model file beside the database."""
    models.adopt_legacy(con, db)  # files of this database still in the shared models/ folder
    ev.evaluation_id = con.execute("SELECT nextval('evaluation_id_seq')").fetchone()[0]
    rel = models.relative_path(db, exp.name, ev.evaluation_id)
    file = models.stored_path(db, rel)
    digest = models.save(fitted, file)
    size = file.stat().st_size
    ev.model_path = rel
    old = con.execute("SELECT evaluation_id, path, sha256 FROM models WHERE experiment = ?",
                      [exp.name]).fetchall()
    m = ev.metrics
    try:
        with transaction(con, f"evaluation {ev.evaluation_id}"):
            con.execute(
                "INSERT INTO evaluations VALUES (" + ", ".join(["?"] * 31) + ", current_timestamp)",
                [ev.evaluation_id, exp.name, data.feature_set, data.feature_set_id, exp.label_from,
                 exp.unit, exp.split, ev.model, ev.cv, ev.seed, ev.prune,
                 None if ev.cv else exp.test_fraction, ev.n_songs, ev.n_rows, ev.n_test,
                 ev.n_features, len(ev.kept_features), m["accuracy"], ev.stds["accuracy"],
                 m["balanced_accuracy"], ev.stds["balanced_accuracy"], m["macro_f1"],
                 ev.stds["macro_f1"], m["log_loss"], ev.stds["log_loss"], ev.kept_features,
                 _params(fitted), json.dumps(_versions(data)), data.fingerprint(), ev.wall_s,
                 json.dumps(ev.extra["album_effect"]) if "album_effect" in ev.extra else None])
            classes = ev.per_class
            insert_columns(con, "evaluation_classes", {
                "evaluation_id": [ev.evaluation_id] * len(classes),
                "label": [c["label"] for c in classes],
                "precision": [c["precision"] for c in classes],
                "recall": [c["recall"] for c in classes], "f1": [c["f1"] for c in classes],
                "support": [c["support"] for c in classes]})
            cells = [(t, p, n) for t, row in ev.confusion.items() for p, n in row.items()]
            insert_columns(con, "evaluation_confusion", {
                "evaluation_id": [ev.evaluation_id] * len(cells),
                "true_label": [c[0] for c in cells], "predicted_label": [c[1] for c in cells],
                "songs": [c[2] for c in cells]})
            ranks = ev.importances
            insert_columns(con, "evaluation_importances", {
                "evaluation_id": [ev.evaluation_id] * len(ranks),
                "feature": [i["feature"] for i in ranks],
                "importance": [i["importance"] for i in ranks], "rank": [i["rank"] for i in ranks],
                "kept": [i["kept"] for i in ranks]})
            con.execute("INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?, current_timestamp)",
                        [ev.evaluation_id, exp.name, rel, digest, size,
                         [str(c) for c in fitted.classes_], [int(k) + 1 for k in kept]])
            if not keep:
                for eid, *_ in old:
                    con.execute("DELETE FROM models WHERE evaluation_id = ?", [eid])
    except BaseException:
        file.unlink(missing_ok=True)  # its rows are gone: so is its file
        raise
    if not keep:
        for _, path, digest in old:
            models.remove(db, path, digest)
    return ev


def album_effect(data: Dataset, exp: Experiment, ev: Evaluation, *, model: str,
                 prune: bool, seed: int, progress: Progress | None = None) -> dict:
    """The same CV with whole albums kept in one fold, against the run's own folds.

    Songs of one album share production and mastering; splitting an album across folds lets
    a model recognise the album rather than the artist, which inflates artist accuracy.
    """
    n_albums = len({a for a in data.albums.tolist() if a.startswith("album:")})
    if ev.cv == 0 or n_albums == 0:
        raise ExperimentError("--album-effect needs --cv K and songs with album tags")
    by_album, _, _ = run(replace(data, groups=data.albums, groups_are_albums=True), exp,
                         cv=ev.cv, prune=prune, seed=seed, model=model, progress=progress,
                         final=False, stage="album fold")
    return {"albums": n_albums, **{f"{k}_album_folds": by_album.metrics[k] for k in METRICS},
            **{f"{k}_inflation": ev.metrics[k] - by_album.metrics[k]
               for k in ("accuracy", "macro_f1")}}


def evaluate(con: duckdb.DuckDBPyConnection, exp: Experiment, db: Path, *, cv: int = 0,
             prune: bool = True, seed: int | None = None, model: str | None = None,
             feature_set: str | None = None, keep: bool = False,
             measure_album_effect: bool | None = None,
             progress: Progress | None = None) -> Evaluation:
    """Train, score, store. The album effect is measured when asked, or (None) whenever CV
    runs over songs split by song and at least half of them carry album tags."""
    progress = progress or _Quiet()
    data = dataset(con, exp, feature_set)
    seed = exp.seed if seed is None else seed
    model = model or exp.model
    models.build(model)  # an unknown name fails before any work
    if measure_album_effect is None:
        tagged = sum(a.startswith("album:") for a in data.albums.tolist())
        measure_album_effect = bool(cv) and exp.split != "album" and tagged >= len(data.albums) / 2
    progress.start((cv + 1 if cv else 1) + (cv if measure_album_effect else 0))
    ev, fitted, kept = run(data, exp, cv=cv, prune=prune, seed=seed, model=model,
                           progress=progress)
    if measure_album_effect:
        ev.extra["album_effect"] = album_effect(data, exp, ev, model=model, prune=prune,
                                                seed=seed, progress=progress)
    return store(con, ev, data, exp, fitted, kept, Path(db), keep=keep)


def list_evaluations(con: duckdb.DuckDBPyConnection, experiment: str | None = None) -> list[dict]:
    sql = "SELECT * FROM evaluation_comparison"
    rows = con.execute(sql + (" WHERE experiment = ?" if experiment else "")
                       + " ORDER BY evaluation_id", [experiment] if experiment else [])
    names = [d[0] for d in rows.description]
    return [dict(zip(names, r, strict=True)) for r in rows.fetchall()]
