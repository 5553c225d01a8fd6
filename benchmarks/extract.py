"""Feature-extraction speed and fidelity on real music: musicdb vs plain librosa, the floor, peers.

    bash benchmarks/corpus.sh                                   # ~2 h of free game music
    python benchmarks/extract.py benchmarks/corpus              # every file, every method
    python benchmarks/extract.py benchmarks/corpus --limit 12 --reference-limit 6
    python benchmarks/extract.py --from-csv                     # fidelity again, no extraction

Methods, each timed in its own fresh process (so peak RSS is its own), one thread, on the same
files in one run:

    floor      decode to 22,050 Hz mono (musicdb's decoder) + one magnitude STFT: the least any
               extractor must do
    musicdb    musicdb.analysis.analyse.analyse_file, the default ingest's sets (DEFAULT_SETS:
               default, seed55, tonal), song + snippets
    musicnn    analyse_file with the musicnn set alone (its decode, 16 kHz log-mel, network)
    musicdb+musicnn  the default ingest's sets and musicnn, in one pass
    reference  the study's 55 features with plain librosa (benchmarks/reference.py)
    bliss      bliss_audio.Song(path)                  (pip install bliss-audio), if installed
    essentia   essentia.standard.MusicExtractor()      (pip install essentia), if installed

floor and musicdb run with musicdb's allocator settings (musicdb.workers.allocator), as every
`musicdb ingest` analysis process does; the reference and the peers run as they come.

Speed is x realtime per core: seconds of audio per CPU second (time.process_time, which counts
every thread of the process) of the per-file work; start-up (interpreter + imports) is reported
apart. "x reference" and "of floor" compare CPU on the files both methods analysed. Fidelity:
Spearman rank correlation of each seed55 feature between musicdb's whole-song values and the
reference across files (flagged below 0.95), and how often the tempo agrees. Per-file values
go to --out (CSV) so --from-csv re-prints fidelity without extracting. Which musicdb is
measured is whatever `import musicdb` finds: set PYTHONPATH to measure another checkout.
"""

from __future__ import annotations

import os

# One thread everywhere, before numpy (or anything importing it) is loaded; children inherit it.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import hashlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

AUDIO_EXTENSIONS = {".ogg", ".oga", ".opus", ".mp3", ".flac", ".wav", ".aiff", ".m4a"}
METHODS = ("floor", "musicdb", "musicnn", "musicdb+musicnn", "reference", "bliss",
           "essentia")  # the order they run in
PEER_MODULES = {"bliss": "bliss_audio", "essentia": "essentia"}
DEFAULT_CSV = Path(__file__).parent / "results" / "extract_values.csv"
SNIPPET_SECONDS = 30.0
MIN_RHO = 0.95
TEMPO_TOLERANCE = 0.04


# ---------------------------------------------------------------- child: one method, its files


def _musicdb_note() -> dict:
    import musicdb

    return {"musicdb": str(Path(musicdb.__file__).parent)}


def _floor() -> tuple[Callable, dict]:
    import reference

    from musicdb.workers.allocator import keep_freed_memory

    keep_freed_memory()  # as musicdb's own analysis processes run

    def run(path: str) -> None:
        reference.floor(path)

    return run, _musicdb_note()


def _reference() -> tuple[Callable, dict]:
    import reference

    return lambda path: reference.reference_seed55(path).tolist(), _musicdb_note()


def _musicdb(extra: tuple[str, ...] = (), default: bool = True) -> tuple[Callable, dict]:
    from musicdb.analysis.analyse import DEFAULT_SETS, analyse_file
    from musicdb.workers.allocator import keep_freed_memory

    keep_freed_memory()  # as `musicdb ingest` does in every analysis process
    sets = (DEFAULT_SETS if default else ()) + extra

    def run(path: str) -> list[float] | None:
        analysis = analyse_file(path, sets, snippet_seconds=SNIPPET_SECONDS)
        if not analysis.ok:
            raise RuntimeError(analysis.error)
        return analysis.values["seed55"].whole.tolist() if "seed55" in sets else None

    return run, _musicdb_note() | {"sets": list(sets)}


def _bliss() -> tuple[Callable, dict]:
    import bliss_audio

    def run(path: str) -> None:
        try:
            bliss_audio.Song(path)
        except BaseException as exc:  # a Rust panic arrives as pyo3's PanicException
            if type(exc).__name__ != "PanicException":
                raise
            raise RuntimeError(str(exc).splitlines()[0]) from None

    return run, {}


def _essentia() -> tuple[Callable, dict]:
    import essentia

    essentia.log.infoActive = essentia.log.warningActive = False
    import essentia.standard as es

    extractor = es.MusicExtractor()

    def run(path: str) -> None:
        extractor(path)  # (aggregated pool, frames pool)

    return run, {"essentia": essentia.__version__}


# Each loader imports what its method needs and returns (per-file function, note on what ran);
# the function returns the seed55 values, or None for a method without them.
LOADERS = {"floor": _floor, "musicdb": _musicdb, "reference": _reference, "bliss": _bliss,
           "essentia": _essentia,
           "musicnn": lambda: _musicdb(("musicnn",), default=False),
           "musicdb+musicnn": lambda: _musicdb(("musicnn",))}


def run_child(method: str, files_json: Path, out_json: Path) -> None:
    """Time `method` on each file; write timings, values and peak RSS as JSON."""
    run, note = LOADERS[method]()
    startup_cpu, ready_wall = time.process_time(), time.time()
    paths = json.loads(files_json.read_text())
    rows = []
    for i, path in enumerate(paths, 1):
        t0 = time.process_time()
        try:
            values, error = run(path), None
        except Exception as exc:  # noqa: BLE001 - a file a peer cannot read is a result, not a stop
            values, error = None, f"{type(exc).__name__}: {exc}".splitlines()[0]
        rows.append({"path": path, "cpu_s": time.process_time() - t0, "values": values,
                     "error": error})
        print(f"  {method}: {i}/{len(paths)} {Path(path).name}" + (f" ({error})" if error else ""),
              file=sys.stderr, flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    out_json.write_text(json.dumps({"method": method, "startup_cpu_s": startup_cpu,
                                    "ready_wall": ready_wall, "peak_rss_mb": peak_mb,
                                    "note": note, "files": rows}))


# ---------------------------------------------------------------- parent: plan, spawn, report


def find_files(folder: Path) -> list[Path]:
    """Audio files under folder by extension, sorted; dot-files skipped."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and
                  p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith("."))


def subset(paths: list[Path], n: int | None) -> list[Path]:
    """The first n paths in a fixed pseudo-random order (all when n is None), so that a subset
    mixes folders and formats and a smaller subset is part of a larger one."""
    # Keyed on folder/name, so the same corpus gives the same subset from any working folder.
    key = lambda p: hashlib.sha1("/".join(p.parts[-2:]).encode()).hexdigest()  # noqa: E731
    shuffled = sorted(paths, key=key)
    return shuffled[:n]


def durations(paths: list[Path]) -> dict[str, float]:
    """Seconds of audio per file, from the header (the same yardstick for every method)."""
    import soundfile as sf

    return {str(p): sf.info(p).duration for p in paths}


def spawn(method: str, paths: list[Path], tmp: Path) -> dict:
    """Run one method in a fresh interpreter; return its JSON plus wall-clock timings."""
    files_json, out_json = tmp / f"{method}.files.json", tmp / f"{method}.out.json"
    files_json.write_text(json.dumps([str(p) for p in paths]))
    cmd = [sys.executable, __file__, "--child", method, "--files-json", str(files_json),
           "--child-out", str(out_json)]
    started = time.time()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # peers log on stdout
    if proc.returncode != 0:
        print(proc.stdout[-2000:], file=sys.stderr)
        raise SystemExit(f"{method} failed (exit {proc.returncode})")
    result = json.loads(out_json.read_text())
    result["wall_s"] = time.time() - started
    result["startup_wall_s"] = result["ready_wall"] - started
    return result


def ok_cpu(result: dict | None) -> dict[str, float]:
    """CPU seconds per file the method analysed without error."""
    if result is None:
        return {}
    return {r["path"]: r["cpu_s"] for r in result["files"] if r["error"] is None}


def speed_vs(ours: dict[str, float], other: dict[str, float]) -> float | None:
    """Our speed relative to another method's, on the files both analysed."""
    common = ours.keys() & other.keys()
    if not common:
        return None
    return sum(other[p] for p in common) / sum(ours[p] for p in common)


def speed_row(method: str, result: dict, seconds: dict[str, float],
              results: dict[str, dict | None]) -> list[str]:
    cpu = ok_cpu(result)
    audio = sum(seconds[p] for p in cpu)
    total_cpu = sum(cpu.values())
    vs_ref = speed_vs(cpu, ok_cpu(results.get("reference")))
    of_floor = speed_vs(cpu, ok_cpu(results.get("floor")))
    failed = len(result["files"]) - len(cpu)
    return [method, f"{len(cpu)}", f"{failed}", f"{audio / 3600:.2f}", f"{total_cpu:.1f}",
            f"{audio / total_cpu:.1f}" if total_cpu else "-",
            f"{vs_ref:.2f}" if vs_ref else "-", f"{of_floor:.2f}" if of_floor else "-",
            f"{result['startup_cpu_s']:.2f} / {result['startup_wall_s']:.2f}",
            f"{result['peak_rss_mb']:.0f}", f"{result['wall_s']:.0f}"]


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))))


def print_speed(results: dict[str, dict | None], seconds: dict[str, float]) -> None:
    header = ["method", "files", "failed", "audio h", "CPU s", "x realtime/core", "x reference",
              "of floor", "start-up CPU/wall s", "peak RSS MB", "wall s"]
    rows = []
    for method, result in results.items():
        if result is None:
            rows.append([method, "not installed", *[""] * (len(header) - 2)])
        else:
            rows.append(speed_row(method, result, seconds, results))
    print_table(header, rows)
    for method, result in results.items():
        for r in (result or {"files": []})["files"]:
            if r["error"]:
                reason = r["error"].replace(f"{r['path']}: ", "")
                print(f"  {method} failed on {Path(r['path']).name}: {reason}")


def write_csv(path: Path, results: dict[str, dict | None], seconds: dict[str, float]) -> None:
    """One row per (method, file) with seed55 values: musicdb and reference."""
    from musicdb.analysis.summaries import SEED55_NAMES

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["method", "path", "duration_s", "cpu_s", *SEED55_NAMES])
        for method in ("musicdb", "reference"):
            for r in (results.get(method) or {"files": []})["files"]:
                if r["values"] is not None:
                    out.writerow([method, r["path"], repr(seconds[r["path"]]), repr(r["cpu_s"]),
                                  *map(repr, r["values"])])


def read_csv(path: Path) -> tuple[list[str], dict[str, dict[str, list[float]]]]:
    """Feature names and {method: {path: values}} from a CSV written by write_csv."""
    with path.open(newline="") as f:
        rows = csv.reader(f)
        names = next(rows)[4:]
        values: dict[str, dict[str, list[float]]] = {}
        for method, file, _, _, *vals in rows:
            values.setdefault(method, {})[file] = [float(v) for v in vals]
    return names, values


def tempo_agreement(ours, ref) -> tuple[float, float]:
    """Share of files whose tempo is within tolerance, and within tolerance or an octave off."""
    import numpy as np

    ratio = np.asarray(ours) / np.where(np.asarray(ref) > 0, ref, np.nan)
    near = lambda target: np.abs(ratio / target - 1) <= TEMPO_TOLERANCE  # noqa: E731
    return float(np.mean(near(1))), float(np.mean(near(1) | near(2) | near(0.5)))


def print_fidelity(names: list[str], values: dict[str, dict[str, list[float]]]) -> None:
    import numpy as np
    import scipy.stats

    common = sorted(values.get("musicdb", {}).keys() & values.get("reference", {}).keys())
    if len(common) < 3:
        print(f"fidelity: only {len(common)} file(s) with both musicdb and reference values")
        return
    ours = np.array([values["musicdb"][p] for p in common])
    ref = np.array([values["reference"][p] for p in common])
    print(f"fidelity: musicdb whole-song vs reference on {len(common)} files "
          f"(Spearman rho; flagged below {MIN_RHO})")
    rows, low = [], []
    for j, name in enumerate(names):
        rho = scipy.stats.spearmanr(ours[:, j], ref[:, j], nan_policy="omit").statistic
        flag = "" if rho >= MIN_RHO else "LOW"
        low += [name] if flag else []
        rows.append([name, f"{rho:.3f}", f"{np.nanmedian(ref[:, j]):.4g}",
                     f"{np.nanmedian(ours[:, j]):.4g}", flag])
    print_table(["feature", "rho", "median ref", "median musicdb", "flag"], rows)
    print(f"{len(names) - len(low)} of {len(names)} features at rho >= {MIN_RHO}; "
          f"below: {', '.join(low) or 'none'}")
    if "bpm" in names:
        j = names.index("bpm")
        same, octave = tempo_agreement(ours[:, j], ref[:, j])
        print(f"bpm: {same:.0%} of files within {TEMPO_TOLERANCE:.0%} of the reference, "
              f"{octave:.0%} within {TEMPO_TOLERANCE:.0%} or an exact octave (x2, x0.5)")


def describe_corpus(paths: list[Path], seconds: dict[str, float]) -> None:
    by_ext: dict[str, list[float]] = {}
    for p in paths:
        by_ext.setdefault(p.suffix.lower()[1:], []).append(seconds[str(p)])
    parts = ", ".join(f"{ext} {len(s)} ({sum(s) / 3600:.2f} h)"
                      for ext, s in sorted(by_ext.items()))
    print(f"{len(paths)} files, {sum(seconds[str(p)] for p in paths) / 3600:.2f} h: {parts}")


def benchmark(args: argparse.Namespace) -> None:
    paths = subset(find_files(args.folder), args.limit)
    if not paths:
        raise SystemExit(f"no audio files under {args.folder}")
    seconds = durations(paths)
    describe_corpus(paths, seconds)
    plan = {m: subset(paths, args.reference_limit) if m == "reference" else paths
            for m in args.methods}
    results: dict[str, dict | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method, files in plan.items():
            module = PEER_MODULES.get(method)
            if module and importlib.util.find_spec(module) is None:
                print(f"{method}: not installed")
                results[method] = None
                continue
            print(f"{method}: {len(files)} files ...", flush=True)
            results[method] = spawn(method, files, Path(tmp))
            print(f"{method}: done in {results[method]['wall_s']:.0f} s", flush=True)
    for method, result in results.items():
        if result and result["note"]:
            print(f"{method}: {json.dumps(result['note'])}")
    print()
    print_speed(results, seconds)
    print()
    write_csv(args.out, results, seconds)
    print(f"per-file values: {args.out}")
    print_fidelity(*read_csv(args.out))


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("folder", nargs="?", type=Path, help="audio files, searched recursively")
    ap.add_argument("--limit", type=int, metavar="N",
                    help="N files picked over the folder (a fixed mix of folders and formats)")
    ap.add_argument("--reference-limit", type=int, metavar="N",
                    help="run the (slow) reference on N of those files only")
    ap.add_argument("--methods", type=lambda s: s.split(","), default=list(METHODS),
                    help=f"comma-separated subset of {','.join(METHODS)}")
    ap.add_argument("--out", type=Path, default=DEFAULT_CSV, help="per-file values (CSV)")
    ap.add_argument("--from-csv", nargs="?", type=Path, const=DEFAULT_CSV, metavar="CSV",
                    help="print the fidelity table from a CSV written before; no extraction")
    ap.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    ap.add_argument("--files-json", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if unknown := set(args.methods) - set(METHODS):
        ap.error(f"unknown method(s) {', '.join(sorted(unknown))}; choose from {METHODS}")
    if not (args.child or args.from_csv or args.folder):
        ap.error("give a FOLDER of audio, or --from-csv")
    return args


def main() -> None:
    args = parse_args()
    if args.child:
        run_child(args.child, args.files_json, args.child_out)
    elif args.from_csv:
        print_fidelity(*read_csv(args.from_csv))
    else:
        benchmark(args)


if __name__ == "__main__":
    main()
