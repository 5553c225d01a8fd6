"""Nearest artists and songs on standardised features, through the SQL macros in sql/.

The macros similar_artists / similar_songs define the answer, so the CLI and the duckdb shell
agree; this module adds what a shell user would write by hand: name resolution with
suggestions, filters, a song not yet in the library, playlists and explanations.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from musicdb.choices import LABEL_RULES, RULE_ORDER, did_you_mean, require_choice, rule_hint
from musicdb.errors import SimilarityError
from musicdb.store import confine
from musicdb.store.database import resolve_feature_set

METHODS = ("centroid", "cosine", "songs")
ALL = 2**31 - 1  # "every row" for a macro's k, before our own filters and limit


@dataclass
class Similar:
    """One answer, ready for a table or for --json."""

    query: str
    label_from: str
    feature_set: str
    method: str
    kind: str  # 'artists' or 'songs'
    results: list[dict] = field(default_factory=list)
    key: str | int | None = None  # the stored label or song_id; None for an unstored file
    z: list[float] | None = None  # an unstored file's standardised vector (for --explain)

    def as_json(self) -> str:
        body = {"query": self.query, "label_from": self.label_from,
                "feature_set": self.feature_set, "method": self.method,
                "results": self.results}
        return json.dumps(body, ensure_ascii=False, indent=2)


def resolve_label(con: duckdb.DuckDBPyConnection, name: str, set_id: int,
                  rule: str) -> tuple[str, str]:
    """(label, rule): the stored label matching name, ignoring case and accents, and the rule
    it was found under; else an error with suggestions.

    Under 'auto', a name that is a label only under another rule (a folder label in a library
    organised by folders, whose songs' artist tags name composers) is taken from the first
    rule of choices.RULE_ORDER that has it, as the similar_artists macro does. An explicit
    rule is kept, and the error says which rules do have the name.
    """
    rows = con.execute(
        "SELECT label, label_from FROM artist_centroids WHERE feature_set_id = ? "
        "AND label_key(label) = label_key(?) ORDER BY list_position(?, label_from), label",
        [set_id, name, list(RULE_ORDER)]).fetchall()
    for label, found_under in rows:
        if found_under == rule:
            return label, rule
    if rows and rule == "auto":
        return rows[0]
    if rows:
        rules = list(dict.fromkeys(found_under for _, found_under in rows))
        raise SimilarityError(f"no label {name!r} under the {rule!r} rule"
                              f"{rule_hint(rows[0][0], rules)}")
    # Suggest what `similar` can answer for: under 'auto', the labels of every rule.
    hint = did_you_mean(con, name, "SELECT label AS name FROM artist_centroids "
                        "WHERE feature_set_id = ? AND (label_from = ? OR ? = 'auto')",
                        [set_id, rule, rule])
    raise SimilarityError(f"no label {name!r} under the {rule!r} rule{hint}")


def _confined_where(con: duckdb.DuckDBPyConnection, where: str | None) -> str | None:
    """The user's condition as one parsed expression, with the connection confined for good
    (musicdb.store.confine): a --where reads the database and nothing else."""
    if not where:
        return None
    expression = confine.where_clause(where)
    confine.lock(con)
    return expression


def _where_failed(exc: duckdb.Error, where: str | None) -> Exception:
    return (confine.refusal(exc, f"--where {where!r}")
            or SimilarityError(f"--where {where!r}: {confine.first_line(exc)}"))


def similar_artists(con: duckdb.DuckDBPyConnection, name: str, *, k: int = 10,
                    feature_set: str | None = None, label_from: str = "auto",
                    method: str = "centroid", min_songs: int = 1,
                    exclude_labels: tuple[str, ...] = (), where: str | None = None) -> Similar:
    require_choice(label_from, LABEL_RULES, "--label-from", SimilarityError)
    require_choice(method, METHODS, "--method", SimilarityError)
    _confined_where(con, where)  # refuse a bad condition before any other work
    set_name, set_id = resolve_feature_set(con, feature_set)
    label, label_from = resolve_label(con, name, set_id, label_from)
    conditions, args = [], []
    if exclude_labels:
        conditions.append("label_key(name) NOT IN (SELECT label_key(unnest(?::VARCHAR[])))")
        args.append(list(exclude_labels))
    if where:
        conditions.append("name IN (SELECT l.label FROM song_labels l JOIN library "
                          f"USING (song_id) WHERE l.rule = ? AND ({_confined_where(con, where)}))")
        args.append(label_from)
    sql = ("SELECT name, distance, songs FROM similar_artists(?, k := ?, label_rule := ?, "
           "set_name := ?, method := ?, min_songs := ?) "
           f"WHERE {' AND '.join(conditions) or 'true'} ORDER BY distance, name LIMIT ?")
    try:
        rows = con.execute(sql, [label, ALL if conditions else k, label_from, set_name, method,
                                 min_songs, *args, k]).fetchall()
    except duckdb.Error as exc:
        raise _where_failed(exc, where) from exc
    results = [{"name": n, "distance": d, "songs": s} for n, d, s in rows]
    return Similar(label, label_from, set_name, method, "artists", results, key=label)


@dataclass(frozen=True)
class SongQuery:
    """What --songs was asked about: a stored song, or a vector of a file analysed just now."""

    description: str
    song_id: int | None = None
    z: list[float] | None = None
    label: str | None = None
    album: str | None = None


def resolve_song(con: duckdb.DuckDBPyConnection, query: str, set_name: str, set_id: int, *,
                 on_analyse: Callable[[Path], None] | None = None) -> SongQuery:
    """A song by id, path or 'Artist - Title'; a file not in the library is analysed (after
    on_analyse(path) is told, since that takes a while); else an error saying why."""
    path = Path(query).expanduser()
    as_path = str(path.resolve()) if path.exists() else query
    row = con.execute(
        "SELECT song_id, artist || ' - ' || title, label, album FROM song_vectors "
        "WHERE feature_set_id = ? AND (song_id = TRY_CAST(? AS INTEGER) OR path = ? "
        "OR name_key = strip_accents(lower(?))) "
        "ORDER BY song_id = TRY_CAST(? AS INTEGER) DESC, path = ? DESC, song_id LIMIT 1",
        [set_id, query, as_path, query, query, as_path]).fetchone()
    if row:
        return SongQuery(row[1], song_id=row[0], label=row[2], album=row[3])
    if path.is_file():
        if on_analyse is not None:
            on_analyse(path.resolve())
        return SongQuery(str(path.resolve()), z=_analyse_and_standardise(con, path, set_name,
                                                                          set_id))
    if looks_like_a_path(query):
        raise SimilarityError(_not_a_file(con, query, path))
    missing = _song_without_the_set(con, query, as_path, set_id)
    if missing:
        raise SimilarityError(f"song {missing!r} has no values in feature set {set_name!r} "
                              f"(run `musicdb ingest FOLDER --feature-set {set_name}` to add "
                              "them), or name another --feature-set")
    # Only songs this set can answer for: song_vectors holds no failed or missing songs. A
    # song whose title is what was typed comes first (`similar Stairs --songs`).
    hint = did_you_mean(con, query, "SELECT artist || ' - ' || title AS name, title AS also "
                        "FROM song_vectors WHERE feature_set_id = ? AND title IS NOT NULL",
                        [set_id], also=True)
    raise SimilarityError(f"no song {query!r} (give a song id, a path or 'Artist - Title'){hint}")


def _song_without_the_set(con: duckdb.DuckDBPyConnection, query: str, as_path: str,
                          set_id: int) -> str | None:
    """'Artist - Title' of a library song the query names that this set has no row for (a
    set added to part of the library only), so the error says that, not 'no song'."""
    row = con.execute(
        "SELECT coalesce(artist, label) || ' - ' || title FROM library l "
        "WHERE status = 'ok' AND (song_id = TRY_CAST(? AS INTEGER) OR path = ? "
        "OR strip_accents(lower(coalesce(artist, label) || ' - ' || title)) "
        "= strip_accents(lower(?))) AND NOT EXISTS (SELECT 1 FROM features f "
        "WHERE f.song_id = l.song_id AND f.feature_set_id = ? AND f.snippet = -1) LIMIT 1",
        [query, as_path, query, set_id]).fetchone()
    return row[0] if row else None


def looks_like_a_path(query: str) -> bool:
    """A query meant as a file: it starts like a path or ends in an audio extension.
    ('AC/DC - Back in Black' is a name: a slash inside is not enough.)"""
    from musicdb.audio.scan import AUDIO_EXTENSIONS

    return (query.startswith(("/", "~", "./", "../"))
            or Path(query).suffix.lower() in AUDIO_EXTENSIONS)


def _not_a_file(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> str:
    """Why a path-like query is no song and no file to analyse."""
    if path.exists():
        return f"{query} is not a file (a folder?): give one audio file, a song id or a name"
    status = con.execute("SELECT status FROM songs WHERE path = ?",
                         [str(path.resolve())]).fetchone()
    if status and status[0] == "missing":
        return (f"file {query!r} does not exist; the library lists it as missing (moved or "
                "deleted since the last ingest)")
    return f"file {query!r} does not exist"


def _analyse_and_standardise(con: duckdb.DuckDBPyConnection, path: Path, set_name: str,
                             set_id: int) -> list[float]:
    """Extract a file that is not in the library as the set's values were made; z-score it."""
    import numpy as np

    from musicdb.analysis.like import analyse_like

    kind, params_json = con.execute("SELECT kind, params FROM feature_sets "
                                    "WHERE feature_set_id = ?", [set_id]).fetchone()
    analysed = analyse_like(path, set_name, kind, json.loads(params_json),
                            error=SimilarityError)
    means, stds = con.execute("SELECT means, stds FROM feature_stats WHERE feature_set_id = ?",
                              [set_id]).fetchone()
    means, stds = np.asarray(means), np.asarray(stds)
    values = analysed.whole.astype(np.float64)
    z = np.divide(values - means, stds, out=np.zeros_like(means), where=stds > 0)
    return z.tolist()


def similar_songs(con: duckdb.DuckDBPyConnection, query: str, *, k: int = 10,
                  feature_set: str | None = None, label_from: str = "auto",
                  exclude_labels: tuple[str, ...] = (), where: str | None = None,
                  no_same_artist: bool = False, no_same_album: bool = False,
                  on_analyse: Callable[[Path], None] | None = None) -> Similar:
    require_choice(label_from, LABEL_RULES, "--label-from", SimilarityError)
    _confined_where(con, where)  # refuse a bad condition before any other work
    set_name, set_id = resolve_feature_set(con, feature_set)
    q = resolve_song(con, query, set_name, set_id, on_analyse=on_analyse)
    conditions, args = [], []
    if exclude_labels:
        conditions.append("s.song_id NOT IN (SELECT song_id FROM song_labels WHERE rule = ? "
                          "AND label_key(label) IN (SELECT label_key(unnest(?::VARCHAR[]))))")
        args += [label_from, list(exclude_labels)]
    if where:
        conditions.append("s.song_id IN (SELECT song_id FROM library "
                          f"WHERE ({_confined_where(con, where)}))")
    if no_same_artist and q.label is not None:
        conditions.append("s.label IS DISTINCT FROM ?")
        args.append(q.label)
    if no_same_album and q.album is not None:
        conditions.append("s.album IS DISTINCT FROM ?")
        args.append(q.album)
    filters = " AND ".join(conditions) or "true"
    # A stored song: the macro, the shell's numbers, and VectorIndex.nearest's (the server's;
    # tests/test_index.py holds them equal). One query per process does not pay for loading
    # the matrix: 0.4-0.7 s at 100,000 songs against the macro's 0.05-0.1 s, 3-5 s at
    # 1,000,000 against 0.3-0.5 s (benchmarks/index.py).
    if q.song_id is not None:
        source = "similar_songs(?, k := ?, set_name := ?)"
        source_args = [q.song_id, ALL if conditions else k, set_name]
    else:
        source = ("(SELECT song_id, path, title, artist, label, album, "
                  "list_distance(?::FLOAT[], z) AS distance FROM song_vectors "
                  "WHERE feature_set_id = ?)")
        source_args = [q.z, set_id]
    sql = (f"SELECT s.song_id, s.path, s.title, s.artist, s.label, s.distance FROM {source} s "
           f"WHERE {filters} ORDER BY s.distance, s.song_id LIMIT ?")
    try:
        rows = con.execute(sql, source_args + args + [k]).fetchall()
    except duckdb.Error as exc:
        raise _where_failed(exc, where) from exc
    results = [{"song_id": r[0], "path": r[1], "title": r[2], "artist": r[3] or r[4],
                "distance": r[5]} for r in rows]
    return Similar(q.description, label_from, set_name, "euclidean", "songs", results,
                   key=q.song_id, z=q.z)


def write_playlist(path: Path, answer: Similar) -> int:
    """An extended m3u (UTF-8) of the result songs that have a file; returns how many."""
    lines = ["#EXTM3U"]
    count = 0
    for r in answer.results:
        if r.get("path"):
            title = " - ".join(x for x in (r.get("artist"), r.get("title")) if x)
            lines += [f"#EXTINF:-1,{title}", str(Path(r["path"]).resolve())]
            count += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return count
