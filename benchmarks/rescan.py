"""An unchanged re-ingest, timed as a user sees it: a whole `musicdb ingest DIR --db X` process.

    python benchmarks/rescan.py                 # 10,000 generated files (issue 16: <= 15 s)
    python benchmarks/rescan.py --files 1000    # smaller, quicker
    python benchmarks/rescan.py --profile       # + cProfile of the re-ingest's main process

The library (0.5 s tagged flac/ogg/wav files, nested Artist/Album folders) is generated once
and kept under benchmarks/.cache/, with its first ingest's database, so a second run of this
script only times. Each re-ingest runs on a copy of that database, so every repeat starts from
the same file. Prints the wall time, the stages the progress bar announced (their time stamps,
read from its stderr), a python -X importtime total, the database's size before and after, and
with --profile the functions that cost most.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
MUSICDB = str(Path(sys.executable).with_name("musicdb"))
SR = 22050
KINDS = (".flac", ".ogg", ".wav")


# Where each stage of one ingest process begins and ends: (module, attribute, stage name).
# Patched in the process itself (see _driver), so the run is the real CLI, only observed.
STAGES = (
    ("musicdb.workers.pool", "LocalPool.warm_up", "worker pool start (forkserver)"),
    ("musicdb.workers.pool", "LocalPool.run", "analysis on workers"),
    ("musicdb.store.database", "_inspect", "db: inspect (read-only open)"),
    ("musicdb.store.database", "_open", "db: open"),
    ("musicdb.store.database", "migrate", "db: migrate"),
    ("musicdb.store.database", "create_views", "db: create views"),
    ("musicdb.store.database", "_close", "db: close (checkpoint)"),
    ("musicdb.ingest.run", "register_sets", "register feature sets"),
    ("musicdb.ingest.run", "plan", "plan (scan, tags, hashing, SQL reads)"),
    ("musicdb.ingest.plan", "find_audio", "plan: scan folders"),
    ("musicdb.ingest.plan", "_file_info", "plan: read tags (per file, 4 threads)"),
    ("musicdb.ingest.plan", "_hash", "plan: hash (per file, 4 threads)"),
    ("musicdb.store.catalog", "scanned_songs", "plan: SQL songs known"),
    ("musicdb.store.catalog", "sets_present", "plan: SQL sets present"),
    ("musicdb.ingest.run", "apply_scan", "write: apply the scan"),
    ("musicdb.ingest.run", "write_batch", "write: batches"),
    ("musicdb.ingest.run", "similarity_stale", "similarity: stale check"),
    ("musicdb.ingest.run", "refresh_similarity", "similarity: refresh"),
    ("musicdb.ingest.run", "record_run", "write: run record"),
    ("musicdb.cli.progress", "render_summary", "summary"),
)


def _driver(argv: list[str]) -> None:
    """Run `musicdb ARGV` in this process with each STAGES function timed; the totals go to
    stderr as `STAGE<TAB>name<TAB>seconds<TAB>calls<TAB>first start` lines at exit. Imports of
    the patched modules happen at first use (as in the real CLI): their cost shows as gaps."""
    import atexit
    import functools
    import importlib
    import importlib.abc
    import importlib.util
    import inspect
    import threading

    t0 = float(os.environ["RESCAN_T0"])
    totals: dict[str, list[float]] = {}
    lock = threading.Lock()

    def add(name: str, start: float, calls: int = 1) -> None:
        with lock:
            entry = totals.setdefault(name, [0.0, 0, start - t0])
            entry[0] += time.time() - start
            entry[1] += calls

    def timed(fn, name):
        if inspect.isgeneratorfunction(fn):  # the time spent inside next(), not the caller's
            @functools.wraps(fn)
            def generator(*args, **kwargs):
                inner = fn(*args, **kwargs)
                calls = 1
                while True:
                    start = time.time()
                    try:
                        item = next(inner)
                    except StopIteration:
                        add(name, start, calls)
                        return
                    add(name, start, calls)
                    calls = 0
                    yield item
            return generator

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            start = time.time()
            try:
                return fn(*args, **kwargs)
            finally:
                add(name, start)
        return wrapper

    def patch(module) -> None:
        for mod, attr, name in STAGES:
            if mod != module.__name__:
                continue
            owner, _, leaf = attr.rpartition(".")
            target = getattr(module, owner) if owner else module
            setattr(target, leaf, timed(getattr(target, leaf), name))

    wanted = {mod for mod, _, _ in STAGES}

    class Observer(importlib.abc.MetaPathFinder):
        """Patch each module of STAGES right after it is first imported."""

        def find_spec(self, fullname, path, target=None):
            if fullname not in wanted:
                return None
            sys.meta_path.remove(self)
            try:
                spec = importlib.util.find_spec(fullname)
            finally:
                sys.meta_path.insert(0, self)
            loader = spec.loader
            original = loader.exec_module

            def exec_module(module):
                original(module)
                patch(module)
            loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, Observer())

    def report() -> None:
        for name, (seconds, calls, first) in totals.items():
            print(f"STAGE\t{name}\t{seconds:.3f}\t{calls}\t{first:.3f}", file=sys.stderr)
        print(f"STAGE\tat exit, last handler\t0\t1\t{time.time() - t0:.3f}", file=sys.stderr)
    atexit.register(report)  # registered first: runs last, after multiprocessing's own
    print(f"STAGE\tinterpreter start-up\t{time.time() - t0:.3f}\t1\t0", file=sys.stderr)
    sys.argv = ["musicdb", *argv]
    from musicdb.cli.app import main as musicdb_main

    try:
        musicdb_main()
    finally:
        print(f"STAGE\tmain returned\t0\t1\t{time.time() - t0:.3f}", file=sys.stderr)


def generate(root: Path, files: int, distinct: int) -> None:
    """`files` 0.5 s files in Artist/Album folders (10 tracks an album, 10 albums an artist),
    tagged (but the wavs). Only `distinct` of them are written; the others are byte copies
    of those, so the first ingest analyses `distinct` files and copies the values of the rest
    (a re-scan costs the same per file either way: unchanged files are never hashed)."""
    import numpy as np

    from musicdb.audio import synth

    rng = np.random.default_rng(16)
    t = np.arange(SR // 2) / SR
    originals: list[Path] = []
    for i in range(files):
        artist, album, track = i // 100, (i // 10) % 10, i % 10
        folder = root / f"Artist {artist:03d}" / f"Album {album}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{track:02d} Track{KINDS[i % len(KINDS)]}"
        if i >= distinct:
            original = originals[i % distinct]
            shutil.copyfile(original, path.with_suffix(original.suffix))
            continue
        y = (0.3 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t)
             + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
        synth.write_audio(path, y, sr=SR)
        if path.suffix != ".wav":
            synth.tag(path, artist=f"Artist {artist:03d}", album=f"Album {album}",
                      title=f"Track {i}", tracknumber=str(track + 1), genre="Test", date="2026")
        originals.append(path)


def prepared(files: int, distinct: int, workers: int) -> tuple[Path, Path]:
    """(library, its first ingest's database), made once and kept in the cache."""
    home = CACHE / f"rescan-{files}-{distinct}"
    root, db = home / "library", home / "first.duckdb"
    done = root.parent / "generated"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        t0 = time.perf_counter()
        generate(root, files, distinct)
        done.touch()
        print(f"generated {files} files in {time.perf_counter() - t0:.1f} s", flush=True)
    if not db.exists():
        t0 = time.perf_counter()
        partial = db.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        ingest(root, partial, workers, check=True)
        partial.rename(db)
        print(f"first ingest: {time.perf_counter() - t0:.1f} s", flush=True)
    return root, db


def ingest(root: Path, db: Path, workers: int, *, check: bool = False, observe: bool = False
           ) -> tuple[float, list[tuple[float, str]], list[tuple[str, float, int, float]]]:
    """(wall seconds, [(seconds since start, stderr line)], [(stage, seconds, calls, first
    start)]) of one `musicdb ingest` process; `observe` runs it under _driver's stage timers."""
    args = ["ingest", str(root), "--db", str(db), "--workers", str(workers)]
    cmd = [sys.executable, __file__, "--driver", *args] if observe else [MUSICDB, *args]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env=os.environ | {"COLUMNS": "200", "RESCAN_T0": repr(t0)})
    lines, stages = [], []
    assert proc.stderr is not None
    for line in proc.stderr:  # not a terminal: the progress bar prints each stage once
        if line.startswith("STAGE\t"):
            name, seconds, calls, first = line.rstrip("\n").split("\t")[1:]
            stages.append((name, float(seconds), int(calls), float(first)))
        else:
            lines.append((time.time() - t0, line.rstrip()))
    proc.wait()
    wall = time.time() - t0
    if check and proc.returncode != 0:
        raise SystemExit(f"ingest failed ({proc.returncode}):\n"
                         + "\n".join(line for _, line in lines))
    return wall, lines, stages


def import_seconds() -> float:
    """What the interpreter's imports cost before `ingest` does anything (python -X importtime:
    the cumulative microseconds of each top-level import, summed)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c",
                           "import musicdb.cli, musicdb.cli.ingest, musicdb.ingest.run, "
                           "musicdb.cli.progress, musicdb.store.database"],
                          capture_output=True, text=True, check=True)
    top = re.findall(r"^import time:\s+\d+ \|\s+(\d+) \| (\S+)$", proc.stderr, re.M)
    return sum(int(us) for us, _name in top) / 1e6


def profile(root: Path, db: Path, workers: int, top: int) -> None:
    """cProfile of the main process of one unchanged re-ingest, in this process."""
    from typer.testing import CliRunner

    from musicdb.cli import app

    prof = cProfile.Profile()
    prof.enable()
    result = CliRunner().invoke(app, ["ingest", str(root), "--db", str(db),
                                      "--workers", str(workers)])
    prof.disable()
    print(result.output[-400:])
    pstats.Stats(prof).sort_stats("cumulative").print_stats(top)


def show_stages(stages: list[tuple[str, float, int, float]], wall: float) -> None:
    print(f"  {'stage':42} {'starts at':>9} {'seconds':>8} {'calls':>6}")
    for name, seconds, calls, first in sorted(stages, key=lambda s: s[3]):
        print(f"  {name:42} {first:8.2f}s {seconds:8.2f} {calls:6d}")
    ends = {name: first for name, _s, _c, first in stages}
    if "main returned" in ends:
        print(f"  {'process exit (after main returned)':42} {ends['main returned']:8.2f}s "
              f"{wall - ends['main returned']:8.2f}")
    print(f"  {'whole process':42} {0:8.2f}s {wall:8.2f}")


def main() -> None:
    if sys.argv[1:2] == ["--driver"]:
        return _driver(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--distinct", type=int, default=1_000,
                    help="files of distinct content (the others are copies of them)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=3, help="unchanged re-ingests to time")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    root, first = prepared(args.files, min(args.distinct, args.files), args.workers)
    work = first.with_name("rescan.duckdb")
    shutil.copyfile(first, work)
    size0 = work.stat().st_size
    print(f"imports (python -X importtime, summed top level): {import_seconds():.2f} s")
    walls = []
    for i in range(args.repeat):
        wall, lines, _ = ingest(root, work, args.workers, check=True)
        walls.append(wall)
        print(f"\nre-ingest {i + 1}: {wall:.2f} s wall, database {size0 / 1e6:.2f} -> "
              f"{work.stat().st_size / 1e6:.2f} MB")
        for at, line in lines:
            if line.strip():
                print(f"  {at:6.2f} s  {line.strip()[:150]}")
    print(f"\nunchanged re-ingest of {args.files} files: best {min(walls):.2f} s, "
          f"median {sorted(walls)[len(walls) // 2]:.2f} s ({args.workers} workers)")
    wall, _, stages = ingest(root, work, args.workers, check=True, observe=True)
    print(f"\nby stage (one more re-ingest, timed inside: {wall:.2f} s wall):")
    show_stages(stages, wall)
    print(f"database after {args.repeat + 1} unchanged re-ingests: {size0 / 1e6:.2f} -> "
          f"{work.stat().st_size / 1e6:.2f} MB")
    if args.profile:
        profile(root, work, args.workers, args.top)


if __name__ == "__main__":
    main()
