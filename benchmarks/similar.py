"""Similarity at library scale: synthetic databases of 100,000 songs in 2,000 artists and of
1,000,000 songs in 20,000 artists (131 features), and the timings users feel.

    python benchmarks/similar.py                        # both sizes
    python benchmarks/similar.py --sizes 100k           # one
    python benchmarks/similar.py --before cf11baa       # and an older musicdb beside this one

Each library is imported once through the real write path (`musicdb import` of a Parquet
table, which also fills the similarity tables) and cached in benchmarks/.cache/ (1M songs
take about 4 minutes to build on a busy 2-core machine; delete the file to rebuild). Every
run then re-creates the views and macros with this tree's sql/ (a write open, no data
change), and prints, per size:

- `musicdb similar ARTIST` as a new process, start-up included (goal < 0.5 s), with the floors
  under it: a bare Python, `import musicdb.cli`;
- similar_artists(), similar_songs() and 1,000 randomly chosen artists' pairwise distances
  (`artist_distances` filtered by a subquery, and `artist_distances_for`), in one connection.

With `--before REV`, the same timings for that commit side by side, alternating runs: its
Python tree (from `git archive`) runs the CLI, and its sql/30_similarity.sql's macros and view
are created as TEMP objects beside today's. (Its CLI process still finds today's macros in the
database, so its CLI line shows its Python start-up, not its SQL: the SQL lines show that.)
The view filtered by a subquery runs once, stopped after `--cap` seconds (it forms every pair
first: minutes at 20,000 artists). Wall time on a loaded machine varies; each line gives the
median of several runs, min and max beside it, and for processes the CPU seconds they used,
which load disturbs less.
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

N_FEATURES = 131
REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / "benchmarks" / ".cache"
SIZES = {"100k": (100_000, 2_000), "1m": (1_000_000, 20_000)}
CHOSEN = 1_000  # artists whose pairwise distances are asked for
# The statements of sql/30_similarity.sql a --before commit is timed on, as TEMP objects.
BEFORE_OBJECTS = ("artist_distances", "similar_artists", "similar_songs")


def build(db: Path, songs: int, artists: int) -> float:
    """Artists as clusters in feature space, songs scattered around them; imported via the CLI."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (artists, N_FEATURES)) * rng.uniform(0.1, 1000, N_FEATURES)
    who = rng.integers(0, artists, songs)
    values = centres[who] + rng.normal(0, 0.5, (songs, N_FEATURES)) * np.abs(centres[who] * 0.2)
    columns = {"label": [f"artist_{i:04d}" for i in who],
               "file": [f"song_{n}" for n in range(songs)]}
    columns |= {f"f{j:03d}": values[:, j].astype(np.float32) for j in range(N_FEATURES)}
    db.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "synthetic.parquet"
        pq.write_table(pa.table(columns), table)
        del columns, values
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "musicdb", "import", str(table), "--feature-set",
                        "synth131", "--db", str(db)], check=True, capture_output=True)
        return time.perf_counter() - started


def refresh_views(db: Path) -> None:
    """Today's views and macros in the cached file (what any write command does)."""
    from musicdb.store import database as store

    with store.connect(db):
        pass


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return runs


def process_runs(cmd: list[str], repeat: int, tree: Path = REPO) -> tuple[list, list]:
    """Wall seconds and CPU seconds (user + sys) of each run of a command, with `tree`'s
    musicdb (the working folder comes first on sys.path, before the installed one)."""
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=tree)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def line(what: str, runs: list[float], *, goal: float | None = None,
         cpu: list[float] | None = None) -> str:
    text = (f"  {what:58s} median {statistics.median(runs):6.3f} s "
            f"(min {min(runs):.3f}, max {max(runs):.3f})")
    if cpu is not None:
        text += f"  cpu {statistics.median(cpu):.3f} s"
    if goal is not None:
        text += f"  goal < {goal} s: {'ok' if statistics.median(runs) < goal else 'SLOWER'}"
    return text


def capped(what: str, con, sql: str, cap: float) -> str:
    """One run of a query that may take minutes, interrupted after `cap` seconds."""
    import duckdb

    timer = threading.Timer(cap, con.interrupt)
    started = time.perf_counter()
    timer.start()
    try:
        rows = con.execute(sql).to_arrow_table().num_rows
    except duckdb.InterruptException:
        return f"  {what:58s} > {cap:.0f} s (stopped)"
    finally:
        timer.cancel()
    return f"  {what:58s} {time.perf_counter() - started:6.3f} s (one run, {rows:,} rows)"


def before_tree(rev: str, into: Path) -> Path:
    """That commit's files (git archive), to run its musicdb and read its SQL."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def before_sql(tree: Path) -> str:
    """The commit's view and macros as TEMP objects named before_*: timed beside today's."""
    text = (tree / "sql" / "30_similarity.sql").read_text(encoding="utf-8")
    statements = []
    for statement in text.split(";\n"):
        body = re.sub(r"^(\s*--[^\n]*\n)*", "", statement.strip() + "\n").strip()
        for name in BEFORE_OBJECTS:
            if re.match(rf"CREATE OR REPLACE (VIEW|MACRO) {name}\b", body):
                renamed = re.sub(r"\b(similar_artists|similar_songs|artist_distances)\b",
                                 r"before_\1", body)
                statements.append(renamed.replace("CREATE OR REPLACE ",
                                                  "CREATE OR REPLACE TEMP ", 1))
    return ";\n".join(statements) + ";"


def bench(size: str, args: argparse.Namespace, tree: Path | None) -> None:
    songs, artists = SIZES[size]
    db = CACHE / f"similar-{size}.duckdb"
    if db.exists():
        print(f"{size}: {songs:,} songs in {artists:,} artists, cached in {db.name}")
    else:
        seconds = build(db, songs, artists)
        print(f"{size}: {songs:,} songs in {artists:,} artists, built through `musicdb import` "
              f"(similarity tables included) in {seconds:.1f} s, cached in {db.name}")
    refresh_views(db)

    print(" a new process:")
    print(line("python -c pass", process_runs([sys.executable, "-c", "pass"], args.repeat)[0]))
    print(line("python -c 'import musicdb.cli'",
               process_runs([sys.executable, "-c", "import musicdb.cli"], args.repeat)[0]))
    cli = [sys.executable, "-m", "musicdb", "similar", "artist_0007", "-n", "10", "--db",
           str(db)]
    runs = {"today": ([], []), "before": ([], [])}
    for _ in range(args.repeat):  # alternating, so load drifts hit both alike
        for who, where in (("today", REPO), ("before", tree)):
            if where is None:
                continue
            wall, cpu = process_runs(cli, 1, where)
            runs[who][0].extend(wall)
            runs[who][1].extend(cpu)
    if tree is not None:
        print(line(f"musicdb similar ARTIST, {args.before}", runs["before"][0],
                   cpu=runs["before"][1], goal=0.5))
    print(line("musicdb similar ARTIST, today", runs["today"][0], cpu=runs["today"][1],
               goal=0.5))

    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    if tree is not None:
        con.execute(before_sql(tree))
    con.execute("CREATE TEMP TABLE chosen AS SELECT label FROM artist_centroids "
                "WHERE label_from = 'auto' ORDER BY hash(label) LIMIT ?", [CHOSEN])
    queries = [
        ("similar_artists('artist_0007', 10)",
         "SELECT * FROM {prefix}similar_artists('artist_0007', 10)", 0.1),
        ("similar_songs(1, 10)", "SELECT * FROM {prefix}similar_songs(1, 10)", 0.2),
    ]
    print(f" SQL in one connection ({CHOSEN:,} random artists: {CHOSEN * (CHOSEN - 1):,} pairs):")
    for what, sql, goal in queries:
        if tree is not None:
            print(line(f"{what}, {args.before}",
                       timed(lambda s=sql: con.execute(s.format(prefix="before_")).fetchall(),
                             args.repeat)))
        print(line(f"{what}, today",
                   timed(lambda s=sql: con.execute(s.format(prefix="")).fetchall(),
                         args.repeat), goal=goal))
    # The view filtered by a subquery forms every pair first: one run, stopped at the cap.
    view_sql = ("SELECT * FROM {view} WHERE label_from = 'auto' AND artist IN (SELECT label "
                "FROM chosen) AND other IN (SELECT label FROM chosen)")
    views = [("before_artist_distances", args.before)] if tree is not None else []
    for view, who in [*views, ("artist_distances", "today")]:
        print(capped(f"artist_distances + IN (SELECT ...), {who}", con,
                     view_sql.format(view=view), args.cap))
    macro = ("SELECT * FROM artist_distances_for((SELECT list(label) FROM chosen), "
             "others := (SELECT list(label) FROM chosen), label_rule := 'auto')")
    # Fetched as Arrow: the query's whole result, without a million Python tuples.
    print(line("artist_distances_for(list, others := list), today",
               timed(lambda: con.execute(macro).to_arrow_table(), args.repeat), goal=1.0))
    con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cap", type=float, default=20.0,
                    help="seconds before a query of every pair is stopped (default 20)")
    ap.add_argument("--before", metavar="REV",
                    help="a commit to time side by side (e.g. cf11baa, before issue 16)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tree = before_tree(args.before, Path(tmp)) if args.before else None
        for size in args.sizes:
            bench(size, args, tree)


if __name__ == "__main__":
    main()
