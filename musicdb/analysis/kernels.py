"""Per-frame numba kernels over a (frames, bins) magnitude spectrogram: one pass per frame.

What numpy would do in several passes over 17 MB arrays (squares, sparse products, sorts) is
done here row by row while the row is in cache. Each kernel states the librosa definition it
reproduces; tests/test_default_set.py checks them against librosa.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, fastmath=True)  # fastmath: sums may be reordered (SIMD)
def bank_sums(S: np.ndarray, H: np.ndarray, P: np.ndarray, mel_first: np.ndarray,
              mel_offsets: np.ndarray, mel_weights: np.ndarray, rms_weights: np.ndarray,
              band_edges: np.ndarray) -> tuple[np.ndarray, ...]:
    """Power spectra of S and H; mel spectra of S and P; mean squares of H, P and S.

    Equal to X**2, (X**2) @ mel and (X**2) @ energy with the dense banks, in one pass over
    each frame: mel filter m covers bins mel_first[m] onwards with the weights
    mel_weights[mel_offsets[m] : mel_offsets[m + 1]] (a few bins each, so ~2 multiplies per
    bin instead of 128). Returns S2, H2 (frames, bins), mel_s, mel_p (frames, mels) and ms
    (3, 1 + bands, frames): for H, P and S, the weighted total (rms_weights:
    librosa.feature.rms(S=...)**2) then the plain mean over each band [band_edges[i],
    band_edges[i + 1]).
    """
    frames, bins = S.shape
    n_mels, n_bands = mel_first.size, band_edges.size - 1
    S2 = np.empty((frames, bins), np.float32)
    H2 = np.empty((frames, bins), np.float32)
    mel_s = np.empty((frames, n_mels), np.float32)
    mel_p = np.empty((frames, n_mels), np.float32)
    ms = np.empty((3, 1 + n_bands, frames), np.float32)
    p2 = np.empty(bins, np.float32)  # P's power spectrum, one frame at a time
    for t in range(frames):
        s2, h2 = S2[t], H2[t]
        for i in range(bins):
            h2[i] = H[t, i] * H[t, i]
            p2[i] = P[t, i] * P[t, i]
            s2[i] = S[t, i] * S[t, i]
        for m in range(n_mels):
            first, lo, hi = mel_first[m], mel_offsets[m], mel_offsets[m + 1]
            acc_s = acc_p = np.float32(0.0)
            for k in range(hi - lo):
                w = mel_weights[lo + k]
                acc_s += w * s2[first + k]
                acc_p += w * p2[first + k]
            mel_s[t, m] = acc_s
            mel_p[t, m] = acc_p
        for part in range(3):
            x2 = h2 if part == 0 else (p2 if part == 1 else s2)
            total = np.float32(0.0)
            for i in range(bins):
                total += rms_weights[i] * x2[i]
            ms[part, 0, t] = total
            for b in range(n_bands):
                lo, hi = band_edges[b], band_edges[b + 1]
                acc = np.float32(0.0)
                for i in range(lo, hi):
                    acc += x2[i]
                ms[part, 1 + b, t] = acc / (hi - lo)
    return S2, H2, mel_s, mel_p, ms


@numba.njit(cache=True, nogil=True)
def spectral_shape(S: np.ndarray, freqs: np.ndarray,
                    rolloff_fraction: float = 0.85) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroid, 2nd-order bandwidth and roll-off frequency (Hz) of each frame of (frames, bins).

    librosa's definitions, in one pass per frame with float64 sums (bandwidth as
    sqrt(E[f^2] - centroid^2), so no second pass): the centroid is the magnitude-weighted mean
    frequency, the roll-off the lowest bin whose cumulative magnitude reaches the fraction of
    the frame's total. An empty frame has all three 0.
    """
    frames, bins = S.shape
    centroid = np.zeros(frames)
    bandwidth = np.zeros(frames)
    rolloff = np.zeros(frames)
    tiny = np.finfo(np.float32).tiny
    for t in range(frames):
        row = S[t]
        total = first = second = 0.0
        for i in range(bins):
            v = np.float64(row[i])
            total += v
            first += v * freqs[i]
            second += v * freqs[i] * freqs[i]
        if total < tiny:
            continue
        c = first / total
        centroid[t] = c
        bandwidth[t] = np.sqrt(max(second / total - c * c, 0.0))
        threshold, running = rolloff_fraction * total, 0.0
        for i in range(bins):
            running += row[i]
            if running >= threshold:
                rolloff[t] = freqs[i]
                break
    return centroid, bandwidth, rolloff


@numba.njit(cache=True, nogil=True)
def band_extremes(S: np.ndarray, bands: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the `count` smallest and of the `count` largest magnitudes per band and frame.

    What librosa gets by sorting each band; a running selection of a few values costs one pass.
    """
    frames, n = S.shape[0], bands.shape[0]
    valley = np.empty((n, frames))
    peak = np.empty((n, frames))
    widest = bands[:, 2].max()
    low = np.empty(widest, dtype=S.dtype)  # ascending: the smallest seen so far
    high = np.empty(widest, dtype=S.dtype)  # descending: the largest seen so far
    for t in range(frames):
        row = S[t]
        for k in range(n):
            first, end, count = bands[k, 0], bands[k, 1], bands[k, 2]
            filled = 0
            for i in range(first, end):
                v = row[i]
                if filled < count:
                    j = filled
                    while j > 0 and low[j - 1] > v:
                        low[j] = low[j - 1]
                        j -= 1
                    low[j] = v
                    j = filled
                    while j > 0 and high[j - 1] < v:
                        high[j] = high[j - 1]
                        j -= 1
                    high[j] = v
                    filled += 1
                    continue
                if v < low[count - 1]:
                    j = count - 1
                    while j > 0 and low[j - 1] > v:
                        low[j] = low[j - 1]
                        j -= 1
                    low[j] = v
                if v > high[count - 1]:
                    j = count - 1
                    while j > 0 and high[j - 1] < v:
                        high[j] = high[j - 1]
                        j -= 1
                    high[j] = v
            valley[k, t] = low[:count].mean()
            peak[k, t] = high[:count].mean()
    return valley, peak
