"""Song paths A -> B over the vectors in memory: the numpy twin of the song_path SQL macro.

sql/35_paths.sql defines the answer (and says why it is computed the way it is): n songs from
A to B, the inner ones each the song nearest its target point on the straight line between
A's and B's standardised vectors, never a song already on the path or a copy of one (same
content), and of an artist (auto label) not on it yet unless none is left. This module does the
same arithmetic in float64 over a VectorIndex, so the server (findSonicPath, the explorer)
answers without a query over every song, with the macro's songs in the macro's order
(tests/test_paths.py checks they agree).

    index = VectorIndex.load(con)
    steps = song_path(index, a_id, b_id, 12)       # [PathStep(position=1, song_id=a_id, ...)]

`path_between` is what `musicdb path` runs: the two names resolved as `musicdb similar --songs`
resolves one (with suggestions), then the macro itself, so the command and the shell agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from musicdb.errors import SimilarityError
from musicdb.similarity.similar import SongQuery, resolve_song
from musicdb.store.database import resolve_feature_set
from musicdb.store.schema import data_dir

if TYPE_CHECKING:
    from musicdb.similarity.index import VectorIndex

MACRO_FILE = "35_paths.sql"
SONG_QUERY_FILE = "25_song_query.sql"  # song_in_set, which the macro calls
COLUMNS = ("position", "song_id", "path", "title", "artist", "label", "to_target", "step")
CHUNK = 65_536  # rows converted to float64 at a time: 1,000,000 songs never need 1 GB at once


@dataclass(frozen=True)
class PathStep:
    """One song of a path; the same columns as the song_path macro minus what the index does
    not hold (path, title, artist: look them up by song_id)."""

    position: int  # 1 = A
    song_id: int
    label: str | None  # the auto label (the artist that may appear once)
    to_target: float  # distance from the song to its target point on the line (0 for A, B)
    step: float | None  # distance from the song before it (None for A)


@dataclass
class _Line:
    """Every song's place relative to the line A -> B (the macro's `candidates`)."""

    start: np.ndarray  # z_A, float64
    direction: np.ndarray  # z_B - z_A
    length2: float  # |z_B - z_A|^2
    along: np.ndarray  # (n,) position along the line: 0 at A, 1 at B
    perp2: np.ndarray  # (n,) squared distance from the line

    def distance2(self, fraction: float) -> np.ndarray:
        """Squared distance of every song from the target point at `fraction` of the line."""
        return self.perp2 + self.length2 * (self.along - fraction) ** 2


def song_path(index: VectorIndex, a_song_id: int, b_song_id: int, n: int) -> list[PathStep]:
    """n songs from A to B inclusive (fewer when the library holds fewer distinct songs); [] when
    n < 2 or A is B. KeyError when A or B is not in the index."""
    first, last = index.row(a_song_id), index.row(b_song_id)
    if n < 2 or first == last:
        return []
    line = _line(index, first, last)
    pool = _Pool(index)
    for row in (first, last):
        pool.take(row)
    size = min(n, 2 + pool.distinct_songs())
    rows = [first]
    for position in range(2, size):
        row = pool.nearest(line.distance2((position - 1) / (size - 1)))
        pool.take(row)
        rows.append(row)
    rows.append(last)
    return _steps(index, line, rows)


class _Pool:
    """The songs a path may still take, as masks over the index's rows (vectorised: a library
    of few artists, whose labels are soon all taken, costs no more than one of many)."""

    def __init__(self, index: VectorIndex) -> None:
        self.index = index
        labels = pa.array(index.labels, type=pa.string())
        self.codes = pc.dictionary_encode(labels).indices.fill_null(-1).to_numpy()  # -1: none
        self.free = np.ones(len(index), dtype=bool)  # not on the path, no copy of one on it
        self.fresh = self.free.copy()  # free, and of an artist not on the path

    def take(self, row: int) -> None:
        """Put a song on the path: it and its copies are used up, its artist is taken."""
        used = [row, *self.index.copies.get(row, ())]
        self.free[used] = self.fresh[used] = False
        if self.codes[row] >= 0:
            self.fresh &= self.codes != self.codes[row]

    def nearest(self, distance2: np.ndarray) -> int:
        """The fresh row nearest its target, else the nearest free one. Rows ascend by
        song_id, and argmin takes the first of equals: ties go to the lower song_id."""
        allowed = self.fresh if self.fresh.any() else self.free
        return int(np.argmin(np.where(allowed, distance2, np.inf)))

    def distinct_songs(self) -> int:
        """How many songs are left to choose from, a group of copies counting once."""
        left = int(self.free.sum())
        seen: set[int] = set()
        for row, group in self.index.copies.items():
            first = int(group.min())
            if self.free[row] and first not in seen:
                seen.add(first)
                left -= int(self.free[group].sum()) - 1
        return left


def _line(index: VectorIndex, first: int, last: int) -> _Line:
    start = index.z[first].astype(np.float64)
    direction = index.z[last].astype(np.float64) - start
    length2 = float(direction @ direction)
    offset = float(start @ direction)
    along = np.zeros(len(index))
    from_start2 = np.empty(len(index))
    for lo in range(0, len(index), CHUNK):  # the macro's formulas, term for term
        block = index.z[lo:lo + CHUNK].astype(np.float64)
        if length2 > 0:
            along[lo:lo + CHUNK] = (block @ direction - offset) / length2
        block -= start
        from_start2[lo:lo + CHUNK] = np.einsum("ij,ij->i", block, block)
    perp2 = np.maximum(from_start2 - along * along * length2, 0.0)
    return _Line(start, direction, length2, along, perp2)


def _steps(index: VectorIndex, line: _Line, rows: list[int]) -> list[PathStep]:
    z = index.z[rows].astype(np.float64)
    fractions = np.arange(len(rows)) / (len(rows) - 1)
    targets = line.start + fractions[:, None] * line.direction
    to_target = np.linalg.norm(z - targets, axis=1)
    to_target[[0, -1]] = 0.0
    step = np.linalg.norm(np.diff(z, axis=0), axis=1)
    return [PathStep(position=i + 1, song_id=int(index.song_ids[row]),
                     label=index.labels[row], to_target=float(to_target[i]),
                     step=None if i == 0 else float(step[i - 1]))
            for i, row in enumerate(rows)]


@dataclass
class SongPath:
    """`musicdb path`'s answer: the macro's rows, and what was asked."""

    first: str  # 'Artist - Title' of A
    last: str
    feature_set: str
    asked: int  # n as given; len(songs) is smaller when the library is
    songs: list[dict] = field(default_factory=list)  # one dict per row, keys COLUMNS


def path_between(con: duckdb.DuckDBPyConnection, a: str, b: str, *, n: int = 12,
                 feature_set: str | None = None) -> SongPath:
    """The song_path macro's path from song a to song b (ids, paths or 'Artist - Title'), or
    a SimilarityError saying why there is none (an unknown song, with suggestions; a = b)."""
    if n < 2:
        raise SimilarityError(f"a path has at least 2 songs (A and B), not {n}")
    set_name, set_id = resolve_feature_set(con, feature_set)
    first, last = (_stored_song(con, name, set_name, set_id) for name in (a, b))
    if first.song_id == last.song_id:
        raise SimilarityError(f"A and B are the same song ({first.description!r}): a path "
                              "needs two songs")
    use_path_macro(con)
    rows = con.execute(f"SELECT {', '.join(COLUMNS)} FROM song_path(?, ?, n := ?, "
                       "set_name := ?) ORDER BY position",
                       [first.song_id, last.song_id, n, set_name]).fetchall()
    return SongPath(first.description, last.description, set_name, n,
                    [dict(zip(COLUMNS, row, strict=True)) for row in rows])


def use_path_macro(con: duckdb.DuckDBPyConnection) -> None:
    """sql/35_paths.sql as a TEMP macro of this connection: a reader cannot create views, and
    a database whose views an older musicdb wrote has no song_path until its next write."""
    for name in (SONG_QUERY_FILE, MACRO_FILE):  # song_path reads its songs with song_in_set
        sql = (data_dir("sql") / name).read_text(encoding="utf-8")
        con.execute(sql.replace("CREATE OR REPLACE MACRO", "CREATE OR REPLACE TEMP MACRO"))


def _stored_song(con: duckdb.DuckDBPyConnection, name: str, set_name: str,
                 set_id: int) -> SongQuery:
    """A song of the library, as `similar --songs` finds it; a file not in it is refused
    before anything analyses it (a path runs between stored songs)."""
    def refuse(path: Path) -> None:
        raise SimilarityError(f"{path} is not in the library: ingest it first (a path runs "
                              "between songs of the library)")

    return resolve_song(con, name, set_name, set_id, on_analyse=refuse)
