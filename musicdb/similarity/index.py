"""Nearest songs in memory: the standardised vectors of one feature set as a float32 matrix.

The SQL macro similar_songs (sql/30_similarity.sql) defines the answer: songs ordered by
list_distance(target.z, z), then song_id, without the song itself and its copies (other songs
with the same content_hash). DuckDB computes list_distance on FLOAT[] in float32, summing the
squared differences one feature after another; VectorIndex reproduces exactly that arithmetic
on its final candidates, so its ids, order and distances are the macro's bit for bit (tested).

Finding the candidates is one BLAS product over the matrix, ||z||² - 2 Z q with the row norms
precomputed, and a partition. All songs within a proven error bound of the k-th candidate are
re-ranked, so the float32 shortcut never changes the answer.

At many songs (ANN_MIN_SONGS) one product per query is too slow for a server with many
concurrent clients (1,000,000 x 131: 23 ms a query, 56 queries/s on 2 cores); build_ann() adds
a faiss inverted-file index (musicdb.similarity.ann) whose candidates are re-ranked the same
way: about 1 ms a query. Its answer may miss a true neighbour (recall@10 is measured against
exact search when it is built, nprobe raised until it reaches TARGET_RECALL, then lowered while
the recall stays the same: describe()),
the order and distances of what it returns are still the macro's.

Use (the server: musicdb.serve.snapshot):
    index = VectorIndex.load(con)                    # a musicdb database connection
    index = VectorIndex.load(con, prefix="src.")     # an in-memory DB with the file ATTACHed
    index.nearest(song_id, 10)                       # [(song_id, distance), ...]
    index.start_ann()   # below ANN_MIN_SONGS nothing; else builds in a daemon thread and
                        # answers exactly meanwhile (at 1M x 131: ~10 s to build, ~5 s to
                        # measure recall; a later snapshot of the same set reuses it at once)
    index.build_ann()   # the same, blocking
    index.describe()    # {"backend": "exact" | "ann", "recall@10": ..., ...} for logs
Loading costs about 0.5 s at 100,000 songs and 3-5 s at 1,000,000 (the FLOAT[] column through
Arrow), which is why `musicdb similar --songs`, one query per process, keeps the macro.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from threadpoolctl import ThreadpoolController

from musicdb.errors import StoreError

if TYPE_CHECKING:
    from musicdb.similarity.ann import IvfIndex

# Below this many songs one exact product per query is fast enough (~1 ms); above it
# start_ann()/build_ann() add the faiss index (0.3 s to build at 100k; benchmarks/index.py).
ANN_MIN_SONGS = 50_000
TARGET_RECALL = 0.97  # recall@10 the ANN backend is tuned to (nprobe doubled until reached)
EPS32 = float(np.finfo(np.float32).eps)
# An ANN index built for the same set serves a new snapshot that adds at most this many songs
# (or this share), the added ones searched exactly beside it; more, and a fresh one is built.
REUSE_NEW_SONGS = 20_000
REUSE_SHARE = 0.05
EXTRA_MISSING = 16
# The last ANN index built per (set name, id, dims), while some VectorIndex still uses it.
_LATEST: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
# One BLAS thread per query: a server answers many queries at once on few cores, and a
# matrix-vector product is bound by memory, not by arithmetic (measured, see README).
_BLAS = ThreadpoolController()


@dataclass(frozen=True)
class _Approximate:
    """What answers approximately: a faiss index, and the rows it lacks (searched exactly)."""

    ivf: IvfIndex
    missing: np.ndarray  # int64 rows of the VectorIndex
    missing_z: np.ndarray  # their vectors (a copy: one product per query, no gather)
    missing_norms: np.ndarray
    reused: bool = False


@dataclass
class VectorIndex:
    feature_set: str
    feature_set_id: int
    song_ids: np.ndarray  # int64 (n,), ascending
    z: np.ndarray  # float32 (n, d), C-contiguous, row i is song_ids[i]
    labels: np.ndarray  # object (n,): the auto label of each song (str or None)
    copies: dict[int, np.ndarray]  # row -> rows of its copy group (same content), size >= 2
    norms: np.ndarray = field(repr=False)  # float32 (n,): ||z_i||²
    max_norm: float = 0.0
    load_seconds: float = 0.0
    _ann: _Approximate | None = field(default=None, repr=False)
    _building: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, con: duckdb.DuckDBPyConnection, feature_set: str | None = None, *,
             prefix: str = "") -> VectorIndex | None:
        """The vectors of `feature_set` (None: the database's default set), or None when the
        library holds no vectors. `prefix` names the catalog the musicdb tables are in, e.g.
        "src." for a file ATTACHed AS src (trusted text: our own catalog name, never user
        input). An unknown named set is a StoreError."""
        started = time.perf_counter()
        resolved = _resolve_set(con, feature_set, prefix)
        if resolved is None:
            return None
        set_name, set_id = resolved
        table = con.execute(
            f"SELECT v.song_id, v.z, v.label, s.content_hash FROM {prefix}song_vectors v "
            f"LEFT JOIN {prefix}songs s USING (song_id) WHERE v.feature_set_id = ? "
            "ORDER BY v.song_id", [set_id]).to_arrow_table()
        if table.num_rows == 0:
            return None
        song_ids = table.column("song_id").to_numpy().astype(np.int64)
        z = _matrix(table.column("z"))
        labels = table.column("label").to_numpy(zero_copy_only=False)
        index = cls.from_arrays(song_ids, z, feature_set=set_name, feature_set_id=set_id,
                                labels=labels, copies=_copy_groups(table.column("content_hash")))
        index.load_seconds = time.perf_counter() - started
        return index

    @classmethod
    def from_arrays(cls, song_ids: np.ndarray, z: np.ndarray, *, feature_set: str = "",
                    feature_set_id: int = 0, labels: np.ndarray | None = None,
                    copies: dict[int, np.ndarray] | None = None) -> VectorIndex:
        """An index of given vectors (tests, benchmarks); song_ids ascending."""
        song_ids = np.asarray(song_ids, dtype=np.int64)
        if len(song_ids) > 1 and not (np.diff(song_ids) > 0).all():
            raise ValueError("song_ids must be strictly ascending")
        z = np.ascontiguousarray(z, dtype=np.float32)
        norms64 = np.einsum("ij,ij->i", z, z, dtype=np.float64)
        if labels is None:
            labels = np.full(len(song_ids), None, dtype=object)
        return cls(feature_set, feature_set_id, song_ids, z, labels, copies or {},
                   norms=norms64.astype(np.float32), max_norm=float(np.sqrt(norms64.max())))

    # --- lookups -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.song_ids)

    def row(self, song_id: int) -> int:
        """The row of a song; KeyError if the index does not hold it."""
        i = int(np.searchsorted(self.song_ids, song_id))
        if i == len(self.song_ids) or self.song_ids[i] != song_id:
            raise KeyError(song_id)
        return i

    def rows(self, song_ids: Iterable[int]) -> np.ndarray:
        """Rows of the songs the index holds (others are left out)."""
        wanted = (song_ids.astype(np.int64, copy=False) if isinstance(song_ids, np.ndarray)
                  else np.fromiter(song_ids, dtype=np.int64))
        i = np.searchsorted(self.song_ids, wanted).clip(0, max(len(self) - 1, 0))
        return i[self.song_ids[i] == wanted] if len(self) else i[:0]

    def copies_of(self, song_id: int) -> list[int]:
        """The other songs with the same file content (never each other's neighbours)."""
        r = self.row(song_id)
        return [int(self.song_ids[c]) for c in self.copies.get(r, ()) if c != r]

    # --- search --------------------------------------------------------------------------
    def nearest(self, song_id: int, k: int, *,
                exclude: Iterable[int] = frozenset()) -> list[tuple[int, float]]:
        """The k songs nearest to a stored song, (song_id, distance) by distance then song_id:
        the similar_songs macro's answer. The song, its copies and `exclude` are left out.
        KeyError if the song is not in the index."""
        r = self.row(song_id)
        skip = [r, *self.copies.get(r, ()), *self.rows(exclude)]
        return self._search(self.z[r], k, np.unique(np.asarray(skip, dtype=np.int64)))

    def nearest_to(self, z: np.ndarray, k: int, *,
                   exclude: Iterable[int] = frozenset()) -> list[tuple[int, float]]:
        """The k songs nearest to a standardised vector (e.g. a file analysed just now)."""
        q = np.ascontiguousarray(z, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.z.shape[1]:
            raise ValueError(f"vector of {q.shape[0]} values; the set has {self.z.shape[1]}")
        return self._search(q, k, np.unique(self.rows(exclude)))

    def distances(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """list_distance(q, z) of the given rows exactly as DuckDB computes it on FLOAT[]:
        float32 (q too), squares added in feature order, then sqrt."""
        diff = self.z[rows] - np.asarray(q, dtype=np.float32)
        diff *= diff
        if diff.shape[1] == 0:
            return np.zeros(len(rows), dtype=np.float32)
        # a running sum along each row adds in feature order (float addition is not
        # associative), one call instead of one per feature (~0.2 ms a query at 131)
        return np.sqrt(np.add.accumulate(diff, axis=1, dtype=np.float32)[:, -1])

    def _search(self, q: np.ndarray, k: int, skip: np.ndarray) -> list[tuple[int, float]]:
        want = min(k, len(self) - len(skip))
        if want <= 0:
            return []
        ann = self._ann
        if ann is not None:
            found = np.setdiff1d(self._ann_candidates(ann, q, want + len(skip)), skip)
            if len(found) >= want:  # else (a sparse cell, a long exclude) answer exactly
                return self._rank(q, found, want)
        with _BLAS.limit(limits=1, user_api="blas"):
            approx = self.z @ q  # float32 (n,)
        approx *= -2
        approx += self.norms
        approx[skip] = np.inf
        kth = np.partition(approx, want - 1)[want - 1]
        qn = float(np.sqrt(q.astype(np.float64) @ q))
        # Rounding of the product, the norms and DuckDB's own float32 sum: every song whose
        # exact distance can tie or beat the k-th lies within this margin of it.
        margin = 4 * (self.z.shape[1] + 2) * EPS32 * (self.max_norm + qn) ** 2
        candidates = np.flatnonzero(approx <= kth + margin)
        return self._rank(q, candidates, want)

    def _rank(self, q: np.ndarray, rows: np.ndarray, k: int) -> list[tuple[int, float]]:
        dist = self.distances(q, rows)
        ids = self.song_ids[rows]
        order = np.lexsort((ids, dist))[:k]
        return [(int(ids[i]), float(dist[i])) for i in order]

    # --- approximate backend --------------------------------------------------------------
    def build_ann(self, *, min_songs: int = ANN_MIN_SONGS, target_recall: float = TARGET_RECALL,
                  reuse: bool = True) -> bool:
        """Add the faiss index when the set has at least min_songs songs (blocking; answers
        stay exact until it is in place). True if the index now answers approximately.

        A fresh index is tuned: nprobe doubles until recall@10 on random stored songs reaches
        target_recall (against exact search; describe() says the result). With `reuse`, the
        last index built in this process for the same set serves this one too when it holds
        all but a few of its songs (REUSE_NEW_SONGS, REUSE_SHARE): the songs it lacks are
        searched exactly beside it, songs it holds that are gone are dropped, every candidate
        is re-ranked with this index's vectors. So a server reloading every few seconds
        while an ingest adds songs does not rebuild it each time."""
        with self._building:
            if len(self) < min_songs or self._ann is not None:
                return False
            key = (self.feature_set, self.feature_set_id, self.z.shape[1])
            previous = _LATEST.get(key) if reuse else None
            if previous is not None:
                missing = self._rows_not_in(previous.song_ids)
                if len(missing) <= max(REUSE_NEW_SONGS, REUSE_SHARE * len(self)):
                    self._ann = _Approximate(previous, missing, self.z[missing],
                                             self.norms[missing], reused=True)
                    return True
            from musicdb.similarity.ann import IvfIndex

            started = time.perf_counter()
            ivf = IvfIndex.build(self.z, self.song_ids)
            built = time.perf_counter() - started
            none = np.empty(0, dtype=np.int64)
            fresh = _Approximate(ivf, none, self.z[none], self.norms[none])
            probe = self._recall_probe()
            recall = self._recall(fresh, probe)
            while recall < target_recall and ivf.nprobe < ivf.nlist:
                ivf.set_nprobe(ivf.nprobe * 2)
                recall = self._recall(fresh, probe)
            # Then as few cells as give that same recall: a query's time is its cells' songs.
            while recall >= target_recall and ivf.nprobe > 1:
                tried = ivf.nprobe
                ivf.set_nprobe(tried // 2)
                if self._recall(fresh, probe) < recall:
                    ivf.set_nprobe(tried)
                    break
            ivf.info = {**ivf.describe(), "build_seconds": round(built, 1),
                        "ann_mb": round(ivf.nbytes() / 2**20, 1), "recall@10": recall,
                        "tuned_seconds": round(time.perf_counter() - started, 1)}
            _LATEST[key] = ivf
            self._ann = fresh  # one reference assignment: a concurrent query sees old or new
            return True

    def start_ann(self, *, min_songs: int = ANN_MIN_SONGS,
                  on_done: Callable[[dict], None] | None = None) -> threading.Thread | None:
        """build_ann() in a daemon thread; queries are answered exactly meanwhile. on_done
        gets describe() once the approximate index answers (e.g. to log it)."""
        if len(self) < min_songs:
            return None

        def build() -> None:
            if self.build_ann(min_songs=min_songs) and on_done is not None:
                on_done(self.describe())

        thread = threading.Thread(target=build, name="musicdb-ann", daemon=True)
        thread.start()
        return thread

    def _rows_not_in(self, song_ids: np.ndarray) -> np.ndarray:
        i = np.searchsorted(song_ids, self.song_ids).clip(0, max(len(song_ids) - 1, 0))
        held = song_ids[i] == self.song_ids if len(song_ids) else np.zeros(len(self), bool)
        return np.flatnonzero(~held)

    def _ann_candidates(self, ann: _Approximate, q: np.ndarray, k: int) -> np.ndarray:
        """Rows near q: the faiss index's, and the nearest of the songs it lacks."""
        rows = self.rows(ann.ivf.candidates(q, k))
        if len(ann.missing):
            with _BLAS.limit(limits=1, user_api="blas"):
                approx = ann.missing_norms - 2 * (ann.missing_z @ q)
            take = min(k + EXTRA_MISSING, len(approx))
            rows = np.concatenate(
                [rows, ann.missing[np.argpartition(approx, take - 1)[:take]]])
        return rows

    def _recall_probe(self, queries: int = 200, k: int = 10) -> list[tuple[int, set[int]]]:
        """(row, exact top-k song ids) of random stored songs."""
        rng = np.random.default_rng(0)
        rows = rng.choice(len(self), size=min(queries, len(self)), replace=False)
        return [(int(r), {s for s, _ in self.nearest(int(self.song_ids[r]), k)}) for r in rows]

    def _recall(self, ann: _Approximate, probe: list[tuple[int, set[int]]],
                k: int = 10) -> float:
        """Share of the exact top-k that the approximate answer holds."""
        hits = total = 0
        for r, exact in probe:
            skip = np.unique(np.asarray([r, *self.copies.get(r, ())], dtype=np.int64))
            found = np.setdiff1d(self._ann_candidates(ann, self.z[r], k + len(skip)), skip)
            hits += len(exact & {s for s, _ in self._rank(self.z[r], found, k)})
            total += len(exact)
        return round(hits / total, 4) if total else 1.0

    def describe(self) -> dict:
        """What answers queries, for logs: backend, sizes, timings, measured recall."""
        info = {"feature_set": self.feature_set, "songs": len(self),
                "dims": int(self.z.shape[1]), "backend": "exact",
                "matrix_mb": round(self.z.nbytes / 2**20, 1),
                "load_seconds": round(self.load_seconds, 2)}
        ann = self._ann
        if ann is not None:
            info |= {"backend": "ann", **ann.ivf.info, "reused": ann.reused,
                     "songs_searched_exactly_beside": len(ann.missing)}
        return info


def _resolve_set(con: duckdb.DuckDBPyConnection, name: str | None,
                 prefix: str) -> tuple[str, int] | None:
    if name is None:
        row = con.execute(f"SELECT feature_set, feature_set_id FROM {prefix}default_feature_set"
                          ).fetchone()
        return None if row is None else (row[0], row[1])
    row = con.execute(f"SELECT feature_set, feature_set_id FROM {prefix}latest_feature_sets "
                      "WHERE feature_set = ?", [name]).fetchone()
    if row is None:
        known = [r[0] for r in con.execute(
            f"SELECT feature_set FROM {prefix}latest_feature_sets ORDER BY 1").fetchall()]
        raise StoreError(f"no feature set {name!r}; known: {', '.join(known) or 'none'}")
    return row[0], row[1]


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    """A FLOAT[] column as an (n, d) float32 matrix, without a Python loop per row."""
    lists = column.combine_chunks()
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    if lengths.min() != lengths.max():
        raise StoreError(f"song vectors of {lengths.min()} to {lengths.max()} values in one set")
    values = lists.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(values, dtype=np.float32).reshape(len(lists), int(lengths[0]))


def _copy_groups(hashes: pa.ChunkedArray) -> dict[int, np.ndarray]:
    """row -> rows sharing its content_hash, for hashes held by two or more rows."""
    codes = pc.dictionary_encode(hashes.combine_chunks()).indices
    valid = np.flatnonzero(codes.is_valid().to_numpy(zero_copy_only=False))
    if len(valid) == 0:
        return {}
    code = codes.to_numpy(zero_copy_only=False)[valid].astype(np.int64)
    counts = np.bincount(code)
    shared = counts[code] > 1
    rows, code = valid[shared], code[shared]
    order = np.argsort(code, kind="stable")
    rows, code = rows[order], code[order]
    groups = np.split(rows, np.flatnonzero(np.diff(code)) + 1)
    return {int(r): g for g in groups for r in g}
