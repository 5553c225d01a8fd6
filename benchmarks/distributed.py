"""Scale-out numbers (issue 14): the local pool vs a Dask cluster, the single writer's capacity,
and the 200,000-track plan.

    python benchmarks/distributed.py                  # small: 6 corpus files, 300 songs written
    python benchmarks/distributed.py --files 24 --small 4 --only-a
    python benchmarks/distributed.py --files 48 --songs 5000

(a) the same folder (benchmarks/corpus if present, else generated songs) ingested by the real
    CLI with the local pool (--workers 2) and with --scheduler local:2: wall and CPU seconds
    (this process's children, the Dask workers included), x realtime per core; each also
    with --small files, which splits the fixed start-up from the cost per audio hour.
(b) the single writer's capacity: synthetic results of real shape (default + seed55 of a
    4-minute song: the whole song and 8 snippets of 30 s, taken from one real analysis)
    through the real write path (musicdb.ingest.run.ingest -> write_batch -> Writer) as fast
    as it takes them: songs/s, MB/s of feature values, and how many analysis workers one
    writer keeps up with (a worker analyses one such song in 240 s / (x realtime per core)).
(c) the 200,000-track plan: one Dask task per file; bytes Dask pickles per song each way
    (the job: the wrapper, the analysis function by name, its arguments; the result).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import duckdb
import numpy as np
import psutil

import musicdb.ingest.run
from musicdb.analysis.analyse import Analysis, analyse_file
from musicdb.analysis.features import FrameParams
from musicdb.audio import synth
from musicdb.ingest.run import ingest
from musicdb.store.writer import Writer

CORPUS = Path(__file__).parent / "corpus"
MUSICDB = str(Path(sys.executable).with_name("musicdb"))
SETS = ("default", "seed55")
SONG_S = 240.0  # 4 minutes: the whole song and 8 snippets of 30 s
TRACKS = 200_000
DEFAULT_REALTIME_PER_CORE = 124.0  # README's figure on an idle machine; --skip-a uses it


def tree_cpu(proc: subprocess.Popen, poll_s: float = 0.1) -> tuple[float, float]:
    """CPU seconds of a process and of its descendants (the forkserver's workers, the Dask
    workers), sampled until it exits: a worker gone between samples loses < poll_s."""
    seen: dict[int, float] = {}
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        with contextlib.suppress(psutil.Error):
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    seen[p.pid] = t.user + t.system
        time.sleep(poll_s)
    here = seen.pop(proc.pid, 0.0)
    return here, sum(seen.values())


def pick_folder(tmp: Path, files: int, name: str = "folder") -> Path:
    """The first `files` corpus files (symlinked), or generated songs if there is no corpus."""
    folder = tmp / name
    folder.mkdir()
    found = sorted(p for p in CORPUS.rglob("*") if p.suffix in (".flac", ".mp3", ".ogg",
                                                               ".opus"))
    if found:
        for i, path in enumerate(found[:files]):
            (folder / f"{i:03d}-{path.name}").symlink_to(path.resolve())
    else:
        for i in range(files):
            synth.write_audio(folder / f"song{i:03d}.flac",
                              synth.tone(200 + 40 * i, 60) + synth.clicks(100 + i, 60, amp=0.3))
    return folder


def timed_ingest(folder: Path, db: Path, *options: str) -> dict[str, float]:
    wall0 = time.perf_counter()
    proc = subprocess.Popen([MUSICDB, "ingest", str(folder), "--db", str(db), *options],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client, workers = tree_cpu(proc)
    wall = time.perf_counter() - wall0
    if proc.returncode != 0:
        raise SystemExit(f"ingest {' '.join(options)} failed: exit code {proc.returncode}")
    with duckdb.connect(str(db), read_only=True) as con:
        audio_s, = con.execute("SELECT sum(duration_s) FROM songs WHERE status = 'ok'"
                               ).fetchone()
    return {"wall": wall, "cpu": client + workers, "client": client, "workers": workers,
            "audio_s": audio_s}


EXECUTORS = (("local pool --workers 2", ("--workers", "2")),
             ("--scheduler local:2", ("--scheduler", "local:2")))


def compare_executors(tmp: Path, files: int, small: int) -> float:
    """(a); returns the pool's x realtime per CPU second (for (b), (c)).

    Each executor ingests `small` files and `files` files: the difference is the cost of the
    audio in between (per audio hour: what a 200,000-track library pays), the rest of the
    small run is the fixed start-up (workers, imports, kernels, the scan, closing)."""
    big_folder, small_folder = pick_folder(tmp, files), pick_folder(tmp, small, "small")
    print(f"(a) {files} and {small} files from "
          f"{'benchmarks/corpus' if CORPUS.exists() else 'generated'}, 2 workers each, the "
          "real CLI (default + seed55, snippets of 30 s); CPU: the ingest process + workers")
    print(f"    {'executor':<22}{'files':>6}{'wall s':>8}{'CPU s':>8}{'(ingest':>9}"
          f"{'+ workers)':>11}{'x realtime/core':>17}{'x realtime/CPU s':>18}")
    rows: dict[str, dict[str, float]] = {}
    for i, (name, options) in enumerate(EXECUTORS):
        for count, folder in ((files, big_folder), (small, small_folder)):
            r = rows[f"{name} {count}"] = timed_ingest(folder, tmp / f"a{i}-{count}.duckdb",
                                                       *options)
            print(f"    {name:<22}{count:>6}{r['wall']:>8.1f}{r['cpu']:>8.1f}"
                  f"{r['client']:>9.1f}{r['workers']:>11.1f}"
                  f"{r['audio_s'] / r['wall'] / 2:>17.0f}{r['audio_s'] / r['cpu']:>18.0f}")
    print("    split: start-up (the small run less its audio's share) + cost per audio hour "
          "(the difference of the two runs)")
    split = {}
    for name, _ in EXECUTORS:
        big, little = rows[f"{name} {files}"], rows[f"{name} {small}"]
        hours = (big["audio_s"] - little["audio_s"]) / 3600
        split[name] = {k: ((big[k] - little[k]) / hours,
                           little[k] - little["audio_s"] / 3600 * (big[k] - little[k]) / hours)
                       for k in ("wall", "cpu")}
        (wall_h, wall_0), (cpu_h, cpu_0) = split[name]["wall"], split[name]["cpu"]
        print(f"    {name:<22} start-up {wall_0:5.1f} s wall {cpu_0:5.1f} s CPU; per audio "
              f"hour {wall_h:5.1f} s wall {cpu_h:5.1f} s CPU")
    pool, dask = (rows[f"{name} {files}"] for name, _ in EXECUTORS)
    (p, d) = (split[name] for name, _ in EXECUTORS)
    print(f"    Dask / pool, {files} files: wall {dask['wall'] / pool['wall']:.2f}, CPU "
          f"{dask['cpu'] / pool['cpu']:.2f} (audio {pool['audio_s'] / 60:.1f} min); per audio "
          f"hour: wall {d['wall'][0] / p['wall'][0]:.2f}, CPU {d['cpu'][0] / p['cpu'][0]:.2f}; "
          f"start-up: wall {d['wall'][1] - p['wall'][1]:+.1f} s, "
          f"CPU {d['cpu'][1] - p['cpu'][1]:+.1f} s")
    # Per CPU second, not per core of wall time: on a shared machine the wall is the load's.
    return pool["audio_s"] / pool["cpu"]


def template_analysis(tmp: Path) -> Analysis:
    """One real analysis of a 4-minute song: the shapes every synthetic result copies."""
    path = tmp / "template.flac"
    synth.write_audio(path, synth.tone(330, SONG_S) + synth.clicks(120, SONG_S, amp=0.3))
    result = analyse_file(str(path), SETS, 30.0, FrameParams())
    assert result.ok, result.error
    assert all(len(v.snippets) == 8 for v in result.values.values())
    return result


class Instant:
    """An executor whose every job is done at once: the template, under the job's path."""

    slots = 1
    analyses_here = False

    def __init__(self, template: Analysis) -> None:
        self.template = template

    def warm_up(self) -> None: ...

    def run(self, work: Callable[..., Any], jobs: Iterable) -> Iterator[tuple[Any, Any]]:
        for key, args, _seconds in jobs:
            yield key, dataclasses.replace(self.template, path=args[0])


class Clock:
    """Progress that notes when the first result is written ... and the last."""

    def __init__(self) -> None:
        self.first = self.last = 0.0
        self.count = 0

    def stage(self, text: str) -> None: ...

    def start(self, total: int) -> None:
        self.first = time.perf_counter()

    def advance(self, audio_s: float) -> None:
        self.count += 1
        self.last = time.perf_counter()


def value_bytes(result: Analysis) -> int:
    return sum(np.asarray(v.whole, np.float32).nbytes
               + sum(np.asarray(s, np.float32).nbytes for s in v.snippets)
               for v in result.values.values())


def writer_capacity(tmp: Path, template: Analysis, songs: int, per_core: float) -> None:
    """(b)"""
    folder = tmp / "tiny"
    folder.mkdir()
    rng = np.random.default_rng(14)
    for i in range(songs):  # distinct contents: each is a result of its own, not a copy
        synth.write_audio(folder / f"s{i:05d}.wav", rng.uniform(-0.1, 0.1, 2205), sr=22050)
    db, clock = tmp / "writer.duckdb", Clock()
    written: list[float] = []  # when each batch's write ended

    def write_batch(*args: Any) -> None:
        real_write_batch(*args)
        written.append(time.perf_counter())

    real_write_batch = musicdb.ingest.run.write_batch
    musicdb.ingest.run.write_batch = write_batch
    try:
        with Writer(db) as writer:
            ingest(writer, [folder], executor=Instant(template), sets=SETS, progress=clock)
    finally:
        musicdb.ingest.run.write_batch = real_write_batch
    seconds = written[-1] - clock.first  # the first result taken ... the last one written
    rate = songs / seconds
    mb = value_bytes(template) / 1e6
    print(f"(b) the writer: {songs} synthetic songs (default + seed55, whole + 8 snippets: "
          f"{mb * 1e3:.1f} kB of values each) through ingest -> write_batch -> Writer")
    print(f"    {rate:,.0f} songs/s, {rate * mb:.1f} MB/s of values ({seconds:.1f} s; "
          f"database {db.stat().st_size / 1e6:.0f} MB)")
    for speed in sorted({round(per_core), round(DEFAULT_REALTIME_PER_CORE)}):
        worker_songs_s = speed / SONG_S
        print(f"    a worker at {speed}x realtime per core analyses {worker_songs_s:.2f} "
              f"4-min songs/s: one writer keeps up with {rate / worker_songs_s:,.0f} workers")


def plan_200k(template: Analysis, per_core: float, workers: int) -> None:
    """(c)"""
    # This file's name is the Dask package's: its folder, first on sys.path, would shadow it.
    here = Path(__file__).parent.resolve()
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    from musicdb.workers.dask_task import run_job

    path = "/music/Some Artist/Some Album/01 - Some Title.flac"
    args = (path, SETS, 30.0, FrameParams())
    job = len(cloudpickle.dumps((run_job, analyse_file, args, 120.0 + 0.1 * SONG_S, path)))
    back = len(pickle.dumps(dataclasses.replace(template, path=path), protocol=5))
    audio_h = TRACKS * SONG_S / 3600
    cpu_h = TRACKS * SONG_S / per_core / 3600
    print(f"(c) {TRACKS:,} tracks of {SONG_S / 60:.0f} min: {TRACKS:,} Dask tasks "
          f"(one per file), {audio_h:,.0f} h of audio, {cpu_h:,.0f} CPU-hours at "
          f"{per_core:.0f}x realtime per core: {cpu_h / workers:,.1f} h on {workers} workers")
    print(f"    sent per song: job {job:,} B to the worker, result {back:,} B back; "
          f"in all {TRACKS * job / 1e6:,.0f} MB out, {TRACKS * back / 1e9:,.1f} GB back")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=6, help="files for (a)")
    parser.add_argument("--small", type=int, default=3,
                        help="files of (a)'s second run, which measures the start-up")
    parser.add_argument("--only-a", action="store_true", help="(a) alone")
    parser.add_argument("--songs", type=int, default=300, help="synthetic songs for (b)")
    parser.add_argument("--workers", type=int, default=200, help="cluster size for (c)")
    parser.add_argument("--skip-a", action="store_true", help="no (a): 124x per core assumed")
    opts = parser.parse_args()
    if not 0 < opts.small < opts.files:
        parser.error("--small must be at least 1 and fewer than --files")
    tmp = Path(tempfile.mkdtemp(prefix="musicdb-distributed-"))
    try:
        per_core = (DEFAULT_REALTIME_PER_CORE if opts.skip_a
                    else compare_executors(tmp, opts.files, opts.small))
        if opts.only_a:
            return
        template = template_analysis(tmp)
        writer_capacity(tmp, template, opts.songs, per_core)
        plan_200k(template, per_core, opts.workers)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
