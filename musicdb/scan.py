"""Finding audio files under the given paths: by extension or by content, with stat and label."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

AUDIO_EXTENSIONS = {
    ".mp3", ".ogg", ".oga", ".opus", ".flac", ".wav", ".wave", ".aif", ".aiff", ".aifc",
    ".m4a", ".m4b", ".mp4", ".aac", ".alac", ".wma", ".webm",
}


@dataclass(frozen=True)
class Candidate:
    path: Path  # absolute
    root: Path  # the scanned folder it was found under (its parent for a file given directly)
    folder: str | None  # first folder level below root: ~/Music/Artist/Album/x.mp3 -> "Artist"
    size: int
    mtime_ns: int


def looks_like_audio(head: bytes) -> bool:
    """Recognise audio containers by their first bytes (a mislabelled file is still found)."""
    if head[:4] in (b"fLaC", b"OggS", b"ID3\x03", b"ID3\x04", b"ID3\x02"):
        return True
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return True
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return True
    if head[4:8] == b"ftyp" and head[8:11] in (b"M4A", b"M4B", b"mp4", b"iso", b"dash"):
        return True
    # MPEG audio frame sync (11 set bits; layer bits not 00) or ADTS AAC
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and (head[1] & 0x06) != 0


def is_candidate(path: Path) -> bool:
    if path.suffix.lower() in AUDIO_EXTENSIONS:
        return True
    try:
        with path.open("rb") as f:
            return looks_like_audio(f.read(12))
    except OSError:
        return False


def _folder_label(path: Path, root: Path) -> str | None:
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else None


def find_audio(paths: list[Path]) -> Iterator[Candidate]:
    """Audio files under each path, recursively, in a stable order; dot-files are skipped."""
    for given in paths:
        given = Path(given).expanduser().absolute()
        if given.is_file():
            files, root = [given], given.parent
        else:
            root = given
            files = []
            for dirpath, dirnames, filenames in os.walk(given):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                files += [Path(dirpath, f) for f in sorted(filenames) if not f.startswith(".")]
        for path in files:
            if not is_candidate(path):
                continue
            try:
                st = path.stat()
            except OSError:
                continue
            yield Candidate(path, root, _folder_label(path, root), st.st_size, st.st_mtime_ns)


def content_hash(path: Path) -> str:
    """blake2b-128 of the file's bytes: the same audio at a new path is a move, not a new song."""
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
