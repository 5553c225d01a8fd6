"""musicnn's MSD_musicnn network in numpy: log-mel patches in, 200-d embedding and 50 tags out.

The model is Pons & Serra's musicnn (MTG-UPF, ISC licence), trained on the Million Song
Dataset's 50 most common tags; the weights ship in weights/msd_musicnn.npz, converted from the
musicnn 0.1.0 wheel by benchmarks/musicnn_weights.py (which lists the stored arrays). This
module is the model's models.py (build_musicnn) and extractor.py (batch_data) re-written:

    input     3 s patches: 187 frames x 96 mel bands of log10(10000 * mel power + 1), the mel
              power of a 16 kHz signal (n_fft 512, hop 256, Hann, librosa's Slaney mel bands)
              rounded to float16 first, as musicnn does (the log in float32: log_compress)
    front-end batch norm; timbral: 7x38 and 7x67 convolutions (204 filters each, time padded
              by 3), temporal: 128-, 64- and 32-frame convolutions along time in each band
              (51 filters each, 'same' padding); each ReLU -> batch norm -> max over frequency
    mid-end   three 7-frame convolutions over the 561 front-end channels (64 filters, ReLU,
              batch norm), the 2nd and 3rd with residual connections
    back-end  max and mean over time of front-end + mid-end (753 channels each, interleaved),
              dense 200 (ReLU, batch norm): `penultimate`; dense 50 + sigmoid: the tags

Every batch norm is a per-channel scale and shift. A ReLU followed by a batch norm and a max
over frequency is computed as the max (or, for a negative scale, the min) of the convolution
over frequency, then bias, ReLU, scale and shift: the same numbers at a fraction of the
elementwise work, since both ReLU and the affine map are monotone. Convolutions are one matrix
product each on the im2col of the patch (BLAS, one thread in a worker).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187  # librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1
MSD_TAGS = [
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill",
    "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock",
    "60s", "rnb", "indie pop", "sad", "House", "happy",
]  # musicnn's configuration.MSD_LABELS, in the order of the network's outputs
N_EMBEDDING = 200
WEIGHTS = Path(__file__).with_name("weights") / "msd_musicnn.npz"
TEMPORAL = (128, 64, 32)  # the temporal filters' lengths, in frames
POOLED = ("timbral74", "timbral77", "temporal128", "temporal64", "temporal32")
# Winograd F(6, 7) along time for the timbral convolutions: 12 products per 6 output rows
# instead of 42; its points (and infinity) keep float32 within 1e-5 of the direct sums.
WINOGRAD_OUTPUTS = 6
WINOGRAD_POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 1 / 3, -1 / 3)
TILES_AT_ONCE = 4  # Winograd tiles per GEMM: 2 MB of products, in cache until their max
BANDS_AT_ONCE = 16  # mel bands per temporal GEMM (1.5 MB of im2col)


@functools.cache
def weights() -> dict[str, np.ndarray]:
    """The converted weights, loaded once per process (3 MB of plain float32 arrays; np.load
    is told to refuse object arrays, so the file can hold nothing that runs code)."""
    with np.load(WEIGHTS, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files if npz[k].dtype == np.float32}


@functools.cache
def mel_basis() -> np.ndarray:
    """(257, 96) float32: librosa's default Slaney mel filters for 16 kHz, n_fft 512, transposed."""
    import librosa

    return np.ascontiguousarray(
        librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, dtype=np.float32).T)


def log_mel(frames: np.ndarray) -> np.ndarray:
    """(n, 96) musicnn input of (n, 512) signal frames (already centred as librosa's STFT does)."""
    import scipy.fft  # a third of numpy.fft's time on float32 frames

    from musicdb.analysis.features import hann_window

    spectrum = scipy.fft.rfft(frames * hann_window(N_FFT), axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    mel = power.astype(np.float32) @ mel_basis()
    # Rounded to float16 as musicnn's batch_data does; clipped first, where a float16 would
    # overflow to inf (a mel band above 65,504: an extremely loud, clipped signal).
    return log_compress(np.minimum(mel, np.finfo(np.float16).max).astype(np.float16))


def log_compress(mel16: np.ndarray) -> np.ndarray:
    """log10(10000 x + 1) of float16 mel power, computed in float32.

    musicnn 0.1.0 computes it in float16 (its array's type), where 10000 x overflows to inf
    for any band above 6.55: 0.01-1.7 % of the mel values of five benchmark-corpus tracks,
    which makes the network's output NaN or arbitrary. float32 gives the values the formula
    means (and the parity fixture feeds the original model the same float32 values).
    """
    return np.log10(10000 * mel16.astype(np.float32) + 1)


def _windows(x: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """im2col: every rows x cols window of the 2-D x as one row, in (row, col) order."""
    view = np.lib.stride_tricks.sliding_window_view(x, (rows, cols))
    return view.reshape(view.shape[0] * view.shape[1], rows * cols)


def winograd_matrices(outputs: int, taps: int, points: tuple[float, ...]):
    """(A^T, G, B^T) in float64 of Winograd's minimal filtering F(outputs, taps): the
    correlation y_i = sum_r d_(i+r) g_r of a tile of outputs + taps - 1 inputs d is
    A^T [(G g) * (B^T d)], outputs + taps - 1 products instead of outputs x taps.

    Toom-Cook on the given points and infinity: V evaluates a polynomial of degree
    alpha - 1 there, V_g and V_x the kernel's and the output's; the full convolution is
    V^-1 [(V_g g) * (V_x x)], and the correlation its transpose: A^T = V_x^T, B^T = V^-T.
    """
    alpha = outputs + taps - 1
    if len(points) != alpha - 1:
        raise ValueError(f"F({outputs}, {taps}) needs {alpha - 1} finite points")

    def vandermonde(columns: int) -> np.ndarray:
        v = np.zeros((alpha, columns))
        v[:-1] = np.asarray(points, np.float64)[:, np.newaxis] ** np.arange(columns)
        v[-1, -1] = 1.0  # infinity: the leading coefficient
        return v

    return vandermonde(outputs).T, vandermonde(taps), np.linalg.inv(vandermonde(alpha)).T


@functools.cache
def prepared() -> dict[str, np.ndarray]:
    """The weights rearranged for the forward pass, once per process.

    Each pooled layer's channels are multiplied by the sign of their batch-norm scale, so
    that the min over frequency a negative scale needs is minus the max of the negated
    channel: one max for every channel (negation is exact). The timbral kernels are
    transformed along time for Winograd F(6, 7) (G g, in float64, then float32)."""
    w = weights()
    out = dict(w)
    at, g, bt = winograd_matrices(WINOGRAD_OUTPUTS, 7, WINOGRAD_POINTS)
    out["winograd_at"], out["winograd_bt"] = at.astype(np.float32), bt
    for name in POOLED:
        sign = np.where(w[f"{name}_scale"] >= 0, 1, -1).astype(np.float32)
        out[f"{name}_sign"] = sign
        kernel = w[f"{name}_kernel"] * sign
        if name.startswith("timbral"):  # (7, width, c) -> (alpha, width, c)
            kernel = np.tensordot(g, kernel.astype(np.float64), axes=(1, 0))
        out[f"{name}_kernel"] = np.ascontiguousarray(kernel, dtype=np.float32)
    return out


def _pooled(extreme: np.ndarray, w: dict, name: str) -> np.ndarray:
    """ReLU -> batch norm -> max over frequency, from the max over frequency of the
    sign-multiplied pre-bias convolution (prepared): sign x max is the max or the min."""
    return (np.maximum(extreme * w[f"{name}_sign"] + w[f"{name}_bias"], 0) * w[f"{name}_scale"]
            + w[f"{name}_shift"])


def _timbral_max(patch: np.ndarray, w: dict, name: str) -> np.ndarray:
    """(187, c): max over frequency of a 7-row timbral convolution (time padded by 3) of one
    (187, 96) patch, by Winograd F(m, 7) along time and im2col along frequency.

    Tiles of m output rows read m + 6 input rows; B^T mixes those rows (float64: 12 x 12 on a
    few thousand numbers), each of the alpha = m + 6 mixed rows is one GEMM against its
    transformed kernel (G g), and A^T mixes the alpha products back into the m rows. A few
    tiles at a time (TILES_AT_ONCE), so that the products stay in cache until their max;
    frequency is the outer axis of the products, so the max is over contiguous rows.
    """
    t = patch.shape[0]
    kernel = w[f"{name}_kernel"]  # (alpha, width, c)
    alpha, width, channels = kernel.shape
    m = alpha - 6
    tiles = -(-t // m)
    padded = np.zeros((tiles * m + 6, patch.shape[1]))
    padded[3 : 3 + t] = patch
    rows = padded[np.arange(tiles)[:, np.newaxis] * m + np.arange(alpha)]  # (tiles, alpha, 96)
    mixed = np.tensordot(w["winograd_bt"], rows, axes=(1, 1))  # (alpha, tiles, 96)
    mixed = np.ascontiguousarray(mixed.transpose(0, 2, 1), dtype=np.float32)  # (alpha, 96, tiles)
    windows = np.lib.stride_tricks.sliding_window_view(mixed, width, axis=1)
    bands = windows.shape[1]  # windows: (alpha, bands, tiles, width)
    peak = np.empty((m, tiles, channels), np.float32)
    for first in range(0, tiles, TILES_AT_ONCE):
        chunk = windows[:, :, first : first + TILES_AT_ONCE]
        n = chunk.shape[2]
        products = chunk.reshape(alpha, bands * n, width) @ kernel  # (alpha, bands * n, c)
        out = w["winograd_at"] @ products.reshape(alpha, -1)  # (m, bands * n * c)
        peak[:, first : first + n] = out.reshape(m, bands, n, channels).max(axis=1)
    return peak.transpose(1, 0, 2).reshape(tiles * m, channels)[:t]


def _temporal_max(patch: np.ndarray, w: dict, length: int) -> np.ndarray:
    """(187, 51): max over the 96 bands of a `length`-frame convolution along time ('same'
    padding as TF: the extra pad of an even kernel goes after), BANDS_AT_ONCE bands per GEMM
    so that their im2col and products stay in cache."""
    t, n_bands = patch.shape
    before = (length - 1) // 2
    padded = np.zeros((n_bands, t + length - 1), np.float32)
    padded[:, before : before + t] = patch.T
    windows = np.lib.stride_tricks.sliding_window_view(padded, length, axis=1)  # (96, t, len)
    peak = None
    for first in range(0, n_bands, BANDS_AT_ONCE):
        chunk = windows[first : first + BANDS_AT_ONCE]
        z = chunk.reshape(-1, length) @ w[f"temporal{length}_kernel"]
        top = z.reshape(len(chunk), t, -1).max(axis=0)
        peak = top if peak is None else np.maximum(peak, top, out=peak)
    return peak


def front_end(patch: np.ndarray, w: dict) -> np.ndarray:
    """(187, 561) timbral + temporal features of one (187, 96) normalised patch."""
    out = [_pooled(_timbral_max(patch, w, name), w, name) for name in ("timbral74", "timbral77")]
    out += [_pooled(_temporal_max(patch, w, length), w, f"temporal{length}")
            for length in TEMPORAL]
    return np.concatenate(out, axis=1)


def _midend_conv(x: np.ndarray, w: dict, name: str) -> np.ndarray:
    """7-frame convolution over all channels (time padded by 3), ReLU, batch norm."""
    kernel = w[f"{name}_kernel"]
    z = _windows(np.pad(x, ((3, 3), (0, 0))), 7, x.shape[1]) @ kernel.reshape(-1, kernel.shape[-1])
    return np.maximum(z + w[f"{name}_bias"], 0) * w[f"{name}_scale"] + w[f"{name}_shift"]


def forward(patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(penultimate (n, 200), tag probabilities (n, 50)) of (n, 187, 96) log-mel patches."""
    w = prepared()
    patches = np.asarray(patches, dtype=np.float32)
    if patches.ndim != 3 or patches.shape[1:] != (PATCH_FRAMES, N_MELS):
        raise ValueError(f"expected (n, {PATCH_FRAMES}, {N_MELS}) patches, got {patches.shape}")
    pooled = []
    for patch in patches:
        front = front_end(patch * w["input_scale"] + w["input_shift"], w)
        mid1 = _midend_conv(front, w, "midend1")
        mid2 = _midend_conv(mid1, w, "midend2") + mid1
        mid3 = _midend_conv(mid2, w, "midend3") + mid2
        features = np.concatenate([front, mid1, mid2, mid3], axis=1)  # (187, 753)
        # musicnn concatenates [max, mean] on a last axis and flattens: they interleave.
        pooled.append(np.stack([features.max(axis=0), features.mean(axis=0)], axis=1).ravel())
    flat = np.asarray(pooled, dtype=np.float32).reshape(len(patches), -1)
    dense = np.maximum(flat @ w["dense_kernel"] + w["dense_bias"], 0)
    penultimate = dense * w["dense_scale"] + w["dense_shift"]
    logits = penultimate @ w["logits_kernel"] + w["logits_bias"]
    return penultimate, 1.0 / (1.0 + np.exp(-logits))
