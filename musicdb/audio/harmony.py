"""Generated music with a known answer: chord progressions in a key, and rhythms at a tempo.

For the key and tempo tests (tests/test_key_tempo.py) and the profile benchmark
(benchmarks/key_profiles.py). Pitch classes count from C = 0; a key is (tonic, major).
"""

from __future__ import annotations

import numpy as np

from musicdb.audio.synth import SR, clicks

# Scale degrees (semitones above the tonic) of each chord's root, and the chord's quality.
MAJOR_CHORDS = {"I": (0, "maj"), "ii": (2, "min"), "iii": (4, "min"), "IV": (5, "maj"),
                "V": (7, "maj"), "vi": (9, "min")}
MINOR_CHORDS = {"i": (0, "min"), "III": (3, "maj"), "iv": (5, "min"), "v": (7, "min"),
                "V": (7, "maj"), "VI": (8, "maj"), "VII": (10, "maj")}
TRIADS = {"maj": (0, 4, 7), "min": (0, 3, 7)}
PROGRESSIONS = {
    True: (("I", "IV", "V", "I"), ("I", "vi", "IV", "V", "I"), ("I", "V", "vi", "IV", "I"),
           ("ii", "V", "I", "I")),
    False: (("i", "iv", "V", "i"), ("i", "VI", "III", "VII", "i"), ("i", "iv", "v", "i"),
            ("i", "VII", "VI", "V", "i")),
}


def harmonic_tone(midi: float, seconds: float, *, sr: int = SR, amp: float = 0.2,
                  harmonics: int = 6) -> np.ndarray:
    """A tone with `harmonics` partials at 1/k amplitude, with a short attack and release."""
    t = np.arange(int(seconds * sr)) / sr
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    y = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, harmonics + 1)
            if k * f0 < sr / 2)
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)  # no clicks at the joins
    return (amp * y * ramp).astype(np.float32)


def chord(root_pc: int, quality: str, seconds: float, *, sr: int = SR) -> np.ndarray:
    """A triad around middle C with its root doubled an octave below (the bass)."""
    notes = [48 + root_pc] + [60 + root_pc + step for step in TRIADS[quality]]
    return sum(harmonic_tone(n, seconds, sr=sr) for n in notes).astype(np.float32) / 2


def progression(tonic: int, major: bool, numerals: tuple[str, ...], *,
                chord_seconds: float = 0.75, sr: int = SR) -> np.ndarray:
    """The chords named by Roman numerals in the key (tonic pitch class, major or minor)."""
    table = MAJOR_CHORDS if major else MINOR_CHORDS
    parts = [chord((tonic + table[n][0]) % 12, table[n][1], chord_seconds, sr=sr)
             for n in numerals]
    return np.concatenate(parts)


def click_track(segments: list[tuple[float, float]], *, sr: int = SR) -> np.ndarray:
    """Clicks at each (bpm, seconds) segment in turn: [(120, 8), (150, 8)] changes tempo once."""
    return np.concatenate([clicks(bpm, seconds, sr=sr) for bpm, seconds in segments])


def polyrhythm(slow_bpm: float, fast_bpm: float, seconds: float, *,
               sr: int = SR) -> np.ndarray:
    """Two equally loud click streams at once (90 against 135 BPM: 2 against 3, a hemiola)."""
    return (0.5 * clicks(slow_bpm, seconds, sr=sr) + 0.5 * clicks(fast_bpm, seconds, sr=sr)
            ).astype(np.float32)
