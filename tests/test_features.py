"""The seed55 features on generated signals whose right answer is known.

First the pure functions of musicdb.analysis.features, then the same signals encoded as wav,
flac, ogg and
mp3, ingested through the real CLI and read back from the database.
"""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

from musicdb.analysis.features import (
    FRAME_ROWS,
    SAMPLE_RATE,
    FrameParams,
    frame_features,
    frame_slice,
    snippet_bounds,
)
from musicdb.analysis.summaries import SEED55_NAMES, moments, summarise_seed55, tempo
from musicdb.audio import synth
from musicdb.audio.decode import decode
from musicdb.cli import app

SR = SAMPLE_RATE  # signals for the direct tests are made at the analysis rate: no resampling
REPO = Path(__file__).resolve().parent.parent
STUDY_TABLE = REPO / "tests" / "data" / "seed_features_5band.csv"  # copy of the study's table
SKEW_KURTOSIS = [n for n in SEED55_NAMES if n.endswith(("_skew", "_kurtosis"))
                 or n.startswith(("5band_skew", "5band_kurtosis"))]


def seed55(y: np.ndarray) -> dict[str, float]:
    values = summarise_seed55(frame_features(y))
    return dict(zip(SEED55_NAMES, values.tolist(), strict=True))


# --- the functions on their own ---------------------------------------------------------------


@pytest.mark.parametrize("freq", [1000.0, 3000.0])
def test_tone_centroid_is_its_frequency(freq):
    v = seed55(synth.tone(freq, 3, sr=SR))
    assert v["centroid_a"] == pytest.approx(freq, rel=0.05)


@pytest.mark.parametrize("bpm", [90, 100, 120, 150])
def test_click_track_tempo(bpm):
    v = seed55(synth.clicks(bpm, 8, sr=SR))
    # 50 frames a second resolves these tempi to within 1%: no octave errors allowed.
    assert v["bpm"] == pytest.approx(bpm, rel=0.02)


def test_noise_crosses_zero_more_than_a_low_tone():
    low, white = seed55(synth.tone(100, 3, sr=SR)), seed55(synth.noise(3, sr=SR))
    # A sine crosses zero twice a period; white noise between every other pair of samples.
    assert low["zcr_a"] == pytest.approx(2 * 100 / SR, rel=0.05)
    assert white["zcr_a"] == pytest.approx(0.5, abs=0.05)
    assert white["zcr_a"] > 10 * low["zcr_a"]


def test_silence_gives_finite_values():
    values = summarise_seed55(frame_features(np.zeros(3 * SR, np.float32)))
    v = dict(zip(SEED55_NAMES, values.tolist(), strict=True))
    assert values.shape == (55,)
    assert np.isfinite(values).all(), [n for n in SEED55_NAMES if not np.isfinite(v[n])]
    assert len(SKEW_KURTOSIS) == 20
    assert all(v[n] == 0.0 for n in SKEW_KURTOSIS), {n: v[n] for n in SKEW_KURTOSIS}
    assert v["bpm"] == 0.0
    assert v["rmseP_a"] == v["rmseH_a"] == v["zcr_a"] == 0.0


def test_flat_series_and_single_frames_are_defined():
    flat = np.vstack([np.full(50, 2.0), np.zeros(50), np.full(50, -1e-3)])
    mean, std, skew, kurt = moments(flat)
    np.testing.assert_allclose(mean, [2.0, 0.0, -1e-3])
    assert (std == 0).all()
    assert (skew == 0).all()
    assert (kurt == 0).all()
    # ...while a series with a shape keeps it: one spike in 50 frames is strongly skewed.
    spike = np.zeros((1, 50))
    spike[0, 10] = 1.0
    _, _, skew, kurt = moments(spike)
    assert skew[0] == pytest.approx(6.857, rel=1e-3)
    assert kurt[0] > 40
    assert tempo(np.zeros(200)) == 0.0
    assert tempo(np.ones(1)) == 0.0
    one_frame = frame_features(synth.noise(1, sr=SR))[:, 7:8]
    values = summarise_seed55(one_frame)
    assert np.isfinite(values).all()
    assert all(values[SEED55_NAMES.index(n)] == 0.0 for n in SKEW_KURTOSIS)


def test_names_are_the_studys():
    with STUDY_TABLE.open(newline="") as f:
        header = next(csv.reader(f))
    assert header[:2] == ["label", "file"]
    assert list(SEED55_NAMES) == header[2:]
    assert len(SEED55_NAMES) == 55 == len(set(SEED55_NAMES))


@pytest.fixture(scope="module")
def mix() -> tuple[np.ndarray, np.ndarray]:
    """A tone, clicks and a little noise (151 frames), with its frames in a single block."""
    y = (synth.tone(330, 3, sr=SR) + synth.clicks(120, 3, sr=SR)
         + synth.noise(3, sr=SR, amp=0.05)).astype(np.float32)
    return y, frame_features(y)


@pytest.mark.parametrize("block_frames", [5, 40, 150])  # 150: a last block of a single frame
def test_frame_features_do_not_depend_on_block_size(mix, block_frames):
    y, whole = mix
    assert whole.shape == (len(FRAME_ROWS), 1 + len(y) // FrameParams().hop_length) == (56, 151)
    blocked = frame_features(y, params=FrameParams(block_frames=block_frames))
    # Equal but for float32 rounding in tonnetz (~1e-7); a block margin one frame short
    # already differs by ~1e-2 in the onset row.
    np.testing.assert_allclose(blocked, whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(summarise_seed55(blocked), summarise_seed55(whole),
                               rtol=1e-5, atol=1e-6)
    assert FrameParams(block_frames=block_frames).as_dict() == FrameParams().as_dict()


def test_snippet_bounds():
    assert snippet_bounds(95, 30) == [(0, 30), (30, 60), (60, 90)]
    b110 = snippet_bounds(110, 30)
    assert len(b110) == 4
    assert b110[:3] == [(0, 30), (30, 60), (60, 90)]
    assert b110[-1] == (90, 110)
    # A partial last snippet is kept from half a snippet on.
    assert snippet_bounds(105, 30)[-1] == (90, 105)
    assert snippet_bounds(104.9, 30) == [(0, 30), (30, 60), (60, 90)]
    assert snippet_bounds(20, 30) == [(0, 20)]
    assert snippet_bounds(14, 30) == []
    assert snippet_bounds(95, 0) == []


def test_snippet_frames_are_consecutive():
    params = FrameParams()
    total = 1 + 95 * SR // params.hop_length
    slices = [frame_slice(s, e, total, params) for s, e in snippet_bounds(95, 30)]
    assert [(s.start, s.stop) for s in slices] == [(0, 1500), (1500, 3000), (3000, 4500)]
    # The last, partial snippet of a 110 s song runs to the frame centred on its end.
    total = 1 + 110 * SR // params.hop_length
    last = frame_slice(*snippet_bounds(110, 30)[-1], total, params)
    assert (last.start, last.stop) == (4500, 5500)
    assert total == 5501


# --- the same signals through a real ingest, in four codecs -----------------------------------

CODECS = {".wav": "wav/pcm_16", ".flac": "flac/flac", ".ogg": "ogg/vorbis",
          ".mp3": "mp3/mpeg_layer_iii"}
SIGNALS = {  # at synth.SR (44.1 kHz): the decoder resamples them to 22,050 Hz
    "tone1k": lambda: synth.tone(1000, 3),
    "tone100": lambda: synth.tone(100, 3),
    "clicks120": lambda: synth.clicks(120, 8),
    "noise": lambda: synth.noise(3),
}


@pytest.fixture(scope="module")
def encoded(tmp_path_factory) -> dict:
    """Every signal in every codec under root/<codec>/, ingested once with the real CLI."""
    root = tmp_path_factory.mktemp("codecs") / "library"
    db = root.parent / "codecs.duckdb"
    for ext in CODECS:
        (root / ext[1:]).mkdir(parents=True)
        for name, make in SIGNALS.items():
            synth.write_audio(root / ext[1:] / f"{name}{ext}", make())
    result = CliRunner().invoke(app, ["ingest", str(root), "--db", str(db), "--workers", "1"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with duckdb.connect(str(db), read_only=True) as con:
        cur = con.execute("SELECT * FROM features_seed55")
        columns = [d[0] for d in cur.description]
        rows = [dict(zip(columns, r, strict=True)) for r in cur.fetchall()]
    values = {(Path(r["path"]).stem, Path(r["path"]).suffix): r for r in rows}
    return {"root": root, "db": db, "values": values, "columns": columns}


def test_every_codec_is_ingested(encoded):
    with duckdb.connect(str(encoded["db"]), read_only=True) as con:
        songs = con.execute("SELECT path, status, error, codec, sample_rate, channels, "
                            "duration_s, folder FROM songs").fetchall()
    assert len(songs) == len(CODECS) * len(SIGNALS)
    for path, status, error, codec, rate, channels, duration, folder in songs:
        p = Path(path)
        assert (status, error) == ("ok", None), path
        assert codec == CODECS[p.suffix]
        assert (rate, channels, folder) == (synth.SR, 1, p.suffix[1:])
        expected = len(SIGNALS[p.stem]()) / synth.SR
        assert duration == pytest.approx(expected, abs=0.06), path  # mp3 frames round it
    assert set(encoded["values"]) == {(n, e) for n in SIGNALS for e in CODECS}


def test_database_carries_the_55_names_in_order(encoded):
    with duckdb.connect(str(encoded["db"]), read_only=True) as con:
        names = [r[0] for r in con.execute(
            "SELECT n.name FROM feature_names n JOIN feature_sets s USING (feature_set_id) "
            "WHERE s.name = 'seed55' ORDER BY n.position").fetchall()]
    assert names == list(SEED55_NAMES)
    columns = encoded["columns"]
    assert [c for c in columns if c in SEED55_NAMES] == list(SEED55_NAMES)


@pytest.mark.parametrize("ext", CODECS)
def test_ingested_tone_centroid(encoded, ext):
    assert encoded["values"]["tone1k", ext]["centroid_a"] == pytest.approx(1000, rel=0.05)


@pytest.mark.parametrize("ext", CODECS)
def test_ingested_clicks_tempo(encoded, ext):
    assert encoded["values"]["clicks120", ext]["bpm"] == pytest.approx(120, rel=0.02)


@pytest.mark.parametrize("ext", CODECS)
def test_ingested_noise_crosses_zero_more_than_low_tone(encoded, ext):
    v = encoded["values"]
    assert v["noise", ext]["zcr_a"] > 10 * v["tone100", ext]["zcr_a"]
    if ext in (".wav", ".flac"):  # lossy codecs add crossings with their noise near zero
        assert v["tone100", ext]["zcr_a"] == pytest.approx(2 * 100 / SR, rel=0.05)


@pytest.mark.parametrize("name", SIGNALS)
def test_stored_values_are_the_functions_values(encoded, name):
    """What the database holds for a flac is exactly summarise_seed55 of its decoded signal."""
    path = encoded["root"] / "flac" / f"{name}.flac"
    expected = summarise_seed55(frame_features(decode(path).y))
    stored = np.array([encoded["values"][name, ".flac"][n] for n in SEED55_NAMES], np.float32)
    np.testing.assert_allclose(stored, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg", ".opus", ".mp3"])
def test_stereo_is_mixed_down_to_the_mean_of_its_channels(tmp_path, ext):
    """Left 0.6 and right 0.2 of one 440 Hz tone decode to 0.4 of it, at 22,050 Hz."""
    rate = 48000 if ext == ".opus" else synth.SR  # Opus allows 48 kHz, not 44.1
    tone = np.sin(2 * np.pi * 440 * np.arange(2 * rate) / rate)
    path = synth.write_audio(tmp_path / f"stereo{ext}",
                             np.stack([0.6 * tone, 0.2 * tone], axis=1).astype(np.float32),
                             sr=rate)
    decoded = decode(path)
    assert (decoded.channels, decoded.sample_rate) == (2, SR)
    assert decoded.duration_s == pytest.approx(2.0, abs=0.06)
    middle = decoded.y[SR // 2 : 3 * SR // 2]  # clear of codec start-up and padding
    peak = np.sqrt(2) * np.sqrt(np.mean(middle.astype(np.float64) ** 2))
    assert peak == pytest.approx(0.4, rel=0.03)
