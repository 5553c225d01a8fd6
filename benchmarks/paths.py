"""Song paths at library scale: the song_path SQL macro and its numpy twin.

    python benchmarks/paths.py                    # 100,000 songs, paths of 12
    python benchmarks/paths.py --size 1m -n 25    # 1,000,000 songs (findSonicPath's default)

On the synthetic libraries of benchmarks/similar.py (cached in benchmarks/.cache/; run that
first to build them), opened read-only: the macro is created as a TEMP macro from this tree's
sql/35_paths.sql, so the cached file is never written. Prints, for random pairs of songs, the
macro's time in one connection, the time to load the VectorIndex, the twin's time per path,
and whether the two gave the same songs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import duckdb
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from musicdb.similarity.index import VectorIndex  # noqa: E402
from musicdb.similarity.paths import song_path, use_path_macro  # noqa: E402


def seconds(runs: list[float]) -> str:
    return f"median {statistics.median(runs):6.3f} s  (min {min(runs):.3f}, max {max(runs):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("100k", "1m"), default="100k")
    ap.add_argument("-n", type=int, default=12, help="songs per path")
    ap.add_argument("--pairs", type=int, default=5, help="random pairs of songs timed")
    args = ap.parse_args()
    db = REPO / "benchmarks" / ".cache" / f"similar-{args.size}.duckdb"
    if not db.exists():
        sys.exit(f"{db} is missing: build it with python benchmarks/similar.py --sizes "
                 f"{args.size}")
    with duckdb.connect(str(db), read_only=True) as con:
        use_path_macro(con)
        started = time.perf_counter()
        index = VectorIndex.load(con)
        load = time.perf_counter() - started
        pairs = np.random.default_rng(0).choice(index.song_ids, (args.pairs, 2), replace=False)
        macro, twin, same = [], [], 0
        for a, b in pairs.tolist():
            started = time.perf_counter()
            rows = con.execute("SELECT song_id FROM song_path(?, ?, n := ?)",
                               [a, b, args.n]).fetchall()
            macro.append(time.perf_counter() - started)
            started = time.perf_counter()
            steps = song_path(index, a, b, args.n)
            twin.append(time.perf_counter() - started)
            same += [r[0] for r in rows] == [s.song_id for s in steps]
    print(f"{len(index):,} songs, {index.z.shape[1]} features, paths of {args.n}, "
          f"{args.pairs} random pairs")
    print(f"  song_path() macro:   {seconds(macro)}")
    print(f"  VectorIndex.load():  {load:6.3f} s")
    print(f"  paths.song_path():   {seconds(twin)}")
    print(f"  same songs:          {same} of {args.pairs} paths")


if __name__ == "__main__":
    main()
