"""Finding audio files under the given paths: by extension or by content, with stat and label.

A music folder holds everything: FIFOs, device files someone symlinked, broken links, files
nobody may read, names that are not UTF-8. Nothing here opens a file that is not a regular
file (a FIFO blocks forever, /dev/zero never ends); such a file with an audio extension is
returned with a `problem`, so it becomes an error row instead of a stall or a silent gap.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

AUDIO_EXTENSIONS = {
    ".mp3", ".ogg", ".oga", ".opus", ".flac", ".wav", ".wave", ".aif", ".aiff", ".aifc",
    ".m4a", ".m4b", ".mp4", ".aac", ".alac", ".wma", ".webm",
}
NOT_UTF8 = "its name is not valid UTF-8 (shown with \\x escapes): rename the file to ingest it"
_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


@dataclass(frozen=True)
class Candidate:
    path: Path  # absolute and resolved: one file, one path, however it was reached
    root: Path  # the scanned folder it was found under (its parent for a file given directly)
    folder: str | None  # first folder level below root: ~/Music/Artist/Album/x.mp3 -> "Artist"
    size: int
    mtime_ns: int
    problem: str | None = None  # why it cannot be read safely: recorded, never opened


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


def storable(path: Path) -> str | None:
    """The path as text the database can hold, or None when its name is not valid UTF-8."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes arrive as lone surrogates
        return None
    return text


def shown(path: Path) -> str:
    """The path as printable text; bytes that are not UTF-8 appear as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _problem(path: Path, real: Path, has_audio_name: bool
             ) -> tuple[str | None, os.stat_result | None]:
    """(why it must not be opened, or None; its stat). Follows symlinks: the target (`real`,
    the resolved path) counts."""
    try:
        st = path.stat()
    except OSError as exc:
        if not has_audio_name:
            return "skip", None
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop: skipped", None
        if path.is_symlink():
            return f"a broken symbolic link (to {os.readlink(path)}): skipped", None
        return f"cannot read it: {exc.strerror or exc}", None
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        return (f"{kind}, not an audio file: skipped" if has_audio_name else "skip"), st
    if storable(real) is None:
        return NOT_UTF8, st
    if not os.access(path, os.R_OK):
        return "cannot read it: permission denied", st
    return None, st


def _is_audio(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return looks_like_audio(f.read(12))
    except OSError:
        return False


def _label(path: Path, root: Path) -> tuple[Path, str | None]:
    """(the root its folder label counts from, the label): the first folder level below the
    scanned root, or none for a file directly in it or given by itself (then its folder is
    the root). String operations: this runs for every file of every scan."""
    root_text, text = os.path.join(str(root), ""), str(path)
    if text.startswith(root_text):
        inner = text[len(root_text):]
        return root, inner.split(os.sep, 1)[0] if os.sep in inner else None
    return path.parent, None


def _walk(given: Path, unreadable: list[tuple[str, str]]) -> tuple[Path, list[tuple[Path, bool]]]:
    """(root, [(file, whether its path may need resolving)] in a stable order); dot-files and
    dot-folders are skipped, and folders that cannot be listed are added to `unreadable` as
    (path, reason).

    Symlinked folders inside are not followed (a link to a parent would loop); the root itself
    is resolved, so `lib/../lib` and a link to `lib` are the same library. Below a resolved
    root, only a symbolic link's path can differ from its resolved one: the others are not
    resolved again (realpath costs a system call per path component, per file).
    """
    if not given.is_dir():
        return Path(os.path.realpath(given.parent)), [(given, True)]
    root = given.resolve()
    files: list[tuple[Path, bool]] = []

    def visit(folder: str) -> None:
        try:
            with os.scandir(folder) as listing:
                entries = sorted((e for e in listing if not e.name.startswith(".")),
                                 key=lambda e: e.name)
        except OSError as exc:
            unreadable.append((shown(Path(exc.filename or folder)), exc.strerror or str(exc)))
            return
        folders = []
        for entry in entries:
            if _is_folder(entry):
                if not entry.is_symlink():
                    folders.append(entry.path)
            else:
                files.append((Path(entry.path), entry.is_symlink()))
        for sub in folders:
            visit(sub)

    visit(str(root))
    return root, files


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # as os.walk: what cannot be inspected is listed as a file
        return False


def find_audio(paths: list[Path], unreadable: list[tuple[str, str]] | None = None
               ) -> Iterator[Candidate]:
    """Audio files under each path, recursively, each once (by its resolved path).

    Folders that cannot be listed are appended to `unreadable` as (path, reason)."""
    seen: set[Path] = set()
    unreadable = [] if unreadable is None else unreadable
    for given in paths:
        root, files = _walk(Path(given).expanduser().absolute(), unreadable)
        for path, may_differ in files:
            has_audio_name = path.suffix.lower() in AUDIO_EXTENSIONS
            resolved = Path(os.path.realpath(path)) if may_differ else path
            problem, st = _problem(path, resolved, has_audio_name)
            if problem == "skip":
                continue
            if problem is None and not has_audio_name and not _is_audio(path):
                continue
            real = resolved if problem is None else path  # a broken link: its own name
            label_root, label = _label(path, root)
            if problem and storable(real) is None:  # recorded under a printable name
                real, label = Path(shown(real)), label and shown(Path(label))
            if real in seen:
                continue
            seen.add(real)
            yield Candidate(real, label_root, label, st.st_size if st else 0,
                            st.st_mtime_ns if st else 0, problem)


def content_hash(path: Path) -> str:
    """blake2b-128 of the file's bytes: the same audio at a new path is a move, not a new song."""
    digest = hashlib.blake2b(digest_size=16)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
