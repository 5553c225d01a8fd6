"""Which key profile finds the key of generated chord progressions best (musicdb.analysis.tonal).

    .venv/bin/python benchmarks/key_profiles.py            # 12 tonics x 2 modes x 4 x 3
    .venv/bin/python benchmarks/key_profiles.py --keys 4   # a quicker subset

Each progression (musicdb.audio.harmony.PROGRESSIONS, 4 major and 4 minor ones, with 6- and
3-partial tones, and with 6 partials and half a second of -60 dB hiss after each chord) goes
through musicdb's frame features; its chroma rows are averaged (plainly, or weighted by each
frame's RMS level as the tonal set does) and matched against each profile.
Scores: exact key accuracy, and the MIREX key score (1 exact, 0.5 a fifth away, 0.3 the
relative key, 0.2 the parallel key). Prints one row per profile and weighting.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musicdb.analysis.features import ROW, SAMPLE_RATE, frame_features
from musicdb.analysis.tonal import PROFILES, estimate_key, mean_chroma
from musicdb.audio import harmony


def mirex(truth: int, guess: int) -> float:
    """MIREX key-detection score of a guess (key indices as musicdb.analysis.tonal)."""
    if guess == truth:
        return 1.0
    t_pc, t_major, g_pc, g_major = truth % 12, truth < 12, guess % 12, guess < 12
    if t_major == g_major and (g_pc - t_pc) % 12 in (5, 7):
        return 0.5
    relative = (t_pc + 9) % 12 if t_major else (t_pc + 3) % 12
    if t_major != g_major and g_pc == relative:
        return 0.3
    return 0.2 if t_major != g_major and g_pc == t_pc else 0.0


def chromas(keys: int) -> list[tuple[int, dict[str, np.ndarray]]]:
    """(true key index, {weighting: mean chroma}) of every generated progression."""
    out = []
    for tonic in np.linspace(0, 11, keys).round().astype(int):
        for major in (True, False):
            for numerals in harmony.PROGRESSIONS[major]:
                for partials, gap in ((6, False), (3, False), (6, True)):
                    y = _render(int(tonic), major, numerals, partials, gap)
                    frames = frame_features(y)
                    plain = frames[[ROW[f"chroma{i}"] for i in range(12)]].mean(axis=1)
                    out.append((int(tonic) + (0 if major else 12),
                                {"plain": plain, "rms-weighted": mean_chroma(frames)}))
    return out


def _render(tonic: int, major: bool, numerals: tuple[str, ...], partials: int,
            gap: bool) -> np.ndarray:
    table = harmony.MAJOR_CHORDS if major else harmony.MINOR_CHORDS
    rng = np.random.default_rng(tonic)
    parts = []
    for n in numerals:
        root, quality = table[n]
        notes = [48 + (tonic + root) % 12] + [60 + (tonic + root) % 12 + s
                                              for s in harmony.TRIADS[quality]]
        parts.append(sum(harmony.harmonic_tone(m, 0.75, sr=SAMPLE_RATE, harmonics=partials)
                         for m in notes) / 2)
        if gap:  # a quiet hiss between chords (-60 dB): what a recording's pauses hold
            parts.append(1e-3 * rng.uniform(-1, 1, SAMPLE_RATE // 2))
    return np.concatenate(parts).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=12, help="tonics (of 12) to try")
    args = parser.parse_args()
    data = chromas(args.keys)
    print(f"{len(data)} progressions ({args.keys} tonics x major/minor x 4 x 3 voicings)")
    print(f"{'profile':<24} {'chroma mean':<13} {'exact':>6} {'MIREX':>6} {'major':>6} "
          f"{'minor':>6}")
    for profile in PROFILES:
        for weighting in ("plain", "rms-weighted"):
            guesses = [(truth, estimate_key(c[weighting], profile)[0]) for truth, c in data]
            exact = np.mean([t == g for t, g in guesses])
            score = np.mean([mirex(t, g) for t, g in guesses])
            major = np.mean([t == g for t, g in guesses if t < 12])
            minor = np.mean([t == g for t, g in guesses if t >= 12])
            print(f"{profile:<24} {weighting:<13} {exact:6.3f} {score:6.3f} {major:6.3f} "
                  f"{minor:6.3f}")


if __name__ == "__main__":
    main()
