"""Tags through mutagen, read only for labels and display."""

from __future__ import annotations

import re
from pathlib import Path

import mutagen

TAG_FIELDS = ("title", "artist", "albumartist", "album", "genre", "track", "year")
# Easy-tag keys by field; formats spell album artist differently.
_KEYS = {
    "title": ("title",),
    "artist": ("artist",),
    "albumartist": ("albumartist", "album artist", "album_artist", "albumartistsort"),
    "album": ("album",),
    "genre": ("genre",),
    "track": ("tracknumber", "track"),
    "year": ("date", "year", "originaldate"),
}
_LEADING_INT = re.compile(r"\s*(\d+)")


def _first_text(tags: mutagen.FileType, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        try:
            values = tags.get(key)
        except (KeyError, ValueError):  # EasyID3 raises for keys it does not map
            continue
        if values:
            text = str(values[0] if isinstance(values, list) else values).strip().strip("\x00")
            if text:
                return text
    return None


def _leading_int(text: str | None, low: int, high: int) -> int | None:
    match = _LEADING_INT.match(text or "")
    value = int(match[1]) if match else None
    return value if value is not None and low <= value <= high else None


def read_tags(path: Path) -> dict[str, str | int | None]:
    """artist, albumartist, album, title, genre (text) and track, year (int); None when absent.

    Unreadable or absent tags give all None: whether the audio is usable is decode()'s call.
    """
    empty: dict[str, str | int | None] = dict.fromkeys(TAG_FIELDS)
    try:
        audio = mutagen.File(path, easy=True)
    except (mutagen.MutagenError, OSError, ValueError, EOFError):
        return empty
    if audio is None or audio.tags is None:
        return empty
    text = {field: _first_text(audio.tags, keys) for field, keys in _KEYS.items()}
    return text | {
        "track": _leading_int(text["track"], 0, 9999),
        "year": _leading_int(text["year"], 1000, 9999),
    }
