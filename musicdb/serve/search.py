"""search3 without a scan: trigram indexes over the snapshot's song, artist and album keys.

search3 answers the songs whose `search_key` contains every word of the query (DuckDB's
`contains`: a substring, not a whole word), in `search_rank` order, paged. As SQL that is a
scan of every key: ~50 ms of CPU at 1,000,000 songs, a third of the requests of a player
searching, eating the cores the similar-songs calls need. SongSearch gives the same rows:

- every key is held as UTF-8 bytes in one buffer, in search_rank order (a substring of the
  text is a substring of its bytes and back: UTF-8 is self-synchronising);
- for every trigram (three bytes) the rows whose key holds it, ascending: a row that
  contains a word holds each of the word's trigrams, so the rows of its rarest trigram,
  narrowed by the others, are the candidates, in rank order;
- each candidate is checked with the words themselves (bytes.find on its key), so words of
  one or two bytes and trigrams in the wrong order never change the answer;
- candidates are taken in rank order a chunk at a time and the search stops once
  offset + count rows matched: a common word ("the") stops after a few checks.

When a query would need too many checks by hand (only words of one or two letters, that
match few songs), find() returns None and search3 runs the SQL scan: the same answer, at its
old cost. ~130 MB at 1,000,000 synthetic songs (35 M postings), built in ~3-6 s of CPU with
the snapshot.

NameSearch puts search3's artists and albums on the same index (their names, in search3's
order): the two SQL scans cost ~25 ms of a search3's ~28 ms of CPU at 1,000,000 songs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

VERIFY_BUDGET = 50_000  # candidates checked in Python before the SQL scan is cheaper
FIRST_CHUNK = 256


class SongSearch:
    """Rows (search_rank order) whose key contains every word; see the module docstring."""

    def __init__(self, song_ids: np.ndarray, keys: pa.Array | pa.ChunkedArray,
                 roots: pa.Array | pa.ChunkedArray) -> None:
        self.song_ids = np.asarray(song_ids, dtype=np.int64)
        self.blob, self.offsets = _bytes_and_offsets(keys)
        if isinstance(roots, pa.ChunkedArray):
            roots = roots.combine_chunks()
        encoded = roots.dictionary_encode()
        self.root_names = encoded.dictionary.to_pylist()
        self.root_codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        self.codes, self.bounds, self.rows = _trigram_postings(self.blob, self.offsets)

    @classmethod
    def load(cls, con) -> SongSearch:
        table = con.execute("SELECT song_id, search_key, root FROM tracks "
                            "ORDER BY search_rank").to_arrow_table()
        return cls(table.column("song_id").to_numpy(), table.column("search_key"),
                   table.column("root"))

    def __len__(self) -> int:
        return len(self.song_ids)

    def find(self, keys: Sequence[str], offset: int, count: int,
             root: str | None = None) -> list[int] | None:
        """Song ids of the matches offset .. offset + count in search_rank order, for words
        already keyed with label_key; None when the SQL scan should answer instead."""
        need = offset + count
        if count <= 0:
            return []
        root_code = -2 if root is None else self._root_code(root)
        if root_code == -1:  # a root no track has
            return []
        words = sorted({k.encode("utf-8") for k in keys if k}, key=len, reverse=True)
        if not words:  # everything, for clients that sync: no check needed
            every = (np.flatnonzero(self.root_codes == root_code) if root_code >= 0
                     else np.arange(min(need, len(self))))
            return self.song_ids[every[offset:need]].tolist()
        lists = self._posting_lists(words)
        if lists is None:
            return []
        rows = self._matches(words, lists, need, root_code)
        if rows is None:
            return None
        return self.song_ids[np.asarray(rows[offset:need], dtype=np.int64)].tolist()

    def _root_code(self, root: str) -> int:
        try:
            return self.root_names.index(root)
        except ValueError:
            return -1

    def _posting_lists(self, words: list[bytes]) -> list[np.ndarray] | None:
        """The rows of each distinct trigram of the words, shortest first; None when one
        trigram is in no key (nothing matches)."""
        wanted = {w[i:i + 3] for w in words for i in range(len(w) - 2)}
        lists = []
        for trigram in wanted:
            code = (trigram[0] << 16) | (trigram[1] << 8) | trigram[2]
            at = int(np.searchsorted(self.codes, code))
            if at == len(self.codes) or self.codes[at] != code:
                return None
            lists.append(self.rows[self.bounds[at]:self.bounds[at + 1]])
        return sorted(lists, key=len)

    def _matches(self, words: list[bytes], lists: list[np.ndarray], need: int,
                 root_code: int) -> list[int] | None:
        """The first `need` matching rows, scanning candidates in rank order a chunk at a time."""
        total = len(lists[0]) if lists else len(self)
        found: list[int] = []
        checked, start, chunk = 0, 0, FIRST_CHUNK
        offsets, find = self.offsets, self.blob.find
        while start < total and len(found) < need:
            part = (lists[0][start:start + chunk] if lists
                    else np.arange(start, min(start + chunk, total), dtype=np.int32))
            start += chunk
            chunk = min(4 * chunk, 1 << 16)
            for other in lists[1:]:
                part = part[_member(part, other)]
                if not len(part):
                    break
            if root_code >= 0 and len(part):
                part = part[self.root_codes[part] == root_code]
            checked += len(part)
            if checked > VERIFY_BUDGET:
                return None
            for row in part.tolist():
                lo, hi = offsets[row], offsets[row + 1]
                if all(find(w, lo, hi) >= 0 for w in words):
                    found.append(row)
                    if len(found) == need:
                        break
        return found


def _member(part: np.ndarray, sorted_rows: np.ndarray) -> np.ndarray:
    """Which of `part` are in `sorted_rows` (ascending)."""
    at = np.searchsorted(sorted_rows, part)
    at[at == len(sorted_rows)] = 0
    return sorted_rows[at] == part


def _bytes_and_offsets(keys: pa.Array | pa.ChunkedArray) -> tuple[bytes, list[int]]:
    """All keys' UTF-8 bytes in one buffer, and where each starts (n + 1 offsets; a null key
    is empty). Offsets as a list: bytes.find takes Python ints, indexing a list is cheapest."""
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    keys = keys.cast(pa.large_string()).fill_null("")
    _, offset_buffer, data_buffer = keys.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int64, count=len(keys) + 1,
                            offset=keys.offset * 8)
    blob = (bytes(memoryview(data_buffer)[int(offsets[0]):int(offsets[-1])])
            if data_buffer is not None else b"")
    return blob, (offsets - offsets[0]).tolist()


def _trigram_postings(blob: bytes, offsets: list[int]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct trigram codes (ascending), where each one's rows start in `rows` (bounds,
    one more than codes), and the rows: ascending and distinct per trigram."""
    data = np.frombuffer(blob, dtype=np.uint8)
    ends = np.asarray(offsets[1:], dtype=np.int32)
    if len(data) < 3:
        return np.empty(0, np.int64), np.zeros(1, np.int64), np.empty(0, np.int32)
    # int32 throughout (keys of < 2 GB), int64 only for the sort: the peak memory at 1M songs
    starts = np.arange(3, len(data) + 1, dtype=np.int32)  # where each trigram ends
    row = np.repeat(np.arange(len(ends), dtype=np.int32), np.diff(offsets))[:-2]
    inside = starts <= ends[row]  # the trigram ends within its key
    del starts
    b = data.astype(np.int32)
    codes = ((b[:-2] << 16) | (b[1:-1] << 8) | b[2:])[inside]
    del b
    packed = (codes.astype(np.int64) << 32) | row[inside]
    del codes, row, inside
    packed.sort()
    distinct = np.empty(len(packed), dtype=bool)
    distinct[:1] = True
    np.not_equal(packed[1:], packed[:-1], out=distinct[1:])
    packed = packed[distinct]
    codes = packed >> 32
    rows = (packed & 0xFFFFFFFF).astype(np.int32)
    del packed
    first = np.flatnonzero(np.concatenate([[True], codes[1:] != codes[:-1]]))
    return codes[first], np.append(first, len(codes)).astype(np.int64), rows


# search3's artists and albums, in its order, with the key it matches the words against.
NAME_QUERIES = {
    "artists": "SELECT a.*, a.name_key AS search_key FROM artists a WHERE a.album_count > 0 "
               "ORDER BY a.name_key, a.artist_id",
    "albums": "SELECT a.*, a.name_key || ' ' || ar.name_key AS search_key FROM albums a "
              "JOIN artists ar USING (artist_id) ORDER BY a.name_key, a.album_id",
}


class NameSearch:
    """search3's artists or albums (when no music folder is asked for) from the same index:
    their rows as `SELECT a.*` gives them, in search3's order (the albums' scan joined every
    artist: ~7 ms at 100,000 songs, ten times that at 1,000,000)."""

    def __init__(self, table: pa.Table) -> None:
        n = table.num_rows
        self.index = SongSearch(np.arange(n), table.column("search_key"),
                                pa.nulls(n, pa.string()))
        self.rows = table.drop_columns(["search_key"]).to_struct_array().combine_chunks()

    @classmethod
    def load(cls, con, kind: str) -> NameSearch:
        return cls(con.execute(NAME_QUERIES[kind]).to_arrow_table())

    def find(self, keys: Sequence[str], offset: int, count: int) -> list[dict] | None:
        at = self.index.find(keys, offset, count)
        if at is None:
            return None
        return self.rows.take(np.asarray(at, dtype=np.int64)).to_pylist() if at else []
