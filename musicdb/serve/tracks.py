"""The snapshot's `tracks` rows held as an Arrow table, for the lookups every request makes.

getSong, getSimilarSongs(2), getSonicSimilarTracks and findSonicPath fetch songs by id. A
DuckDB query per lookup costs milliseconds of Python-held work (a cursor, the bind, the
result's conversion) where the answer is a few rows: with 50 clients on one process that work,
not the similarity search, set the pace. So `tracks` is kept beside the DuckDB table, ordered
by song_id: an id is found by binary search (np.searchsorted) and its rows become dicts with
Arrow's take + to_pylist: the values `SELECT * FROM tracks` gives, for the columns the answers
use (COLUMNS: a Child element's and the similar songs' lookups). The rows are one StructArray
rather than a Table: one take over it costs a quarter of a take per column (~0.1 ms for 20
rows, where the query cost 3 to 14 ms at 1M songs). ~270 bytes a song. Not dictionary-encoded:
that halves the memory but makes take + to_pylist 3.7x slower (measured, 100k songs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

# The ids snapshot.sql gives songs: 'so-' || song_id, so digits without a leading zero
# (at most 18 of them: an int64; song_id is an INTEGER).
_SONG_ID = re.compile(r"so-(0|[1-9][0-9]{0,17})", re.ASCII)
# What browse.child() reads, and song_id / artist_id for the similar songs: the rest of
# `tracks` (search keys, full paths, hashes) is only ever read by SQL.
COLUMNS = ("song_id", "id", "title", "artist", "artist_id", "album", "album_id", "albumartist",
           "albumartist_id", "track", "year", "genre", "duration", "size", "suffix",
           "content_type", "bitrate", "sample_rate", "channels", "relpath", "created")


class TrackTable:
    """`tracks` ordered by song_id, with lookups by song_id and by Subsonic id ('so-12')."""

    def __init__(self, table: pa.Table) -> None:
        self.song_ids = np.asarray(table.column("song_id").to_numpy(), dtype=np.int64)
        # one chunk: take() then indexes one array rather than locating rows in chunks
        self.rows_array = table.to_struct_array().combine_chunks()

    @classmethod
    def load(cls, con: duckdb.DuckDBPyConnection) -> TrackTable:
        return cls(con.execute(f"SELECT {', '.join(COLUMNS)} FROM tracks ORDER BY song_id"
                               ).to_arrow_table())

    def __len__(self) -> int:
        return len(self.song_ids)

    def positions(self, song_ids: Iterable[int]) -> np.ndarray:
        """The table rows of these song ids, in the order given, absent ids left out."""
        wanted = np.fromiter((int(s) for s in song_ids), dtype=np.int64)
        at = np.searchsorted(self.song_ids, wanted).clip(0, max(len(self) - 1, 0))
        found = self.song_ids[at] == wanted if len(self) else np.zeros(len(wanted), bool)
        return at[found]

    def rows(self, song_ids: Iterable[int]) -> list[dict[str, Any]]:
        """The rows of these song ids as dicts, in the order given, absent ids left out."""
        at = self.positions(song_ids)
        return self.rows_array.take(at).to_pylist() if len(at) else []

    def by_id(self, item_id: str) -> dict[str, Any] | None:
        """The row of a Subsonic song id ('so-12'), None when no track has it."""
        found = _SONG_ID.fullmatch(item_id)
        if found is None:
            return None
        at = self.positions([int(found[1])])
        # a slice is a view, 20x cheaper than take() for one row
        return self.rows_array.slice(int(at[0]), 1).to_pylist()[0] if len(at) else None

