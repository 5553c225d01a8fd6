"""musicnn on every h-th patch: its speed and its quality against every patch, on the corpus.

    python benchmarks/musicnn_hop.py [--hops 1,2,3,4] [--speed-files 6] [--cv 3]

Needs benchmarks/.cache/quality.duckdb (benchmarks/quality.py makes it). Every corpus file is
decoded once and run through MusicnnStream on every patch; the rows of hop h are summarised
from patches 0, h, 2h, ... (exactly what MusicnnStream(patch_hop=h) computes: the network
runs per patch; checked on the first file). Quality: the same CV (musicdb.ml.evaluate.run, the
code `musicdb evaluate` runs) and precision@10 as benchmarks/quality.py, on musicnn and on
default+musicnn with the stored default values. Speed: CPU seconds of MusicnnStream(patch_hop=
h) on the first --speed-files files (decode excluded), x realtime per core; 'all sets' adds
the CPU of analyse_file for the default ingest's sets (default, seed55, tonal) on those files.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np

from musicdb.analysis.analyse import DEFAULT_SETS, analyse_file
from musicdb.analysis.embedding import MusicnnStream, Patches, summarise_patches
from musicdb.analysis.features import snippet_bounds
from musicdb.audio.decode import decode
from musicdb.ml import evaluate
from musicdb.ml import experiments as ex

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import _precision

REPO = Path(__file__).resolve().parent.parent
SR, BLOCK = 22050, 65536


def stream(y: np.ndarray, hop: int) -> Patches:
    s = MusicnnStream(SR, patch_hop=hop)
    for start in range(0, len(y), BLOCK):
        s.add(y[start:start + BLOCK])
    return s.finish()


def every(patches: Patches, hop: int) -> Patches:
    return Patches(patches.embedding[::hop], patches.tags[::hop], patches.centres_s[::hop])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=REPO / "benchmarks/.cache/quality.duckdb")
    parser.add_argument("--hops", default="1,2,3,4")
    parser.add_argument("--speed-files", type=int, default=6)
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--model", default="ensemble")
    args = parser.parse_args()
    hops = [int(h) for h in args.hops.split(",")]
    with duckdb.connect(str(args.db), read_only=True) as con:
        exp = ex.get(con, "quality-default-musicnn")
        data = {unit: ex.dataset(con, replace(exp, unit=unit)) for unit in ("song", "snippet")}
        paths = dict(con.execute("SELECT song_id, path FROM songs").fetchall())
        snippet_s = con.execute("SELECT (params::JSON->>'snippet_seconds')::DOUBLE FROM "
                                "feature_sets WHERE name = 'musicnn'").fetchone()[0]
    n_default = sum(n.startswith("default.") for n in data["song"].feature_names)
    rows: dict[int, dict[int, np.ndarray]] = {h: {} for h in hops}  # hop -> song -> rows
    cpu = {h: 0.0 for h in hops} | {"sets": 0.0}
    audio_s = 0.0
    song_ids = sorted(set(data["song"].song_ids.tolist()))
    for k, song in enumerate(song_ids):
        decoded = decode(Path(paths[song]), sr=SR)
        full = stream(decoded.y, 1)
        bounds = snippet_bounds(decoded.duration_s, snippet_s)
        for h in hops:
            rows[h][song] = summarise_patches(every(full, h), bounds)
        if k == 0 and len(hops) > 1:  # the subset is what patch_hop computes
            direct = summarise_patches(stream(decoded.y, hops[-1]), bounds)
            assert np.allclose(direct, rows[hops[-1]][song], atol=1e-6)
        if k < args.speed_files:
            audio_s += decoded.duration_s
            for h in hops:
                started = time.process_time()
                stream(decoded.y, h)
                cpu[h] += time.process_time() - started
            started = time.process_time()
            analyse_file(paths[song], DEFAULT_SETS, snippet_s)
            cpu["sets"] += time.process_time() - started
    stored = np.vstack([rows[1][s] for s in song_ids])
    print(f"{len(song_ids)} songs; hop 1 against the stored musicnn values: max difference "
          f"{np.abs(_stored_musicnn(data, song_ids, n_default) - stored).max():.1e}")
    print(f"speed on {args.speed_files} files ({audio_s / 60:.1f} min of audio, decode excluded"
          f"): default sets (analyse_file, with decode) {audio_s / cpu['sets']:.0f}x per core")
    print(f"{'hop':>3} {'musicnn x':>9} {'all sets x':>10} {'F1 musicnn':>14} {'F1 union':>14} "
          f"{'P@10 songs':>10} {'P@10 snip':>10} {'union P@10':>10}")
    for h in hops:
        alone = audio_s / cpu[h]
        together = audio_s / (cpu[h] + cpu["sets"])
        scores = []
        for musicnn_only in (True, False):
            built = {unit: _with(d, rows[h], n_default, musicnn_only, unit == "snippet")
                     for unit, d in data.items()}
            ev, _, _ = evaluate.run(built["snippet"], replace(exp, unit="snippet"), cv=args.cv,
                                    prune=True, seed=0, model=args.model, final=False)
            mean, std = _zscore(built["song"].X)
            p = [_precision((b.X - mean) / std, b.y, b.groups, 10) for b in built.values()]
            scores.append((ev.metrics["macro_f1"], ev.stds["macro_f1"], *p))
        (f1m, sdm, ps, pn), (f1u, sdu, pus, _) = scores
        print(f"{h:>3} {alone:>8.0f}x {together:>9.0f}x {f1m:>7.3f} ± {sdm:.3f} "
              f"{f1u:>7.3f} ± {sdu:.3f} {ps:>10.3f} {pn:>10.3f} {pus:>10.3f}", flush=True)


def _stored_musicnn(data, song_ids, n_default) -> np.ndarray:
    songs, snippets = data["song"], data["snippet"]
    return np.vstack([np.vstack([songs.X[songs.song_ids == s, n_default:],
                                 snippets.X[snippets.song_ids == s, n_default:]])
                      for s in song_ids])


def _with(d: ex.Dataset, rows: dict[int, np.ndarray], n_default: int, musicnn_only: bool,
          unit_snippets: bool) -> ex.Dataset:
    """The dataset with its musicnn columns from `rows` (song row first, then snippets)."""
    snippet = d.song_ids.tolist()
    position: dict[int, int] = {}
    X = d.X.copy()
    for i, song in enumerate(snippet):
        j = position.get(song, 0)
        X[i, n_default:] = rows[song][1 + j] if unit_snippets else rows[song][0]
        position[song] = j + 1
    if musicnn_only:
        return replace(d, X=X[:, n_default:], feature_names=d.feature_names[n_default:])
    return replace(d, X=X)


def _zscore(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    std = X.std(axis=0)
    std[std == 0] = 1
    return X.mean(axis=0), std


if __name__ == "__main__":
    main()
