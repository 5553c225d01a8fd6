"""The numpy musicnn is the original network, and its values are finite on any signal.

tests/data/musicnn_parity.npz: the original TF model (musicnn 0.1.0's own models.py and
checkpoint, benchmarks/musicnn_parity.py) on 3 s patches of 6 real recordings and 5 generated
signals, with those patches as input.
"""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest

from musicdb.analysis import musicnn
from musicdb.analysis.embedding import (
    MUSICNN_NAMES,
    MusicnnStream,
    describe_musicnn,
    summarise_patches,
)

FIXTURE = Path(__file__).parent / "data" / "musicnn_parity.npz"
SR = 22050


def test_forward_matches_the_original_model():
    data = np.load(FIXTURE, allow_pickle=False)
    assert len([n for n in data["names"] if n.endswith(".ogg")]) >= 5
    penultimate, tags = musicnn.forward(musicnn.log_compress(data["mel16"]))
    assert np.abs(tags - data["tags"]).max() < 1e-4
    assert np.abs(penultimate - data["penultimate"]).max() < 1e-3
    # The patches differ, so a constant answer could not pass.
    assert np.ptp(data["tags"], axis=0).max() > 0.1


def _stream(y: np.ndarray, rate: int = SR, block: int = 7000) -> MusicnnStream:
    stream = MusicnnStream(rate)
    for i in range(0, len(y), block):
        stream.add(y[i : i + block].astype(np.float32))
    return stream


class _KeepsFrames(MusicnnStream):
    """The stream, keeping the log-mel frames it computes."""

    def __init__(self, rate: int) -> None:
        super().__init__(rate)
        self.seen: list[np.ndarray] = []

    def _patches(self, mel: np.ndarray) -> None:
        self.seen.append(mel)
        super()._patches(mel)


def test_log_mel_is_musicnn_input():
    """The streamed frames equal musicnn's batch_data (librosa), log taken in float32."""
    rng = np.random.default_rng(1)
    t = np.arange(16000 * 7) / 16000
    y = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    mel = librosa.feature.melspectrogram(y=y, sr=16000, hop_length=256, n_fft=512, n_mels=96).T
    expected = musicnn.log_compress(mel.astype(np.float16))
    stream = _KeepsFrames(16000)
    for i in range(0, len(y), 7000):
        stream.add(y[i : i + 7000])
    patches = stream.finish()
    frames = np.concatenate(stream.seen)
    assert frames.shape == expected.shape
    # float32 sums in another order round to float16 differently now and then (0.04 %).
    assert np.mean(frames != expected) < 0.002
    assert np.abs(frames - expected).max() < 1e-3
    assert len(patches.tags) == len(expected) // musicnn.PATCH_FRAMES == 2
    direct = musicnn.forward(frames[:374].reshape(2, 187, 96))[1]
    np.testing.assert_allclose(patches.tags, direct, rtol=1e-5, atol=1e-6)


def _signals() -> dict[str, np.ndarray]:
    t = np.arange(int(4 * SR)) / SR
    clicks = np.zeros_like(t)
    clicks[:: SR // 2] = 1.0
    rng = np.random.default_rng(2)
    return {"tone": 0.5 * np.sin(2 * np.pi * 330 * t), "noise": rng.uniform(-1, 1, t.size),
            "clicks": clicks, "silence": np.zeros_like(t), "one_second": 0.5 * np.sin(t[:SR]),
            "loud_square": np.sign(np.sin(2 * np.pi * 60 * t))}


@pytest.mark.parametrize("name", list(_signals()))
def test_values_finite_on_any_signal(name):
    y = _signals()[name]
    patches = _stream(y).finish()
    assert len(patches.tags) >= 1  # a 1 s file is repeat-padded to one patch
    rows = summarise_patches(patches, [(0.0, 2.0), (2.0, len(y) / SR)])
    assert rows.shape == (3, len(MUSICNN_NAMES)) == (3, 450)
    assert np.isfinite(rows).all()
    assert ((rows[:, 400:] >= 0) & (rows[:, 400:] <= 1)).all()


def test_snippets_take_the_patches_inside_them():
    rng = np.random.default_rng(3)
    t = np.arange(int(12.5 * SR)) / SR
    y = np.concatenate([0.5 * np.sin(2 * np.pi * 220 * t[: 6 * SR]),
                        rng.uniform(-0.5, 0.5, t.size - 6 * SR)])
    patches = _stream(y).finish()
    assert len(patches.tags) == 4  # 12.5 s: four whole 2.99 s patches, the rest dropped
    rows = summarise_patches(patches, [(0.0, 6.0), (6.0, 12.5)])
    first, second = patches.embedding[:2], patches.embedding[2:]
    np.testing.assert_allclose(rows[1, :200], first.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rows[2, :200], second.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rows[0, 200:400], patches.embedding.std(axis=0), rtol=1e-4,
                               atol=1e-6)


def test_names_and_descriptions():
    assert "tag_female_vocalists" in MUSICNN_NAMES
    assert "tag_hip_hop" in MUSICNN_NAMES
    assert len(set(MUSICNN_NAMES)) == len(MUSICNN_NAMES)
    lines = describe_musicnn()
    assert len(lines) == len(MUSICNN_NAMES)
    assert "female vocalists" in lines[MUSICNN_NAMES.index("tag_female_vocalists")]


def test_weights_carry_their_licence_and_source():
    with np.load(musicnn.WEIGHTS, allow_pickle=False) as npz:
        licence, sha = str(npz["licence"]), str(npz["source_sha256"])
        assert str(npz["source_wheel"]) == "musicnn-0.1.0-py3-none-any.whl"
    assert "Permission to use, copy, modify, and/or distribute" in licence
    assert "Music Technology Group, Universitat Pompeu Fabra" in licence
    notice = musicnn.WEIGHTS.with_name("msd_musicnn.LICENSE.txt").read_text()
    assert sha in notice
    assert licence in notice
    assert len(sha) == 64
