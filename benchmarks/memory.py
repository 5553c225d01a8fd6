"""Peak memory of one worker on a long file: generate an N-minute file, analyse it, print peak RSS.

    python benchmarks/memory.py                 # 60 minutes, ogg (Vorbis, 44.1 kHz stereo)
    python benchmarks/memory.py --minutes 90 --format flac

The analysis runs in a fresh child process (as an ingest worker does), so its peak RSS
(getrusage ru_maxrss) is the worker's alone. The file is written block by block and deleted.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100


def write_long_file(path: Path, minutes: float) -> None:
    """A stereo mix of tones, clicks and noise that changes every 10 s (not one easy loop)."""
    fmt = {".ogg": ("OGG", "VORBIS"), ".flac": ("FLAC", "PCM_16"), ".wav": ("WAV", "PCM_16")}
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=SR, channels=2, format=fmt[path.suffix][0],
                      subtype=fmt[path.suffix][1]) as f:
        t = np.arange(10 * SR) / SR
        for _ in range(int(minutes * 6)):
            freq, bpm = rng.uniform(80, 2000), rng.uniform(70, 170)
            y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
            y[(np.arange(0, 10, 60 / bpm) * SR).astype(int)] += 0.9
            f.write(np.stack([y, np.roll(y, 100)], axis=1).astype(np.float32))


def child(path: str) -> None:
    from musicdb.allocator import keep_freed_memory
    from musicdb.analyse import DEFAULT_SETS, analyse_file

    keep_freed_memory()  # as an ingest worker runs
    started = time.process_time()
    result = analyse_file(path, DEFAULT_SETS, 30.0)
    print(json.dumps({
        "ok": result.ok, "error": result.error, "duration_s": result.duration_s,
        "snippets": len(result.values["default"].bounds) if result.ok else 0,
        "cpu_s": time.process_time() - started,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--format", choices=["ogg", "flac", "wav"], default="ogg")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"long.{args.format}"
        t0 = time.perf_counter()
        write_long_file(path, args.minutes)
        print(f"wrote {args.minutes:.0f} min {args.format}: {path.stat().st_size / 1e6:.0f} MB "
              f"in {time.perf_counter() - t0:.0f} s")
        proc = subprocess.run([sys.executable, __file__, "--child", str(path)],
                              capture_output=True, text=True, check=True)
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"analysed: ok={r['ok']} {r['duration_s'] / 60:.1f} min, {r['snippets']} snippets, "
          f"{r['cpu_s']:.1f} CPU s ({r['duration_s'] / r['cpu_s']:.0f}x realtime per core)")
    print(f"peak RSS of the worker: {r['peak_rss_mb']:.0f} MB "
          f"(decoded mono 22,050 Hz float32 alone: {r['duration_s'] * 22050 * 4 / 2**20:.0f} MB)")


if __name__ == "__main__":
    main()
