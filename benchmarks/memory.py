"""Peak memory of one worker on long files: generate N-minute files, analyse each, print peak RSS.

    python benchmarks/memory.py                          # 10 and 60 minutes, wav (44.1 kHz mono)
    python benchmarks/memory.py --minutes 60 180 --format ogg
    python benchmarks/memory.py --minutes 10 --format flac --compare /tmp/old --repeat 3

Each analysis runs in a fresh child process set up as an ingest worker is (musicdb.workers.preload:
one BLAS thread, the allocator, warm kernels), so its peak RSS (getrusage ru_maxrss) is the
worker's alone. `--compare DIR` also runs every file with the musicdb package found in DIR (e.g.
`git archive OLD musicdb | tar -x -C DIR`), alternating with this one, for a side-by-side
of memory and CPU time. The files are written block by block and deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100
FORMATS = {".ogg": ("OGG", "VORBIS"), ".flac": ("FLAC", "PCM_16"), ".wav": ("WAV", "PCM_16")}

CHILD = """
import json, resource, sys, time
import musicdb, musicdb.workers.preload
from musicdb.analysis.analyse import DEFAULT_SETS, analyse_file
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
started = time.process_time()
result = analyse_file(sys.argv[1], DEFAULT_SETS, 30.0)
print(json.dumps({
    "ok": result.ok, "error": result.error, "duration_s": result.duration_s,
    "cpu_s": time.process_time() - started, "base_mb": base,
    "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "package": musicdb.__path__[0],
    "whole": result.values["default"].whole.tolist() if result.ok else None,
}))
"""


def write_long_file(path: Path, minutes: float, channels: int) -> None:
    """Tones, clicks and noise that change every 10 s (not one easy loop), 10 s per write."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", samplerate=SR, channels=channels,
                      format=FORMATS[path.suffix][0], subtype=FORMATS[path.suffix][1]) as f:
        t = np.arange(10 * SR) / SR
        for _ in range(round(minutes * 6)):
            freq, bpm = rng.uniform(80, 2000), rng.uniform(70, 170)
            y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
            y[(np.arange(0, 10, 60 / bpm) * SR).astype(int)] += 0.6
            f.write(np.stack([np.roll(y, 100 * c) for c in range(channels)], axis=1)
                    .astype(np.float32))


def analyse_in_child(path: Path, package_root: str | None) -> dict:
    env = dict(os.environ)
    if package_root:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    started = time.perf_counter()
    # Run from the file's folder: `python -c` puts the working directory first on sys.path.
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True,
                          text=True, check=True, env=env, cwd=path.parent)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result | {"wall_s": time.perf_counter() - started}


def report(label: str, minutes: float, r: dict) -> None:
    state = "ok" if r["ok"] else f"error: {r['error']}"
    print(f"{label:8s} {minutes:6.0f} min  peak RSS {r['peak_mb']:6.0f} MB "
          f"(+{r['peak_mb'] - r['base_mb']:4.0f} over the warm worker)  "
          f"{r['cpu_s']:6.1f} CPU s  {r['wall_s']:6.1f} s wall  {state}  ({r['package']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--format", choices=["ogg", "flac", "wav"], default="wav")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--compare", metavar="DIR", help="another tree with a musicdb package")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each file (each side)")
    args = parser.parse_args()
    cpu: dict[str, list[float]] = {"this": [], "compare": []}
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            path = Path(tmp) / f"long.{args.format}"
            t0 = time.perf_counter()
            write_long_file(path, minutes, args.channels)
            print(f"wrote {minutes:.0f} min {args.format}: {path.stat().st_size / 1e6:.0f} MB "
                  f"in {time.perf_counter() - t0:.0f} s")
            for _ in range(args.repeat):
                sides = [("this", None)] + ([("compare", args.compare)] if args.compare else [])
                results = {}
                for label, root in sides:
                    results[label] = analyse_in_child(path, root)
                    report(label, minutes, results[label])
                    cpu[label].append(results[label]["cpu_s"])
                if args.compare and results["this"]["ok"] and results["compare"]["ok"]:
                    a, b = (np.array(results[k]["whole"]) for k in ("this", "compare"))
                    print(f"         whole-song values: max relative difference "
                          f"{np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)):.1e}")
            path.unlink()
    if args.compare:
        print(f"CPU time, this / compare: {sum(cpu['this']) / sum(cpu['compare']):.3f} "
              f"({sum(cpu['this']):.1f} / {sum(cpu['compare']):.1f} s)")


if __name__ == "__main__":
    main()
