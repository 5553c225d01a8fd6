"""Tags through mutagen, read only for labels and display."""

from __future__ import annotations

import re
from pathlib import Path

import mutagen
from mutagen.flac import FLAC
from mutagen.oggflac import OggFLAC
from mutagen.oggopus import OggOpus
from mutagen.oggspeex import OggSpeex
from mutagen.oggtheora import OggTheora
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

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


def _kinds(head: bytes) -> list[type[mutagen.FileType]] | None:
    """The mutagen classes that can claim a file with these first bytes, or None (all of
    them): mutagen scores every format it knows against each file otherwise, half the time of
    a tag read (every file of every re-scan is read). Those classes alone score above zero
    on such a header, so the choice is the one mutagen makes."""
    if head[:4] == b"fLaC":
        return [FLAC]
    if head[:4] == b"OggS":
        return [OggVorbis, OggOpus, OggFLAC, OggSpeex, OggTheora]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return [WAVE]
    return None


def _first_text(tags: mutagen.FileType, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        try:
            values = tags.get(key)
        except (KeyError, ValueError):  # EasyID3 raises for keys it does not map
            continue
        if values:
            text = str(values[0] if isinstance(values, list) else values)
            text = text.replace("\x00", "").strip()  # NUL ends strings in some readers
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
    tags, _length = read_file_info(path)
    return tags


class TagReadError(Exception):
    """mutagen failed in a way it does not declare: the file is damaged or hostile."""


def read_file_info(path: Path) -> tuple[dict[str, str | int | None], float | None]:
    """(tags as read_tags gives them, the length in seconds the container declares or None).

    mutagen's own errors mean "no tags we can read": the audio may still be fine. Anything
    else it raises (an IndexError on a corrupted Vorbis comment header, found by fuzzing) is
    a TagReadError, which the caller turns into that file's error row.
    """
    empty: dict[str, str | int | None] = dict.fromkeys(TAG_FIELDS)
    try:
        with open(path, "rb") as f:
            kinds = _kinds(f.read(12))
            f.seek(0)
            audio = mutagen.File(f, easy=True, options=kinds)
    except (mutagen.MutagenError, OSError, ValueError, EOFError):
        return empty, None
    except Exception as exc:
        raise TagReadError(f"its tags cannot be read (mutagen: {type(exc).__name__}: {exc}"
                           .splitlines()[0] + "); the file may be damaged") from exc
    if audio is None:
        return empty, None
    length = getattr(audio.info, "length", None)
    length = float(length) if isinstance(length, int | float) and length > 0 else None
    if audio.tags is None:
        return empty, length
    text = {field: _first_text(audio.tags, keys) for field, keys in _KEYS.items()}
    return text | {
        "track": _leading_int(text["track"], 0, 9999),
        "year": _leading_int(text["year"], 1000, 9999),
    }, length
