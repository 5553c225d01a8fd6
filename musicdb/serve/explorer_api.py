"""The explorer's JSON answers, read from the server's in-memory snapshot.

Each function takes a snapshot (and checked arguments) and returns a dict ready for JSON, or
raises ExplorerError with the HTTP status the page should see. Songs are the same everywhere:
`song_dict` (id 'so-<song_id>', title, artist, album, ..., and the stream URL of the page).
Similar songs come from the snapshot's VectorIndex (the ranking of `musicdb similar --songs`),
similar artists from the distance between artist centroids (similar's 'centroid' method).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from musicdb.maps.colors import label_styles

if TYPE_CHECKING:
    from musicdb.serve.snapshot import Snapshot

SONG_COLUMNS = ("song_id, id, title, artist, artist_id, album, album_id, year, genre, "
                "duration, label, relpath")
MAX_WORDS = 8  # search words considered; more only slow the query down


class ExplorerError(Exception):
    """A request the explorer cannot answer: the message and the HTTP status to send."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def song_dict(row: tuple) -> dict[str, Any]:
    """One tracks row (SONG_COLUMNS) as the page shows it; path relative to its root."""
    song_id, sid, title, artist, artist_id, album, album_id, year, genre, duration, label, \
        path = row
    return {"id": sid, "song_id": song_id, "title": title, "artist": artist,
            "artist_id": artist_id, "album": album, "album_id": album_id, "year": year,
            "genre": genre, "duration": duration, "label": label, "path": path,
            "stream": f"/api/stream/{sid}"}


def _songs(snapshot: Snapshot, where: str, params: list, order: str = "") -> list[dict]:
    rows = snapshot.cursor().execute(
        f"SELECT {SONG_COLUMNS} FROM tracks WHERE {where} {order}", params).fetchall()
    return [song_dict(r) for r in rows]


def songs_by_id(snapshot: Snapshot, song_ids: list[int]) -> list[dict]:
    """The tracks of these song ids, in the order given (ids not in the snapshot left out)."""
    found = {s["song_id"]: s for s in _songs(snapshot, "song_id = ANY(?::INTEGER[])",
                                            [song_ids])}
    return [found[i] for i in song_ids if i in found]


def _word_filter(column: str, words: list[str]) -> str:
    """Every word somewhere in the column (literal matches: contains() has no wildcards)."""
    return " AND ".join(f"contains({column}, strip_accents(lower(?)))" for _ in words)


def library(snapshot: Snapshot) -> dict:
    """What the snapshot holds, and as of when (it is reloaded after the file changes)."""
    songs, artists = snapshot.cursor().execute(
        "SELECT (SELECT count(*) FROM tracks), (SELECT count(*) FROM artists "
        "WHERE song_count > 0)").fetchone()
    return {"songs": songs, "artists": artists, "feature_set": snapshot.feature_set,
            "loaded_at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snapshot.loaded_at))}


def search(snapshot: Snapshot, query: str, *, limit: int, artists: bool = True) -> dict:
    """Songs whose title, artist or album hold every word of the query, and artists whose
    name does, ignoring case and accents; exact and prefix matches first."""
    words = query.split()[:MAX_WORDS]
    if not words:
        raise ExplorerError(400, "search for at least one word (parameter q)")
    first = "strip_accents(lower(?))"
    songs = _songs(snapshot, _word_filter("search_key", words), [*words, query, query, limit],
                   f"ORDER BY title_key = {first} DESC, starts_with(title_key, {first}) DESC, "
                   "title_key, song_id LIMIT ?")
    found_artists: list[dict] = []
    if artists:
        rows = snapshot.cursor().execute(
            "SELECT artist_id, name, album_count, song_count FROM artists "
            f"WHERE {_word_filter('name_key', words)} "
            f"ORDER BY name_key = {first} DESC, starts_with(name_key, {first}) DESC, "
            "name_key, artist_id LIMIT ?", [*words, query, query, limit]).fetchall()
        found_artists = [_artist_dict(r) for r in rows]
    return {"query": query, "songs": songs, "artists": found_artists}


def _artist_dict(row: tuple) -> dict[str, Any]:
    artist_id, name, album_count, song_count = row
    return {"id": artist_id, "name": name, "album_count": album_count,
            "song_count": song_count}


def artist(snapshot: Snapshot, artist_id: str, *, k: int) -> dict:
    """An artist's songs and the k artists whose centroid lies nearest its own."""
    row = snapshot.cursor().execute(
        "SELECT artist_id, name, album_count, song_count FROM artists WHERE artist_id = ?",
        [artist_id]).fetchone()
    if row is None:
        raise ExplorerError(404, f"no artist {artist_id[:40]!r} in the library")
    # Their own songs, and those of albums they are the album artist of (a compilation's).
    songs = _songs(snapshot, "? IN (artist_id, albumartist_id)", [artist_id],
                   "ORDER BY album_key NULLS LAST, track NULLS LAST, title_key, song_id")
    similar, note = similar_artists(snapshot, artist_id, k=k)
    return {"artist": _artist_dict(row), "songs": songs, "similar": similar,
            "similar_note": note}


def similar_artists(snapshot: Snapshot, artist_id: str, *, k: int) -> tuple[list[dict], str]:
    """The k artists whose centroid (auto label rule, default feature set) lies nearest this
    artist's: euclidean, as `musicdb similar ARTIST` ranks by default. A label that is no
    artist of a track (e.g. a folder label) is shown unlinked."""
    con = snapshot.cursor()
    if con.execute("SELECT count(*) FROM centroids WHERE artist_id = ?",
                   [artist_id]).fetchone()[0] == 0:
        return [], "This artist has no centroid yet (its songs have no features)."
    rows = con.execute(
        "WITH target AS (SELECT centroid FROM centroids WHERE artist_id = ? LIMIT 1) "
        "SELECT c.label, list_distance(c.centroid, t.centroid) AS distance, a.artist_id "
        "FROM centroids c CROSS JOIN target t LEFT JOIN artists a USING (artist_id) "
        "WHERE c.artist_id <> ? ORDER BY distance, c.label LIMIT ?",
        [artist_id, artist_id, k]).fetchall()
    return ([{"name": name, "distance": float(distance), "id": aid}
             for name, distance, aid in rows], "")


def song(snapshot: Snapshot, song_id: int, *, k: int) -> dict:
    """A song and its k nearest songs (the ranking of `musicdb similar --songs`)."""
    found = songs_by_id(snapshot, [song_id])
    if not found:
        raise ExplorerError(404, f"no song so-{song_id} in the library")
    index = snapshot.index
    similar: list[dict] = []
    note = ""
    if index is None:
        note = "The library has no feature set yet, so no similar songs."
    else:
        try:
            near = index.nearest(song_id, k)
        except KeyError:
            near = []
            note = "This song has no features in the default feature set yet."
        distance = dict(near)
        similar = [s | {"distance": float(distance[s["song_id"]])}
                   for s in songs_by_id(snapshot, [i for i, _ in near])]
    return {"song": found[0], "similar": similar, "similar_note": note}


def map_runs(snapshot: Snapshot) -> dict:
    """Every stored `musicdb map` run, newest first."""
    rows = snapshot.cursor().execute(
        "SELECT run_id, strftime(created_at, '%Y-%m-%d %H:%M') AS created_at, method, unit, "
        "feature_set, label_from, n_points, labels FROM map_runs "
        "ORDER BY run_id DESC").fetchall()
    names = ("run_id", "created_at", "method", "unit", "feature_set", "label_from",
             "n_points", "labels")
    return {"runs": [dict(zip(names, r, strict=True)) for r in rows]}


def map_run(snapshot: Snapshot, run_id: int) -> dict:
    """One run's points, one trace per label in the label's stable colour and symbol (the
    colours `musicdb map` draws), and the songs a click can play."""
    runs = {r["run_id"]: r for r in map_runs(snapshot)["runs"]}
    if run_id not in runs:
        raise ExplorerError(404, f"no map run {run_id}" + (
            f"; stored runs: {', '.join(map(str, sorted(runs)))}" if runs
            else "; run `musicdb map` to make one"))
    rows = snapshot.cursor().execute(
        "SELECT p.label, p.x, p.y, t.id, coalesce(t.title, '') || "
        "coalesce(' · ' || t.artist, '') || CASE WHEN p.snippet >= 0 "
        "THEN ' (snippet ' || p.snippet || ')' ELSE '' END "
        "FROM map_points p LEFT JOIN tracks t USING (song_id) WHERE p.run_id = ? "
        "ORDER BY p.label, p.song_id, p.snippet", [run_id]).fetchall()
    styles = label_styles(r[0] for r in rows)
    traces: dict[str, dict] = {}
    for label, x, y, sid, text in rows:
        colour, symbol = styles[label]
        trace = traces.setdefault(label, {"name": label, "color": colour, "symbol": symbol,
                                          "x": [], "y": [], "songs": [], "text": []})
        trace["x"].append(x)
        trace["y"].append(y)
        trace["songs"].append(sid)
        trace["text"].append(text)
    ids = sorted({int(sid[3:]) for _, _, _, sid, _ in rows if sid})
    songs = {s["id"]: s for s in songs_by_id(snapshot, ids)}
    ordered = sorted(traces.values(), key=lambda t: t["name"].casefold())
    return {"run": runs[run_id], "traces": ordered, "songs": songs}


def path(snapshot: Snapshot, a: int, b: int, n: int) -> dict:
    """n songs from A to B that move smoothly in feature space (musicdb.similarity.paths),
    each with its distance from the song before it (`step`)."""
    from musicdb.similarity.paths import song_path

    for song_id in (a, b):
        if not songs_by_id(snapshot, [song_id]):
            raise ExplorerError(404, f"no song so-{song_id} in the library")
    if a == b:
        raise ExplorerError(400, "a path needs two different songs")
    if snapshot.index is None:
        raise ExplorerError(409, "the library has no feature set yet, so no paths")
    try:
        steps = song_path(snapshot.index, a, b, n)
    except KeyError:
        raise ExplorerError(409, "both songs need features in the default feature set "
                            f"({snapshot.feature_set}): run `musicdb ingest`") from None
    step = {s.song_id: s.step for s in steps}
    songs = [s | {"step": step[s["song_id"]]}
             for s in songs_by_id(snapshot, [s.song_id for s in steps])]
    return {"a": f"so-{a}", "b": f"so-{b}", "n": n, "songs": songs}


def playlist_m3u8(snapshot: Snapshot, songs: list[dict]) -> str:
    """An extended m3u (UTF-8) of the songs' files by absolute path, as `musicdb path
    --playlist` writes it: it plays in any player on the machine that holds the library, and
    dropped into a playlists folder it is served back to Subsonic clients. Stream URLs would
    need credentials inside the file. A file name holding a line break cannot be written in
    m3u, so such a song is left out."""
    paths = dict(snapshot.cursor().execute(
        "SELECT song_id, path FROM tracks WHERE song_id = ANY(?::INTEGER[])",
        [[s["song_id"] for s in songs]]).fetchall())
    lines = ["#EXTM3U"]
    for s in songs:
        path = paths.get(s["song_id"])
        if not path or "\n" in path or "\r" in path:
            continue
        title = " - ".join(x for x in (s["artist"], s["title"]) if x)
        title = " ".join(title.split())  # a tag's line break would end the #EXTINF line
        lines += [f"#EXTINF:{s['duration'] or -1},{title}", path]
    return "\n".join(lines) + "\n"
