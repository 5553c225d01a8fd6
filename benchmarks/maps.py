"""t-SNE for `musicdb map`: the study's 2,333 songs end to end, and 20,000 snippets.

    python benchmarks/maps.py                 # all of it
    python benchmarks/maps.py --snippets 5000

Prints, for the study table (imported through the CLI into a temporary database): the whole
`musicdb map --method tsne` (load, project, store, write the HTML; goal < 20 s on 2 cores) and
the projection alone; then t-SNE of N synthetic snippets (goal < 2 min for 20,000): each study
song's z-vector plus noise, as many snippets per song as needed, so the clusters are the
study's. Also the same projections with scikit-learn's Barnes-Hut for comparison, unless
--no-sklearn.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
from typer.testing import CliRunner

from musicdb.cli import app
from musicdb.maps import runs as maps

REPO = Path(__file__).resolve().parent.parent
STUDY = REPO / "tests" / "data" / "seed_features_5band.csv"


def cli(*args: object) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def timed(what: str, fn) -> object:
    started = time.perf_counter()
    value = fn()
    print(f"{what:<58} {time.perf_counter() - started:7.1f} s", flush=True)
    return value


def sklearn_tsne(z: np.ndarray) -> np.ndarray:
    from sklearn.manifold import TSNE

    return TSNE(perplexity=30, init="pca", random_state=0).fit_transform(z)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snippets", type=int, default=20_000)
    parser.add_argument("--no-sklearn", action="store_true")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")

    with tempfile.TemporaryDirectory() as tmp:
        db, page = Path(tmp) / "study.duckdb", Path(tmp) / "map.html"
        cli("import", STUDY, "--feature-set", "study55", "--db", db)
        timed("musicdb map --method tsne, 2,333 songs (end to end)",
              lambda: cli("map", "--method", "tsne", "-o", page, "--db", db))
        with duckdb.connect(str(db), read_only=True) as con:
            z = np.asarray([r[0] for r in con.execute(
                "SELECT z FROM song_vectors ORDER BY song_id").fetchall()], dtype=np.float32)
            seconds = con.execute("SELECT seconds FROM map_runs").fetchone()[0]
        print(f"{'  of which the projection (openTSNE, Barnes-Hut, 1 thread)':<58} "
              f"{seconds:7.1f} s")
        print(f"{'  page size':<58} {page.stat().st_size / 1e6:7.1f} MB")
    if not args.no_sklearn:
        timed("scikit-learn Barnes-Hut t-SNE, 2,333 songs", lambda: sklearn_tsne(z))

    rng = np.random.default_rng(0)
    per_song = -(-args.snippets // len(z))
    snippets = (np.repeat(z, per_song, axis=0)
                + rng.normal(0, 0.5, (len(z) * per_song, z.shape[1])))[:args.snippets]
    snippets = snippets.astype(np.float32)
    timed(f"maps.project tsne, {len(snippets):,} snippets",
          lambda: maps.project(snippets, "tsne"))
    timed("  the same, one thread (openTSNE FFT)",
          lambda: maps._tsne(snippets, perplexity=30, learning_rate=None, seed=0, threads=1))
    timed(f"maps.project svd, {len(snippets):,} snippets", lambda: maps.project(snippets, "svd"))
    if not args.no_sklearn:
        timed(f"scikit-learn Barnes-Hut t-SNE, {len(snippets):,} snippets",
              lambda: sklearn_tsne(snippets))


if __name__ == "__main__":
    main()
