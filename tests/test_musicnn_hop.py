"""musicnn on every h-th patch (MusicnnStream patch_hop): exactly the full run's patches 0, h,
2h, ..., with their own centres, and never fewer than one patch."""

from __future__ import annotations

import numpy as np
import pytest

from musicdb.analysis.embedding import MusicnnStream, summarise_patches

SR = 22050


def _run(y: np.ndarray, hop: int, block: int = 9000):
    stream = MusicnnStream(SR, patch_hop=hop)
    for i in range(0, len(y), block):
        stream.add(y[i : i + block])
    return stream.finish()


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    """13 s: a tone, then noise (four whole patches that differ)."""
    rng = np.random.default_rng(4)
    t = np.arange(13 * SR) / SR
    y = np.where(t < 6, 0.5 * np.sin(2 * np.pi * 330 * t), rng.uniform(-0.4, 0.4, t.size))
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def full(signal):
    return _run(signal, 1)


@pytest.mark.parametrize("hop", [2, 3])
def test_every_hth_patch_of_the_full_run(signal, full, hop):
    assert len(full.tags) == 4
    sub = _run(signal, hop)
    np.testing.assert_allclose(sub.embedding, full.embedding[::hop], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sub.tags, full.tags[::hop], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(sub.centres_s, full.centres_s[::hop])


def test_a_snippet_without_an_analysed_patch_takes_the_nearest(signal):
    sub = _run(signal, 4)  # patch 0 only (centre 1.5 s)
    assert len(sub.tags) == 1
    rows = summarise_patches(sub, [(0.0, 6.0), (6.0, 13.0)])
    assert np.isfinite(rows).all()
    np.testing.assert_array_equal(rows[2], rows[1])


def test_short_file_and_bad_hop():
    assert len(_run(np.zeros(SR, np.float32), 3).tags) == 1  # 1 s: repeat-padded to one
    with pytest.raises(ValueError, match="patch_hop 0"):
        MusicnnStream(SR, patch_hop=0)


def test_the_ingest_analyses_every_4th_patch(tmp_path):
    """analyse_file (what the ingest runs) gives MusicnnStream(patch_hop=4)'s rows: patches
    0 and 4 of a 25 s file, not all eight."""
    from musicdb.analysis.analyse import analyse_file
    from musicdb.analysis.embedding import MUSICNN_PATCH_HOP
    from musicdb.audio import synth

    assert MUSICNN_PATCH_HOP == 4
    rng = np.random.default_rng(5)
    t = np.arange(25 * SR) / SR
    y = (0.3 * np.sin(2 * np.pi * (220 + 20 * t) * t) + rng.uniform(-0.1, 0.1, t.size))
    path = synth.write_audio(tmp_path / "sweep.flac", y.astype(np.float32))
    stored = analyse_file(str(path), ("musicnn",), 10.0).values["musicnn"]
    decoded = _decoded(path)
    bounds = stored.bounds
    every_4th = summarise_patches(_run(decoded, 4), bounds)
    every = summarise_patches(_run(decoded, 1), bounds)
    np.testing.assert_allclose(stored.whole, every_4th[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stored.snippets, every_4th[1:], rtol=1e-5, atol=1e-6)
    assert not np.allclose(stored.whole, every[0], rtol=1e-5, atol=1e-6)


def _decoded(path) -> np.ndarray:
    from musicdb.audio.decode import decode

    return decode(path, sr=SR).y.astype(np.float32)
