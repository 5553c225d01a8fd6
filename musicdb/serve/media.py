"""stream, download and getCoverArt: the original bytes of a library song, or its embedded art.

A request names a song by its id, never by a path. The file served is the path the snapshot
holds for that id, and only when its real path (symlinks resolved) lies inside one of the
library roots and is a regular file; anything else (an id not in the library, a file deleted
or replaced by a symlink out of the roots since the ingest, a path with `..`) is Subsonic error
70 and nothing is read. The response is Starlette's FileResponse, which answers HTTP Range
requests with 206 and Content-Range (players seek that way), here on POST too (SongFile).
There is no transcoding: `format` and `maxBitRate` are accepted and ignored, as Navidrome does
without a transcoder.

`stream_song(snapshot, song_id, request)` is the same for the explorer's player (a plain 404
instead of a Subsonic error body).
"""

from __future__ import annotations

import base64
import binascii
import stat
import struct
from pathlib import Path
from typing import Any

import mutagen
from mutagen.flac import Picture
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response

from musicdb.serve import render
from musicdb.serve.browse import rows
from musicdb.serve.protocol import NOT_FOUND, Call, Endpoint, SubsonicError

FRONT_COVER = 3  # the picture type ID3 and FLAC give the front cover
# What mutagen raises on unreadable or damaged tags: its own errors, and (fuzzing found, see
# musicdb.audio.tags) plain IndexError/struct.error and friends from a corrupted header.
DAMAGED_TAGS = (mutagen.MutagenError, OSError, ValueError, EOFError, IndexError, KeyError,
                TypeError, AttributeError, struct.error)
ART_CACHE = "private, max-age=86400"


class SongFile(FileResponse):
    """A FileResponse that honours Range on POST too: Subsonic clients may POST every call
    (OpenSubsonic formPost; py-opensonic does by default), and Starlette reads Range only on
    GET and HEAD, so a player seeking by POST would get the whole file again."""

    async def __call__(self, scope, receive, send) -> None:
        if scope.get("type") == "http" and scope.get("method") == "POST":
            scope = {**scope, "method": "GET"}
        await super().__call__(scope, receive, send)


class NotServable(Exception):
    """The id names no file the server may send (the reason is for the log, not the client;
    `client` is what the client is told)."""

    def __init__(self, reason: str, client: str = "Song not found") -> None:
        super().__init__(reason)
        self.client = client


def _track(snapshot: Any, song_id: str) -> dict[str, Any]:
    cursor = snapshot.cursor()
    result = cursor.execute("SELECT id, path, content_type, suffix, title, artist "
                            "FROM tracks WHERE id = ?", [song_id])
    names = [d[0] for d in result.description]
    found = result.fetchone()
    if found is None:
        raise NotServable(f"no song {song_id[:40]!r}")
    return dict(zip(names, found, strict=True))


def safe_file(snapshot: Any, path: str) -> tuple[Path, Any]:
    """The real path of a library file and its stat, if it may be served: inside a library
    root once symlinks are resolved, existing, a regular file."""
    try:
        real = Path(path).resolve(strict=True)
        info = real.stat()
    except FileNotFoundError as exc:  # a song of the library whose file went away
        raise NotServable(f"{path}: {exc}", "The song's file is missing (moved or deleted "
                          "since the last ingest)") from exc
    except (OSError, RuntimeError) as exc:  # unreadable, a symlink loop
        raise NotServable(f"{path}: {exc}") from exc
    if not any(real.is_relative_to(root) for root in snapshot.roots):
        raise NotServable(f"{path} resolves to {real}, outside the library roots")
    if not stat.S_ISREG(info.st_mode):
        raise NotServable(f"{path} is not a regular file")
    return real, info


def song_file(snapshot: Any, song_id: str, *, attachment: bool = False) -> SongFile:
    """The song's original file as a response (Range supported)."""
    song = _track(snapshot, song_id)
    real, info = safe_file(snapshot, song["path"])
    name = Path(song["path"]).name
    return SongFile(real, media_type=song["content_type"], stat_result=info,
                        filename=name if attachment else None,
                        content_disposition_type="attachment" if attachment else "inline")


def stream_song(snapshot: Any, song_id: str | int, request: Request | None = None) -> Response:
    """The explorer's player: the song's file (Range supported), or a plain 404. `song_id` is
    'so-12' or 12; `request` is accepted for the route's convenience (FileResponse reads the
    Range header from the ASGI scope itself)."""
    sid = song_id if isinstance(song_id, str) and song_id.startswith("so-") else f"so-{song_id}"
    try:
        return song_file(snapshot, sid)
    except NotServable:
        return PlainTextResponse("Not found", status_code=404)


def _file_or_70(call: Call, *, attachment: bool) -> Response:
    try:
        return song_file(call.snapshot, call.required("id"), attachment=attachment)
    except NotServable as refused:
        raise SubsonicError(NOT_FOUND, refused.client) from None


def stream(call: Call) -> Response:
    return _file_or_70(call, attachment=False)


def download(call: Call) -> Response:
    return _file_or_70(call, attachment=True)


# --- cover art ---------------------------------------------------------------------------


def get_cover_art(call: Call) -> Response:
    """The embedded picture of a song ('so-'), of an album's songs ('al-', its first track
    first) or of an artist's first album ('ar-'). No picture: HTTP 404 with error 70 in the
    body, so image loaders show their placeholder and Subsonic clients read the code."""
    cover_id = call.required("id")
    for path in _art_candidates(call, cover_id):
        try:
            real, _info = safe_file(call.snapshot, path)
        except NotServable:
            continue
        picture = embedded_picture(real)
        if picture is not None:
            data, mime = picture
            return Response(data, media_type=mime, headers={"Cache-Control": ART_CACHE})
    response = render.error(SubsonicError(NOT_FOUND, "Cover art not found"),
                            as_json=render.wants_json(call.params))
    response.status_code = 404
    return response


def _art_candidates(call: Call, cover_id: str) -> list[str]:
    """The files to look for art in, best first (a song, then the rest of its album)."""
    album = cover_id
    if cover_id.startswith("ar-"):
        first = rows(call, "SELECT album_id FROM albums WHERE artist_id = ? "
                     "ORDER BY year NULLS LAST, name_key LIMIT 1", [cover_id])
        album = first[0]["album_id"] if first else ""
    elif cover_id.startswith("so-"):
        found = rows(call, "SELECT album_id FROM tracks WHERE id = ?", [cover_id])
        album = found[0]["album_id"] if found else ""
    songs = rows(call, """
        SELECT t.path FROM tracks t JOIN albums a USING (album_id)
        WHERE t.album_id = ?
        ORDER BY t.id <> ?, t.id <> a.cover_id, coalesce(t.track, 100000), t.song_id
        LIMIT 4""", [album, cover_id])
    return [s["path"] for s in songs]


def embedded_picture(path: Path) -> tuple[bytes, str] | None:
    """The front cover (else the first picture) embedded in an audio file, with its MIME type:
    FLAC pictures, ID3 APIC frames (MP3, WAV, AIFF), MP4 covr atoms, and Vorbis/Opus
    METADATA_BLOCK_PICTURE comments. None when there is none or the tags cannot be read."""
    try:
        audio = mutagen.File(path)
        if audio is None:
            return None
        pictures = _picture_of(audio) if getattr(audio, "pictures", None) else []
        if audio.tags is not None:
            pictures += _tag_pictures(audio.tags)
    except DAMAGED_TAGS:
        return None
    if not pictures:
        return None
    best = sorted(pictures, key=lambda p: p[2] != FRONT_COVER)[0]
    return best[0], best[1]


def _tag_pictures(tags: Any) -> list[tuple[bytes, str, int]]:
    found: list[tuple[bytes, str, int]] = []
    if hasattr(tags, "getall"):  # ID3
        found += [(f.data, f.mime or "image/jpeg", int(f.type)) for f in tags.getall("APIC")]
    elif hasattr(tags, "get"):
        for cover in tags.get("covr", None) or []:  # MP4
            png = getattr(cover, "imageformat", None) == getattr(cover, "FORMAT_PNG", 14)
            found.append((bytes(cover), "image/png" if png else "image/jpeg", FRONT_COVER))
        for text in tags.get("metadata_block_picture", None) or []:  # Vorbis comments
            try:
                picture = Picture(base64.b64decode(text))
            except (binascii.Error, ValueError, mutagen.MutagenError):
                continue
            found.append((picture.data, picture.mime or "image/jpeg", int(picture.type)))
    return [(data, mime, kind) for data, mime, kind in found if data]


def _picture_of(audio: Any) -> list[tuple[bytes, str, int]]:
    return [(p.data, p.mime or "image/jpeg", int(p.type)) for p in audio.pictures]


ENDPOINTS: dict[str, Endpoint] = {
    "stream": stream,
    "download": download,
    "getCoverArt": get_cover_art,
}
