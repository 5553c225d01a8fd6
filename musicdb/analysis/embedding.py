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

Cost (benchmarks/extract.py, 6 corpus files, one thread): the network is 1.4 G multiply-adds
a patch written directly (~0.55 G with musicnn.py's Winograd timbral convolutions); musicnn
alone runs at ~85x realtime per core (12 files), against ~225x for the default ingest's sets,
so it is not in the default. Memory does not grow with
the length: a 60-minute file peaks at 423 MB with musicnn, 416 MB without.

MusicnnStream(patch_hop=h) runs the network on every h-th patch only; the ingest keeps every
patch (h = 1). benchmarks/musicnn_hop.py on the corpus (48 songs, 3 folder labels; a loaded
machine: hop 1 measured 31x there against 58x quiet): musicnn alone 31/62/91/121x realtime per
core for h = 1/2/3/4, all sets together 26/45/59/69x; precision@10 of songs 0.804/0.798/0.790/
0.792 and of snippets 0.803/0.798/0.792/0.785 (chance 0.70), grouped-CV macro-F1 0.41 ± 0.17
for every h. Only h = 4 approaches 130x for all sets (~140x projected on a quiet core), and its
snippets lose a sixth of musicnn's precision above chance: so every patch stays the default.
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
MUSICNN_CODE_VERSION = 1
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
    return ([f"mean over the 3 s patches of embedding unit {i}: the 200-unit penultimate layer "
             f"of {model}" for i in range(N_EMBEDDING)]
            + [f"std over the 3 s patches of embedding unit {i} (0 with a single patch)"
               for i in range(N_EMBEDDING)]
            + [f"probability of the Million Song Dataset tag '{t}' by {model}, mean over the "
               "3 s patches" for t in MSD_TAGS])


@dataclass
class Patches:
    """The network's outputs, one row per 3 s patch."""

    embedding: np.ndarray  # (n, 200) penultimate
    tags: np.ndarray  # (n, 50) probabilities
    centres_s: np.ndarray  # (n,) the patch's middle, seconds from the start


class MusicnnStream:
    """Decode sink: blocks of mono float32 at `source_rate` in, Patches out (finish()).

    `patch_hop` h runs the network on every h-th patch only (the 1st, the (h+1)th, ...): the
    log-mel frames are all computed, the network, most of the cost, on a share 1/h of them.
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
            self._patches(log_mel(view))
            self.frames += count
            self.pending = self.pending[count * HOP :]

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
