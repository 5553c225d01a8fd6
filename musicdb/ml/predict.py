"""Predictions from an experiment's stored skops model: songs in the library, new audio files,
and the predict_label / predict_proba SQL functions of `musicdb sql`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from musicdb.errors import ExperimentError
from musicdb.ml import models, union
from musicdb.ml.experiments import get as get_experiment
from musicdb.store import confine


@dataclass
class StoredModel:
    experiment: str
    evaluation_id: int
    model: object
    labels: list[str]
    columns: np.ndarray  # 0-based columns of the feature set's vals
    feature_set: str
    feature_set_id: int
    unit: str
    sets: union.FeatureUnion | None = None  # the set, or the union's members, it reads

    @property
    def members(self) -> union.FeatureUnion:
        return self.sets or union.FeatureUnion(self.feature_set,
                                               ((self.feature_set, self.feature_set_id),))


def load(con: duckdb.DuckDBPyConnection, db: Path, experiment: str) -> StoredModel:
    """The experiment's latest stored model, checked against its recorded SHA-256."""
    row = con.execute(
        "SELECT m.evaluation_id, m.path, m.sha256, m.labels, m.positions, e.feature_set, "
        "e.feature_set_id, e.unit, e.model, e.versions FROM models m JOIN evaluations e "
        "USING (evaluation_id) WHERE m.experiment = ? ORDER BY m.evaluation_id DESC LIMIT 1",
        [experiment]).fetchone()
    if row is None:
        raise ExperimentError(f"no stored model for experiment {experiment!r}: run "
                              f"`musicdb evaluate --experiment {experiment}` first")
    eid, path, digest, labels, positions, set_name, set_id, unit, kind, versions = row
    model = models.load(models.stored_path(Path(db), path), digest)
    models.check_fitted(model, kind, list(labels), len(positions), where=path)
    return StoredModel(experiment, eid, model, list(labels), np.array(positions) - 1, set_name,
                       set_id, unit, union.stored(set_name, set_id, json.loads(versions)))


def _rank(sm: StoredModel, proba: np.ndarray) -> list[dict]:
    order = np.argsort(-proba, kind="stable")
    return [{"label": sm.labels[i], "probability": float(proba[i])} for i in order.tolist()]


def stored_probabilities(con: duckdb.DuckDBPyConnection, sm: StoredModel,
                         song_ids: list[int] | None = None) -> dict[int, np.ndarray]:
    """song_id -> class probabilities, from stored features (snippets averaged for that unit)."""
    snippet = "f0.snippet >= 0" if sm.unit == "snippet" else "f0.snippet = -1"
    vals, joins = union.joins(sm.members)
    sql = (f"SELECT f0.song_id, {vals} FROM features f0{joins} "
           f"WHERE f0.feature_set_id = ? AND {snippet}"
           + (" AND list_contains(?, f0.song_id)" if song_ids is not None else "")
           + " ORDER BY f0.song_id, f0.snippet")
    rows = con.execute(sql, [*sm.members.ids[1:], sm.members.ids[0]]
                       + ([song_ids] if song_ids is not None else [])).fetchall()
    if not rows:
        return {}
    ids = np.array([r[0] for r in rows])
    X = np.array([r[1] for r in rows], dtype=np.float64)[:, sm.columns]
    with models.one_openmp_thread():
        proba = sm.model.predict_proba(X)
    songs, means = models.mean_per_song(ids, proba)
    return dict(zip(songs.tolist(), means, strict=True))


def _analyse(con: duckdb.DuckDBPyConnection, sm: StoredModel, path: Path) -> np.ndarray:
    from musicdb.analysis.like import analyse_like

    parts = []  # a union's members, each analysed as its version was made
    for name, set_id in sm.members.members:
        kind, params_json = con.execute("SELECT kind, params FROM feature_sets "
                                        "WHERE feature_set_id = ?", [set_id]).fetchone()
        values = analyse_like(path, name, kind, json.loads(params_json),
                              snippets=sm.unit == "snippet", error=ExperimentError)
        parts.append(values.snippets if sm.unit == "snippet" and len(values.snippets) else
                     values.whole[None, :])
    if len({len(p) for p in parts}) > 1:
        raise ExperimentError(f"{path}: the sets of {sm.feature_set} cut it into different "
                              "numbers of snippets (their snippet lengths differ)")
    rows = np.hstack(parts)
    with models.one_openmp_thread():
        return sm.model.predict_proba(rows.astype(np.float64)[:, sm.columns]).mean(axis=0)


def predict(con: duckdb.DuckDBPyConnection, sm: StoredModel, items: list[str],
            on_analyse: Callable[[str], AbstractContextManager] | None = None) -> list[dict]:
    """Per item (a song id in the library, or an audio file): labels by probability.

    A file is analysed now (seconds to a minute); `on_analyse(item)` gives a context the
    analysis runs in, e.g. a status line saying so."""
    out = []
    for item in items:
        if item.isdigit():
            found = stored_probabilities(con, sm, [int(item)]).get(int(item))
            if found is None:
                raise ExperimentError(f"song {item} has no {sm.feature_set} features")
            out.append({"query": item, "song_id": int(item), "labels": _rank(sm, found)})
        else:
            path = Path(item)
            if not path.is_file():
                raise ExperimentError(f"{item} is neither a song id nor an audio file")
            with (on_analyse or _nothing)(item):
                proba = _analyse(con, sm, path)
            out.append({"query": item, "song_id": None, "labels": _rank(sm, proba)})
    return out


def _nothing(item: str) -> AbstractContextManager:
    return nullcontext()


UDF_CALL = re.compile(r"predict_(?:label|proba)\s*\(\s*'((?:[^']|'')+)'", re.I)


def register_udfs(con: duckdb.DuckDBPyConnection, db: Path, query: str) -> None:
    """predict_label(experiment, song_id) and predict_proba(experiment, song_id, label).

    The experiments named in the query are loaded (hash-checked) and every song with their
    features is scored once, before the query runs; the functions then look the answers up.
    """
    cache: dict[str, tuple[list[str], dict[int, np.ndarray]]] = {}
    classes: dict[str, list[str]] = {}  # the experiment's labels, the model's or not
    for name in {m.replace("''", "'") for m in UDF_CALL.findall(query)}:
        sm = load(con, db, name)
        cache[name] = (sm.labels, stored_probabilities(con, sm))
        classes[name] = get_experiment(con, name).labels

    def lookup(experiment: str, song_id: int) -> tuple[list[str], np.ndarray] | None:
        if experiment not in cache:
            raise ExperimentError(f"predict_*: write the experiment as a literal "
                                  f"('{experiment}') so its model is loaded before the query")
        labels, probs = cache[experiment]
        return (labels, probs[song_id]) if song_id in probs else None

    def predict_label(experiment: str, song_id: int) -> str | None:
        found = lookup(experiment, song_id)
        return None if found is None else found[0][int(found[1].argmax())]

    def predict_proba(experiment: str, song_id: int, label: str) -> float | None:
        """NULL for a song the model cannot score (no features); a label that is not one of
        the experiment's is an error (a typo would otherwise read as "no answer")."""
        if experiment in classes and label is not None and label not in classes[experiment]:
            raise ExperimentError(f"predict_proba: {label!r} is not a label of experiment "
                                  f"{experiment!r} (its labels: "
                                  f"{', '.join(classes[experiment])})")
        found = lookup(experiment, song_id)
        if found is None or label is None:
            return None
        # A label of the experiment that the training side lacked: the model gives it 0.
        return float(found[1][found[0].index(label)]) if label in found[0] else 0.0

    con.create_function("predict_label", predict_label, ["VARCHAR", "INTEGER"], "VARCHAR",
                        null_handling="special", side_effects=False)
    con.create_function("predict_proba", predict_proba, ["VARCHAR", "INTEGER", "VARCHAR"],
                        "DOUBLE", null_handling="special", side_effects=False)


def run_sql(con: duckdb.DuckDBPyConnection, db: Path, query: str,
            allow_files: Sequence[Path] = ()) -> tuple[list[str], list]:
    """Run one read-only SELECT, confined (musicdb.store.confine), with the UDFs registered.

    The connection stays confined afterwards. The models the query names are read by Python
    before it runs, so the UDFs need no file access from DuckDB.
    """
    confine.single_select(con, query)
    confine.lock(con, allow_files)
    register_udfs(con, db, query)
    try:
        result = con.execute(query)
    except duckdb.Error as exc:
        raise (confine.refusal(exc, "musicdb sql")
               or ExperimentError(confine.first_line(exc))) from exc
    if result.description is None:
        return [], []
    return [d[0] for d in result.description], result.fetchall()
