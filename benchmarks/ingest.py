"""Ingest speed, measured honestly: musicdb vs the study's plain librosa script, one run.

    python benchmarks/ingest.py ~/Music/some-folder --workers 1 --baseline 5
    python benchmarks/ingest.py                      # a generated 10-minute library
    python benchmarks/ingest.py --compare-hold --batch-files 4

Prints files, hours of audio, wall seconds, x realtime (per core), CPU seconds of the analysis,
start-up cost apart, and - with --baseline N - the ratio against the plain librosa pipeline on
the first N files. With --compare-hold, the same folder twice, side by side: the database held
for the whole run (one connection) and opened per batch (what `musicdb ingest` does, so that
readers get in between): wall, x realtime, and the milliseconds each open + close (checkpoint)
costs. Machines are noisy: quote the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np

import musicdb.ingest.run
from musicdb.audio.scan import find_audio
from musicdb.audio.synth import demo_library
from musicdb.ingest.run import IngestSummary, ingest
from musicdb.store.writer import Writer
from musicdb.workers.pool import LocalPool


def study_pipeline(path: Path) -> int:
    """The straightforward script: load, HPSS on the waveform, every feature on its own."""
    y, sr = librosa.load(path, sr=22050, mono=True)
    y_h, y_p = librosa.effects.hpss(y)
    kw = {"sr": sr, "n_fft": 2048, "hop_length": 441}
    outs = [
        librosa.feature.rms(y=y_p), librosa.feature.rms(y=y_h),
        librosa.feature.spectral_centroid(y=y, **kw), librosa.feature.spectral_bandwidth(y=y, **kw),
        librosa.feature.spectral_contrast(y=y, **kw), librosa.feature.poly_features(y=y_h, **kw),
        librosa.feature.tonnetz(y=y_h, sr=sr), librosa.feature.zero_crossing_rate(y),
        librosa.onset.onset_strength(y=y_p, sr=sr),
    ]
    tempo, _ = librosa.beat.beat_track(y=y_p, sr=sr)
    return sum(o.size for o in outs) + int(np.size(tempo))


def startup_seconds() -> float:
    """A fresh interpreter importing the analysis stack (what every worker pays once)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import musicdb.analysis.analyse"], check=True)
    return time.perf_counter() - t0


def timed_ingest(folder: Path, db: Path, executor: LocalPool, snippet_seconds: float, *,
                 hold: bool) -> tuple[IngestSummary, Writer, float]:
    """One ingest into a new db; returns its summary, its writer and the final close's seconds
    (a held connection checkpoints everything there)."""
    with Writer(db, hold=hold) as writer:
        s = ingest(writer, [folder], executor=executor, snippet_seconds=snippet_seconds)
        t0 = time.perf_counter()
    return s, writer, time.perf_counter() - t0


def compare_hold(folder: Path, tmp: Path, executor: LocalPool, snippet_seconds: float,
                 repeat: int) -> None:
    """The same folder ingested into new databases, alternately with one connection for the
    run and one per batch (alternating, so neither gets all of a busy machine's bad moments)."""
    print(f"{'database':<24}{'wall s':>8}{'x realtime':>12}{'writes':>8}"
          f"{'first open ms':>15}{'later open+close ms':>21}")
    for i in range(repeat):
        for hold in (True, False):
            s, writer, final_close = timed_ingest(folder, tmp / f"run{i}-{hold}.duckdb",
                                                  executor, snippet_seconds, hold=hold)
            first, *later = writer.open_close_s
            later = later or [final_close]  # held: its one close checkpoints the whole run
            name = "held for the whole run" if hold else "opened per batch"
            print(f"{name:<24}{s.wall_s + final_close:>8.1f}{s.realtime:>12.1f}"
                  f"{len(later) if not hold else 1:>8}{first * 1000:>15.0f}"
                  f"{statistics.median(later) * 1000:>21.1f}")


def batch_at_scale(source: Path, tmp: Path, files: int = 64) -> None:
    """A batch's open, write and close on a copy of a large database (e.g. the 100,000-song
    library benchmarks/similar.py caches): what opening per batch adds at that size, with a
    checkpoint at every close and with DuckDB's own checkpoints only (every `wal_autocheckpoint`
    of journal; the next open replays the journal). Each batch copies `files` songs with
    their feature rows under new ids, as write_batch would."""
    import shutil

    from musicdb.store.database import connect, mark_similarity_stale, reopen, transaction

    # enough batches for DuckDB's own checkpoint (16 MB of journal, ~1 MB a batch) to come
    for checkpoint, wal, batches in ((True, None, 6), (False, None, 20), (False, "4MB", 12)):
        db = tmp / "scale.duckdb"
        shutil.copy(source, db)
        with connect(db) as con:  # the first open: migrations and views, once per run
            songs, next_id = con.execute("SELECT count(*), max(song_id) + 1 FROM songs"
                                         ).fetchone()
        opens, writes, closes = [], [], []
        for b in range(batches):
            t0 = time.perf_counter()
            with reopen(db, checkpoint=checkpoint) as con:
                if wal:
                    con.execute(f"SET wal_autocheckpoint = '{wal}'")
                t1 = time.perf_counter()
                first = next_id + b * files
                with transaction(con, "a batch"):
                    con.execute("INSERT INTO songs SELECT * REPLACE (song_id + ? AS song_id) "
                                "FROM songs ORDER BY song_id LIMIT ?", [first - 1, files])
                    con.execute("INSERT INTO features SELECT * REPLACE (song_id + ? AS "
                                "song_id) FROM features WHERE song_id < ?", [first - 1, files + 1])
                    mark_similarity_stale(con)
                t2 = time.perf_counter()
            t3 = time.perf_counter()
            opens.append(t1 - t0)
            writes.append(t2 - t1)
            closes.append(t3 - t2)
        how = ("checkpoint at each close" if checkpoint else
               f"DuckDB's checkpoints ({wal or '16MB, its default'})")
        print(f"{how:<30} a batch of {files} into {songs:,} songs "
              f"({source.stat().st_size / 2**20:.0f} MB), mean of {batches}: open "
              f"{statistics.mean(opens) * 1000:.0f} ms, write {statistics.mean(writes) * 1000:.0f}"
              f" ms, close {statistics.mean(closes) * 1000:.0f} ms; total "
              f"{(sum(opens) + sum(writes) + sum(closes)) / batches * 1000:.0f} ms")
        db.unlink()
        db.with_name(db.name + ".wal").unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--snippet-seconds", type=float, default=30.0)
    ap.add_argument("--baseline", type=int, default=0, metavar="N",
                    help="also time the plain librosa pipeline on N files spread over the folder")
    ap.add_argument("--compare-hold", action="store_true",
                    help="ingest twice, side by side: the database held for the whole run, "
                    "and opened for each batch")
    ap.add_argument("--at-scale", type=Path, metavar="DB",
                    help="time a batch's open, write and close on a copy of DB (e.g. "
                    "benchmarks/.cache/similar-100k.duckdb) instead of an ingest")
    ap.add_argument("--repeat", type=int, default=2, help="with --compare-hold: pairs of runs")
    ap.add_argument("--batch-files", type=int, default=musicdb.ingest.run.BATCH_FILES,
                    help="files per write (smaller: more batches, so more opens to time)")
    args = ap.parse_args()
    musicdb.ingest.run.BATCH_FILES = args.batch_files

    with tempfile.TemporaryDirectory() as tmp:
        if args.at_scale:
            batch_at_scale(args.at_scale, Path(tmp))
            return
        folder = args.folder
        if folder is None:
            folder = Path(tmp) / "library"
            demo_library(folder, songs_per_artist=4, seconds=37.5)
        files = [c.path for c in find_audio([folder])]
        print(f"start-up (python + import musicdb.analysis.analyse): {startup_seconds():.2f} s")
        executor = LocalPool(args.workers)
        executor.warm_up()
        if args.compare_hold:
            compare_hold(folder, Path(tmp), executor, args.snippet_seconds, args.repeat)
            return
        s, _, _ = timed_ingest(folder, Path(tmp) / "bench.duckdb", executor,
                               args.snippet_seconds, hold=False)
        per_core = s.audio_s / (s.wall_s * s.workers)
        print(f"musicdb ingest: {s.found} files, {s.audio_s / 3600:.3f} h audio, {len(s.failed)} "
              f"failed, wall {s.wall_s:.1f} s, workers {s.workers}")
        print(f"  {s.realtime:.1f}x realtime, {per_core:.1f}x realtime per core (wall), "
              f"{s.audio_s / s.cpu_s:.1f}x realtime per CPU second of analysis")
        if args.baseline:
            # spread over the folder, not just its first album
            subset = files[:: max(1, len(files) // args.baseline)][: args.baseline]
            durations = [librosa.get_duration(path=p) for p in subset]
            t0 = time.process_time()
            for p in subset:
                study_pipeline(p)
            base_cpu = time.process_time() - t0
            base_rt = sum(durations) / base_cpu
            ours_rt = s.audio_s / s.cpu_s
            print(f"plain librosa pipeline on {len(subset)} of those files: "
                  f"{base_rt:.1f}x realtime per CPU second")
            print(f"ratio musicdb / plain librosa (per CPU second): {ours_rt / base_rt:.2f}")


if __name__ == "__main__":
    main()
