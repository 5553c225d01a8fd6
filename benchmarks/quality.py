"""Quality of the feature sets on real music with folder labels, side by side.

    python benchmarks/quality.py [--corpus benchmarks/corpus] [--sets seed55,default,...]
                                 [--unit snippet] [--seeds 0,1,2] [--k 10]

The corpus (benchmarks/corpus.sh: game music in 3 folders, the labels) is ingested once into
benchmarks/.cache/quality.duckdb with default, seed55 and musicnn (30 s snippets); a set the
file lacks is ingested onto it (only that set is extracted). Per set, or union of sets:

- macro-F1 of `musicdb evaluate --cv K` (the real CLI: grouped, stratified folds, so a song's
  snippets never straddle folds; with --unit snippet trained on snippets, scored per song by
  their mean probabilities), the fold mean ± std, averaged over --seeds. K is 5, or fewer when
  the smallest label has fewer songs (each fold tests each label); folders of fewer than
  --min-songs songs (default 5: the corpus's frozen-bubble folder has 3) are no label;
- precision@k of the nearest neighbours: per song (and per snippet), the share of its k
  nearest with its label, in euclidean distance over features z-scored on the whole songs
  (what `musicdb similar` ranks by), its own song and its copies excluded; the 'chance' row is
  the share a random ranking would give (the labels are unbalanced).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
from typer.testing import CliRunner

from musicdb.cli import app
from musicdb.ml import experiments as ex

REPO = Path(__file__).resolve().parent.parent
SETS = "seed55,default,musicnn,default+musicnn"  # '+' joins a union's members here


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(f"musicdb {' '.join(map(str, args))}: {result.output}")
    return result.stdout


def ingest(corpus: Path, db: Path, sets: list[str]) -> None:
    """Extract whatever the sets need that the cached file lacks (nothing when all are in)."""
    members = sorted({m for s in sets for m in s.split(",")})
    cli("ingest", corpus, "--db", db, "--feature-set", ",".join(members),
        "--workers", str(os.cpu_count() or 1))


def f1(db: Path, union: str, unit: str, seeds: list[int], model: str,
       cv: int, min_songs: int) -> tuple[float, float]:
    """(mean, fold std) of macro-F1 under `evaluate --cv K`, averaged over the seeds."""
    name = "quality-" + union.replace(",", "-").replace("_", "-")
    if name in {e["name"] for e in json.loads(cli("experiment", "list", "--json", "--db", db))}:
        cli("experiment", "delete", name, "--db", db)
    cli("experiment", "create", name, "--labels", "all", "--label-from", "folder",
        "--feature-set", union, "--unit", unit, "--model", model, "--min-songs", min_songs,
        "--db", db)
    runs = [json.loads(cli("evaluate", "--experiment", name, "--cv", cv, "--seed", seed,
                           "--no-album-effect", "--json", "--db", db)) for seed in seeds]
    return (float(np.mean([r["macro_f1"] for r in runs])),
            float(np.mean([r["macro_f1_std"] for r in runs])))


def precision_at_k(db: Path, union: str, k: int) -> tuple[float, float]:
    """(songs, snippets) precision@k; the rows are the experiment's (f1 made it)."""
    name = "quality-" + union.replace(",", "-").replace("_", "-")
    with duckdb.connect(str(db), read_only=True) as con:
        exp = ex.get(con, name)
        songs = ex.dataset(con, replace(exp, unit="song"))
        snippets = ex.dataset(con, replace(exp, unit="snippet"))
    mean, std = songs.X.mean(axis=0), songs.X.std(axis=0)
    std[std == 0] = 1  # a constant column adds nothing to any distance
    return tuple(_precision((d.X - mean) / std, d.y, d.groups, k) for d in (songs, snippets))


def chance(db: Path, union: str, k: int) -> tuple[float, float]:
    """(songs, snippets): the expected precision of a random ranking."""
    name = "quality-" + union.replace(",", "-").replace("_", "-")
    with duckdb.connect(str(db), read_only=True) as con:
        exp = ex.get(con, name)
        found = [ex.dataset(con, replace(exp, unit=unit)) for unit in ("song", "snippet")]
    shares = []
    for d in found:
        others = d.groups[:, None] != d.groups[None, :]
        same = others & (d.y[:, None] == d.y[None, :])
        shares.append(float((same.sum(axis=1) / others.sum(axis=1)).mean()))
    return shares[0], shares[1]


def _precision(z: np.ndarray, labels: np.ndarray, identity: np.ndarray, k: int) -> float:
    """Mean share of each row's k nearest (own song and copies excluded) with its label.
    `identity` is the split group of a hash split: the song's content, shared by copies."""
    sq = (z * z).sum(axis=1)
    distance = sq[:, None] + sq[None, :] - 2 * z @ z.T
    distance[identity[:, None] == identity[None, :]] = np.inf
    nearest = np.argsort(distance, axis=1, kind="stable")[:, :k]
    return float((labels[nearest] == labels[:, None]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "benchmarks/corpus")
    parser.add_argument("--db", type=Path, default=REPO / "benchmarks/.cache/quality.duckdb")
    parser.add_argument("--sets", default=SETS, help="sets; a union's members joined by '+'")
    parser.add_argument("--unit", default="snippet", choices=("song", "snippet"))
    parser.add_argument("--model", default="ensemble")
    parser.add_argument("--seeds", default="0", help="CV seeds, averaged")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--min-songs", type=int, default=5,
                        help="folders with fewer songs are no label [default: 5]")
    parser.add_argument("--cv", type=int, default=0,
                        help="folds [default: 5, or the songs of the smallest label]")
    args = parser.parse_args()
    sets = [s.replace("+", ",") for s in args.sets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    args.db.parent.mkdir(parents=True, exist_ok=True)
    ingest(args.corpus, args.db, sets)
    with duckdb.connect(str(args.db), read_only=True) as con:
        n_songs, n_snippets = con.execute(
            "SELECT count(DISTINCT song_id), count(*) FILTER (snippet >= 0) // count(DISTINCT "
            "feature_set_id) FROM features").fetchone()
        smallest = con.execute("SELECT min(n) FROM (SELECT count(*) AS n FROM songs "
                               "WHERE status = 'ok' GROUP BY folder) WHERE n >= ?",
                               [args.min_songs]).fetchone()[0]
    cv = args.cv or min(5, smallest)
    print(f"{args.corpus.name}: {n_songs} songs, {n_snippets} snippets, folder labels; "
          f"macro-F1 of evaluate --cv {cv} --unit {args.unit} --model {args.model} (fold std), "
          f"seeds {args.seeds}; precision@{args.k} on z-scored features", flush=True)
    print(f"{'feature set':22} {'columns':>7} {'macro-F1':>15} {'P@k songs':>10} "
          f"{'P@k snippets':>12}", flush=True)
    for union in sets:
        score, spread = f1(args.db, union, args.unit, seeds, args.model, cv, args.min_songs)
        songs, snippets = precision_at_k(args.db, union, args.k)
        with duckdb.connect(str(args.db), read_only=True) as con:
            exp = ex.get(con, "quality-" + union.replace(",", "-").replace("_", "-"))
            columns = ex.dataset(con, replace(exp, unit="song")).X.shape[1]
        print(f"{union.replace(',', '+'):22} {columns:>7} {score:>7.3f} ± {spread:.3f} "
              f"{songs:>10.3f} {snippets:>12.3f}", flush=True)
    songs, snippets = chance(args.db, sets[0], args.k)
    print(f"{'chance':22} {'':>7} {'':>15} {songs:>10.3f} {snippets:>12.3f}", flush=True)


if __name__ == "__main__":
    main()
