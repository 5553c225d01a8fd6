"""OpenSubsonic conformance of `musicdb serve`: every endpoint of browse, sonic, media and
playlists in XML and JSON (element and attribute names of the specification), error codes
10 and 70, Range requests, and what must never be served (ids that name no song, a file deleted
after the ingest, symlinks out of the library root, SQL in parameters).

One real server process on a copy of the shared library (tests/serving.py) into which four
more songs were ingested: one whose file is then deleted, one then replaced by a symlink to a
file outside the library, one that was a symlink to a file outside from the start, and one
without an album tag.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb
import numpy as np
import pytest

from musicdb.audio.synth import noise, tag, write_audio
from musicdb.similarity.index import VectorIndex
from musicdb.similarity.paths import song_path
from tests.serving import (
    COVERED,
    LIBRARY_SONGS,
    Server,
    copy_library,
    ingest,
    library_db,  # noqa: F401  (a module fixture)
    png,
    start_server,
)

NS = "{http://subsonic.org/restapi}"
SONGS = len(LIBRARY_SONGS)
EXTRA = 4  # the songs of "Odd Ones" the fixture adds
ALBUMS = 5  # three shared albums, "Odd" and "[Unknown Album]"
CHILD_ATTRIBUTES = {"id", "parent", "isDir", "title", "album", "artist", "track", "year",
                    "genre", "coverArt", "size", "contentType", "suffix", "duration",
                    "bitRate", "path", "created", "albumId", "artistId", "type", "mediaType"}
ALBUM_ATTRIBUTES = {"id", "name", "artist", "artistId", "coverArt", "songCount", "duration",
                    "created", "year", "genre"}
INJECTIONS = ["x' OR '1'='1", "'; DROP TABLE tracks; --", '" OR 1=1 --', "%", "_", "\\"]


@pytest.fixture(scope="module")
def served(library_db: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811
    """The server, and what the tests know about its odd songs."""
    folder = tmp_path_factory.mktemp("api")
    db = copy_library(library_db, folder)
    extra, outside = folder / "extra", folder / "outside"
    extra.mkdir()
    outside.mkdir()
    for name, seed in (("Gone", 11), ("Swapped", 12)):
        path = write_audio(extra / f"{name}.flac", noise(2.0, seed=seed))
        tag(path, artist="Odd Ones", album="Odd", title=name)
    target = write_audio(outside / "secret.flac", noise(2.0, seed=13))
    tag(target, artist="Odd Ones", album="Odd", title="Linked")
    (extra / "Linked.flac").symlink_to(target)
    tag(write_audio(extra / "Loose.flac", noise(2.0, seed=14)), artist="Odd Ones", title="Loose")
    ingest(extra, db)
    (extra / "Gone.flac").unlink()
    (extra / "Swapped.flac").unlink()
    (extra / "Swapped.flac").symlink_to(target)
    # a playlist in the database's folder, in the m3u8 format musicdb writes
    paths = sorted(str(p) for p in (library_db.parent / "library").rglob("*.flac"))
    (folder / "mix.m3u8").write_text(
        "#EXTM3U\n" + "".join(f"#EXTINF:-1,x\n{p}\n" for p in paths[:2])
        + "/not/a/library/song.flac\n", encoding="utf-8")
    server = start_server(db, folder / "run")
    yield server
    assert server.stop() == 0, server.stderr()


@pytest.fixture(scope="module")
def songs(served: Server) -> dict[str, dict]:
    """Every song by title (an empty search3 query returns them all)."""
    found = served.call("search3", query="", songCount=500)["searchResult3"]["song"]
    return {s["title"]: s for s in found}


def xml_ok(server: Server, method: str, **params) -> ET.Element:
    root = server.xml(method, **params)
    assert root.tag == f"{NS}subsonic-response"
    assert root.get("status") == "ok", ET.tostring(root)
    assert root.get("version")
    assert root.get("openSubsonic") == "true"
    return root


def xml_error(server: Server, method: str, **params) -> int:
    root = server.xml(method, **params)
    assert root.get("status") == "failed"
    error = root.find(f"{NS}error")
    assert error is not None
    assert error.get("message")
    return int(error.get("code"))


# --- browsing ----------------------------------------------------------------------------


def test_artists_are_indexed_by_letter_in_xml_and_json(served: Server):
    body = served.call("getArtists")["artists"]
    assert body["ignoredArticles"] == ""
    names = {a["name"]: a for group in body["index"] for a in group["artist"]}
    assert {"Drone Choir", "Click Machine", "Noise Garden", "Odd Ones"} <= set(names)
    assert all(a["id"].startswith("ar-") and a["albumCount"] >= 1 for a in names.values())
    assert [g["name"] for g in body["index"]] == sorted(g["name"] for g in body["index"])

    root = xml_ok(served, "getArtists")
    artists = root.find(f"{NS}artists")
    assert artists.get("ignoredArticles") == ""
    xml_names = {a.get("name") for a in artists.iter(f"{NS}artist")}
    assert xml_names == set(names)
    assert all(i.get("name") for i in artists.findall(f"{NS}index"))

    indexes = xml_ok(served, "getIndexes").find(f"{NS}indexes")
    assert int(indexes.get("lastModified")) > 0
    assert {a.get("name") for a in indexes.iter(f"{NS}artist")} == set(names)


def test_artist_and_album_list_their_albums_and_songs_in_track_order(served: Server):
    index = served.call("getArtists")["artists"]["index"]
    drone = next(a for g in index for a in g["artist"] if a["name"] == "Drone Choir")
    artist = served.call("getArtist", id=drone["id"])["artist"]
    assert artist["name"] == "Drone Choir"
    assert artist["albumCount"] == 1
    (album,) = artist["album"]
    assert album["name"] == "Long Hum"
    assert album["songCount"] == 2
    assert set(album) >= ALBUM_ATTRIBUTES

    full = served.call("getAlbum", id=album["id"])["album"]
    assert [s["title"] for s in full["song"]] == ["Low Hum", "High Hum"]
    assert [s["track"] for s in full["song"]] == [1, 2]
    assert full["duration"] == sum(s["duration"] for s in full["song"])

    root = xml_ok(served, "getAlbum", id=album["id"])
    element = root.find(f"{NS}album")
    assert set(element.attrib) >= ALBUM_ATTRIBUTES
    for song in element.findall(f"{NS}song"):
        assert set(song.attrib) >= CHILD_ATTRIBUTES
        assert song.get("isDir") == "false"
        assert song.get("parent") == album["id"]
    assert xml_ok(served, "getArtist", id=drone["id"]).find(f"{NS}artist/{NS}album") is not None


def test_song_is_a_child_with_the_file_facts(served: Server, songs, library_db):  # noqa: F811
    song = served.call("getSong", id=songs["Fast Clicks"]["id"])["song"]
    assert set(song) >= CHILD_ATTRIBUTES
    file = library_db.parent / "library" / "Click Machine" / "Beats" / "01 Fast Clicks.ogg"
    assert song["path"] == "Click Machine/Beats/01 Fast Clicks.ogg"
    assert song["size"] == file.stat().st_size
    assert (song["suffix"], song["contentType"]) == ("ogg", "audio/ogg")
    assert song["duration"] in (2, 3)
    assert song["bitRate"] > 0
    assert (song["isDir"], song["type"], song["mediaType"]) == (False, "music", "song")
    assert song["id"].startswith("so-")
    assert song["albumId"].startswith("al-")
    assert song["artistId"].startswith("ar-")
    assert song["artist"] == "Click Machine"
    element = xml_ok(served, "getSong", id=song["id"]).find(f"{NS}song")
    assert element.get("title") == "Fast Clicks"
    assert element.get("isDir") == "false"


@pytest.mark.parametrize("kind", ["random", "newest", "alphabeticalByName",
                                  "alphabeticalByArtist"])
def test_album_lists_page_through_every_album(served: Server, kind: str):
    everything = served.call("getAlbumList2", type=kind, size=500)["albumList2"]["album"]
    assert len(everything) == ALBUMS
    paged = [served.call("getAlbumList2", type=kind, size=1, offset=i)["albumList2"]["album"]
             for i in range(ALBUMS + 1)]
    assert [len(p) for p in paged] == [1] * ALBUMS + [0]
    if kind != "random":
        assert [p[0]["id"] for p in paged[:ALBUMS]] == [a["id"] for a in everything]
    if kind == "alphabeticalByName":
        assert [a["name"] for a in everything] == ["[Unknown Album]", "Beats", "Long Hum",
                                                   "Odd", "Weeds"]
    element = xml_ok(served, "getAlbumList2", type=kind).find(f"{NS}albumList2")
    assert len(element.findall(f"{NS}album")) == ALBUMS


def test_album_lists_by_year_and_genre_and_the_empty_kinds(served: Server):
    def names(**params) -> list[str]:
        return [a["name"] for a in
                served.call("getAlbumList2", size=50, **params)["albumList2"]["album"]]

    assert sorted(names(type="byYear", fromYear=2026, toYear=2026)) == ["Beats", "Long Hum",
                                                                        "Weeds"]
    assert names(type="byYear", fromYear=1990, toYear=2000) == []
    assert sorted(names(type="byGenre", genre="Synthetic")) == ["Beats", "Long Hum", "Weeds"]
    for kind in ("frequent", "recent", "starred", "highest"):
        assert names(type=kind) == []
    assert served.error("getAlbumList2")["code"] == 10
    assert served.error("getAlbumList2", type="byYear")["code"] == 10
    assert served.error("getAlbumList2", type="byGenre")["code"] == 10
    assert served.error("getAlbumList2", type="noSuchKind")["code"] == 0
    assert served.error("getAlbumList2", type="newest", size="many")["code"] == 0


def test_search3_matches_words_ignoring_case_and_accents(served: Server):
    def search(query: str, **counts) -> dict:
        return served.call("search3", query=query, **counts)["searchResult3"]

    found = search("HUM")
    assert sorted(s["title"] for s in found["song"]) == ["High Hum", "Low Hum"]
    assert [a["name"] for a in found["album"]] == ["Long Hum"]
    assert found["artist"] == []
    assert [s["title"] for s in search("drone low")["song"]] == ["Low Hum"]
    assert [a["name"] for a in search("garden")["artist"]] == ["Noise Garden"]
    assert [s["title"] for s in search("clïcks fást")["song"]] == ["Fast Clicks"]
    assert search("nothing like this") == {"artist": [], "album": [], "song": []}

    root = xml_ok(served, "search3", query="hum").find(f"{NS}searchResult3")
    assert {s.get("title") for s in root.findall(f"{NS}song")} == {"High Hum", "Low Hum"}
    assert root.find(f"{NS}album").get("name") == "Long Hum"


@pytest.mark.parametrize("query", ["", '""'])
def test_search3_with_an_empty_query_pages_through_everything(served: Server, query: str):
    total = SONGS + EXTRA
    every = served.call("search3", query=query, songCount=500)["searchResult3"]
    assert len(every["song"]) == total
    assert len(every["album"]) == ALBUMS
    pages = [served.call("search3", query=query, songCount=4, songOffset=o, artistCount=0,
                         albumCount=0)["searchResult3"] for o in range(0, total + 4, 4)]
    assert [s["id"] for p in pages for s in p["song"]] == [s["id"] for s in every["song"]]
    assert all(p["artist"] == [] and p["album"] == [] for p in pages)


@pytest.mark.parametrize("text", INJECTIONS)
def test_sql_in_parameters_is_only_text(served: Server, text: str):
    assert served.call("search3", query=text)["searchResult3"] == {"artist": [], "album": [],
                                                                   "song": []}
    for method in ("getSong", "getAlbum", "getArtist", "getPlaylist", "getSimilarSongs"):
        assert served.error(method, id=text)["code"] == 70
    assert served.call("getRandomSongs", genre=text)["randomSongs"]["song"] == []
    assert served.call("search3", query="", songCount=500)["searchResult3"]["song"]


def test_random_songs_honour_size_genre_and_years(served: Server):
    def titles(**params) -> list[str]:
        return [s["title"] for s in served.call("getRandomSongs", **params)["randomSongs"]["song"]]

    assert len(titles(size=3)) == 3
    assert len(titles(size=500)) == SONGS + EXTRA
    assert len(titles(size=500, genre="Synthetic")) == SONGS
    assert len(titles(size=500, fromYear=2026, toYear=2026)) == SONGS
    assert titles(size=500, fromYear=2027) == []
    assert titles(genre="Polka") == []
    songs = xml_ok(served, "getRandomSongs", size=2).find(f"{NS}randomSongs")
    assert len(songs.findall(f"{NS}song")) == 2


def test_genres_top_songs_and_songs_by_genre(served: Server):
    (genre,) = served.call("getGenres")["genres"]["genre"]
    assert genre == {"value": "Synthetic", "songCount": SONGS, "albumCount": 3}
    element = xml_ok(served, "getGenres").find(f"{NS}genres/{NS}genre")
    assert element.text == "Synthetic"
    assert element.get("songCount") == str(SONGS)
    assert served.call("getTopSongs", artist="Drone Choir")["topSongs"] == {"song": []}
    assert xml_ok(served, "getTopSongs", artist="x").find(f"{NS}topSongs") is not None
    by_genre = served.call("getSongsByGenre", genre="Synthetic", count=50)
    assert len(by_genre["songsByGenre"]["song"]) == SONGS


def test_missing_and_unknown_ids_are_errors_10_and_70_in_both_formats(served: Server):
    for method in ("getSong", "getAlbum", "getArtist", "getPlaylist", "getSimilarSongs",
                   "getSimilarSongs2", "getSonicSimilarTracks", "stream", "download",
                   "getCoverArt"):
        assert served.error(method)["code"] == 10, method
        assert xml_error(served, method) == 10, method
    for method, bad in (("getSong", "so-999999"), ("getAlbum", "al-0000000000000000"),
                        ("getArtist", "ar-0000000000000000"), ("getPlaylist", "pl-0"),
                        ("getSimilarSongs2", "so-999999"), ("getSonicSimilarTracks", "so-0")):
        assert served.error(method, id=bad)["code"] == 70, method
        assert xml_error(served, method, id=bad) == 70, method
    assert served.error("findSonicPath", startSongId="so-1")["code"] == 10
    assert served.error("findSonicPath", startSongId="so-1", endSongId="so-999999")["code"] == 70
    assert served.error("getSimilarSongs", id="so-1", count="ten")["code"] == 0


# --- similar songs -----------------------------------------------------------------------


def test_similar_songs_of_a_song_rank_as_musicdb_similar(served: Server, songs, run):
    song = songs["Low Hum"]
    answer = json.loads(run("similar", "--songs", song["id"].removeprefix("so-"), "-n", "5",
                            "--json", "--db", served.db).stdout)
    expected = [f"so-{r['song_id']}" for r in answer["results"]]
    for method, key in (("getSimilarSongs", "similarSongs"), ("getSimilarSongs2",
                                                              "similarSongs2")):
        got = served.call(method, id=song["id"], count=5)[key]["song"]
        assert [s["id"] for s in got] == expected
        element = xml_ok(served, method, id=song["id"], count=5).find(f"{NS}{key}")
        assert [s.get("id") for s in element.findall(f"{NS}song")] == expected
    assert served.call("getSimilarSongs", id=song["id"], count=0)["similarSongs"] == {"song": []}


def test_similar_songs_of_an_artist_start_with_it_then_its_nearest_artists(served: Server,
                                                                            songs, run):
    artist_id = songs["Soft Noise"]["artistId"]
    nearest = json.loads(run("similar", "Noise Garden", "-n", "10", "--json", "--db",
                             served.db).stdout)["results"]
    got = served.call("getSimilarSongs2", id=artist_id, count=50)["similarSongs2"]["song"]
    order = ["Noise Garden"] + [r["name"] for r in nearest]
    # one song of each artist per round, in the order of musicdb similar
    first_round = [s["artist"] for s in got[:len(order)]]
    assert first_round == order
    assert len(got) == len({s["id"] for s in got}) == SONGS + EXTRA


def test_similar_songs_of_an_album_leave_out_its_own_songs(served: Server, songs):
    album = songs["Low Hum"]["albumId"]
    got = served.call("getSimilarSongs", id=album, count=4)["similarSongs"]["song"]
    assert len(got) == 4
    assert all(s["albumId"] != album for s in got)


def test_sonic_similar_tracks_are_sonic_matches_with_falling_similarity(served: Server, songs):
    song = songs["Loud Noise"]
    matches = served.call("getSonicSimilarTracks", id=song["id"], count=4)["sonicMatch"]
    expected = served.call("getSimilarSongs", id=song["id"], count=4)["similarSongs"]["song"]
    assert [m["entry"]["id"] for m in matches] == [s["id"] for s in expected]
    scores = [m["similarity"] for m in matches]
    assert all(0 < s < 1 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert set(matches[0]["entry"]) >= CHILD_ATTRIBUTES

    root = xml_ok(served, "getSonicSimilarTracks", id=song["id"], count=4)
    elements = root.findall(f"{NS}sonicMatch")
    assert [e.find(f"{NS}entry").get("id") for e in elements] == [s["id"] for s in expected]
    assert [float(e.get("similarity")) for e in elements] == scores
    every_other = SONGS + EXTRA - 1  # fewer than the default count of 10
    assert len(served.call("getSonicSimilarTracks", id=song["id"])["sonicMatch"]) == every_other
    assert served.error("getSonicSimilarTracks", id=song["albumId"])["code"] == 70


def test_find_sonic_path_goes_from_start_to_end_as_song_path(served: Server, songs):
    start, end = songs["Low Hum"], songs["Loud Noise"]
    path = served.call("findSonicPath", startSongId=start["id"], endSongId=end["id"],
                       count=4)["sonicMatch"]
    ids = [m["entry"]["id"] for m in path]
    assert len(ids) == 4
    assert ids[0] == start["id"]
    assert ids[-1] == end["id"]
    assert len(set(ids)) == 4
    assert path[0]["similarity"] == 1.0
    with duckdb.connect(str(served.db), read_only=True) as con:
        index = VectorIndex.load(con)
    steps = song_path(index, int(start["id"][3:]), int(end["id"][3:]), 4)
    assert ids == [f"so-{s.song_id}" for s in steps]
    root = xml_ok(served, "findSonicPath", startSongId=start["id"], endSongId=end["id"],
                  count=4)
    assert [e.find(f"{NS}entry").get("id") for e in root.findall(f"{NS}sonicMatch")] == ids
    default = served.call("findSonicPath", startSongId=start["id"], endSongId=end["id"])
    assert len(default["sonicMatch"]) <= 25
    same = served.call("findSonicPath", startSongId=start["id"], endSongId=start["id"])
    assert [m["entry"]["id"] for m in same["sonicMatch"]] == [start["id"]]


# --- media -------------------------------------------------------------------------------


def test_stream_and_download_send_the_file_with_range_support(served: Server, songs,
                                                             library_db):  # noqa: F811
    song = songs["Slow Clicks"]
    data = (library_db.parent / "library" / song["path"]).read_bytes()
    whole = served.get("stream", id=song["id"], format="raw", maxBitRate=128)
    assert whole.status_code == 200
    assert whole.content == data
    assert whole.headers["content-type"] == "audio/flac"
    assert whole.headers["accept-ranges"] == "bytes"
    part = served.client.get(f"{served.url}/rest/stream.view",
                             params=served.params(None, id=song["id"]),
                             headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    assert part.content == data[100:1100]
    tail = served.client.get(f"{served.url}/rest/stream", params=served.params(None,
                                                                               id=song["id"]),
                             headers={"Range": "bytes=-50"})
    assert tail.status_code == 206
    assert tail.content == data[-50:]
    posted = served.client.post(f"{served.url}/rest/stream", data=served.params(None,
                                                                            id=song["id"]),
                                headers={"Range": "bytes=10-19"})
    assert posted.status_code == 206  # clients that POST every call (formPost) seek too
    assert posted.content == data[10:20]
    download = served.get("download", id=song["id"])
    assert download.content == data
    assert download.headers["content-disposition"].startswith("attachment")


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd", "so-1/../../../etc/passwd",
                                 "so-0", "so-1.", "so--1", "%2e%2e%2fetc%2fpasswd"])
def test_stream_serves_no_path_from_the_request(served: Server, bad: str):
    for method in ("stream", "download"):
        response = served.get(method, id=bad)
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["subsonic-response"]["error"]["code"] == 70
        assert xml_error(served, method, id=bad) == 70


@pytest.mark.parametrize("title", ["Gone", "Swapped", "Linked"])
def test_songs_deleted_or_linked_out_of_the_root_are_not_served(served: Server, songs,
                                                                title: str):
    song = songs[title]  # still a library song: the ingest has not seen the change
    assert song["path"] == ("secret.flac" if title == "Linked" else f"{title}.flac")
    for method in ("stream", "download", "getCoverArt"):
        response = served.get(method, id=song["id"])
        assert b"secret" not in response.content[:4096]
        assert b"fLaC" not in response.content[:4]
        error = response.json()["subsonic-response"]["error"]
        assert error["code"] == 70
        if method != "getCoverArt" and title == "Gone":  # the player is told why
            assert "missing (moved or deleted since the last ingest)" in error["message"]


def test_cover_art_is_the_embedded_picture_or_a_404(served: Server, songs):
    covered = songs[COVERED]
    for cover_id in (covered["id"], covered["albumId"], covered["artistId"],
                     songs["High Hum"]["id"]):  # a song of the album: the album's cover
        response = served.get("getCoverArt", id=cover_id, size=64)
        assert response.status_code == 200, cover_id
        assert response.headers["content-type"] == "image/png"
        assert response.content == png()
    missing = served.get("getCoverArt", id=songs["Soft Noise"]["id"])
    assert missing.status_code == 404
    assert missing.json()["subsonic-response"]["error"]["code"] == 70
    assert served.get("getCoverArt", id="../../etc/passwd").status_code == 404


# --- playlists ---------------------------------------------------------------------------


def test_playlists_are_the_m3u8_files_beside_the_database(served: Server, songs,
                                                         library_db):  # noqa: F811
    (playlist,) = served.call("getPlaylists")["playlists"]["playlist"]
    assert playlist["name"] == "mix"
    assert playlist["songCount"] == 2
    assert playlist["id"].startswith("pl-")
    assert playlist["readonly"] is True
    full = served.call("getPlaylist", id=playlist["id"])["playlist"]
    files = sorted(str(p) for p in (library_db.parent / "library").rglob("*.flac"))[:2]
    by_path = {str(library_db.parent / "library" / s["path"]): s["id"] for s in songs.values()}
    assert [e["id"] for e in full["entry"]] == [by_path[f] for f in files]
    assert full["duration"] == sum(e["duration"] for e in full["entry"])
    element = xml_ok(served, "getPlaylist", id=playlist["id"]).find(f"{NS}playlist")
    assert element.get("name") == "mix"
    assert len(element.findall(f"{NS}entry")) == 2
    listed = xml_ok(served, "getPlaylists").find(f"{NS}playlists")
    assert [p.get("id") for p in listed.findall(f"{NS}playlist")] == [playlist["id"]]


def test_ids_are_the_same_after_a_restart(served: Server, tmp_path: Path):
    def ids(server: Server) -> list[str]:
        body = server.call("search3", query="", songCount=500, artistCount=500,
                           albumCount=500)["searchResult3"]
        playlists = server.call("getPlaylists")["playlists"]["playlist"]
        return sorted(x["id"] for key in ("artist", "album", "song") for x in body[key]) + [
            p["id"] for p in playlists]

    again = start_server(served.db, tmp_path)
    try:
        assert ids(again) == ids(served)
    finally:
        assert again.stop() == 0


def test_similarity_scores_follow_the_distances(served: Server, songs):
    """similarity = 1 / (1 + d / sqrt(2 * dims)): the index's distances give the scores."""
    with duckdb.connect(str(served.db), read_only=True) as con:
        index = VectorIndex.load(con)
    song = songs["Low Hum"]
    matches = served.call("getSonicSimilarTracks", id=song["id"], count=3)["sonicMatch"]
    scale = np.sqrt(2 * index.z.shape[1])
    nearest = index.nearest(int(song["id"][3:]), 3)
    assert [m["similarity"] for m in matches] == [round(1 / (1 + d / scale), 4)
                                                  for _, d in nearest]


def test_music_folder_filters_keep_one_library_root(served: Server):
    folders = served.call("getMusicFolders")["musicFolders"]["musicFolder"]
    assert len(folders) == 2  # the shared library and "extra"
    extra = next(f["id"] for f in folders if f["name"] == "extra")
    found = served.call("search3", query="", songCount=50, musicFolderId=extra)["searchResult3"]
    assert sorted(s["title"] for s in found["song"]) == ["Gone", "Linked", "Loose", "Swapped"]
    assert [a["name"] for a in found["album"]] == ["[Unknown Album]", "Odd"]
    assert [a["name"] for a in found["artist"]] == ["Odd Ones"]
    albums = served.call("getAlbumList2", type="newest", musicFolderId=extra)["albumList2"]
    assert sorted(a["name"] for a in albums["album"]) == ["Odd", "[Unknown Album]"]
    songs = served.call("getRandomSongs", size=50, musicFolderId=extra)["randomSongs"]["song"]
    assert len(songs) == EXTRA
    index = served.call("getArtists", musicFolderId=extra)["artists"]["index"]
    assert [a["name"] for group in index for a in group["artist"]] == ["Odd Ones"]
    assert served.error("search3", query="", musicFolderId=99)["code"] == 70


def test_a_song_without_an_album_tag_is_on_its_artists_unknown_album(served: Server, songs):
    loose = songs["Loose"]
    assert loose["album"] == "[Unknown Album]"
    album = served.call("getAlbum", id=loose["albumId"])["album"]
    assert (album["name"], album["artist"]) == ("[Unknown Album]", "Odd Ones")
    assert [s["title"] for s in album["song"]] == ["Loose"]
    artist = served.call("getArtist", id=loose["artistId"])["artist"]
    assert sorted(a["name"] for a in artist["album"]) == ["Odd", "[Unknown Album]"]
    assert artist["albumCount"] == 2
