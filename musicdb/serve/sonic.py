"""Similar songs: getSimilarSongs, getSimilarSongs2 and the sonicSimilarity extension
(getSonicSimilarTracks, findSonicPath).

All of them rank with the snapshot's VectorIndex (musicdb.similarity.index), the ranking of
`musicdb similar --songs` and of the similar_songs macro. By the kind of id:
- a song: its nearest songs (never the song itself or a copy of its file);
- an artist: an artist radio, as Subsonic describes getSimilarSongs: the artist and its
  nearest artists by centroid distance (the ranking of `musicdb similar ARTIST`), taken in turn,
  one song each per round, each artist's songs nearest the given artist's centroid first;
- an album: the songs nearest the mean vector of the album's songs, without the album's own.
Songs the index holds that have no file to play (imported songs) are left out.

sonicMatch `similarity` is 1 / (1 + d / sqrt(2 * dims)), d the euclidean distance on the
standardised vectors: 1 for the same sound, 0.5 at the distance two random songs have on
average (sqrt(2 * dims) for standardised features), towards 0 beyond. findSonicPath's is
relative to the start song, as the extension specifies.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from musicdb.serve.browse import MAX_LIST, album_row, artist_row, child, rows, song_rows, track
from musicdb.serve.protocol import NOT_FOUND, Call, Endpoint, SubsonicError
from musicdb.similarity.index import VectorIndex
from musicdb.similarity.paths import song_path

Ranked = list[tuple[dict[str, Any], float]]  # (tracks row, distance), nearest first


def similarity(index: VectorIndex, distance: float) -> float:
    scale = float(np.sqrt(2 * index.z.shape[1])) or 1.0
    return round(1.0 / (1.0 + distance / scale), 4)


def similar(call: Call, item_id: str, count: int) -> Ranked:
    """The songs similar to a song, artist or album id (error 70 for an unknown id)."""
    if item_id.startswith("ar-"):
        artist_row(call, item_id)
        return _artist_radio(call, item_id, count)
    if item_id.startswith("al-"):
        album_row(call, item_id)
        return _near_album(call, item_id, count)
    song = track(call, item_id)
    index = call.snapshot.index
    if index is None or count == 0 or not _holds(index, song):
        return []
    return _playable(call, lambda k: index.nearest(song["song_id"], k), count)


def _holds(index: VectorIndex, song: dict[str, Any]) -> bool:
    """Whether the index has the song (a song may lack features in the default set)."""
    try:
        index.row(song["song_id"])
    except KeyError:
        return False
    return True


def _playable(call: Call, search, count: int) -> Ranked:
    """The first `count` results of search(k) that are tracks, asking for more when the index
    answered with songs that have no file."""
    k = count
    while True:
        found = search(k)
        by_id = {r["song_id"]: r for r in song_rows(call, [s for s, _ in found])}
        kept = [(by_id[s], d) for s, d in found if s in by_id]
        if len(kept) >= count or len(found) < k:
            return kept[:count]
        k *= 4


def _near_album(call: Call, album_id: str, count: int) -> Ranked:
    index = call.snapshot.index
    if index is None or count == 0:
        return []
    own = [r["song_id"] for r in rows(call, "SELECT song_id FROM tracks WHERE album_id = ?",
                                      [album_id])]
    members = index.rows(own)
    if len(members) == 0:
        return []
    centre = index.z[members].astype(np.float64).mean(axis=0)
    return _playable(call, lambda k: index.nearest_to(centre, k, exclude=own), count)


def _artist_radio(call: Call, artist_id: str, count: int) -> Ranked:
    index = call.snapshot.index
    target = rows(call, "SELECT centroid FROM centroids WHERE artist_id = ? ORDER BY label "
                  "LIMIT 1", [artist_id])
    if index is None or not target or count == 0:
        return []
    neighbours = rows(call, """
        SELECT o.artist_id FROM centroids o
        WHERE o.artist_id <> ?
        ORDER BY list_distance(o.centroid, ?::DOUBLE[]), o.label
        LIMIT ?""", [artist_id, target[0]["centroid"], count])
    order = [artist_id, *dict.fromkeys(n["artist_id"] for n in neighbours)]
    songs = rows(call, """
        SELECT t.* FROM (SELECT unnest(?::VARCHAR[]) AS artist_id) chosen
        JOIN tracks t USING (artist_id)""", [order])
    held = index.rows([s["song_id"] for s in songs])
    centre = np.asarray(target[0]["centroid"], dtype=np.float32)
    distance = dict(zip(index.song_ids[held].tolist(),
                        index.distances(centre, held).tolist(), strict=True))
    by_artist: dict[str, list[tuple[dict[str, Any], float]]] = {a: [] for a in order}
    for song in songs:
        if song["song_id"] in distance:
            by_artist[song["artist_id"]].append((song, distance[song["song_id"]]))
    queues = [sorted(q, key=lambda p: (p[1], p[0]["song_id"])) for q in by_artist.values()]
    mix: Ranked = []
    for turn in range(max((len(q) for q in queues), default=0)):
        mix += [q[turn] for q in queues if turn < len(q)]
    return mix[:count]


def get_similar_songs(call: Call) -> dict[str, Any]:
    found = similar(call, call.required("id"), call.optional_int("count", 50, lo=0, hi=MAX_LIST))
    return {"similarSongs": {"song": [child(row) for row, _ in found]}}


def get_similar_songs2(call: Call) -> dict[str, Any]:
    found = similar(call, call.required("id"), call.optional_int("count", 50, lo=0, hi=MAX_LIST))
    return {"similarSongs2": {"song": [child(row) for row, _ in found]}}


def get_sonic_similar_tracks(call: Call) -> dict[str, Any]:
    song_id = call.required("id")
    count = call.optional_int("count", 10, lo=0, hi=MAX_LIST)
    if song_id.startswith(("ar-", "al-")):
        raise SubsonicError(NOT_FOUND, "Song not found (getSonicSimilarTracks takes a song id)")
    found = similar(call, song_id, count)
    index = call.snapshot.index
    return {"sonicMatch": [{"entry": child(row), "similarity": similarity(index, d)}
                           for row, d in found]}


def find_sonic_path(call: Call) -> dict[str, Any]:
    """Songs from startSongId to endSongId (both included) along the straight line between
    their vectors: musicdb.similarity.paths.song_path, the twin of the song_path macro."""
    start = track(call, call.required("startSongId"))
    end = track(call, call.required("endSongId"))
    count = call.optional_int("count", 25, lo=2, hi=MAX_LIST)
    index = call.snapshot.index
    if index is None or not (_holds(index, start) and _holds(index, end)):
        raise SubsonicError(NOT_FOUND, "No sonic path: the songs have no analysed features")
    origin = index.row(start["song_id"])
    if start["song_id"] == end["song_id"]:
        steps = [start["song_id"]]
    else:
        steps = [s.song_id for s in song_path(index, start["song_id"], end["song_id"], count)]
    path = song_rows(call, steps)
    held = index.rows([r["song_id"] for r in path])
    distances = index.distances(index.z[origin], held)
    return {"sonicMatch": [{"entry": child(row), "similarity": similarity(index, float(d))}
                           for row, d in zip(path, distances, strict=True)]}


ENDPOINTS: dict[str, Endpoint] = {
    "getSimilarSongs": get_similar_songs,
    "getSimilarSongs2": get_similar_songs2,
    "getSonicSimilarTracks": get_sonic_similar_tracks,
    "findSonicPath": find_sonic_path,
}
