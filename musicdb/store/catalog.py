"""Reading and writing song rows and feature values. All batch writes, one transaction each."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

SONG_COLUMNS = {
    "song_id": pa.int32(), "source": pa.string(), "status": pa.string(), "error": pa.string(),
    "path": pa.string(), "root": pa.string(), "folder": pa.string(),
    "content_hash": pa.string(), "size_bytes": pa.int64(), "mtime_ns": pa.int64(),
    "codec": pa.string(), "sample_rate": pa.int32(), "channels": pa.int32(),
    "duration_s": pa.float64(), "title": pa.string(), "artist": pa.string(),
    "albumartist": pa.string(), "album": pa.string(), "genre": pa.string(),
    "track": pa.int32(), "year": pa.int32(), "imported_label": pa.string(),
    "imported_from": pa.string(),
}


@dataclass(frozen=True)
class KnownSong:
    song_id: int
    path: str
    size_bytes: int | None
    mtime_ns: int | None
    content_hash: str | None
    status: str
    error: str | None = None


def scanned_songs(con: duckdb.DuckDBPyConnection) -> list[KnownSong]:
    rows = con.execute(
        "SELECT song_id, path, size_bytes, mtime_ns, content_hash, status, error FROM songs "
        "WHERE source = 'scan'"
    ).fetchall()
    return [KnownSong(*r) for r in rows]


def sets_present(con: duckdb.DuckDBPyConnection, set_ids: Iterable[int]) -> dict[int, set[int]]:
    """song_id -> ids of the given feature sets it has whole-song values for."""
    present: dict[int, set[int]] = {}
    rows = con.execute(
        "SELECT DISTINCT song_id, feature_set_id FROM features "
        "WHERE snippet = -1 AND list_contains(?, feature_set_id)", [list(set_ids)]
    ).fetchall()
    for song_id, set_id in rows:
        present.setdefault(song_id, set()).add(set_id)
    return present


def stored_values(con: duckdb.DuckDBPyConnection, song_id: int, set_ids: Iterable[int]
                  ) -> tuple[tuple, dict[int, list[tuple]]]:
    """A song's (codec, sample_rate, channels, duration_s) and, per feature set, its rows
    (snippet, start_s, end_s, vals) in snippet order, the whole song (-1) first."""
    head = con.execute("SELECT codec, sample_rate, channels, duration_s FROM songs "
                       "WHERE song_id = ?", [song_id]).fetchone()
    rows = con.execute(
        "SELECT feature_set_id, snippet, start_s, end_s, vals FROM features "
        "WHERE song_id = ? AND list_contains(?, feature_set_id) ORDER BY feature_set_id, snippet",
        [song_id, list(set_ids)]).fetchall()
    per_set: dict[int, list[tuple]] = {}
    for set_id, *row in rows:
        per_set.setdefault(set_id, []).append(tuple(row))
    return head, per_set


def reserve_song_ids(con: duckdb.DuckDBPyConnection, n: int) -> list[int]:
    if n == 0:
        return []
    return [r[0] for r in con.execute(
        "SELECT nextval('song_id_seq') FROM range(?)", [n]).fetchall()]


def _song_table(rows: list[dict], columns: list[str]) -> pa.Table:
    schema = pa.schema([(c, SONG_COLUMNS[c]) for c in columns])
    return pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows], schema=schema)


def insert_songs(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> None:
    """Insert new song rows (song_id already reserved). Call inside a transaction."""
    if not rows:
        return
    columns = list(SONG_COLUMNS)
    con.register("_new_songs", _song_table(rows, columns))
    con.execute("INSERT INTO songs BY NAME SELECT * FROM _new_songs")
    con.unregister("_new_songs")


def update_songs(con: duckdb.DuckDBPyConnection, rows: list[dict], columns: list[str]) -> None:
    """Set the given columns of existing songs (matched by song_id). Call inside a transaction."""
    if not rows:
        return
    table = _song_table(rows, ["song_id", *columns])
    con.register("_song_updates", table)
    assignments = ", ".join(f"{c} = u.{c}" for c in columns)
    con.execute(
        f"UPDATE songs SET {assignments}, updated_at = current_timestamp "
        "FROM _song_updates u WHERE songs.song_id = u.song_id"
    )
    con.unregister("_song_updates")


@dataclass
class FeatureRows:
    """Feature values of several songs and snippets, ready for one INSERT."""

    song_ids: list[int]
    set_ids: list[int]
    snippets: list[int]
    starts: list[float]
    ends: list[float]
    vectors: list[np.ndarray]

    @classmethod
    def empty(cls) -> FeatureRows:
        return cls([], [], [], [], [], [])

    def add(self, song_id: int, set_id: int, snippet: int, start: float, end: float,
            vector: np.ndarray) -> None:
        self.song_ids.append(song_id)
        self.set_ids.append(set_id)
        self.snippets.append(snippet)
        self.starts.append(start)
        self.ends.append(end)
        self.vectors.append(np.asarray(vector, dtype=np.float32))

    def to_arrow(self) -> pa.Table:
        lengths = np.array([v.size for v in self.vectors], dtype=np.int32)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        flat = np.concatenate(self.vectors) if self.vectors else np.zeros(0, np.float32)
        return pa.table({
            "song_id": pa.array(self.song_ids, pa.int32()),
            "feature_set_id": pa.array(self.set_ids, pa.int32()),
            "snippet": pa.array(self.snippets, pa.int32()),
            "start_s": pa.array(self.starts, pa.float64()),
            "end_s": pa.array(self.ends, pa.float64()),
            "vals": pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.float32())),
        })


def replace_features(con: duckdb.DuckDBPyConnection, rows: FeatureRows) -> None:
    """Replace all values of the (song, feature set) pairs in rows. Call inside a transaction."""
    if not rows.song_ids:
        return
    table = rows.to_arrow()
    con.register("_new_features", table)
    con.execute(
        "DELETE FROM features USING (SELECT DISTINCT song_id, feature_set_id FROM _new_features) n "
        "WHERE features.song_id = n.song_id AND features.feature_set_id = n.feature_set_id"
    )
    con.execute("INSERT INTO features BY NAME SELECT * FROM _new_features")
    con.unregister("_new_features")


def delete_features(con: duckdb.DuckDBPyConnection, song_ids: list[int]) -> None:
    """Drop all values of songs whose file changed into something unreadable."""
    if song_ids:
        con.execute("DELETE FROM features WHERE list_contains(?, song_id)", [song_ids])


def mark_missing(con: duckdb.DuckDBPyConnection, song_ids: list[int]) -> None:
    if song_ids:
        con.execute(
            "UPDATE songs SET status = 'missing', updated_at = current_timestamp "
            "WHERE list_contains(?, song_id)", [song_ids],
        )
