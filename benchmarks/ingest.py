"""Ingest speed, measured honestly: musicdb vs the study's plain librosa script, one run.

    python benchmarks/ingest.py ~/Music/some-folder --workers 1 --baseline 5
    python benchmarks/ingest.py                      # a generated 10-minute library

Prints files, hours of audio, wall seconds, x realtime (per core), CPU seconds of the analysis,
start-up cost apart, and - with --baseline N - the ratio against the plain librosa pipeline on
the first N files. Machines are noisy: quote the ratios.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np

from musicdb.audio.scan import find_audio
from musicdb.audio.synth import demo_library
from musicdb.ingest.run import ingest
from musicdb.store import database as store
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--snippet-seconds", type=float, default=30.0)
    ap.add_argument("--baseline", type=int, default=0, metavar="N",
                    help="also time the plain librosa pipeline on N files spread over the folder")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder
        if folder is None:
            folder = Path(tmp) / "library"
            demo_library(folder, songs_per_artist=4, seconds=37.5)
        files = [c.path for c in find_audio([folder])]
        print(f"start-up (python + import musicdb.analysis.analyse): {startup_seconds():.2f} s")
        with store.connect(Path(tmp) / "bench.duckdb") as con:
            executor = LocalPool(args.workers)
            executor.warm_up()
            s = ingest(con, [folder], executor=executor, snippet_seconds=args.snippet_seconds)
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
