"""Two Subsonic client libraries written by others, against a real `musicdb serve` process:
py-opensonic (import libopensonic: JSON over POSTed forms, token auth and API keys, aiohttp)
and py-sonic (import libsonic: JSON over POSTed forms, token auth, urllib). Each connects,
pings, lists artists and albums, searches, asks for similar songs, streams a song and gets the
file's bytes, and calls getSonicSimilarTracks (py-sonic has no method for it: a raw request
through its own request and authentication code)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import libopensonic
import libsonic
import pytest
from libopensonic import AsyncConnection

from tests.serving import (
    LIBRARY_SONGS,
    PASSWORD,
    USER,
    Server,
    library_db,  # noqa: F401  (a module fixture)
    server,  # noqa: F401  (a module fixture)
)

ARTISTS = sorted({artist for artist, *_ in LIBRARY_SONGS})
ALBUMS = sorted({album for _, album, *_ in LIBRARY_SONGS})


def host_port(server: Server) -> tuple[str, int]:  # noqa: F811
    parts = urlsplit(server.url)
    return f"{parts.scheme}://{parts.hostname}", parts.port


def file_of(library_db: Path, song_path: str) -> bytes:  # noqa: F811
    return (library_db.parent / "library" / song_path).read_bytes()


# --- py-opensonic -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def opensonic(server: Server) -> Iterator[libopensonic.Connection]:  # noqa: F811
    base, port = host_port(server)
    conn = libopensonic.Connection(base, USER, PASSWORD, port=port)
    yield conn
    conn.cleanup()
    conn._loop.close()  # cleanup() stops its private event loop but leaves it open


def test_opensonic_browses_and_searches(opensonic, server):  # noqa: F811
    assert opensonic.ping() is True
    extensions = {e.name for e in opensonic.get_open_subsonic_extensions()}
    assert "sonicSimilarity" in extensions
    artists = opensonic.get_artists()
    names = sorted(a.name for index in artists.index for a in index.artist)
    assert names == ARTISTS
    first = next(a for index in artists.index for a in index.artist if a.name == "Noise Garden")
    artist = opensonic.get_artist(first.id)
    assert [a.name for a in artist.album] == ["Weeds"]
    album = opensonic.get_album(artist.album[0].id)
    assert [s.title for s in album.song] == ["Soft Noise", "Loud Noise"]
    listed = opensonic.get_album_list2("alphabeticalByName", size=50)
    assert [a.name for a in listed] == ALBUMS
    found = opensonic.search3("hum")
    assert sorted(s.title for s in found.song) == ["High Hum", "Low Hum"]
    assert [a.name for a in found.album] == ["Long Hum"]
    everything = opensonic.search3("", song_count=500)
    assert len(everything.song) == len(LIBRARY_SONGS)
    song = opensonic.get_song(album.song[0].id)
    assert song.title == "Soft Noise"
    assert song.artist_id == first.id


def test_opensonic_similar_songs_and_sonic_similarity(opensonic, server):  # noqa: F811
    song = opensonic.search3("loud noise").song[0]
    similar = opensonic.get_similar_songs(song.id, count=3)
    raw = server.call("getSimilarSongs", id=song.id, count=3)["similarSongs"]["song"]
    assert [s.id for s in similar] == [s["id"] for s in raw]
    assert len(similar) == 3
    assert song.id not in {s.id for s in similar}
    by_artist = opensonic.get_similar_songs2(song.artist_id, count=10)
    assert by_artist[0].artist == "Noise Garden"
    matches = opensonic.get_sonic_similar_tracks(song.id, count=3)
    assert [m.entry.id for m in matches] == [s.id for s in similar]
    assert all(0 < m.similarity < 1 for m in matches)
    start, end = song.id, opensonic.search3("low hum").song[0].id
    path = opensonic.find_sonic_path(start, end, count=4)
    assert [m.entry.id for m in path][::3] == [start, end]
    assert len(path) == 4


def test_opensonic_streams_the_file_and_logs_in_with_an_api_key(server,  # noqa: F811
                                                               library_db):  # noqa: F811
    base, port = host_port(server)

    async def session() -> tuple[bytes, bytes, str]:
        conn = AsyncConnection(base, api_key=server.api_key, port=port)
        try:
            song = (await conn.search3("fast clicks")).song[0]
            response = await conn.stream(song.id)
            data = await response.read()
            part = await conn.stream(song.id, byte_range="bytes=0-99")
            return data, await part.read(), song.path
        finally:
            await conn.cleanup()

    data, first_bytes, path = asyncio.run(session())
    assert data == file_of(library_db, path)
    assert first_bytes == data[:100]


# --- py-sonic ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pysonic(server: Server) -> libsonic.Connection:  # noqa: F811
    base, port = host_port(server)
    return libsonic.Connection(base, USER, PASSWORD, port=port)


def test_pysonic_browses_and_searches(pysonic):
    assert pysonic.ping() is True
    artists = pysonic.getArtists()["artists"]["index"]
    names = sorted(a["name"] for index in artists for a in index["artist"])
    assert names == ARTISTS
    drone = next(a for index in artists for a in index["artist"] if a["name"] == "Drone Choir")
    albums = pysonic.getArtist(drone["id"])["artist"]["album"]
    assert [a["name"] for a in albums] == ["Long Hum"]
    songs = pysonic.getAlbum(albums[0]["id"])["album"]["song"]
    assert [s["title"] for s in songs] == ["Low Hum", "High Hum"]
    listed = pysonic.getAlbumList2("newest", size=50)["albumList2"]["album"]
    assert sorted(a["name"] for a in listed) == ALBUMS
    found = pysonic.search3("clicks")["searchResult3"]
    assert sorted(s["title"] for s in found["song"]) == ["Fast Clicks", "Slow Clicks"]
    assert [a["name"] for a in found["artist"]] == []
    assert [a["name"] for a in pysonic.search3("machine")["searchResult3"]["artist"]] == [
        "Click Machine"]
    assert len(pysonic.getRandomSongs(size=4)["randomSongs"]["song"]) == 4
    assert pysonic.getGenres()["genres"]["genre"][0]["value"] == "Synthetic"


def test_pysonic_similar_songs_stream_and_sonic_similarity(pysonic, library_db):  # noqa: F811
    song = pysonic.search3("soft noise")["searchResult3"]["song"][0]
    similar = pysonic.getSimilarSongs(song["id"], count=4)["similarSongs"]["song"]
    assert len(similar) == 4
    assert song["id"] not in {s["id"] for s in similar}
    similar2 = pysonic.getSimilarSongs2(song["artistId"], count=4)["similarSongs2"]["song"]
    assert similar2[0]["artist"] == "Noise Garden"

    stream = pysonic.stream(song["id"])
    assert stream.read() == file_of(library_db, song["path"])
    assert pysonic.download(song["id"]).read() == file_of(library_db, song["path"])

    # no getSonicSimilarTracks in py-sonic: its own request builder (auth, POSTed form)
    request = pysonic._getRequest("getSonicSimilarTracks.view", {"id": song["id"],
                                                                 "count": 4})
    answer = pysonic._doInfoReq(request)
    pysonic._checkStatus(answer)
    assert [m["entry"]["id"] for m in answer["sonicMatch"]] == [s["id"] for s in similar]
    with pytest.raises(libsonic.errors.DataNotFoundError):
        pysonic.getSong("so-999999")
