"""The `musicnn` feature set: musicnn's embedding and tags of a song and its snippets.

MusicnnStream is a decode sink beside the frame features (analyse_file tees the same decoded
22,050 Hz blocks to both): it resamples to 16 kHz with soxr, computes the log-mel frames as
they complete and runs the network (musicdb.analysis.musicnn) on each 3 s patch as soon as it
is whole, so only 250 numbers a patch are kept, never the signal or its spectrogram.

Patches are consecutive and do not overlap (musicnn's extractor default); the frames after
the last whole patch are dropped, as musicnn does. A file shorter than one patch (187 frames,
2.99 s) is repeat-padded to one: its frames are tiled, as musicnn's training padded short
clips ("pad_short": "repeat-pad" in the model's config.json). A snippet's values are those of
the patches whose centre falls inside it (the patch nearest its middle when none does).

The ingest runs the network on every MUSICNN_PATCH_HOP-th (4th) patch only, and computes
only their log-mel frames: MusicnnStream(patch_hop=h). The network is 0.6 G multiply-adds a
patch (musicnn.py's Winograd timbral convolutions; 1.4 G written directly), at ~63% of what
one core's BLAS reaches on a large GEMM (benchmarks/musicnn_layers.py): on every patch, all
sets together could not reach 130x realtime per core on this hardware (measured 81x).
Figures per h and the quality they cost: MUSICNN_PATCH_HOP's comment, the README. Memory
does not grow with the length: a 60-minute file peaks at 423 MB with musicnn, 416 MB without.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

from musicdb.analysis.musicnn import (
    HOP,
    MSD_TAGS,
    N_EMBEDDING,
    N_FFT,
    N_MELS,
    PATCH_FRAMES,
    SAMPLE_RATE,
    forward,
    log_mel,
)

# Bump when a formula here or in musicnn.py changes (part of the set's identity, set_params).
# 2: the ingest analyses every MUSICNN_PATCH_HOP-th patch (1 analysed every patch).
MUSICNN_CODE_VERSION = 2
# The network runs on patches 0, 4, 8, ... of a file: 12 s apart, so a 30 s snippet has two or
# three. benchmarks/musicnn_hop.py on the 118 labelled corpus songs (5-fold CV): every patch
# macro-F1 0.575, P@10 songs 0.558, snippets 0.605; every 4th 0.587, 0.538, 0.571; the
# default set 0.492, 0.496, 0.525. For a third of the CPU musicnn keeps most of its lead.
MUSICNN_PATCH_HOP = 4
FRAMES_AT_ONCE = 2048  # STFT frames computed per step (4 MB of float32 frames)


def tag_column(tag: str) -> str:
    """'female vocalists' -> 'tag_female_vocalists', 'Hip-Hop' -> 'tag_hip_hop'."""
    return "tag_" + tag.lower().replace(" ", "_").replace("-", "_")


MUSICNN_NAMES = ([f"emb_mean_{i}" for i in range(N_EMBEDDING)]
                 + [f"emb_std_{i}" for i in range(N_EMBEDDING)]
                 + [tag_column(t) for t in MSD_TAGS])


def describe_musicnn(params=None) -> list[str]:
    """One line per column; the frame parameters do not matter to this set."""
    model = "musicnn's MSD_musicnn model (16 kHz, 96 log-mel bands, 3 s patches)"
    over = f"every {MUSICNN_PATCH_HOP}th 3 s patch (patches 0, {MUSICNN_PATCH_HOP}, ...)"
    return ([f"mean over {over} of embedding unit {i}: the 200-unit penultimate layer "
             f"of {model}" for i in range(N_EMBEDDING)]
            + [f"std over {over} of embedding unit {i} (0 with a single patch)"
               for i in range(N_EMBEDDING)]
            + [f"probability of the Million Song Dataset tag '{t}' by {model}, mean over "
               f"{over}" for t in MSD_TAGS])


@dataclass
class Patches:
    """The network's outputs, one row per 3 s patch."""

    embedding: np.ndarray  # (n, 200) penultimate
    tags: np.ndarray  # (n, 50) probabilities
    centres_s: np.ndarray  # (n,) the patch's middle, seconds from the start


class MusicnnStream:
    """Decode sink: blocks of mono float32 at `source_rate` in, Patches out (finish()).

    `patch_hop` h runs the network on every h-th patch only (the 1st, the (h+1)th, ...), and
    computes the log-mel frames of those patches only (the frames of the others are zeros
    that no patch uses); the signal is resampled whole, as the stream has to be.
    """

    def __init__(self, source_rate: int, patch_hop: int = 1) -> None:
        if patch_hop < 1:
            raise ValueError(f"patch_hop {patch_hop}: use 1 (every patch) or more")
        self.patch_hop = patch_hop
        self.patch_count = 0  # whole patches seen, analysed or not
        self.chosen: list[np.ndarray] = []  # indices of the analysed patches
        self.resampler = (None if source_rate == SAMPLE_RATE else
                          soxr.ResampleStream(source_rate, SAMPLE_RATE, 1, dtype="float32"))
        # Padded-signal samples not yet behind a computed frame; librosa's centre=True
        # padding (n_fft // 2 zeros) first.
        self.pending = np.zeros(N_FFT // 2, np.float32)
        self.samples = 0  # 16 kHz samples received
        self.frames = 0  # frames computed
        self.mel: list[np.ndarray] = []  # frames not yet in a patch
        self.mel_count = 0
        self.outputs: list[tuple[np.ndarray, np.ndarray]] = []

    def reserve(self, seconds: float) -> None:
        """Nothing grows with the length but 250 float32 a patch."""

    def add(self, block: np.ndarray) -> None:
        block = block if self.resampler is None else self.resampler.resample_chunk(block)
        self._take(block)

    def _take(self, block: np.ndarray) -> None:
        self.samples += len(block)
        self.pending = np.concatenate([self.pending, block.astype(np.float32, copy=False)])
        self._frames(limit=None)

    def _frames(self, limit: int | None) -> None:
        """Every whole frame of the pending samples (at most `limit` frames in all)."""
        while True:
            ready = 0 if len(self.pending) < N_FFT else 1 + (len(self.pending) - N_FFT) // HOP
            if limit is not None:
                ready = min(ready, limit - self.frames)
            if ready <= 0:
                return
            count = min(ready, FRAMES_AT_ONCE)
            view = np.lib.stride_tricks.sliding_window_view(self.pending, N_FFT)[::HOP][:count]
            self._patches(self._log_mel(view))
            self.frames += count
            self.pending = self.pending[count * HOP :]

    def _log_mel(self, view: np.ndarray) -> np.ndarray:
        """The log-mel frames of `view` (frames self.frames ...) that an analysed patch uses
        (patch 0 always is, so a short file has all of its frames); zeros elsewhere."""
        if self.patch_hop == 1:
            return log_mel(view)
        patch = (self.frames + np.arange(len(view))) // PATCH_FRAMES
        needed = patch % self.patch_hop == 0
        mel = np.zeros((len(view), N_MELS), np.float32)
        if needed.any():
            mel[needed] = log_mel(view[needed])
        return mel

    def _patches(self, mel: np.ndarray) -> None:
        self.mel.append(mel)
        self.mel_count += len(mel)
        if self.mel_count < PATCH_FRAMES:
            return
        frames = np.concatenate(self.mel)
        whole = len(frames) // PATCH_FRAMES * PATCH_FRAMES
        index = self.patch_count + np.arange(whole // PATCH_FRAMES)
        self.patch_count += len(index)
        keep = index % self.patch_hop == 0
        if keep.any():
            patches = frames[:whole].reshape(-1, PATCH_FRAMES, N_MELS)[keep]
            self.outputs.append(forward(patches))
            self.chosen.append(index[keep])
        self.mel, self.mel_count = [frames[whole:]], len(frames) - whole

    def finish(self) -> Patches:
        """The patches' outputs; a signal shorter than one patch is repeat-padded to one."""
        if self.resampler is not None:
            self._take(self.resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        self.pending = np.concatenate([self.pending, np.zeros(N_FFT // 2, np.float32)])
        self._frames(limit=1 + self.samples // HOP)  # librosa's frame count, centre=True
        if not self.outputs:
            frames = np.concatenate(self.mel) if self.mel_count else np.zeros((1, N_MELS),
                                                                               np.float32)
            self.outputs.append(forward(repeat_pad(frames)[np.newaxis]))
            self.chosen.append(np.zeros(1, np.int64))
        embedding = np.concatenate([e for e, _ in self.outputs])
        tags = np.concatenate([t for _, t in self.outputs])
        starts = np.concatenate(self.chosen) * PATCH_FRAMES
        centres = np.minimum(starts + PATCH_FRAMES // 2, max(0, self.frames - 1)) * HOP
        return Patches(embedding, tags, centres / SAMPLE_RATE)


def repeat_pad(frames: np.ndarray) -> np.ndarray:
    """(187, 96): the frames tiled until they fill one patch."""
    reps = -(-PATCH_FRAMES // len(frames))
    return np.tile(frames, (reps, 1))[:PATCH_FRAMES]


def summarise_patches(patches: Patches, bounds: list[tuple[float, float]]) -> np.ndarray:
    """(1 + len(bounds), 450) rows: the whole song, then each snippet (MUSICNN_NAMES order)."""
    rows = [_row(patches, np.ones(len(patches.tags), bool))]
    for start, end in bounds:
        inside = (patches.centres_s >= start) & (patches.centres_s < end)
        if not inside.any():
            inside[np.argmin(np.abs(patches.centres_s - (start + end) / 2))] = True
        rows.append(_row(patches, inside))
    return np.vstack(rows)


def _row(patches: Patches, chosen: np.ndarray) -> np.ndarray:
    emb = patches.embedding[chosen].astype(np.float64)
    tags = patches.tags[chosen].astype(np.float64)
    return np.concatenate([emb.mean(axis=0), emb.std(axis=0), tags.mean(axis=0)]).astype(
        np.float32)
