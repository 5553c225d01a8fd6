"""Browsing and searching: artists, albums, songs, genres, search3, random songs.

Every answer is read from the snapshot's tables (snapshot.sql) with bound parameters. Element
and attribute names follow the OpenSubsonic specification (responses ArtistsID3, ArtistID3,
ArtistWithAlbumsID3, AlbumID3, AlbumID3WithSongs, Child, searchResult3, albumList2, songs,
genres, indexes). `child(row)` is the one Child (song) dict every endpoint that returns songs
uses; `song_rows` / `track` fetch the rows it takes by id, from the snapshot's in-memory
tracks table (musicdb.serve.tracks) rather than a query.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from musicdb.serve.protocol import GENERIC, NOT_FOUND, Call, Endpoint, SubsonicError
from musicdb.serve.search import NameSearch

MAX_LIST = 500  # the specification's maximum for album lists and random songs
MAX_WORDS = 8  # of a search3 query: more narrow nothing down
# Album list types musicdb has no data for (no play counts, stars or ratings): empty lists.
EMPTY_LISTS = frozenset({"frequent", "recent", "starred", "highest"})
# Characters clients wrap an "everything" query in ('""', '*'): not words to match.
_QUERY_NOISE = re.compile(r'["*]')


def rows(call: Call, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """The result rows as dicts keyed by column name (one cursor per request)."""
    result = call.snapshot.cursor().execute(sql, list(params))
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


# --- the response elements --------------------------------------------------------------


def child(row: dict[str, Any]) -> dict[str, Any]:
    """A song as a Child element, from a `tracks` row."""
    return {
        "id": row["id"], "parent": row["album_id"], "isDir": False, "title": row["title"],
        "album": row["album"], "artist": row["artist"], "track": row["track"],
        "year": row["year"], "genre": row["genre"], "coverArt": row["id"],
        "size": row["size"], "contentType": row["content_type"], "suffix": row["suffix"],
        "duration": row["duration"], "bitRate": row["bitrate"],
        "samplingRate": row["sample_rate"], "channelCount": row["channels"],
        "path": row["relpath"], "isVideo": False, "created": row["created"],
        "albumId": row["album_id"], "artistId": row["artist_id"], "type": "music",
        "mediaType": "song", "displayArtist": row["artist"],
        "displayAlbumArtist": row["albumartist"],
        "artists": [{"id": row["artist_id"], "name": row["artist"]}],
        "albumArtists": [{"id": row["albumartist_id"], "name": row["albumartist"]}],
        "genres": [{"name": row["genre"]}] if row["genre"] else [],
    }


def album_element(row: dict[str, Any]) -> dict[str, Any]:
    """An album as an AlbumID3 element, from an `albums` row."""
    return {
        "id": row["album_id"], "name": row["name"], "artist": row["artist"],
        "artistId": row["artist_id"], "coverArt": row["album_id"],
        "songCount": row["song_count"], "duration": row["duration"],
        "created": row["created"], "year": row["year"], "genre": row["genre"],
        "displayArtist": row["artist"],
        "artists": [{"id": row["artist_id"], "name": row["artist"]}],
        "genres": [{"name": row["genre"]}] if row["genre"] else [],
        "isCompilation": False,
    }


def artist_element(row: dict[str, Any]) -> dict[str, Any]:
    """An artist as an ArtistID3 element, from an `artists` row."""
    return {"id": row["artist_id"], "name": row["name"], "coverArt": row["artist_id"],
            "albumCount": row["album_count"]}


# --- lookups other modules share --------------------------------------------------------

SONG_ORDER = "coalesce(track, 100000), title_key, song_id"


def song_rows(call: Call, song_ids: Iterable[int]) -> list[dict[str, Any]]:
    """The tracks rows of these song ids, in the order given (ids not in the library, such as
    imported songs without a file, are left out). In memory (Snapshot.tracks), no query."""
    return call.snapshot.tracks.rows(song_ids)


def track(call: Call, song_id: str) -> dict[str, Any]:
    """The tracks row of a song id ('so-12'), or error 70."""
    found = call.snapshot.tracks.by_id(song_id)
    if found is None:
        raise SubsonicError(NOT_FOUND, "Song not found")
    return found


def album_row(call: Call, album_id: str) -> dict[str, Any]:
    found = rows(call, "SELECT * FROM albums WHERE album_id = ?", [album_id])
    if not found:
        raise SubsonicError(NOT_FOUND, "Album not found")
    return found[0]


def artist_row(call: Call, artist_id: str) -> dict[str, Any]:
    found = rows(call, "SELECT * FROM artists WHERE artist_id = ?", [artist_id])
    if not found:
        raise SubsonicError(NOT_FOUND, "Artist not found")
    return found[0]


def folder_root(call: Call) -> str | None:
    """The library root of `musicFolderId`, None when absent; an unknown id is error 70."""
    folder = call.optional("musicFolderId")
    if folder is None:
        return None
    found = rows(call, "SELECT root FROM music_folders WHERE id = TRY_CAST(? AS INTEGER)",
                 [folder])
    if not found:
        raise SubsonicError(NOT_FOUND, "Music folder not found")
    return found[0]["root"]


# --- endpoints --------------------------------------------------------------------------


def get_artists(call: Call) -> dict[str, Any]:
    """Album artists indexed by their first letter (ArtistsID3)."""
    root = folder_root(call)
    artists = rows(call, """
        SELECT a.* FROM artists a
        WHERE a.album_count > 0
          AND (?::VARCHAR IS NULL OR EXISTS (SELECT 1 FROM tracks t
                                             WHERE t.albumartist_id = a.artist_id
                                               AND t.root = ?))
        ORDER BY a.name_key, a.name""", [root, root])
    return {"artists": {"ignoredArticles": "", "index": _indexed(artists, artist_element)}}


def get_indexes(call: Call) -> dict[str, Any]:
    """The same artists as getArtists, in the older `indexes` element."""
    index = get_artists(call)["artists"]["index"]
    for group in index:
        group["artist"] = [{"id": a["id"], "name": a["name"]} for a in group["artist"]]
    return {"indexes": {"ignoredArticles": "", "lastModified": _last_modified(call),
                        "index": index}}


def _last_modified(call: Call) -> int:
    return int(call.snapshot.loaded_at * 1000)


def _indexed(artists: list[dict[str, Any]], element) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for artist in artists:
        first = (artist["name_key"] or "#")[:1].upper()
        groups.setdefault(first if first.isalpha() else "#", []).append(element(artist))
    return [{"name": name, "artist": members} for name, members in groups.items()]


def get_artist(call: Call) -> dict[str, Any]:
    """An artist with its albums: those it is the album artist of, then those it plays on."""
    artist = artist_row(call, call.required("id"))
    albums = rows(call, """
        SELECT * FROM albums
        WHERE artist_id = ?
           OR album_id IN (SELECT album_id FROM tracks WHERE artist_id = ?)
        ORDER BY artist_id <> ?, year NULLS LAST, name_key, album_id""",
                  [artist["artist_id"]] * 3)
    element = artist_element(artist) | {"albumCount": len(albums),
                                        "album": [album_element(a) for a in albums]}
    return {"artist": element}


def get_album(call: Call) -> dict[str, Any]:
    album = album_row(call, call.required("id"))
    songs = rows(call, f"SELECT * FROM tracks WHERE album_id = ? ORDER BY {SONG_ORDER}",
                 [album["album_id"]])
    return {"album": album_element(album) | {"song": [child(s) for s in songs]}}


def get_song(call: Call) -> dict[str, Any]:
    return {"song": child(track(call, call.required("id")))}


ALBUM_ORDERS = {
    "random": "random()",
    "newest": "a.created DESC, a.name_key, a.album_id",
    "alphabeticalByName": "a.name_key, a.album_id",
    "alphabeticalByArtist": "ar.name_key, a.name_key, a.album_id",
}


def get_album_list2(call: Call) -> dict[str, Any]:
    """Albums by list type, paged with size (at most 500) and offset (albumList2)."""
    kind = call.required("type")
    size = call.optional_int("size", 10, lo=0, hi=MAX_LIST)
    offset = call.optional_int("offset", 0, lo=0)
    root = folder_root(call)
    if kind in EMPTY_LISTS:
        return {"albumList2": {"album": []}}
    where, params = _album_filter(call, kind)
    order = ALBUM_ORDERS.get(kind) or _year_order(call, kind)
    albums = rows(call, f"""
        SELECT a.* FROM albums a JOIN artists ar USING (artist_id)
        WHERE {where}
          AND (?::VARCHAR IS NULL OR EXISTS (SELECT 1 FROM tracks t
                                             WHERE t.album_id = a.album_id AND t.root = ?))
        ORDER BY {order} LIMIT ? OFFSET ?""", [*params, root, root, size, offset])
    return {"albumList2": {"album": [album_element(a) for a in albums]}}


def _album_filter(call: Call, kind: str) -> tuple[str, list[Any]]:
    if kind == "byYear":
        first, last = _year_range(call)
        return "a.year BETWEEN ? AND ?", [min(first, last), max(first, last)]
    if kind == "byGenre":
        genre = call.required("genre")
        return ("EXISTS (SELECT 1 FROM tracks t WHERE t.album_id = a.album_id "
                "AND t.genre = ?)"), [genre]
    if kind in ALBUM_ORDERS:
        return "true", []
    raise SubsonicError(GENERIC, f"Unknown list type: {kind[:40]}")


def _year_range(call: Call) -> tuple[int, int]:
    call.required("fromYear")
    call.required("toYear")
    return call.optional_int("fromYear", 0), call.optional_int("toYear", 0)


def _year_order(call: Call, kind: str) -> str:
    """byYear lists oldest first, or newest first when fromYear > toYear; byGenre by name."""
    if kind == "byYear":
        first, last = _year_range(call)
        return ("a.year DESC" if first > last else "a.year") + ", a.name_key, a.album_id"
    return "a.name_key, a.album_id"


def search3(call: Call) -> dict[str, Any]:
    """Artists, albums and songs whose names hold every word of the query, ignoring case and
    accents; an empty query (or '""') matches everything, for clients that sync the library."""
    words = _QUERY_NOISE.sub(" ", call.optional("query") or "").split()[:MAX_WORDS]
    keys = _keys(call, words)
    root = folder_root(call)
    counts = {kind: (call.optional_int(f"{kind}Count", 20, lo=0, hi=MAX_LIST),
                     call.optional_int(f"{kind}Offset", 0, lo=0))
              for kind in ("artist", "album", "song")}
    # The folder test only when a folder is asked for: DuckDB plans the EXISTS as a join with
    # every track even when `? IS NULL` holds (~10 ms of a search3 at 1,000,000 songs).
    in_root = ("AND EXISTS (SELECT 1 FROM tracks t WHERE t.{column} = {key} AND t.root = ?)"
               if root is not None else "")
    at_root = [root] if root is not None else []
    artists = _names(call.snapshot.artist_search, keys, root, *counts["artist"])
    artists = artists if artists is not None else rows(call, f"""
        SELECT a.* FROM artists a
        WHERE a.album_count > 0 AND {_all_words("a.name_key", keys)}
          {in_root.format(column="albumartist_id", key="a.artist_id")}
        ORDER BY a.name_key, a.artist_id LIMIT ? OFFSET ?""",
                   [*keys, *at_root, *counts["artist"]])
    albums = _names(call.snapshot.album_search, keys, root, *counts["album"])
    albums = albums if albums is not None else rows(call, f"""
        SELECT a.* FROM albums a JOIN artists ar USING (artist_id)
        WHERE {_all_words("(a.name_key || ' ' || ar.name_key)", keys)}
          {in_root.format(column="album_id", key="a.album_id")}
        ORDER BY a.name_key, a.album_id LIMIT ? OFFSET ?""",
                  [*keys, *at_root, *counts["album"]])
    songs = song_rows(call, _song_matches(call, keys, root, *counts["song"]))
    return {"searchResult3": {"artist": [artist_element(a) for a in artists],
                              "album": [album_element(a) for a in albums],
                              "song": [child(s) for s in songs]}}


def _names(index: NameSearch, keys: list[str], root: str | None, count: int,
           offset: int) -> list[dict[str, Any]] | None:
    """search3's artists or albums from the snapshot's index; None (run the SQL) when a
    music folder is asked for or the index leaves the query to the scan."""
    return None if root is not None else index.find(keys, offset, count)


def _song_matches(call: Call, keys: list[str], root: str | None, count: int,
                  offset: int) -> list[int]:
    """The song ids search3 answers, from the snapshot's trigram index (musicdb.serve.search)
    or, for the few queries it leaves to it, the scan it stands for. Only the ids: a top-n
    carrying every column of each matching row cost twice the search itself; the rows come
    from the in-memory table (song_rows)."""
    found = call.snapshot.search.find(keys, offset, count, root)
    if found is not None:
        return found
    return [r["song_id"] for r in rows(call, f"""
        SELECT song_id FROM tracks
        WHERE {_all_words("search_key", keys)} AND (?::VARCHAR IS NULL OR root = ?)
        ORDER BY search_rank LIMIT ? OFFSET ?""", [*keys, root, root, count, offset])]


def _all_words(key: str, keys: list[str]) -> str:
    """SQL that holds when every word is in `key`: one bound parameter per word."""
    return " AND ".join([f"contains({key}, ?)"] * len(keys)) or "true"


def _keys(call: Call, words: list[str]) -> list[str]:
    """The query's words as label_key compares names (the one normaliser, sql/00_functions)."""
    if not words:
        return []
    if all(word.isascii() for word in words):
        # label_key (lower, strip_accents, ß -> ss) of ASCII is its lower case (tested on
        # every ASCII character against the macro): no query (~0.8 ms) for most searches
        return [word.lower() for word in words]
    return call.snapshot.cursor().execute(  # the snapshot holds the macro (snapshot.py)
        "SELECT list_transform(?, lambda w: label_key(w))", [words]).fetchone()[0]


def get_random_songs(call: Call) -> dict[str, Any]:
    size = call.optional_int("size", 10, lo=0, hi=MAX_LIST)
    genre = call.optional("genre")
    first = call.optional_int("fromYear", -1)
    last = call.optional_int("toYear", -1)
    root = folder_root(call)
    songs = rows(call, """
        SELECT * FROM tracks
        WHERE (?::VARCHAR IS NULL OR genre = ?)
          AND (? < 0 OR year >= ?) AND (? < 0 OR year <= ?)
          AND (?::VARCHAR IS NULL OR root = ?)
        ORDER BY random() LIMIT ?""", [genre, genre, first, first, last, last, root, root, size])
    return {"randomSongs": {"song": [child(s) for s in songs]}}


def get_songs_by_genre(call: Call) -> dict[str, Any]:
    genre = call.required("genre")
    count = call.optional_int("count", 10, lo=0, hi=MAX_LIST)
    offset = call.optional_int("offset", 0, lo=0)
    root = folder_root(call)
    songs = rows(call, f"""
        SELECT * FROM tracks WHERE genre = ? AND (?::VARCHAR IS NULL OR root = ?)
        ORDER BY artist_key, album_key, {SONG_ORDER} LIMIT ? OFFSET ?""",
                 [genre, root, root, count, offset])
    return {"songsByGenre": {"song": [child(s) for s in songs]}}


def get_top_songs(call: Call) -> dict[str, Any]:
    """musicdb keeps no play counts or charts: an artist's top songs are an empty list."""
    call.required("artist")
    return {"topSongs": {"song": []}}


def get_genres(call: Call) -> dict[str, Any]:
    genres = rows(call, """
        SELECT genre, count(*)::INTEGER AS songs, count(DISTINCT album_id)::INTEGER AS albums
        FROM tracks WHERE genre IS NOT NULL GROUP BY genre ORDER BY genre""")
    return {"genres": {"genre": [{"value": g["genre"], "songCount": g["songs"],
                                  "albumCount": g["albums"]} for g in genres]}}


ENDPOINTS: dict[str, Endpoint] = {
    "getArtists": get_artists,
    "getIndexes": get_indexes,
    "getArtist": get_artist,
    "getAlbum": get_album,
    "getSong": get_song,
    "getAlbumList2": get_album_list2,
    "search3": search3,
    "getRandomSongs": get_random_songs,
    "getSongsByGenre": get_songs_by_genre,
    "getTopSongs": get_top_songs,
    "getGenres": get_genres,
}
