"""Nearest songs in memory: how each way of answering scales (the numbers behind
musicdb/similarity/index.py's choices).

    python benchmarks/index.py --size 100k            # the libraries of benchmarks/similar.py
    python benchmarks/index.py --size 1m --hnsw-sample 100000

For the synthetic library (built by benchmarks/similar.py, cached in benchmarks/.cache/) it
prints: the load of the matrix; exact search (one BLAS product) with 1 and 2 BLAS threads, one
query at a time and 50 threads at once; a micro-batch (one GEMM for 50 queries); faiss IVF
(build, memory, query time, recall@10 against the exact answer for several nprobe) and faiss
HNSW (built on a sample: its build time grows a little faster than linearly).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from musicdb.similarity import index as vector_index  # noqa: E402
from musicdb.similarity.ann import IvfIndex  # noqa: E402

QUERIES = 200


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ms(runs: list[float]) -> str:
    runs = sorted(runs)
    return (f"median {1000 * statistics.median(runs):7.2f} ms  "
            f"p99 {1000 * runs[int(0.99 * (len(runs) - 1))]:7.2f} ms")


def exact(idx: vector_index.VectorIndex, songs: np.ndarray, threads: int) -> None:
    for blas in (1, 2):
        with threadpool_limits(blas, user_api="blas"):
            approx = []
            for s in songs[:50]:
                started = time.perf_counter()
                _ = idx.z @ idx.z[idx.row(int(s))]
                approx.append(time.perf_counter() - started)
        print(f"  Z @ q alone, {blas} BLAS thread(s):             {ms(approx)}")

    def one(s: int) -> float:
        started = time.perf_counter()
        idx.nearest(int(s), 10)
        return time.perf_counter() - started

    for clients in (1, threads):
        with ThreadPoolExecutor(clients) as pool:
            started = time.perf_counter()
            runs = list(pool.map(one, songs))
            wall = time.perf_counter() - started
        print(f"  nearest() exact, {clients:2d} at once:                 {ms(runs)}  "
              f"{len(songs) / wall:7.1f} queries/s")


def batched(idx: vector_index.VectorIndex, songs: np.ndarray, batch: int) -> None:
    q = idx.z[[idx.row(int(s)) for s in songs[:batch]]]
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        with threadpool_limits(1, user_api="blas"):
            approx = idx.z @ q.T
        approx *= -2
        approx += idx.norms[:, None]
        np.argpartition(approx, 11, axis=0)
        runs.append(time.perf_counter() - started)
    print(f"  one GEMM for {batch} queries (1 thread): {ms(runs)} per batch, "
          f"{1000 * statistics.median(runs) / batch:.2f} ms per query")


def recall(idx: vector_index.VectorIndex, songs: np.ndarray, search) -> tuple[float, list]:
    hits, runs = 0, []
    for s in songs:
        truth = {t for t, _ in idx.nearest(int(s), 10)}
        r = idx.row(int(s))
        started = time.perf_counter()
        rows = search(idx.z[r], 11)
        got = [int(idx.song_ids[x]) for x in rows if x != r][:10]
        runs.append(time.perf_counter() - started)
        hits += len(truth & set(got))
    return hits / (10 * len(songs)), runs


def ivf(idx: vector_index.VectorIndex, songs: np.ndarray) -> None:
    before = rss_mb()
    started = time.perf_counter()
    ann = IvfIndex.build(idx.z)
    print(f"  faiss IVF build: nlist {ann.nlist}, {time.perf_counter() - started:.1f} s, "
          f"max RSS +{rss_mb() - before:.0f} MB")
    for nprobe in sorted({ann.nprobe, 4, 8, 16, 32}):
        ann.index.nprobe = nprobe
        r, runs = recall(idx, songs, lambda q, k: ann.index.search(q[None], k)[1][0])
        print(f"  faiss IVF nprobe {nprobe:3d}: recall@10 {r:.3f}  {ms(runs)}")


def hnsw(idx: vector_index.VectorIndex, songs: np.ndarray, sample: int) -> None:
    import faiss

    n = min(sample, len(idx))
    before = rss_mb()
    index = faiss.IndexHNSWFlat(idx.z.shape[1], 32)
    index.hnsw.efConstruction = 40
    started = time.perf_counter()
    index.add(idx.z[:n])
    print(f"  faiss HNSW32 build of {n:,} songs: {time.perf_counter() - started:.1f} s, "
          f"max RSS +{rss_mb() - before:.0f} MB")
    inside = songs[np.searchsorted(idx.song_ids, songs) < n]
    if n < len(idx):
        print("   (recall on the sample only, against exact search in the whole library"
              " restricted to it is not measured)")
        return
    for ef in (16, 64):
        index.hnsw.efSearch = ef
        r, runs = recall(idx, inside, lambda q, k: index.search(q[None], k)[1][0])
        print(f"  faiss HNSW efSearch {ef}: recall@10 {r:.3f}  {ms(runs)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["100k", "1m"], default="100k")
    ap.add_argument("--threads", type=int, default=50)
    ap.add_argument("--hnsw-sample", type=int, default=100_000)
    args = ap.parse_args()
    db = REPO / "benchmarks" / ".cache" / f"similar-{args.size}.duckdb"
    if not db.exists():
        sys.exit(f"{db} missing: run benchmarks/similar.py --sizes {args.size} first")
    con = duckdb.connect(str(db), read_only=True)
    started = time.perf_counter()
    idx = vector_index.VectorIndex.load(con)
    print(f"{args.size}: {len(idx):,} songs x {idx.z.shape[1]}: load "
          f"{time.perf_counter() - started:.1f} s, matrix {idx.z.nbytes / 2**20:.0f} MB, "
          f"max RSS {rss_mb():.0f} MB")
    songs = np.random.default_rng(0).choice(idx.song_ids, QUERIES, replace=False)
    started = time.perf_counter()
    con.execute("SELECT * FROM similar_songs(?, 10)", [int(songs[0])]).fetchall()
    print(f"  the similar_songs macro, one query: {time.perf_counter() - started:.3f} s")
    exact(idx, songs, args.threads)
    batched(idx, songs, args.threads)
    ivf(idx, songs)
    hnsw(idx, songs, args.hnsw_sample)


if __name__ == "__main__":
    main()
