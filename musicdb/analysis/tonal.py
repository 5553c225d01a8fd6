"""The `tonal` feature set: musical key and mode from chroma, tempo candidates you can trust.

Computed from the frame matrix every set shares (its chroma rows and percussive onset
envelope) and the mean tempogram the analysis computes once for the song and its snippets.

No well-kept audio library we can use offers key estimation from a chroma we already have:
librosa has none (only key_to_notes), music21 works on scores, essentia (AGPL) would decode
and analyse the audio again. Key finding is the classic template match (Krumhansl-Schmuckler):
the Pearson correlation of the mean chroma with a major and a minor key profile rotated to each
of the 12 tonics. benchmarks/key_profiles.py measures the published profiles on generated
progressions; KEY_PROFILE names the one it picked.
"""

from __future__ import annotations

import librosa
import numpy as np

from musicdb.analysis.features import ROW, FrameParams

# Bump when a formula here changes: it is part of the tonal set's identity (set_params), and
# leaves the other sets' versions alone.
TONAL_CODE_VERSION = 1

# Major and minor profiles, tonic first (values as published; music21's analysis.discrete and
# humdrum's keycor carry the same numbers).
PROFILES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # Krumhansl & Kessler 1982, probe-tone ratings.
    "krumhansl_kessler": ((6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88),
                          (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)),
    # Temperley 1999 ("What's key for key?"), hand-tuned.
    "temperley": ((5.0, 2.0, 3.5, 2.0, 4.5, 4.0, 2.0, 4.5, 2.0, 3.5, 1.5, 4.0),
                  (5.0, 2.0, 3.5, 4.5, 2.0, 4.0, 2.0, 4.5, 3.5, 2.0, 1.5, 4.0)),
    # Temperley 2007, from the Kostka-Payne harmony textbook's excerpts.
    "temperley_kostka_payne": (
        (0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400),
        (0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330)),
    # Albrecht & Shanahan 2013, pitch-class durations in a corpus of pieces.
    "albrecht_shanahan": (
        (0.238, 0.006, 0.111, 0.006, 0.137, 0.094, 0.016, 0.214, 0.009, 0.080, 0.008, 0.081),
        (0.220, 0.006, 0.104, 0.123, 0.019, 0.103, 0.012, 0.214, 0.062, 0.022, 0.061, 0.052)),
    # Bellman 2005 / Budge 1943, chord-frequency based.
    "bellman_budge": (
        (16.80, 0.86, 12.95, 1.41, 13.49, 11.93, 1.25, 20.28, 1.80, 8.04, 0.62, 10.57),
        (18.16, 0.69, 12.99, 13.34, 1.07, 11.15, 1.38, 21.07, 7.49, 1.53, 0.92, 10.21)),
}
KEY_PROFILE = "albrecht_shanahan"  # the best measured: benchmarks/key_profiles.py
NO_KEY = -1  # key_index of a slice without pitch (silence, clicks)

# Key index k: tonic pitch class k % 12 (C = 0 .. B = 11), major for k < 12, minor from 12.
# Spelt as the Camelot wheel and DJ software do; sql/45_keys.sql (musical_keys) has the same.
KEY_NAMES = ([f"{pc} major" for pc in ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A",
                                       "Bb", "B")]
             + [f"{pc} minor" for pc in ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A",
                                         "Bb", "B")])


def key_templates(profile: str = KEY_PROFILE) -> np.ndarray:
    """(24, 12) z-scored profiles, row k the key of index k: a dot product / 12 is Pearson's r."""
    major, minor = (np.asarray(p, dtype=np.float64) for p in PROFILES[profile])
    rows = [np.roll(major, tonic) for tonic in range(12)] + [np.roll(minor, t) for t in range(12)]
    T = np.array(rows)
    return (T - T.mean(axis=1, keepdims=True)) / T.std(axis=1, keepdims=True)


def key_scores(chroma: np.ndarray, profile: str = KEY_PROFILE) -> np.ndarray:
    """Pearson correlation of a 12-bin chroma with each of the 24 keys; zeros for a flat one."""
    c = np.asarray(chroma, dtype=np.float64)
    spread = c.std()
    if not spread > 1e-9 * max(1e-12, np.abs(c).max()):
        return np.zeros(24)
    return key_templates(profile) @ ((c - c.mean()) / spread) / 12.0


def estimate_key(chroma: np.ndarray, profile: str = KEY_PROFILE) -> tuple[int, float, float]:
    """(key index, strength, confidence) of a 12-bin chroma.

    strength: the best key's correlation (-1..1); confidence: its gap to the second-best key
    (0..2; the relative or a fifth-related key is usually second). A flat chroma has no key:
    (NO_KEY, 0, 0).
    """
    scores = key_scores(chroma, profile)
    if not scores.any():
        return NO_KEY, 0.0, 0.0
    second, best = np.argsort(scores)[-2:]
    return int(best), float(scores[best]), float(scores[best] - scores[second])


def mean_chroma(frames: np.ndarray) -> np.ndarray:
    """The chroma rows averaged over frames, each frame weighted by its RMS level.

    Frames are scaled to max 1 (features.py), so without weights the hiss of a pause counts
    as much as the music: on 288 generated progressions the plain mean missed 2 minor keys
    (both with quiet pauses), the weighted one none (benchmarks/key_profiles.py).
    """
    chroma = frames[[ROW[f"chroma{i}"] for i in range(12)]].astype(np.float64)
    level = frames[ROW["rms"]].astype(np.float64)
    if not level.sum() > 0:
        return chroma.mean(axis=1)
    return chroma @ level / level.sum()


# --- tempo ---------------------------------------------------------------------------------

MIN_BPM, MAX_BPM = 30.0, 320.0  # candidates' range (librosa.feature.tempo's max_tempo: 320)
PRIOR_BPM, PRIOR_OCTAVES = 120.0, 1.0  # librosa.feature.tempo's log-normal prior
SEPARATE = 0.05  # a second candidate lies more than 5 % from the first: another peak
TEMPO_BLOCK_SECONDS = 8.0  # blocks for tempo_stable: librosa's tempo window
BEAT_MIN = 0.3  # a block whose onsets are less periodic than this at every tempo has no beat
SEARCH = 0.10  # a block's beat is looked for within 10 % of tempo_1 (or its half/double)
STABLE_WITHIN = 0.04  # tempo_stable: every beat block within 4 % of tempo_1 (or its half/double)


def _prior(bpm: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * ((np.log2(bpm) - np.log2(PRIOR_BPM)) / PRIOR_OCTAVES) ** 2)


def _vertex(values: np.ndarray, i: int) -> tuple[float, float]:
    """(position, height) of the parabola's vertex through values[i] and its neighbours.

    A peak between two lags is split between them; the vertex is where it lies (and how high
    it is), so a tempo is not rounded to the lag grid (4 % steps at 120 BPM).
    """
    if i <= 0 or i >= len(values) - 1:
        return float(i), float(values[i])
    a, b, c = values[i - 1], values[i], values[i + 1]
    bend = a - 2 * b + c
    if bend >= 0:
        return float(i), float(b)
    return i + 0.5 * (a - c) / bend, float(b - (a - c) ** 2 / (8 * bend))


def _lag_range(fps: float, size: int) -> tuple[int, int]:
    """Lags [lo, hi) of tempi from MAX_BPM down to MIN_BPM, within a series of `size`."""
    return max(1, int(np.ceil(60.0 * fps / MAX_BPM))), min(size, int(60.0 * fps / MIN_BPM) + 1)


def tempo_peaks(tempogram: np.ndarray, fps: float) -> list[float]:
    """Lags (fractional) of the prior-weighted mean tempogram's peaks, strongest first.

    The first is librosa.feature.tempo's pick (the argmax), so tempo_1 is the default set's
    bpm placed between lags (a 180 BPM click gives 178.4, not bpm's 176.5). The others are
    local maxima more than SEPARATE away in tempo from every stronger one, ranked by their
    vertex's height: on the grid, a peak that falls between two lags (80 BPM is lag 37.5)
    would lose to a weaker one that falls on a lag.
    """
    lo, hi = _lag_range(fps, len(tempogram))
    if hi - lo < 1:
        return []
    lags = np.arange(lo, hi)
    weighted = np.zeros(len(tempogram))
    weighted[lo:hi] = tempogram[lo:hi] * _prior(60.0 * fps / lags)
    inner = weighted[lo:hi]
    is_peak = np.r_[True, inner[1:] >= inner[:-1]] & np.r_[inner[:-1] > inner[1:], True]
    best = lo + int(np.argmax(inner))  # librosa's pick: the same peak as the default's bpm
    if weighted[best] <= 0:
        return []
    others = sorted((_vertex(weighted, int(lag)) for lag in lags[is_peak]
                     if lag != best and weighted[lag] > 0), key=lambda v: -v[1])
    peaks = [_vertex(weighted, best)[0]]
    for lag, _ in others:
        if all(abs(p / lag - 1) > SEPARATE for p in peaks):
            peaks.append(lag)
    return peaks


def periodicity(envelope: np.ndarray, lags: list[float]) -> list[float]:
    """Autocorrelation of the mean-removed envelope at each (fractional) lag over its zero lag.

    The default set's tempo_confidence at a lag: a steady click scores near 1, noise near 0;
    a lag beyond the envelope scores 0.
    """
    env = envelope.astype(np.float64) - envelope.mean()
    top = min(env.size - 1, int(np.ceil(max(lags, default=0))) + 1)
    if top < 1 or not np.any(env):
        return [0.0] * len(lags)
    ac = librosa.autocorrelate(env, max_size=top + 1)
    ac = ac / ac[0]
    return [float(np.clip(np.interp(lag, np.arange(ac.size), ac), 0, 1)) if lag <= top else 0.0
            for lag in lags]


def _block_deviation(envelope: np.ndarray, tempo_1: float, fps: float) -> float | None:
    """How far a block's beat lies from tempo_1 (relative), or None when the block has none.

    The block's own autocorrelation (mean-removed, over its zero lag) is searched within
    SEARCH of tempo_1's period, and of its half and double: its highest point there, when it is
    a local peak holding at least half the block's strongest periodicity, is the block's beat
    at that level (placed between lags). Looking near tempo_1 rather than taking the block's
    own best peak keeps a steady song whose blocks favour other metrical levels (its half bar,
    a 3:2 cross-rhythm) stable: 44 of the benchmark corpus's 48 files (each block's own best
    peak left 14 of 40 unstable, mostly at 4:3 or 2:3 of tempo_1). A block
    with no such peak at any level (its beat moved) counts SEARCH, the most a gap can be here.
    """
    env = envelope.astype(np.float64) - envelope.mean()
    lo, hi = _lag_range(fps, env.size)
    if hi - lo < 3 or not np.any(env):
        return None
    ac = librosa.autocorrelate(env, max_size=hi)
    ac = ac / ac[0]
    strongest = ac[lo:hi].max()
    if strongest < BEAT_MIN:
        return None
    gaps = [SEARCH]
    for level in (1.0, 0.5, 2.0):
        period = 60.0 * fps / (tempo_1 * level)
        first = max(lo, int(np.ceil(period / (1 + SEARCH))))
        last = min(hi - 1, int(period * (1 + SEARCH)))
        if last - first < 2:
            continue
        window = ac[first : last + 1]
        i = int(np.argmax(window))
        if 0 < i < len(window) - 1 and window[i] >= strongest / 2:
            lag = _vertex(ac, first + i)[0]
            gaps.append(abs(period / lag - 1))
    return min(gaps)


def tempo_drift(envelope: np.ndarray, tempo_1: float, params: FrameParams) -> float:
    """Largest relative gap between a block's beat and tempo_1 (its half or double allowed).

    Blocks: consecutive TEMPO_BLOCK_SECONDS from the start, a last partial one kept if at
    least half a block (else joined to the one before); blocks without a beat are left out
    (see _block_deviation). 0..SEARCH; -1 when no block has a beat (or tempo_1 is 0).
    """
    fps = params.frames_per_second
    size = round(TEMPO_BLOCK_SECONDS * fps)
    starts = list(range(0, max(1, envelope.size - size // 2), size))
    bounds = [(a, b) for a, b in zip(starts, [*starts[1:], envelope.size], strict=True)]
    if tempo_1 <= 0:
        return -1.0
    gaps = [_block_deviation(envelope[a:b], tempo_1, fps) for a, b in bounds]
    gaps = [g for g in gaps if g is not None]
    return max(gaps) if gaps else -1.0


# --- the set -------------------------------------------------------------------------------

_KEY_COLUMNS = [
    ("key_index", "musical key, 0-23: tonic pitch class k % 12 (0 C, 1 Db, ... 11 B), major "
     "for k < 12, minor from 12; -1 without pitch. Best of the 24 {profile} key profiles "
     "correlated with the chroma rows' mean, each frame weighted by its RMS level"),
    ("key_mode", "1 major, 0 minor (-1 without a key)"),
    ("key_tonic", "tonic pitch class of the key, 0 C .. 11 B (-1 without a key)"),
    ("key_strength", "Pearson correlation of the mean chroma with the best key's profile "
     "(-1..1; 0 without a key)"),
    ("key_confidence", "best key's correlation minus the second-best key's (0..2): near 0 "
     "when two keys (often the relative or a fifth away) fit as well"),
]
_TEMPO_COLUMNS = [
    ("tempo_1", "strongest tempo candidate (BPM): librosa's tempo (prior-weighted mean "
     "tempogram over 8 s windows of the percussive onset envelope), refined between lags; "
     "0 without onsets"),
    ("tempo_1_confidence", "periodicity of the onsets at tempo_1: autocorrelation of the "
     "mean-removed onset envelope at its period over its zero lag (0 no beat .. 1 steady)"),
    ("tempo_2", "second tempo candidate (BPM): the next peak of the prior-weighted mean "
     "tempogram more than 5% from tempo_1, often its half or double; 0 if none"),
    ("tempo_2_confidence", "periodicity of the onsets at tempo_2, as tempo_1_confidence"),
    ("tempo_ratio", "tempo_2 / tempo_1: near 0.5 or 2 a half/double ambiguity, near 0.667 "
     "or 1.5 a 2-against-3 one, 0.75 or 1.33 a dotted or triplet one (0 without tempo_2)"),
    ("tempo_drift", "largest relative gap between tempo_1 (or its half or double) and the "
     "beat of an 8 s block that has one (its onset autocorrelation reaches 0.3): the "
     "block's highest autocorrelation peak within 10%, if it holds half its strongest; 0.1 "
     "when a block has none there (its beat moved); -1 when no block has a beat"),
    ("tempo_stable", "1 when some block has a beat and tempo_drift <= 0.04: the local tempo "
     "stays within 4% of the global one all through; else 0"),
]
TONAL_NAMES = [n for n, _ in _KEY_COLUMNS + _TEMPO_COLUMNS]


def describe_tonal(params: FrameParams) -> list[str]:
    profile = KEY_PROFILE.replace("_", "-").title()
    return [d.format(profile=profile) for _, d in _KEY_COLUMNS + _TEMPO_COLUMNS]


def tonal_values(frames: np.ndarray, params: FrameParams,
                 tempogram: np.ndarray) -> dict[str, float]:
    """The tonal set's values of a frame slice, given its mean tempogram."""
    key, strength, confidence = estimate_key(mean_chroma(frames))
    out = {"key_index": key, "key_mode": -1 if key < 0 else int(key < 12),
           "key_tonic": -1 if key < 0 else key % 12, "key_strength": strength,
           "key_confidence": confidence}
    onset = frames[ROW["onset"]]
    fps = params.frames_per_second
    flat = onset.size < 2 or np.ptp(onset) <= 1e-6  # as tempo_with_confidence: no onsets
    lags = [] if flat else tempo_peaks(tempogram, fps)[:2]
    bpms = [60.0 * fps / lag for lag in lags] + [0.0] * (2 - len(lags))
    conf = periodicity(onset, lags) + [0.0] * (2 - len(lags))
    drift = tempo_drift(onset, bpms[0], params) if bpms[0] > 0 else -1.0
    out.update(tempo_1=bpms[0], tempo_1_confidence=conf[0], tempo_2=bpms[1],
               tempo_2_confidence=conf[1], tempo_ratio=bpms[1] / bpms[0] if bpms[0] else 0.0,
               tempo_drift=drift, tempo_stable=float(0 <= drift <= STABLE_WITHIN))
    return out
