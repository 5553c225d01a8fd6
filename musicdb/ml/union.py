"""Feature-set unions for experiments: `--feature-set default,musicnn` trains on both sets.

A union is named by its members, comma-separated in the order given ('default,musicnn'); it is
not a stored set of its own. Its rows are the songs (or snippets) that have every member: the
members' `vals` are concatenated in that order, and each column keeps its set's name as a
prefix ('default.mfcc_mean_0', 'musicnn.tag_rock'), so two sets' columns never clash. A
snippet joins a snippet of the same song, index and span, so the members' snippets must have
the same length (one ingest with several sets makes them so). An evaluation of a union
records the exact member versions it used (its `versions` JSON, key `feature_set_ids`), and
its model predicts from those versions.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from musicdb.errors import ExperimentError
from musicdb.store.database import feature_names, resolve_feature_set

SEPARATOR = ","
TOLERANCE_S = 0.01  # snippet bounds written by one code path agree far closer than this


@dataclass(frozen=True)
class FeatureUnion:
    """One set, or the union of several: its name and its members' (name, id) in order."""

    name: str
    members: tuple[tuple[str, int], ...]

    @property
    def ids(self) -> list[int]:
        return [set_id for _, set_id in self.members]

    @property
    def is_union(self) -> bool:
        return len(self.members) > 1


def member_names(text: str | None) -> list[str] | None:
    """'default, musicnn' -> ['default', 'musicnn'] (repeats dropped); None stays None."""
    if text is None:
        return None
    names = list(dict.fromkeys(part.strip() for part in text.split(SEPARATOR) if part.strip()))
    if not names:
        raise ExperimentError(f"--feature-set {text!r}: name a set, or sets joined by commas")
    return names


def canonical(text: str | None) -> str | None:
    """The name an experiment stores: members joined by commas, no spaces, no repeats."""
    names = member_names(text)
    return None if names is None else SEPARATOR.join(names)


def resolve(con: duckdb.DuckDBPyConnection, text: str | None) -> FeatureUnion:
    """The latest version of each member (None: the library's default set)."""
    names = member_names(text)
    if names is None or len(names) == 1:
        name, set_id = resolve_feature_set(con, None if names is None else names[0])
        return FeatureUnion(name, ((name, set_id),))
    members = tuple(resolve_feature_set(con, name) for name in names)
    return FeatureUnion(SEPARATOR.join(n for n, _ in members), members)


def stored(name: str, set_id: int, versions: dict) -> FeatureUnion:
    """The union an evaluation used, from its feature_set, feature_set_id and versions."""
    ids = versions.get("feature_set_ids")
    if not ids:
        return FeatureUnion(name, ((name, set_id),))
    return FeatureUnion(name, tuple((n, int(ids[n])) for n in name.split(SEPARATOR)))


def column_names(con: duckdb.DuckDBPyConnection, union: FeatureUnion) -> list[str]:
    """Columns in vals order: a single set's names as they are, a union's prefixed."""
    if not union.is_union:
        return feature_names(con, union.ids[0])
    return [f"{name}.{column}" for name, set_id in union.members
            for column in feature_names(con, set_id)]


def joins(union: FeatureUnion) -> tuple[str, str]:
    """(vals expression, JOIN clauses) that extend `features f0` (the first member) by the
    others: f1 ... fN-1 on the same song, snippet index and span. The clauses take the other
    members' ids as parameters, in order, before the caller's own."""
    n = len(union.members)
    clauses = "".join(
        f" JOIN features f{i} ON f{i}.song_id = f0.song_id AND f{i}.snippet = f0.snippet"
        f" AND f{i}.feature_set_id = ? AND abs(f{i}.start_s - f0.start_s) < {TOLERANCE_S}"
        f" AND abs(f{i}.end_s - f0.end_s) < {TOLERANCE_S}" for i in range(1, n))
    vals = "f0.vals" if n == 1 else f"list_concat({', '.join(f'f{i}.vals' for i in range(n))})"
    return vals, clauses


def has_all(union: FeatureUnion, song: str) -> tuple[str, list[int]]:
    """(SQL condition, parameters): the song `song` (an SQL expression) has every member."""
    condition = " AND ".join(
        f"EXISTS (SELECT 1 FROM features f WHERE f.song_id = {song} AND f.feature_set_id = ?)"
        for _ in union.members)
    return condition, union.ids
