"""Classifiers by name, and their skops files: written with a SHA-256, loaded only if trusted.

scikit-learn is imported inside the functions so that `musicdb --help` stays fast.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
import zlib
from pathlib import Path

import numpy as np

from musicdb.errors import ExperimentError, ModelFileError

CALIBRATION_FOLDS = 5  # CalibratedClassifierCV's default; fewer for small labels
CALIBRATED = ("svc", "ensemble")  # the models whose SVC calibrates on internal folds


def build(name: str, *, seed: int = 0, n_jobs: int = -1,
          calibration_folds: int = CALIBRATION_FOLDS):
    """A fresh, unfitted classifier; every model standardises its input first.

    ensemble: soft vote of an RBF SVC, HistGradientBoosting, a 300-tree random forest and
    logistic regression, all with scikit-learn's defaults (fixed, never tuned on test folds).
    rf: the study's forest, 1,000 trees with balanced class weights.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        RandomForestClassifier,
        VotingClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    parts = {
        # SVC(probability=True) is deprecated since scikit-learn 1.9; this is its replacement
        # (Platt scaling on internal folds, one SVC refitted on all the data).
        "svc": lambda: CalibratedClassifierCV(SVC(kernel="rbf", random_state=seed),
                                              ensemble=False, cv=max(2, calibration_folds)),
        "hgb": lambda: HistGradientBoostingClassifier(random_state=seed),
        "logreg": lambda: LogisticRegression(max_iter=5000),
    }
    if name == "ensemble":
        model = VotingClassifier(
            [("svc", parts["svc"]()), ("hgb", parts["hgb"]()),
             ("rf", RandomForestClassifier(n_estimators=300, n_jobs=n_jobs, random_state=seed)),
             ("logreg", parts["logreg"]())], voting="soft")
    elif name == "rf":
        model = RandomForestClassifier(n_estimators=1000, class_weight="balanced",
                                       n_jobs=n_jobs, random_state=seed)
    elif name in parts:
        model = parts[name]()
    else:
        raise ExperimentError(f"unknown model {name!r}; use ensemble, rf, hgb, svc or logreg")
    return Pipeline([("scale", StandardScaler()), ("model", model)])


def one_openmp_thread():
    """A context with OpenMP (HistGradientBoosting) on one thread.

    On a shared 2-core machine, two OpenMP threads that spin at every barrier while another
    process holds a core made one boosting fit 15x slower (134 s against 9 s).
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def ranker(*, seed: int = 0, n_jobs: int = -1):
    """The forest whose impurity importances choose the features pruning keeps."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=200, class_weight="balanced", n_jobs=n_jobs,
                                  random_state=seed)


# Everything a model built above is made of; anything else in a file is refused.
TRUSTED = [
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.ensemble._voting.VotingClassifier",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.Interval",
    "sklearn._loss._loss.CyHalfMultinomialLoss",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn.svm._classes.SVC",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.utils._bunch.Bunch",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.preprocessing._label.LabelEncoder",
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.float64",
    "numpy.int64",
    "numpy.uint64",
    # CalibratedClassifierCV keeps a Generator; skops stores only its bit generator's state.
    "numpy.random._generator.Generator",
    "builtins.slice",
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.str",
    "builtins.int",
    "builtins.float",
    "builtins.bool",
    "builtins.NoneType",
    "collections.OrderedDict",
]


# What a damaged or foreign file raises while its zip and schema are read.
UNREADABLE = (ValueError, KeyError, TypeError, OSError, EOFError, zipfile.BadZipFile, zlib.error)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def types_in(path: Path) -> set[str]:
    """Every 'module.Class' a skops file names, read from its schema without loading it.

    skops trusts many scikit-learn types by default; we trust only our own list.
    """
    import json

    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str):
                found.add(f"{node['__module__']}.{node['__class__']}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    with zipfile.ZipFile(path) as z:
        walk(json.loads(z.read("schema.json")))
    return found


def save(model, path: Path) -> str:
    """Write a fitted model with skops; returns the file's SHA-256."""
    import skops.io as sio

    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump(model, path)
    return sha256(path)


# Model files live in a folder named after their database, beside it: music.duckdb's in
# music.duckdb.models/, so two databases in one folder never share (or overwrite) a file. The
# models table records paths relative to the database's folder. Databases from before
# (issue 16) recorded models/NAME-ID.skops, a folder every database of the folder shared.
MODELS_SUFFIX = ".models"
LEGACY_FOLDER = "models"


def models_dir(db: Path) -> Path:
    """Where the model files of database `db` live: the one place that knows."""
    db = Path(db)
    return db.parent / (db.name + MODELS_SUFFIX)


def relative_path(db: Path, experiment: str, evaluation_id: int) -> str:
    """The path the models table records for an evaluation's model (relative to the db's
    folder)."""
    return f"{models_dir(db).name}/{experiment}-{evaluation_id}.skops"


def is_legacy(relative: str) -> bool:
    """A path in the shared models/ folder of databases written before issue 16."""
    return Path(relative).parts[:1] == (LEGACY_FOLDER,)


def stored_path(db: Path, relative: str) -> Path:
    """A path from the models table, which must stay inside the database's models folder (or,
    for a row from before issue 16, the old shared models/ folder)."""
    folder = (Path(db).parent / LEGACY_FOLDER if is_legacy(relative) else models_dir(db))
    folder = folder.resolve()
    path = (Path(db).parent / relative).resolve()
    if not path.is_relative_to(folder):
        raise ModelFileError(f"model path {relative!r} points outside {folder}; refusing it")
    return path


def remove(db: Path, relative: str, expected_sha256: str | None = None) -> None:
    """Delete a model file named by the models table; a path outside the models folder is left
    alone (a tampered row must not make musicdb delete a file it never wrote), and so is a
    file in the old shared models/ folder unless its hash says it is this database's."""
    try:
        path = stored_path(db, relative)
    except ModelFileError:
        return
    if is_legacy(relative) and not (path.is_file() and expected_sha256 == sha256(path)):
        return
    path.unlink(missing_ok=True)


def adopt_legacy(con, db: Path) -> list[str]:
    """Copy this database's files out of the shared models/ folder into its own, on a write.

    A file is this database's when its SHA-256 is the one recorded; one that another database
    overwrote stays where it is (its row too: loading it says what happened). The old file is
    left in place: a copy of this database (same rows, same hash) may still point at it.
    Returns the relative paths that could not be adopted. `con` is a writable connection.
    """
    rows = con.execute("SELECT evaluation_id, path, sha256 FROM models").fetchall()
    left = []
    for eid, relative, digest in rows:
        if not is_legacy(relative):
            continue
        try:
            old = stored_path(db, relative)
        except ModelFileError:
            continue
        if not (old.is_file() and sha256(old) == digest):
            left.append(relative)
            continue
        new = f"{models_dir(db).name}/{old.name}"
        target = stored_path(db, new)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(old, target)
        con.execute("UPDATE models SET path = ? WHERE evaluation_id = ?", [new, eid])
    return left


def mean_per_song(song_ids: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted song ids, their mean probabilities): a song scored by its rows (snippets)."""
    songs, inverse = np.unique(song_ids, return_inverse=True)
    sums = np.zeros((len(songs), proba.shape[1]))
    np.add.at(sums, inverse, proba)
    return songs, sums / np.bincount(inverse)[:, None]


def load(path: Path, expected_sha256: str):
    """Load a model written by save(): its hash must match and every type must be trusted."""
    import skops.io as sio

    if not path.is_file():
        raise ModelFileError(f"model file {path} is missing; run `musicdb evaluate` again")
    if sha256(path) != expected_sha256:
        if path.parent.name == LEGACY_FOLDER:
            raise ModelFileError(
                f"model file {path} was overwritten by another database in the same folder "
                "(before each database had its own models folder; SHA-256 mismatch): run "
                "`musicdb evaluate` again")
        raise ModelFileError(f"model file {path} changed since it was written (SHA-256 "
                             "mismatch); refusing to load it")
    listed = _readable_types(path)
    if listed - set(TRUSTED):
        _refuse_untrusted(path, listed)
    try:
        # skops audits every type against the list before it constructs anything; a file
        # it refuses or cannot read gets the full check below, which says why.
        return sio.load(path, trusted=TRUSTED)
    except Exception as exc:  # a damaged file may break skops anywhere
        _refuse_untrusted(path, listed)
        raise ModelFileError(f"model file {path} cannot be loaded: {_reason(exc)}") from exc


def _readable_types(path: Path) -> set[str]:
    try:
        return types_in(path)
    except UNREADABLE as exc:
        raise ModelFileError(f"model file {path} is not a readable skops file: "
                             f"{_reason(exc)}") from exc


def _refuse_untrusted(path: Path, listed: set[str]) -> None:
    """Refuse a file naming a type outside TRUSTED, in our reading of its schema (`listed`)
    or in skops'.

    Only a file that failed a check runs this: skops' own listing builds the file's whole
    object tree (for a 1,000-tree forest 0.9 s of a 2.3 s load), which sio.load builds again.
    """
    import skops.io as sio

    try:
        untrusted = sorted((listed | set(sio.get_untrusted_types(file=path))) - set(TRUSTED))
    except UNREADABLE as exc:
        raise ModelFileError(f"model file {path} is not a readable skops file: "
                             f"{_reason(exc)}") from exc
    if untrusted:
        raise ModelFileError(f"model file {path} holds untrusted types "
                             f"({', '.join(untrusted)}); refusing to load it")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_fitted(model, kind: str, labels: list[str], n_features: int, *, where: str) -> None:
    """The loaded object must be what `evaluate` stored: our pipeline around a `kind` model,
    fitted on these labels and this many features."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    expected = type(build(kind, n_jobs=1)[-1])
    steps = getattr(model, "steps", None) if isinstance(model, Pipeline) else None
    shape_ok = (steps is not None and [n for n, _ in steps] == ["scale", "model"]
                and isinstance(steps[0][1], StandardScaler) and type(steps[1][1]) is expected)
    if not shape_ok:
        found = type(model[-1] if isinstance(model, Pipeline) else model).__name__
        raise ModelFileError(f"model file {where} holds a {found}, not the {expected.__name__} "
                             f"pipeline of a {kind!r} evaluation; refusing it")
    classes = [str(c) for c in getattr(model, "classes_", [])]
    if classes != labels or getattr(model, "n_features_in_", None) != n_features:
        raise ModelFileError(f"model file {where} was fitted on other labels or features than "
                             "its evaluation records; refusing it")
