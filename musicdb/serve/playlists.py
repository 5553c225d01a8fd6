"""getPlaylists and getPlaylist: the .m3u / .m3u8 files of one folder, read-only.

The folder is `musicdb serve --playlists DIR` (ServeConfig.playlists), else the database's own
folder, where `musicdb similar --playlist` and `musicdb path --playlist` are usually pointed.
Only the files directly in it are playlists (no walk below it). Each entry line is a path,
absolute or relative to the playlist's folder; entries that are songs of the library (matched
by path, as written or with symlinks resolved) become the playlist's songs, in file order, and
other lines are skipped. A playlist's id is 'pl-' + 16 hex digits of blake2b of its absolute
path: stable across restarts for as long as the file stays where it is. A request names a
playlist by that id, never by a path.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicdb.serve.browse import child, rows
from musicdb.serve.protocol import NOT_FOUND, Call, Endpoint, SubsonicError

SUFFIXES = (".m3u", ".m3u8")
MAX_PLAYLISTS = 1000
MAX_BYTES = 8 << 20  # a playlist of ~50,000 entries; a larger file is skipped


@dataclass(frozen=True)
class PlaylistFile:
    id: str
    path: Path
    name: str
    changed: float  # mtime, seconds

    @property
    def iso_changed(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.changed))


def playlist_id(path: Path) -> str:
    digest = hashlib.blake2b(str(path.absolute()).encode("utf-8"), digest_size=8).hexdigest()
    return f"pl-{digest}"


def playlist_folder(call: Call) -> Path:
    """--playlists DIR when the server was started with it, else the database's folder."""
    state = getattr(call.request.app.state, "musicdb", None)
    folder = getattr(getattr(state, "config", None), "playlists", None)
    return Path(folder) if folder is not None else Path(call.snapshot.db).absolute().parent


def playlist_files(folder: Path) -> list[PlaylistFile]:
    """The playlists in a folder, by name (unreadable entries are skipped)."""
    try:
        entries = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
    except OSError:
        return []
    found = []
    for path in entries[:MAX_PLAYLISTS]:
        try:
            info = path.stat()
        except OSError:
            continue
        if path.is_file() and info.st_size <= MAX_BYTES:
            found.append(PlaylistFile(playlist_id(path), path.absolute(), path.stem,
                                      info.st_mtime))
    return found


def entry_paths(playlist: PlaylistFile) -> list[str]:
    """The entry lines of an m3u/m3u8 file as absolute paths, in order."""
    try:
        raw = playlist.path.read_bytes()
    except OSError:
        return []
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:  # an old .m3u in the system's 8-bit encoding
        text = raw.decode("latin-1")
    paths = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            entry = Path(line)
            paths.append(str(entry if entry.is_absolute() else playlist.path.parent / entry))
    return paths


def playlist_songs(call: Call, playlist: PlaylistFile) -> list[dict[str, Any]]:
    """The library songs a playlist lists, in its order (an entry may repeat)."""
    paths = entry_paths(playlist)
    if not paths:
        return []
    resolved = [_resolved(p) for p in paths]
    found = rows(call, "SELECT * FROM tracks WHERE list_contains(?, path)",
                 [sorted(set(paths) | set(resolved))])
    by_path = {r["path"]: r for r in found}
    by_real = {_resolved(r["path"]): r for r in found}
    songs = []
    for path, real in zip(paths, resolved, strict=True):
        song = by_path.get(path) or by_real.get(real)
        if song is not None:
            songs.append(song)
    return songs


def _resolved(path: str) -> str:
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError):
        return path


def playlist_element(call: Call, playlist: PlaylistFile,
                     songs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": playlist.id, "name": playlist.name, "comment": "", "owner": call.user,
            "public": False, "songCount": len(songs),
            "duration": sum(s["duration"] or 0 for s in songs),
            "created": playlist.iso_changed, "changed": playlist.iso_changed,
            "coverArt": songs[0]["id"] if songs else None, "readonly": True}


def get_playlists(call: Call) -> dict[str, Any]:
    found = [playlist_element(call, p, playlist_songs(call, p))
             for p in playlist_files(playlist_folder(call))]
    return {"playlists": {"playlist": found}}


def get_playlist(call: Call) -> dict[str, Any]:
    wanted = call.required("id")
    for playlist in playlist_files(playlist_folder(call)):
        if playlist.id == wanted:
            songs = playlist_songs(call, playlist)
            element = playlist_element(call, playlist, songs)
            return {"playlist": element | {"entry": [child(s) for s in songs]}}
    raise SubsonicError(NOT_FOUND, "Playlist not found")


ENDPOINTS: dict[str, Endpoint] = {
    "getPlaylists": get_playlists,
    "getPlaylist": get_playlist,
}
