"""Pure feature functions: a mono signal in, frame-level matrix and summary vectors out.

One STFT and one harmonic/percussive separation per block of frames; every frame-level feature
is derived from them. The whole song keeps only the small (features x frames) matrix, so a
snippet's statistics are a slice of it and cost almost nothing.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import librosa
import numpy as np
import scipy.stats

SAMPLE_RATE = 22050

# Bump when a formula changes without a parameter changing: it is part of the set's identity.
FEATURE_CODE_VERSION = 1


@dataclass(frozen=True)
class FrameParams:
    """Everything that shapes the frame matrix; stored with the feature-set version."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 2048  # the study used 2050; a power of two halves the FFT's cost
    hop_length: int = 441  # 20 ms: 50 frames a second
    hpss_kernel: int = 31  # librosa's default median-filter length, in frames and bins
    band_edges: tuple[int, ...] = (1, 9, 44, 211, 1000)  # STFT bins: ~11 Hz .. 10.8 kHz
    block_frames: int = 4096  # frames analysed at once; bounds memory on long files
    code_version: int = FEATURE_CODE_VERSION
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n_fft <= 0 or self.hop_length <= 0:
            raise ValueError(f"n_fft={self.n_fft} and hop_length={self.hop_length} must be > 0")
        if self.band_edges[-1] > self.n_fft // 2 + 1:
            raise ValueError(f"band edge {self.band_edges[-1]} beyond n_fft={self.n_fft}")

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("block_frames")  # changes memory use, not values
        d["band_edges"] = list(self.band_edges)
        return d


N_CONTRAST = 7
N_TONNETZ = 6
N_BANDS = 4
FRAME_ROWS = (
    ["rms_p", "rms_h", "centroid", "bandwidth"]
    + [f"contrast{i}" for i in range(N_CONTRAST)]
    + ["poly_slope"]
    + [f"tonnetz{i}" for i in range(N_TONNETZ)]
    + ["zcr", "onset"]
    + [f"band_h{i}" for i in range(N_BANDS)]
    + [f"band_p{i}" for i in range(N_BANDS)]
)
ROW = {name: i for i, name in enumerate(FRAME_ROWS)}

# HPSS's time-axis median filter sees kernel // 2 frames either side; onset needs one more.
def _block_margin(params: FrameParams) -> int:
    return params.hpss_kernel // 2 + 1


def n_frames(n_samples: int, params: FrameParams) -> int:
    """Frames of a centred STFT, as librosa counts them."""
    return 1 + n_samples // params.hop_length


def frame_features(y: np.ndarray, *, params: FrameParams = FrameParams()) -> np.ndarray:
    """Frame-level features of a mono signal at params.sample_rate.

    Returns float32 of shape (len(FRAME_ROWS), n_frames); frame t is centred on sample t * hop.
    Computed block by block with an overlap wider than any filter, so the result does not
    depend on the block size.
    """
    if y.ndim != 1:
        raise ValueError(f"expected a mono signal, got shape {y.shape}")
    hop, n_fft = params.hop_length, params.n_fft
    total = n_frames(len(y), params)
    # Frame t covers padded[t*hop : t*hop + n_fft], exactly like a centred, zero-padded STFT.
    padded = np.pad(y.astype(np.float32, copy=False), (n_fft // 2, n_fft // 2 + hop))
    margin = _block_margin(params)
    out = np.empty((len(FRAME_ROWS), total), dtype=np.float32)
    for f0 in range(0, total, params.block_frames):
        f1 = min(total, f0 + params.block_frames)
        a, b = max(0, f0 - margin), min(total, f1 + margin)
        segment = padded[a * hop : (b - 1) * hop + n_fft]
        out[:, f0:f1] = _segment_features(segment, params)[:, f0 - a : f1 - a]
    return out


def _segment_features(segment: np.ndarray, params: FrameParams) -> np.ndarray:
    sr, n_fft, hop = params.sample_rate, params.n_fft, params.hop_length
    S = np.abs(librosa.stft(segment, n_fft=n_fft, hop_length=hop, center=False))
    H, P = librosa.decompose.hpss(S, kernel_size=params.hpss_kernel)  # magnitudes, H + P = S
    # Tuning is fixed (A440): estimating it per block would make values depend on the block.
    chroma = librosa.feature.chroma_stft(S=H**2, sr=sr, n_fft=n_fft, tuning=0.0)
    mel_p = librosa.feature.melspectrogram(S=P**2, sr=sr, n_fft=n_fft)
    # top_db=None: the default clips relative to the array's maximum, i.e. to the block.
    onset = librosa.onset.onset_strength(
        S=librosa.power_to_db(mel_p, top_db=None), sr=sr, lag=1, center=False
    )
    edges = params.band_edges
    band = lambda X: np.sqrt(  # noqa: E731 - RMS magnitude of each band, per frame
        np.stack([np.mean(X[lo:hi] ** 2, axis=0) for lo, hi in zip(edges, edges[1:])])
    )
    rows = [
        librosa.feature.rms(S=P, frame_length=n_fft),
        librosa.feature.rms(S=H, frame_length=n_fft),
        librosa.feature.spectral_centroid(S=S, sr=sr, n_fft=n_fft),
        librosa.feature.spectral_bandwidth(S=S, sr=sr, n_fft=n_fft),
        librosa.feature.spectral_contrast(S=S, sr=sr, n_fft=n_fft),
        librosa.feature.poly_features(S=H, sr=sr, n_fft=n_fft, order=1)[:1],  # the slope
        librosa.feature.tonnetz(chroma=chroma, sr=sr),
        librosa.feature.zero_crossing_rate(
            segment, frame_length=n_fft, hop_length=hop, center=False
        ),
        onset[np.newaxis],
        band(H),
        band(P),
    ]
    return np.vstack(rows).astype(np.float32)


def moments(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, std, skewness and Fisher kurtosis (biased) of each row of X.

    A row without spread (silence, a single frame) has no shape: its skewness and kurtosis
    are defined as 0 rather than NaN, so every stored value is finite.
    """
    X = np.asarray(X, dtype=np.float64)
    mean, std = X.mean(axis=1), X.std(axis=1)
    flat = std <= np.maximum(np.abs(mean) * 1e-6, 1e-12)
    with warnings.catch_warnings():
        # scipy warns of precision loss on near-constant rows; those are zeroed below.
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        skew = scipy.stats.skew(X, axis=1, bias=True)
        kurt = scipy.stats.kurtosis(X, axis=1, fisher=True, bias=True)
    return mean, std, np.where(flat, 0.0, skew), np.where(flat, 0.0, kurt)


def tempo(onset_envelope: np.ndarray, *, params: FrameParams = FrameParams()) -> float:
    """Global tempo (BPM) from an onset envelope; 0.0 when the envelope is flat (no onsets)."""
    if onset_envelope.size < 2 or np.ptp(onset_envelope) <= 1e-6:
        return 0.0
    bpm = librosa.feature.tempo(
        onset_envelope=onset_envelope.astype(np.float64),
        sr=params.sample_rate,
        hop_length=params.hop_length,
    )
    return float(bpm[0])


SEED55_NAMES = (
    "rmseP_a,rmseP_std,rmseH_a,rmseH_std,centroid_a,centroid_std,bw_a,bw_std,contrast_a,"
    "contrast_std,polyfeat_a,polyfeat_std,tonnetz_a,tonnetz_std,zcr_a,zcr_std,onset_a,onset_std,"
    "bpm,rmseP_skew,rmseP_kurtosis,rmseH_skew,rmseH_kurtosis"
).split(",") + [
    f"5band_{stat}_{part}{i}"
    for i in range(N_BANDS)
    for stat in ("rms", "std", "skew", "kurtosis")
    for part in ("h", "p")
]

_STAT_WORDS = {"a": "mean", "rms": "mean", "std": "std", "skew": "skewness",
               "kurtosis": "Fisher kurtosis"}
_SOURCE_WORDS = {
    "rmseP": "RMS energy per frame of the percussive part",
    "rmseH": "RMS energy per frame of the harmonic part",
    "centroid": "spectral centroid (Hz)",
    "bw": "spectral bandwidth, 2nd order (Hz)",
    "contrast": "spectral contrast (dB), over all 7 rows and frames",
    "polyfeat": "slope of a 1st-order polynomial fit to each harmonic-part spectrum",
    "tonnetz": "tonal centroid of the harmonic part, over all 6 rows and frames",
    "zcr": "zero-crossing rate per frame",
    "onset": "onset strength of the percussive part (log-mel flux)",
}


def _describe_seed55(name: str) -> str:
    if name == "bpm":
        return "global tempo (BPM) from the percussive onset envelope; 0 when there are no onsets"
    if name.startswith("5band_"):
        _, stat, part = name.split("_")
        lo, hi = FrameParams().band_edges[int(part[1])], FrameParams().band_edges[int(part[1]) + 1]
        which = "harmonic" if part[0] == "h" else "percussive"
        hz = SAMPLE_RATE / FrameParams().n_fft
        return (f"{_STAT_WORDS[stat]} over frames of the {which} part's RMS magnitude in STFT "
                f"bins {lo}-{hi - 1} ({lo * hz:.0f}-{hi * hz:.0f} Hz)")
    source, stat = name.rsplit("_", 1)
    return f"{_STAT_WORDS[stat]} over frames of the {_SOURCE_WORDS[source]}"


SEED55_DESCRIPTIONS = [_describe_seed55(n) for n in SEED55_NAMES]


def summarise_seed55(frames: np.ndarray, *, params: FrameParams = FrameParams()) -> np.ndarray:
    """The 55 study features (SEED55_NAMES order) of a slice of frame_features()."""
    if frames.shape[0] != len(FRAME_ROWS) or frames.shape[1] == 0:
        raise ValueError(f"expected a ({len(FRAME_ROWS)}, >0) frame matrix, got {frames.shape}")
    out: dict[str, float] = {}
    series = ["rms_p", "rms_h", "centroid", "bandwidth", "poly_slope", "zcr", "onset"]
    series += [f"band_{p}{i}" for p in "hp" for i in range(N_BANDS)]
    mean, std, skew, kurt = moments(frames[[ROW[s] for s in series]])
    m = {s: (mean[i], std[i], skew[i], kurt[i]) for i, s in enumerate(series)}
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
    out["bpm"] = tempo(frames[ROW["onset"]], params=params)
    return np.array([out[n] for n in SEED55_NAMES], dtype=np.float32)


def snippet_bounds(duration_s: float, snippet_seconds: float) -> list[tuple[float, float]]:
    """Consecutive snippets from the start; a last partial one is kept if >= half a snippet."""
    if snippet_seconds <= 0:
        return []
    full = int(duration_s // snippet_seconds)
    bounds = [(k * snippet_seconds, (k + 1) * snippet_seconds) for k in range(full)]
    tail_start = full * snippet_seconds
    if duration_s - tail_start >= snippet_seconds / 2:
        bounds.append((tail_start, duration_s))
    return bounds


def frame_slice(start_s: float, end_s: float, total: int, params: FrameParams) -> slice:
    """Frames whose centres fall in [start_s, end_s)."""
    fps = params.frames_per_second
    first = int(np.ceil(start_s * fps - 1e-9))
    last = int(np.ceil(end_s * fps - 1e-9))
    return slice(min(first, total), max(min(last, total), min(first, total) + 1))
