"""Song maps: 2-D projections (SVD, t-SNE, UMAP) of standardised features, stored per run.

The points are the z-vectors of the similarity tables (song_vectors, feature_vectors), so a
map, `musicdb similar` and the shell all see the same standardised features. Every run is
written to map_runs / map_points; `load_run` redraws one without projecting again.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np

from musicdb.choices import LABEL_RULES, did_you_mean, other_rules_hint, require_choice
from musicdb.errors import MapError
from musicdb.store.database import insert_columns, resolve_feature_set
from musicdb.store.transaction import transaction
from musicdb.terminal import plural

METHODS = ("svd", "tsne", "umap")
UNITS = ("song", "snippet")
COLOR_BY = ("label", "album")
NEIGHBOURS = 5
FFT_ABOVE = 10_000  # points: openTSNE's gradient method switches to FFT interpolation
NO_ALBUM = "(no album)"


@dataclass
class MapRun:
    """A projected (or reloaded) map: its points, their coordinates and their neighbours."""

    run_id: int
    method: str
    unit: str
    feature_set: str
    label_from: str
    color_by: str
    labels: list[str]
    params: dict
    seconds: float
    song_id: np.ndarray          # (n,) int
    snippet: np.ndarray          # (n,) int, -1 = whole song
    start_s: np.ndarray          # (n,) float, where the snippet starts in its song
    label: list[str]
    title: list[str | None]
    artist: list[str | None]
    album: list[str | None]
    path: list[str | None]
    xy: np.ndarray               # (n, 2)
    # per point: the nearest songs in the standardised feature space, as (song_id, distance)
    neighbours: list[list[tuple[int, float]]] = field(default_factory=list)
    # song_id -> title, artist, album, path of every song a point or a neighbour refers to
    songs: dict[int, dict] = field(default_factory=dict)

    @property
    def groups(self) -> list[str]:
        """What each point is coloured by: its label, or its album."""
        if self.color_by == "album":
            return [a or NO_ALBUM for a in self.album]
        return list(self.label)


_SELECT_SONGS = """
SELECT s.song_id, -1 AS snippet, 0.0 AS start_s, l.label, s.title, s.artist, s.album, s.path, s.z
FROM song_vectors s JOIN song_labels l ON l.song_id = s.song_id AND l.rule = $rule
WHERE s.feature_set_id = $set AND list_contains($labels, l.label)
ORDER BY l.label, s.song_id
"""
_SELECT_SNIPPETS = """
SELECT v.song_id, v.snippet, v.start_s, l.label, s.title, s.artist, s.album, s.path, v.z
FROM feature_vectors v
JOIN song_vectors s ON s.song_id = v.song_id AND s.feature_set_id = v.feature_set_id
JOIN song_labels l ON l.song_id = v.song_id AND l.rule = $rule
WHERE v.feature_set_id = $set AND v.snippet >= 0 AND list_contains($labels, l.label)
ORDER BY l.label, v.song_id, v.snippet
"""
_SELECT_RUN = """
SELECT p.song_id, p.snippet, coalesce(v.start_s, 0.0), p.label, lib.title,
       coalesce(lib.artist, p.label), lib.album, lib.path, v.z, p.x, p.y
FROM map_points p JOIN map_runs r USING (run_id) JOIN library lib USING (song_id)
LEFT JOIN feature_vectors v
  ON v.song_id = p.song_id AND v.feature_set_id = r.feature_set_id AND v.snippet = p.snippet
WHERE p.run_id = ? ORDER BY p.label, p.song_id, p.snippet
"""


def select_labels(con: duckdb.DuckDBPyConnection, set_id: int, rule: str,
                  labels: list[str] | None, top: int | None) -> list[str]:
    """The labels to draw: those named (matched by sql label_key: case, accents), else all; the
    `top` largest of those when given."""
    counts = con.execute(
        "SELECT l.label, count(*) AS n FROM song_vectors s JOIN song_labels l "
        "ON l.song_id = s.song_id AND l.rule = ? WHERE s.feature_set_id = ? "
        "GROUP BY l.label ORDER BY n DESC, l.label", [rule, set_id]).fetchall()
    if labels:
        stored = [name for name, _ in counts]
        chosen = []
        for wanted in labels:
            match = con.execute("SELECT name FROM unnest(?::VARCHAR[]) WITH ORDINALITY "
                                "t(name, i) WHERE label_key(name) = label_key(?) ORDER BY i "
                                "LIMIT 1", [stored, wanted]).fetchone()
            if match is None:
                hint = (other_rules_hint(con, wanted, rule)
                        or did_you_mean(con, wanted, "SELECT unnest(?::VARCHAR[]) AS name",
                                        [stored]))
                raise MapError(f"no label {wanted!r} under the {rule!r} rule{hint}")
            chosen.append(match[0])
        order = {name: i for i, (name, _) in enumerate(counts)}
        names = sorted(set(chosen), key=order.__getitem__)
    else:
        names = [name for name, _ in counts]
    return names[:top] if top else names


def project(z: np.ndarray, method: str, *, perplexity: float = 30.0,
            learning_rate: float | None = None, seed: int = 0) -> tuple[np.ndarray, dict]:
    """2-D coordinates of the rows of z, and the parameters actually used.

    z is already standardised. t-SNE is scikit-learn's Barnes-Hut; its perplexity must stay
    below the number of points, so a small map gets (n - 1) / 3 and says so.
    """
    require_choice(method, METHODS, "--method", MapError)
    n = len(z)
    if n < 3:
        raise MapError(f"a map needs at least 3 points, not {n}")
    params: dict = {"seed": seed}
    if method == "svd":
        from sklearn.decomposition import TruncatedSVD

        xy = TruncatedSVD(n_components=2, random_state=seed).fit_transform(z)
    elif method == "tsne":
        used = min(float(perplexity), (n - 1) / 3)
        params |= {"perplexity": round(used, 3),
                   "learning_rate": "auto" if learning_rate is None else learning_rate}
        if used != perplexity:
            params["perplexity_asked"] = perplexity
        xy, params["implementation"] = _tsne(z, perplexity=used, learning_rate=learning_rate,
                                             seed=seed)
    else:
        try:
            import umap
        except ImportError as exc:
            raise MapError("--method umap needs umap-learn, an optional extra: "
                           "pip install umap-learn (or use --method tsne)") from exc
        neighbours = min(15, n - 1)
        params["n_neighbors"] = neighbours
        xy = umap.UMAP(n_components=2, n_neighbors=neighbours,
                       random_state=seed).fit_transform(z)
    return np.asarray(xy, dtype=np.float64), params


def _tsne(z: np.ndarray, *, perplexity: float, learning_rate: float | None, seed: int,
          threads: int = -1) -> tuple[np.ndarray, str]:
    """(n, 2) t-SNE coordinates and the implementation used: openTSNE (approximate neighbours,
    Barnes-Hut or FFT-interpolated gradients), else scikit-learn's Barnes-Hut."""
    rate = "auto" if learning_rate is None else learning_rate
    try:
        from openTSNE import TSNE
    except ImportError:
        from sklearn.manifold import TSNE as SkTSNE

        return SkTSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                      learning_rate=rate, method="barnes_hut", n_jobs=1).fit_transform(z), \
            "scikit-learn"
    # Barnes-Hut is faster below ~10,000 points, the FFT interpolation above (openTSNE docs).
    # Barnes-Hut runs on one thread: its OpenMP threads spin, and on a busy machine two of
    # them took 3-60x longer than one (benchmarks/maps.py).
    small = len(z) < FFT_ABOVE
    embedding = TSNE(n_components=2, perplexity=perplexity, learning_rate=rate,
                     initialization="pca", random_state=seed, verbose=False,
                     n_jobs=1 if small else threads,
                     negative_gradient_method="bh" if small else "fft")
    return np.asarray(embedding.fit(z.astype(np.float64))), "openTSNE"


def make_map(con: duckdb.DuckDBPyConnection, *, method: str = "tsne",
             feature_set: str | None = None, label_from: str = "auto",
             labels: list[str] | None = None, top: int | None = None, unit: str = "song",
             perplexity: float = 30.0, learning_rate: float | None = None, seed: int = 0,
             color_by: str = "label",
             on_project: Callable[[str], None] | None = None) -> MapRun:
    """Project the chosen labels' songs (or snippets), store the run, return it."""
    require_choice(method, METHODS, "--method", MapError)
    require_choice(unit, UNITS, "--unit", MapError)
    require_choice(color_by, COLOR_BY, "--color-by", MapError)
    require_choice(label_from, LABEL_RULES, "--label-from", MapError)
    set_name, set_id = resolve_feature_set(con, feature_set)
    names = select_labels(con, set_id, label_from, labels, top)
    sql = _SELECT_SONGS if unit == "song" else _SELECT_SNIPPETS
    rows = con.execute(sql, {"rule": label_from, "set": set_id, "labels": names}).fetchall()
    if not rows:
        raise MapError(f"no {unit}s to map in feature set {set_name!r}"
                       + (" (ingest with --snippet-seconds > 0 for snippets)"
                          if unit == "snippet" else ""))
    z = np.asarray([r[8] for r in rows], dtype=np.float32)
    if on_project:
        on_project(f"{method} of {len(z):,} {unit}s, {z.shape[1]} features")
    started = time.perf_counter()
    xy, params = project(z, method, perplexity=perplexity, learning_rate=learning_rate,
                         seed=seed)
    seconds = time.perf_counter() - started
    params |= {"top": top} if top else {}
    run = _run_from_rows(rows, xy, run_id=0, method=method, unit=unit, feature_set=set_name,
                         label_from=label_from, color_by=color_by, labels=names,
                         params=params, seconds=seconds)
    run.run_id = _store(con, run, set_id)
    _add_neighbours(con, run, z, set_id)
    return run


def album_warning(run: MapRun) -> str | None:
    """Why a map coloured by album shows (almost) one colour, or None."""
    if run.color_by != "album":
        return None
    if all(album is None for album in run.album):
        return (f"none of the {plural(len(run.album), 'point')} of this map has an album tag "
                "(imported songs have none): every point is one colour; use --color-by label")
    if len(set(run.groups)) == 1:
        return "every song of this map is on one album: every point is one colour"
    return None


def _run_from_rows(rows: list[tuple], xy: np.ndarray, **meta) -> MapRun:
    return MapRun(
        **meta,
        song_id=np.asarray([r[0] for r in rows], dtype=np.int64),
        snippet=np.asarray([r[1] for r in rows], dtype=np.int64),
        start_s=np.asarray([r[2] for r in rows], dtype=np.float64),
        label=[r[3] for r in rows], title=[r[4] for r in rows], artist=[r[5] for r in rows],
        album=[r[6] for r in rows], path=[r[7] for r in rows], xy=xy)


def _store(con: duckdb.DuckDBPyConnection, run: MapRun, set_id: int) -> int:
    with transaction(con, "the map run"):
        run_id = con.execute(
            "INSERT INTO map_runs (method, unit, feature_set_id, feature_set, label_from, "
            "color_by, labels, params, n_points, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "RETURNING run_id",
            [run.method, run.unit, set_id, run.feature_set, run.label_from, run.color_by,
             run.labels, json.dumps(run.params, sort_keys=True), len(run.xy), run.seconds],
        ).fetchone()[0]
        # One statement for all points, through Arrow: DuckDB binds a list parameter at
        # ~80 us an element (0.65 CPU s for the 1,789 points of the README's study map).
        insert_columns(con, "map_points", {
            "run_id": [run_id] * len(run.xy), "song_id": run.song_id.tolist(),
            "snippet": run.snippet.tolist(), "label": run.label,
            "x": run.xy[:, 0].tolist(), "y": run.xy[:, 1].tolist()})
    return run_id


def load_run(con: duckdb.DuckDBPyConnection, run_id: int) -> MapRun:
    """A stored run with its coordinates as written: nothing is projected again."""
    try:
        row = con.execute(
            "SELECT method, unit, feature_set_id, feature_set, label_from, color_by, labels, "
            "params, seconds FROM map_runs WHERE run_id = ?", [run_id]).fetchone()
    except duckdb.CatalogException as exc:  # a file from before maps (read-only: not migrated)
        raise MapError("this database holds no map runs yet: run `musicdb map` first") from exc
    if row is None:
        known = con.execute("SELECT max(run_id) FROM map_runs").fetchone()[0]
        raise MapError(f"no map run {run_id}"
                       + (f"; runs go up to {known}" if known else "; no map has been made yet"))
    method, unit, set_id, set_name, rule, color_by, labels, params, seconds = row
    rows = con.execute(_SELECT_RUN, [run_id]).fetchall()
    xy = np.asarray([(r[9], r[10]) for r in rows], dtype=np.float64).reshape(-1, 2)
    run = _run_from_rows(rows, xy, run_id=run_id, method=method, unit=unit,
                         feature_set=set_name, label_from=rule, color_by=color_by,
                         labels=list(labels), params=json.loads(params), seconds=seconds)
    have = [i for i, r in enumerate(rows) if r[8] is not None]
    z = np.zeros((len(rows), len(rows[have[0]][8]) if have else 0), dtype=np.float32)
    for i in have:
        z[i] = rows[i][8]
    _add_neighbours(con, run, z, set_id, valid=np.isin(np.arange(len(rows)), have))
    return run


def _add_neighbours(con: duckdb.DuckDBPyConnection, run: MapRun, z: np.ndarray, set_id: int,
                    valid: np.ndarray | None = None) -> None:
    """Each point's nearest songs of the map (its own song left out), in the standardised
    feature space: what plays next when exploring."""
    from sklearn.neighbors import NearestNeighbors

    valid = np.ones(len(z), dtype=bool) if valid is None else valid
    rows = _song_rows(con, set_id, sorted(set(run.song_id.tolist())))
    run.songs = {r[0]: {"title": r[2], "artist": r[3], "album": r[4], "path": r[5]}
                 for r in rows}
    for i, sid in enumerate(run.song_id.tolist()):  # songs without vectors still get a name
        run.songs.setdefault(sid, {"title": run.title[i], "artist": run.artist[i],
                                   "album": run.album[i], "path": run.path[i]})
    run.neighbours = [[] for _ in range(len(z))]
    if len(rows) < 2 or not valid.any():
        return
    song_ids = np.asarray([r[0] for r in rows])
    song_z = np.asarray([r[1] for r in rows], dtype=np.float32)
    k = min(NEIGHBOURS + 1, len(rows))
    where = np.flatnonzero(valid)
    distances, index = NearestNeighbors(n_neighbors=k).fit(song_z).kneighbors(z[where])
    for i, dist, idx in zip(where, distances, index, strict=True):
        own = run.song_id[i]
        near = [(int(song_ids[j]), float(d)) for d, j in zip(dist, idx, strict=True)
                if song_ids[j] != own]
        run.neighbours[i] = near[:NEIGHBOURS]


def _song_rows(con: duckdb.DuckDBPyConnection, set_id: int, ids: list[int]) -> list[tuple]:
    """song_vectors rows of these songs, by song_id; the ids are joined as an Arrow table (a
    list parameter of 1,789 ids cost 0.13 CPU s to bind, and list_contains per row more)."""
    import pyarrow as pa

    con.register("_map_song_ids", pa.table({"song_id": pa.array(ids, pa.int64())}))
    try:
        return con.execute(
            "SELECT s.song_id, s.z, s.title, s.artist, s.album, s.path FROM song_vectors s "
            "JOIN _map_song_ids USING (song_id) WHERE s.feature_set_id = ? ORDER BY s.song_id",
            [set_id]).fetchall()
    finally:
        con.unregister("_map_song_ids")


def default_output(*, method: str, feature_set: str | None, unit: str, labels: list[str] | None,
                   top: int | None, color_by: str, perplexity: float, seed: int,
                   from_run: int | None = None) -> Path:
    """A file name that says what the map shows, e.g. map-study55-tsne-song-p30-seed0.html."""
    if from_run is not None:
        return Path(f"map-run{from_run}.html")
    parts = ["map", feature_set or "default", method, unit]
    if labels:
        parts.append("-".join(labels[:3]) + ("-etc" if len(labels) > 3 else ""))
    if top:
        parts.append(f"top{top}")
    if color_by != "label":
        parts.append(f"by-{color_by}")
    if method == "tsne":
        parts.append(f"p{perplexity:g}")
    parts.append(f"seed{seed}")
    return Path(re.sub(r"[^\w.-]+", "_", "-".join(parts)) + ".html")
