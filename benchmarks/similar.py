"""Similarity at library scale: a synthetic database of 100,000 songs x 131 features in 2,000
artists, then the three timings users feel.

    python benchmarks/similar.py                    # builds /tmp/musicdb-similar-bench.duckdb once
    python benchmarks/similar.py --songs 20000 --artists 400

Prints: the import (which refreshes the similarity tables), `musicdb similar` end to end as a
process (start-up included; goal < 0.5 s), `SELECT * FROM artist_distances` over 1,000
artists (goal < 1 s), and one song-to-songs query inside Python (goal < 0.2 s). Each timing is
the median of several runs (min and max beside it).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

N_FEATURES = 131


def build(db: Path, songs: int, artists: int) -> float:
    """Artists as clusters in feature space, songs scattered around them; imported via the CLI."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (artists, N_FEATURES)) * rng.uniform(0.1, 1000, N_FEATURES)
    who = rng.integers(0, artists, songs)
    values = centres[who] + rng.normal(0, 0.5, (songs, N_FEATURES)) * np.abs(centres[who] * 0.2)
    columns = {"label": [f"artist_{i:04d}" for i in who], "file": [f"song_{n}" for n in
                                                                   range(songs)]}
    columns |= {f"f{j:03d}": values[:, j].astype(np.float32) for j in range(N_FEATURES)}
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "synthetic.parquet"
        pq.write_table(pa.table(columns), table)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "musicdb", "import", str(table), "--feature-set",
                        "synth131", "--db", str(db)], check=True, capture_output=True)
        return time.perf_counter() - started


def timed(fn, repeat: int) -> tuple[float, float, float]:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return min(runs), statistics.median(runs), max(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--songs", type=int, default=100_000)
    ap.add_argument("--artists", type=int, default=2_000)
    ap.add_argument("--db", type=Path, default=Path(tempfile.gettempdir())
                    / "musicdb-similar-bench.duckdb")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if not args.db.exists():
        seconds = build(args.db, args.songs, args.artists)
        print(f"import of {args.songs:,} songs x {N_FEATURES} features in {args.artists:,} "
              f"artists, similarity tables included: {seconds:.1f} s")

    import duckdb

    from musicdb.similarity import similar

    def report(what: str, goal: float, t: tuple[float, float, float]) -> None:
        verdict = "ok" if t[1] < goal else "SLOWER THAN GOAL"
        print(f"{what:58s} median {t[1]:.3f} s  (min {t[0]:.3f}, max {t[2]:.3f})  "
              f"goal < {goal} s: {verdict}")

    cli = [sys.executable, "-m", "musicdb", "similar", "artist_0007", "-n", "10",
           "--db", str(args.db)]
    report("musicdb similar ARTIST (a new process, start-up included)", 0.5,
           timed(lambda: subprocess.run(cli, check=True, capture_output=True), args.repeat))

    con = duckdb.connect(str(args.db), read_only=True)
    first = [r[0] for r in con.execute(
        "SELECT label FROM artist_centroids WHERE label_from = 'auto' ORDER BY label "
        "LIMIT 1000").fetchall()]
    con.execute("CREATE TEMP TABLE chosen AS SELECT unnest(?::VARCHAR[]) AS label", [first])
    sql = ("SELECT * FROM artist_distances WHERE label_from = 'auto' "
           "AND artist IN (SELECT label FROM chosen) AND other IN (SELECT label FROM chosen)")
    # Fetched as Arrow: the query's whole result, without a million Python tuples.
    pairs = con.execute(sql).to_arrow_table().num_rows
    report(f"SELECT * FROM artist_distances, {len(first):,} artists ({pairs:,} pairs)", 1.0,
           timed(lambda: con.execute(sql).to_arrow_table(), args.repeat))
    report("similar_songs(song_id 1, 10) inside Python", 0.2,
           timed(lambda: similar.similar_songs(con, "1", k=10), args.repeat))


if __name__ == "__main__":
    main()
