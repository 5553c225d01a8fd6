"""Experiments as rows: create, list, show, delete, and the data an evaluation trains on."""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import duckdb
import numpy as np

from musicdb.choices import LABEL_RULES, did_you_mean, other_rules_hint, require_choice
from musicdb.errors import ExperimentError
from musicdb.ml import models, union
from musicdb.store.transaction import transaction
from musicdb.terminal import plural

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
UNITS = ("song", "snippet")
SPLITS = ("hash", "album")
MODELS = ("ensemble", "rf", "hgb", "svc", "logreg")


@dataclass(frozen=True)
class Experiment:
    name: str
    labels: list[str]
    label_from: str = "auto"
    feature_set: str | None = None  # None: the library's default set
    unit: str = "song"
    split: str = "hash"
    test_fraction: float = 0.4
    seed: int = 0
    model: str = "ensemble"
    preset: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


COLUMNS = "name, labels, label_from, feature_set, unit, split, test_fraction, seed, model, preset"


def _check(exp: Experiment) -> None:
    if not NAME.match(exp.name):
        raise ExperimentError(f"experiment name {exp.name!r}: use lower-case letters, digits, "
                              "'-' and '_'")
    for value, allowed, option in ((exp.label_from, LABEL_RULES, "--label-from"),
                                   (exp.unit, UNITS, "--unit"), (exp.split, SPLITS, "--split"),
                                   (exp.model, MODELS, "--model")):
        require_choice(value, allowed, option, ExperimentError)
    if len(set(exp.labels)) < 2:
        raise ExperimentError(f"an experiment needs at least two labels, got {exp.labels}")
    if not 0 < exp.test_fraction < 1:
        raise ExperimentError(f"--test-fraction {exp.test_fraction} must be between 0 and 1")


ALL_LABELS = "all"  # --labels all: every label of the rule with enough songs


def create(con: duckdb.DuckDBPyConnection, exp: Experiment, *, min_songs: int = 1
           ) -> Experiment:
    """Store a new experiment. Its labels must exist under its rule (matched up to case and
    accents, stored as the library spells them); labels == ['all'] takes every label of the
    rule with at least `min_songs` songs."""
    every = [label.lower() for label in exp.labels] == [ALL_LABELS]
    exp = replace(exp, feature_set=union.canonical(exp.feature_set))
    _check(exp if not every else replace(exp, labels=["a", "b"]))
    if con.execute("SELECT 1 FROM experiments WHERE name = ?", [exp.name]).fetchone():
        raise ExperimentError(f"experiment {exp.name!r} exists already; delete it first")
    counts = label_counts(con, exp)
    if every:
        exp = replace(exp, labels=_every_label(counts, exp, min_songs))
    else:
        exp = replace(exp, labels=_stored_names(con, counts, exp))
    con.execute(f"INSERT INTO experiments ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, false)",
                [exp.name, list(dict.fromkeys(exp.labels)), exp.label_from, exp.feature_set,
                 exp.unit, exp.split, exp.test_fraction, exp.seed, exp.model])
    return get(con, exp.name)


def label_counts(con: duckdb.DuckDBPyConnection, exp: Experiment) -> dict[str, int]:
    """Songs (status ok) per label under the experiment's rule; with a feature set named, only
    songs that have its features (with a union, those of every member). Largest first."""
    sql = ("SELECT l.label, count(DISTINCT l.song_id) AS n FROM song_labels l "
           "JOIN songs s ON s.song_id = l.song_id AND s.status = 'ok' "
           "WHERE l.rule = ? AND l.label IS NOT NULL")
    args: list = [exp.label_from]
    if exp.feature_set is not None:
        condition, ids = union.has_all(union.resolve(con, exp.feature_set), "l.song_id")
        sql += " AND " + condition
        args += ids
    rows = con.execute(sql + " GROUP BY l.label ORDER BY n DESC, l.label", args).fetchall()
    return dict(rows)


def _where(exp: Experiment) -> str:
    return f"under the {exp.label_from!r} rule" + (
        f" with {exp.feature_set} features" if exp.feature_set else "")


def _every_label(counts: dict[str, int], exp: Experiment, min_songs: int) -> list[str]:
    chosen = [label for label, n in counts.items() if n >= min_songs]
    if len(chosen) < 2:
        raise ExperimentError(
            f"--labels all: {plural(len(chosen), 'label')} {_where(exp)} "
            f"{'has' if len(chosen) == 1 else 'have'} at least {plural(min_songs, 'song')} "
            "(an experiment needs two): lower --min-songs, or try another --label-from")
    return sorted(chosen)


def _stored_names(con: duckdb.DuckDBPyConnection, counts: dict[str, int],
                  exp: Experiment) -> list[str]:
    """Each wanted label as stored (exact, else up to case and accents: sql label_key)."""
    stored = list(counts)
    found, missing = [], []
    for wanted in dict.fromkeys(exp.labels):
        if wanted in counts:
            found.append(wanted)
            continue
        match = con.execute("SELECT name FROM unnest(?::VARCHAR[]) t(name) "
                            "WHERE label_key(name) = label_key(?) ORDER BY name LIMIT 1",
                            [stored, wanted]).fetchone()
        if match is None:
            missing.append(wanted)
        else:
            found.append(match[0])
    if missing:
        names = "SELECT unnest(?::VARCHAR[]) AS name"
        # A name under another rule (a folder label) says so; else the closest names.
        hints = [other_rules_hint(con, wanted, exp.label_from)
                 or did_you_mean(con, wanted, names, [stored]) for wanted in missing]
        if len(missing) == 1:
            text = f"no label {missing[0]!r} {_where(exp)}{hints[0]}"
        else:
            text = (f"no labels {', '.join(repr(m) for m in missing)} {_where(exp)}"
                    + "".join(f"; {h.removeprefix(', but ')}" if h.startswith(", but ")
                              else f"; for {m!r}, {h[2:]}"
                              for m, h in zip(missing, hints, strict=True) if h))
        raise ExperimentError(text + " (--labels all takes every label)")
    return list(dict.fromkeys(found))


def list_all(con: duckdb.DuckDBPyConnection) -> list[Experiment]:
    rows = con.execute(f"SELECT {COLUMNS} FROM experiments ORDER BY preset DESC, created_at, name"
                       ).fetchall()
    return [Experiment(*row) for row in rows]


def get(con: duckdb.DuckDBPyConnection, name: str) -> Experiment:
    row = con.execute(f"SELECT {COLUMNS} FROM experiments WHERE name = ?", [name]).fetchone()
    if row is None:
        known = ", ".join(e.name for e in list_all(con))
        raise ExperimentError(f"no experiment {name!r}; known: {known or 'none'} "
                              "(create one with `musicdb experiment create`)")
    return Experiment(*row)


def delete(con: duckdb.DuckDBPyConnection, name: str, db: Path) -> int:
    """Delete an experiment, its evaluations and its model files; returns evaluations removed."""
    get(con, name)
    files = con.execute("SELECT path, sha256 FROM models WHERE experiment = ?",
                        [name]).fetchall()
    ids = "SELECT evaluation_id FROM evaluations WHERE experiment = ?"
    with transaction(con, f"the deletion of experiment {name!r}"):
        n = con.execute(f"SELECT count(*) FROM ({ids})", [name]).fetchone()[0]
        for table in ("evaluation_classes", "evaluation_confusion", "evaluation_importances",
                      "models"):
            con.execute(f"DELETE FROM {table} WHERE evaluation_id IN ({ids})", [name])
        con.execute("DELETE FROM evaluations WHERE experiment = ?", [name])
        con.execute("DELETE FROM experiments WHERE name = ?", [name])
    for path, digest in files:
        models.remove(db, path, digest)
    return n


@dataclass
class Dataset:
    """Rows to train on: songs, or snippets with their song ids, and the split."""

    song_ids: np.ndarray  # (n_rows,) the song of each row
    X: np.ndarray  # (n_rows, n_features)
    y: np.ndarray  # (n_rows,) labels as strings
    groups: np.ndarray  # (n_rows,) split group: song identity or album
    test: np.ndarray  # (n_rows,) bool: the row's song is on the test side
    feature_names: list[str]
    feature_set: str  # a set's name, or a union's ('default,musicnn')
    feature_set_id: int  # the (first) set's id
    albums: np.ndarray  # (n_rows,) the row's album group (its song's identity without one)
    groups_are_albums: bool = False  # the split groups are albums (--split album)
    feature_set_ids: tuple[int, ...] = ()  # a union's member ids, in column order

    @property
    def n_songs(self) -> int:
        return len(np.unique(self.song_ids))

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for part in (self.song_ids.astype(np.int64), self.X.astype(np.float32)):
            digest.update(np.ascontiguousarray(part).tobytes())
        digest.update("\n".join(self.y.tolist()).encode())
        return digest.hexdigest()


def dataset(con: duckdb.DuckDBPyConnection, exp: Experiment,
            feature_set: str | None = None) -> Dataset:
    """The experiment's songs (or snippets) with their features, labels and split side.

    With a union of sets (musicdb.ml.union), the rows that have every member."""
    chosen = union.resolve(con, feature_set or exp.feature_set)
    set_name, set_id = chosen.name, chosen.ids[0]
    condition, ids = union.has_all(chosen, "sp.song_id")
    present = {r[0] for r in con.execute(
        f"SELECT DISTINCT label FROM splits sp WHERE experiment = ? AND {condition}",
        [exp.name, *ids]).fetchall()}
    missing = [label for label in exp.labels if label not in present]
    if missing:
        raise ExperimentError(
            f"experiment {exp.name!r}: no songs with {set_name} features for label(s) "
            f"{', '.join(missing)} under the {exp.label_from!r} rule; define your own with "
            "`musicdb experiment create NAME --labels A,B --label-from RULE --feature-set SET`")
    vals, joins = union.joins(chosen)
    rows = con.execute(
        f"SELECT sp.song_id, sp.label, sp.split_group, sp.side = 'test', {vals}, sp.album_group "
        f"FROM splits sp JOIN features f0 ON f0.song_id = sp.song_id{joins} "
        "WHERE sp.experiment = ? AND f0.feature_set_id = ? AND (f0.snippet >= 0) = ? "
        "ORDER BY sp.song_id, f0.snippet",
        [*ids[1:], exp.name, set_id, exp.unit == "snippet"]).fetchall()
    if not rows:
        same = (" of one length in every set (ingest the sets together, or with the same "
                "--snippet-seconds)" if chosen.is_union and exp.unit == "snippet" else "")
        raise ExperimentError(f"experiment {exp.name!r}: no {exp.unit} rows in {set_name} "
                              f"(snippets need an ingest with --snippet-seconds > 0{same})")
    names = union.column_names(con, chosen)
    song_ids, labels, groups, test, vals, albums = zip(*rows, strict=True)
    return Dataset(np.array(song_ids), np.array(vals, dtype=np.float64), np.array(labels),
                   np.array(groups), np.array(test, dtype=bool), names, set_name, set_id,
                   np.array(albums), groups_are_albums=exp.split == "album",
                   feature_set_ids=tuple(chosen.ids))
