"""What the tonal set adds to an ingest's analysis: x realtime per core with and without it.

    .venv/bin/python benchmarks/tonal_cost.py benchmarks/corpus --limit 6

Each file is analysed twice in this one process (one thread), by analyse_file with the default
sets (default + seed55) and with default + seed55 + tonal, alternating so that a busy machine
slows both alike; CPU seconds by time.process_time. Also the tonal summaries alone on the frame
matrix (what the set costs once the shared decode, frames and tempograms exist).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

AUDIO = {".ogg", ".oga", ".opus", ".mp3", ".flac", ".wav", ".aiff", ".m4a"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--limit", type=int, default=6, help="files to time (sorted by path)")
    args = parser.parse_args()
    from musicdb.analysis.analyse import DEFAULT_SETS, analyse_file
    from musicdb.workers.allocator import keep_freed_memory

    keep_freed_memory()
    files = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in AUDIO)[: args.limit]
    with_tonal = (*DEFAULT_SETS, "tonal")
    analyse_file(str(files[0]), with_tonal, 30.0)  # warm: imports, kernels, caches
    cpu = {DEFAULT_SETS: 0.0, with_tonal: 0.0}
    audio_s = 0.0
    for path in files:
        for sets in (DEFAULT_SETS, with_tonal):
            started = time.process_time()
            result = analyse_file(str(path), sets, 30.0)
            cpu[sets] += time.process_time() - started
        if result.ok:
            audio_s += result.duration_s
        print(f"{path.name}: {result.duration_s or 0:.0f} s of audio", file=sys.stderr)
    summaries = _summary_cpu(files, with_tonal)
    base, full = cpu[DEFAULT_SETS], cpu[with_tonal]
    print(f"{len(files)} files, {audio_s / 60:.1f} min of audio")
    print(f"default+seed55        {audio_s / base:7.1f} x realtime per core ({base:.2f} CPU s)")
    print(f"default+seed55+tonal  {audio_s / full:7.1f} x realtime per core ({full:.2f} CPU s)")
    print(f"tonal's extra cost    {100 * (full - base) / base:+.1f} % CPU")
    extra = summaries[with_tonal] - summaries[DEFAULT_SETS]
    print(f"summaries alone, CPU s: default+seed55 {summaries[DEFAULT_SETS]:.3f}, with tonal "
          f"{summaries[with_tonal]:.3f}: tonal adds {extra:.3f} s, {100 * extra / base:.1f} % "
          "of the default analysis")


def _summary_cpu(files: list[Path], with_tonal: tuple[str, ...]) -> dict:
    """CPU seconds of summarise_sets alone (song + 30 s snippets) on each file's frames: the
    tempograms are computed once per call, shared by every set, as in an ingest."""
    from musicdb.analysis.analyse import DEFAULT_SETS, summarise_sets
    from musicdb.analysis.features import FrameParams, FrameStream, snippet_bounds
    from musicdb.audio.decode import decode

    params = FrameParams()
    cpu = {DEFAULT_SETS: 0.0, with_tonal: 0.0}
    for path in files:
        stream = FrameStream(params)
        decoded = decode(path, sr=params.sample_rate, sink=stream)
        frames = stream.finish()
        bounds = snippet_bounds(decoded.duration_s, 30.0)
        for _ in range(3):  # the summaries take milliseconds: repeat, alternating
            for sets in cpu:
                started = time.process_time()
                summarise_sets(frames, sets, bounds, params)
                cpu[sets] += (time.process_time() - started) / 3
    return cpu


if __name__ == "__main__":
    main()
