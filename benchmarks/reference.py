"""The study's 55 features ("seed55") computed the straightforward way, with plain librosa.

This is the yardstick for musicdb's extractor: what the study's author wrote, minus its
accidents (see shared/seed55.md). Load with librosa, separate harmonic and percussive parts on
the waveform, then call each librosa feature function on its own signal, each computing its own
STFT, at musicdb's frame grid (n_fft 2048, hop 441). Values come back in the order of
``musicdb.analysis.summaries.SEED55_NAMES``.

Where this differs from musicdb on purpose (it is the plain version):

- HPSS runs on the waveform (``librosa.effects.hpss``: its own STFT at hop 512, then ISTFT);
  rms, poly_features, onset and the bands then re-analyse the separated waveforms.
- tonnetz uses constant-Q chroma (``librosa.feature.tonnetz(y=y_h)``) at librosa's default hop
  512, with tuning estimated per file; hop 441 is not allowed for the CQT (it must be divisible
  by a power of two). Only its mean and std over all rows and frames are kept, so the grid does
  not matter for the values.
- onset strength and tempo use librosa's defaults (log-mel with top_db 80, beat_track's tempo
  prior) on the percussive waveform at hop 441.
- skewness and kurtosis are scipy's (biased, Fisher), NaN for a series without spread.

``floor(path)`` is the least any extractor must do: decode to 22,050 Hz mono as musicdb does and
compute one magnitude STFT.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import librosa
import numpy as np
import scipy.stats

from musicdb.analysis.features import FrameParams
from musicdb.analysis.summaries import SEED55_NAMES
from musicdb.audio.decode import decode

SR = 22050
N_FFT = 2048
HOP = 441
BAND_EDGES = FrameParams().band_edges  # STFT bins 1, 9, 44, 211, 1000


def four_moments(x: np.ndarray) -> tuple[float, float, float, float]:
    """Mean, std, skewness and Fisher kurtosis (biased) of a 1-D series."""
    x = np.asarray(x, dtype=np.float64).ravel()
    return (float(np.mean(x)), float(np.std(x)),
            float(scipy.stats.skew(x, bias=True)),
            float(scipy.stats.kurtosis(x, fisher=True, bias=True)))


def band_rms(y: np.ndarray) -> np.ndarray:
    """RMS magnitude per frame in each band between BAND_EDGES, shape (4, frames)."""
    S = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP))
    return np.stack([np.sqrt(np.mean(S[lo:hi] ** 2, axis=0))
                     for lo, hi in itertools.pairwise(BAND_EDGES)])


def reference_features(path: str | Path) -> dict[str, float]:
    """The 55 seed55 features of one file, by name."""
    y, sr = librosa.load(path, sr=SR, mono=True)
    y_h, y_p = librosa.effects.hpss(y)
    kw = {"sr": sr, "n_fft": N_FFT, "hop_length": HOP}
    out: dict[str, float] = {}

    for name, part in [("rmseP", y_p), ("rmseH", y_h)]:
        rms = librosa.feature.rms(y=part, frame_length=N_FFT, hop_length=HOP)
        mean, std, skew, kurt = four_moments(rms)
        out |= {f"{name}_a": mean, f"{name}_std": std,
                f"{name}_skew": skew, f"{name}_kurtosis": kurt}

    series = {
        "centroid": librosa.feature.spectral_centroid(y=y, **kw),
        "bw": librosa.feature.spectral_bandwidth(y=y, **kw),
        "contrast": librosa.feature.spectral_contrast(y=y, **kw),  # 7 rows, pooled
        "polyfeat": librosa.feature.poly_features(y=y_h, order=1, **kw)[0],  # the slope
        "tonnetz": librosa.feature.tonnetz(y=y_h, sr=sr),  # 6 rows, pooled; CQT chroma
        "zcr": librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=HOP),
        "onset": librosa.onset.onset_strength(y=y_p, sr=sr, hop_length=HOP),
    }
    for name, values in series.items():
        out[f"{name}_a"], out[f"{name}_std"] = float(np.mean(values)), float(np.std(values))

    tempo, _ = librosa.beat.beat_track(y=y_p, sr=sr, hop_length=HOP)
    out["bpm"] = float(np.atleast_1d(tempo)[0])

    for part, signal in [("h", y_h), ("p", y_p)]:
        for i, band in enumerate(band_rms(signal)):
            mean, std, skew, kurt = four_moments(band)
            out |= {f"5band_rms_{part}{i}": mean, f"5band_std_{part}{i}": std,
                    f"5band_skew_{part}{i}": skew, f"5band_kurtosis_{part}{i}": kurt}
    return out


def reference_seed55(path: str | Path) -> np.ndarray:
    """The 55 seed55 features of one file, float64, in SEED55_NAMES order."""
    features = reference_features(path)
    return np.array([features[name] for name in SEED55_NAMES], dtype=np.float64)


def floor(path: str | Path) -> float:
    """The cost floor: decode to 22,050 Hz mono (musicdb's decoder) and one magnitude STFT.

    Returns the decoded duration in seconds.
    """
    decoded = decode(Path(path), sr=SR)
    S = np.abs(librosa.stft(decoded.y, n_fft=N_FFT, hop_length=HOP))
    del S
    return decoded.duration_s


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:]:
        for name, value in zip(SEED55_NAMES, reference_seed55(arg), strict=True):
            print(f"{name:24s} {value:.6g}")
