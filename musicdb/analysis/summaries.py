"""Feature sets: named summaries of a slice of the frame matrix (a whole song or one snippet).

Each set has fixed column names, a one-line description per column (stored in
``feature_names``) and a pure function from frames to a float32 vector. Every set is computed
from the same frame matrix, so asking for several costs one decode and one spectrogram.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import librosa
import numpy as np
import scipy.fft

from musicdb.analysis.embedding import MUSICNN_CODE_VERSION, MUSICNN_NAMES, describe_musicnn
from musicdb.analysis.features import (
    FRAME_ROWS,
    N_BANDS,
    N_CONTRAST,
    N_MFCC,
    N_TONNETZ,
    PITCH_CLASSES,
    ROW,
    FrameParams,
    hann_window,
)
from musicdb.analysis.tonal import TONAL_CODE_VERSION, TONAL_NAMES, describe_tonal, tonal_values
from musicdb.errors import NonFiniteValues


def moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, std, skewness and Fisher kurtosis (biased) of each row of X.

    A row without spread (silence, a single frame) has no shape: its skewness and kurtosis
    are defined as 0 rather than NaN, so every stored value is finite. A few rows at a time
    (MOMENT_VALUES values): scipy's float64 temporaries of a long song's whole matrix would be
    5x its frame rows, while one call per row would cost a snippet's statistics 10x.
    """
    step = max(1, MOMENT_VALUES // max(1, X.shape[1]))
    parts = [_row_moments(np.asarray(X[i : i + step], dtype=np.float64))
             for i in range(0, len(X), step)] or [_row_moments(np.zeros((0, 1)))]
    mean, std, skew, kurt = (np.concatenate(p) for p in zip(*parts, strict=True))
    return mean, std, skew, kurt


MOMENT_VALUES = 1 << 20  # 8 MB of float64 per scipy call: a 3-hour row is 540,000 frames


def _row_moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    import scipy.stats  # here, not at the top: 0.6 s a scheduling-only process never needs

    mean, std = X.mean(axis=1), X.std(axis=1)
    flat = std <= np.maximum(np.abs(mean) * 1e-6, 1e-12)
    with warnings.catch_warnings():
        # scipy warns of precision loss on near-constant rows; those are zeroed below.
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        skew = scipy.stats.skew(X, axis=1, bias=True)
        kurt = scipy.stats.kurtosis(X, axis=1, fisher=True, bias=True)
    return mean, std, np.where(flat, 0.0, skew), np.where(flat, 0.0, kurt)


TEMPOGRAM_BLOCK = 4096  # frames of local autocorrelation computed at once (memory bound)


def mean_tempograms(onset_envelope: np.ndarray, win: int,
                    parts: list[slice]) -> list[np.ndarray]:
    """librosa.feature.tempogram(...)[:, part].mean(axis=1) for each part, in one pass.

    librosa's definition (Hann-windowed local autocorrelation, each frame over its zero lag)
    with the windows as rows and a float32 FFT: a third of librosa's time, 1e-6 from its
    values. Computed block by block: the whole tempogram of an hour-long song is win x
    180,000 float64 (576 MB, its FFT several times that), and the song and its snippets share
    columns.
    """
    env = np.asarray(onset_envelope, dtype=np.float32)
    half = win // 2
    padded = np.pad(env, half, mode="linear_ramp", end_values=0)  # as librosa's center=True
    windows = np.lib.stride_tricks.sliding_window_view(padded, win)[: env.size]
    hann = hann_window(win)
    n_fft = scipy.fft.next_fast_len(2 * win - 1, real=True)
    ranges = [part.indices(env.size)[:2] for part in parts]
    totals = [np.zeros(win) for _ in parts]
    for start in range(0, env.size, TEMPOGRAM_BLOCK):
        stop = min(env.size, start + TEMPOGRAM_BLOCK)
        spectrum = scipy.fft.rfft(windows[start:stop] * hann, n=n_fft, axis=1)
        ac = scipy.fft.irfft(spectrum.real**2 + spectrum.imag**2, n=n_fft, axis=1)[:, :win]
        zero_lag = ac[:, :1]  # the largest |value| of an autocorrelation
        ac /= np.where(zero_lag > np.finfo(np.float32).tiny, zero_lag, 1.0)
        for (lo, hi), total in zip(ranges, totals, strict=True):
            a, b = max(lo, start), min(hi, stop)
            if b > a:
                total += ac[a - start : b - start].sum(axis=0, dtype=np.float64)
    return [total / max(1, hi - lo) for (lo, hi), total in zip(ranges, totals, strict=True)]


def tempogram_window(params: FrameParams) -> int:
    """librosa's tempo window: 8 s of frames."""
    return int(librosa.time_to_frames(8.0, sr=params.sample_rate, hop_length=params.hop_length))


def tempo_with_confidence(onset_envelope: np.ndarray, *, params: FrameParams = FrameParams(),
                          tempogram: np.ndarray | None = None) -> tuple[float, float]:
    """Global tempo (BPM) and how periodic the onsets are at that tempo (0..1).

    The tempo is librosa's (mean tempogram over 8 s windows, log-normal prior around 120 BPM).
    The confidence is the autocorrelation of the mean-removed onset envelope at the beat
    period, over its zero lag: a steady click track scores near 1, noise near 0. A flat
    envelope (no onsets) gives (0, 0). `tempogram`: the envelope's mean tempogram, when the
    caller computed it already (mean_tempograms).
    """
    if onset_envelope.size < 2 or np.ptp(onset_envelope) <= 1e-6:
        return 0.0, 0.0
    env = onset_envelope.astype(np.float64)
    if tempogram is None:
        tempogram = mean_tempograms(env, tempogram_window(params), [slice(None)])[0]
    bpm = float(librosa.feature.tempo(tg=tempogram[:, np.newaxis], sr=params.sample_rate,
                                      hop_length=params.hop_length, aggregate=None)[0])
    lag = round(60.0 / bpm * params.frames_per_second)
    if lag >= env.size:
        return bpm, 0.0
    ac = librosa.autocorrelate(env - env.mean(), max_size=lag + 1)
    return bpm, float(np.clip(ac[lag] / ac[0], 0.0, 1.0))


def tempo(onset_envelope: np.ndarray, *, params: FrameParams = FrameParams(),
          tempogram: np.ndarray | None = None) -> float:
    """Global tempo (BPM) from an onset envelope; 0.0 when the envelope is flat (no onsets)."""
    return tempo_with_confidence(onset_envelope, params=params, tempogram=tempogram)[0]


@dataclass(frozen=True)
class FeatureSet:
    """An extracted feature set: its columns and how to compute them from frames."""

    name: str
    names: list[str]
    describe: Callable[[FrameParams], list[str]]  # one line per column, for these parameters
    summarise: Callable[..., np.ndarray]
    prefix_of: str | None = None  # a set whose first columns are exactly these
    code_version: int | None = None  # the set's own formula version (set_params), if it has one
    # Computed from the decoded signal in analyse_file (musicnn), not by summarise from frames.
    from_signal: bool = False

    @property
    def descriptions(self) -> list[str]:
        """The descriptions at the default parameters."""
        return self.describe(FrameParams())

def _finite(values: np.ndarray, names: list[str]) -> np.ndarray:
    """values, unless one is not finite (in any dimension but the first, per name)."""
    bad = ~np.isfinite(values)
    if bad.any():
        per_name = bad.reshape(len(names), -1).any(axis=1)
        raise NonFiniteValues([n for n, b in zip(names, per_name, strict=True) if b])
    return values


def _check(frames: np.ndarray) -> None:
    if frames.shape[0] != len(FRAME_ROWS) or frames.shape[1] == 0:
        raise ValueError(f"expected a ({len(FRAME_ROWS)}, >0) frame matrix, got {frames.shape}")
    _finite(frames, list(FRAME_ROWS))  # before any statistic: NaN would only spread


# --- seed55: the study's 55 features --------------------------------------------------------

SEED55_NAMES = [
    "rmseP_a", "rmseP_std", "rmseH_a", "rmseH_std", "centroid_a", "centroid_std", "bw_a", "bw_std",
    "contrast_a", "contrast_std", "polyfeat_a", "polyfeat_std", "tonnetz_a", "tonnetz_std",
    "zcr_a", "zcr_std", "onset_a", "onset_std", "bpm", "rmseP_skew", "rmseP_kurtosis",
    "rmseH_skew", "rmseH_kurtosis",
] + [
    f"5band_{stat}_{part}{i}"
    for i in range(N_BANDS)
    for stat in ("rms", "std", "skew", "kurtosis")
    for part in ("h", "p")
]

_STAT_WORDS = {"a": "mean", "rms": "mean", "std": "std", "skew": "skewness",
               "kurtosis": "Fisher kurtosis"}
_SOURCE_WORDS = {
    "rmseP": "percussive part's RMS level of the plain {frame}",
    "rmseH": "harmonic part's RMS level of the plain {frame}",
    "centroid": "spectral centroid (Hz)",
    "bw": "spectral bandwidth, 2nd order (Hz)",
    "contrast": "spectral contrast (dB), over all 7 rows and frames",
    "polyfeat": "slope of a 1st-order polynomial fit to each harmonic-part spectrum",
    "tonnetz": "tonal centroid of the harmonic part (from STFT chroma), over all 6 rows and frames",
    "zcr": "zero-crossing rate per frame",
    "onset": "onset strength of the percussive part (log-mel flux)",
}


def _plain_frame(params: FrameParams) -> str:
    """What the loudness rows measure (features._frame_rms): the unwindowed n_fft frame."""
    ms = 1000 * params.n_fft / params.sample_rate
    return (f"(rectangular, not Hann-windowed) {params.n_fft}-sample ({ms:.0f} ms) frame "
            "around each frame centre")


def _describe_seed55(name: str, params: FrameParams) -> str:
    if name == "bpm":
        return "global tempo (BPM) from the percussive onset envelope; 0 when there are no onsets"
    if name.startswith("5band_"):
        _, stat, part = name.split("_")
        lo, hi = params.band_edges[int(part[1])], params.band_edges[int(part[1]) + 1]
        which = "harmonic" if part[0] == "h" else "percussive"
        hz = params.sample_rate / params.n_fft
        return (f"{_STAT_WORDS[stat]} over frames of the {which} part's RMS magnitude "
                f"(Hann-windowed STFT, n_fft {params.n_fft}) in bins {lo}-{hi - 1} "
                f"({lo * hz:.0f}-{hi * hz:.0f} Hz)")
    source, stat = name.rsplit("_", 1)
    words = _SOURCE_WORDS[source].format(frame=_plain_frame(params))
    return f"{_STAT_WORDS[stat]} over frames of the {words}"


def describe_seed55(params: FrameParams) -> list[str]:
    return [_describe_seed55(n, params) for n in SEED55_NAMES]

_SERIES = (["rms_p", "rms_h", "centroid", "bandwidth", "poly_slope", "zcr", "onset"]
           + [f"band_{p}{i}" for p in "hp" for i in range(N_BANDS)])


def _seed55_values(frames: np.ndarray, params: FrameParams) -> dict[str, float]:
    mean, std, skew, kurt = moments(frames[[ROW[s] for s in _SERIES]])
    m = {s: (mean[i], std[i], skew[i], kurt[i]) for i, s in enumerate(_SERIES)}
    out: dict[str, float] = {}
    for short, row in [("rmseP", "rms_p"), ("rmseH", "rms_h")]:
        out.update(zip([f"{short}_a", f"{short}_std", f"{short}_skew", f"{short}_kurtosis"],
                       m[row], strict=True))
    for short, row in [("centroid", "centroid"), ("bw", "bandwidth"), ("polyfeat", "poly_slope"),
                       ("zcr", "zcr"), ("onset", "onset")]:
        out[f"{short}_a"], out[f"{short}_std"] = m[row][0], m[row][1]
    for short, first, count in [("contrast", ROW["contrast0"], N_CONTRAST),
                                ("tonnetz", ROW["tonnetz0"], N_TONNETZ)]:
        block = frames[first : first + count].astype(np.float64)
        out[f"{short}_a"], out[f"{short}_std"] = float(block.mean()), float(block.std())
    for part in "hp":
        for i in range(N_BANDS):
            mu, sd, sk, ku = m[f"band_{part}{i}"]
            out.update({f"5band_rms_{part}{i}": mu, f"5band_std_{part}{i}": sd,
                        f"5band_skew_{part}{i}": sk, f"5band_kurtosis_{part}{i}": ku})
    return out


def summarise_seed55(frames: np.ndarray, *, params: FrameParams = FrameParams(),
                     tempogram: np.ndarray | None = None) -> np.ndarray:
    """The 55 study features (SEED55_NAMES order) of a slice of frame_features()."""
    _check(frames)
    out = _seed55_values(frames, params)
    out["bpm"] = tempo(frames[ROW["onset"]], params=params, tempogram=tempogram)
    return _finite(np.array([out[n] for n in SEED55_NAMES], dtype=np.float32), SEED55_NAMES)


# --- default: seed55 plus what music-analysis tools commonly offer ------------------------

LOUDNESS_FLOOR_DB = -100.0
_DEFAULT_EXTRA: list[tuple[str, str]] = (
    [(f"mfcc_{stat}_{i}", f"{word} over frames of MFCC {i} (DCT-II of 128-band log-mel power, dB)")
     for stat, word in (("mean", "mean"), ("std", "std")) for i in range(N_MFCC)]
    + [(f"chroma_{stat}_{pc}", f"{word} over frames of the {pc} chroma bin (STFT chroma, A440, "
        "each frame scaled to max 1)")
       for stat, word in (("mean", "mean"), ("std", "std")) for pc in PITCH_CLASSES]
    + [(f"contrast_{stat}_{i}", f"{word} over frames of spectral contrast in octave band {i} (dB; "
        "band 6 is everything above 6.4 kHz)")
       for stat, word in (("mean", "mean"), ("std", "std")) for i in range(N_CONTRAST)]
    + [("rolloff_mean", "mean over frames of the 85% spectral roll-off frequency (Hz)"),
       ("rolloff_std", "std over frames of the 85% spectral roll-off frequency (Hz)"),
       ("flatness_mean", "mean over frames of spectral flatness (0 tonal .. 1 white noise)"),
       ("flatness_std", "std over frames of spectral flatness"),
       ("loudness_mean_db", "mean over frames of the RMS level of the plain {frame}, in dB "
        "full scale (floor -100 dB)"),
       ("loudness_std_db", "std over frames of the plain-frame RMS level (dB)"),
       ("loudness_p10_db", "10th percentile of the plain-frame RMS level (dB): the quiet passages"),
       ("loudness_p50_db", "median plain-frame RMS level (dB)"),
       ("loudness_p90_db", "90th percentile of the plain-frame RMS level (dB): the loud passages"),
       ("dynamic_range_db", "95th minus 5th percentile of the plain-frame RMS level (dB); "
        "silent gaps count at the -100 dB floor"),
       ("onset_rate", "percussive onsets per second (librosa peak picking on the onset envelope)"),
       ("tempo_confidence", "autocorrelation of the mean-removed onset envelope at the bpm's "
        "period over its zero lag (0 no beat .. 1 a steady beat)")]
)
DEFAULT_NAMES = list(SEED55_NAMES) + [n for n, _ in _DEFAULT_EXTRA]


def describe_default(params: FrameParams) -> list[str]:
    return describe_seed55(params) + [d.format(frame=_plain_frame(params))
                                      for _, d in _DEFAULT_EXTRA]


def _rows(prefix: str, count: int) -> list[int]:
    return [ROW[f"{prefix}{i}"] for i in range(count)]


def summarise_default(frames: np.ndarray, *, params: FrameParams = FrameParams(),
                      tempogram: np.ndarray | None = None) -> np.ndarray:
    """The default set (DEFAULT_NAMES order) of a slice of frame_features()."""
    _check(frames)
    out = _seed55_values(frames, params)
    onset = frames[ROW["onset"]]
    out["bpm"], out["tempo_confidence"] = tempo_with_confidence(onset, params=params,
                                                                tempogram=tempogram)
    for prefix, labels in (("mfcc", range(N_MFCC)), ("chroma", PITCH_CLASSES),
                           ("contrast", range(N_CONTRAST))):
        block = frames[_rows(prefix, len(labels))].astype(np.float64)
        for label, mu, sd in zip(labels, block.mean(axis=1), block.std(axis=1), strict=True):
            out[f"{prefix}_mean_{label}"], out[f"{prefix}_std_{label}"] = mu, sd
    for row in ("rolloff", "flatness"):
        series = frames[ROW[row]].astype(np.float64)
        out[f"{row}_mean"], out[f"{row}_std"] = series.mean(), series.std()
    level = 20.0 * np.log10(np.maximum(frames[ROW["rms"]].astype(np.float64),
                                       10 ** (LOUDNESS_FLOOR_DB / 20)))
    p5, p10, p50, p90, p95 = np.percentile(level, [5, 10, 50, 90, 95])
    out.update(loudness_mean_db=level.mean(), loudness_std_db=level.std(), loudness_p10_db=p10,
               loudness_p50_db=p50, loudness_p90_db=p90, dynamic_range_db=p95 - p5)
    seconds = frames.shape[1] / params.frames_per_second
    onsets = librosa.onset.onset_detect(onset_envelope=onset.astype(np.float64),
                                        sr=params.sample_rate, hop_length=params.hop_length)
    out["onset_rate"] = len(onsets) / seconds
    return _finite(np.array([out[n] for n in DEFAULT_NAMES], dtype=np.float32), DEFAULT_NAMES)


def summarise_tonal(frames: np.ndarray, *, params: FrameParams = FrameParams(),
                    tempogram: np.ndarray | None = None) -> np.ndarray:
    """The tonal set (TONAL_NAMES order: key, mode, tempo candidates) of a frame slice."""
    _check(frames)
    if tempogram is None:
        tempogram = mean_tempograms(frames[ROW["onset"]], tempogram_window(params),
                                    [slice(None)])[0]
    out = tonal_values(frames, params, tempogram)
    return _finite(np.array([out[n] for n in TONAL_NAMES], dtype=np.float32), TONAL_NAMES)


def summarise_musicnn(frames: np.ndarray, **_) -> np.ndarray:
    """musicnn needs the 16 kHz signal, which frames no longer hold: analyse_file computes it."""
    raise ValueError("the musicnn set is computed from the decoded signal (analyse_file), "
                     "not from the frame matrix")


FEATURE_SETS = {
    "seed55": FeatureSet("seed55", list(SEED55_NAMES), describe_seed55, summarise_seed55,
                         prefix_of="default"),
    "default": FeatureSet("default", DEFAULT_NAMES, describe_default, summarise_default),
    "tonal": FeatureSet("tonal", list(TONAL_NAMES), describe_tonal, summarise_tonal,
                        code_version=TONAL_CODE_VERSION),
    "musicnn": FeatureSet("musicnn", list(MUSICNN_NAMES), describe_musicnn, summarise_musicnn,
                          code_version=MUSICNN_CODE_VERSION, from_signal=True),
}
