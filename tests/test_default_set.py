"""The fast one-pass extractor: HPSS equal to librosa's, the default set's known answers,
snippets against a direct computation, and feature-set versions that never touch old rows."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.ndimage

from musicdb.analysis.features import ROW, SAMPLE_RATE, FrameParams, frame_features, frame_slice
from musicdb.analysis.hpss import hpss, median_filter
from musicdb.analysis.summaries import (
    DEFAULT_NAMES,
    FEATURE_SETS,
    SEED55_NAMES,
    mean_tempograms,
    summarise_default,
)
from musicdb.audio import synth
from tests.test_ingest import ingest

SR = SAMPLE_RATE


def default(y: np.ndarray, params: FrameParams = FrameParams()) -> dict[str, float]:
    values = summarise_default(frame_features(y, params=params), params=params)
    return dict(zip(DEFAULT_NAMES, values.tolist(), strict=True))


# --- separation ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(40, 300), (1025, 7), (3, 1), (64, 31), (31, 64), (300, 40)])
@pytest.mark.parametrize("axis", [0, 1])
def test_running_median_equals_scipy(shape, axis):
    rng = np.random.default_rng(sum(shape))
    X = rng.random(shape).astype(np.float32)
    X[X < 0.3] = 0.0  # ties and runs of zeros, as in a spectrogram's silent corners
    size = [1, 1]
    size[axis] = 31
    np.testing.assert_array_equal(median_filter(X, 31, axis),
                                  scipy.ndimage.median_filter(X, size=tuple(size)))


def test_median_filter_rejects_even_windows():
    with pytest.raises(ValueError, match="odd"):
        median_filter(np.ones((3, 3), np.float32), 4, 0)


def test_hpss_equals_librosa():
    y = synth.tone(440, 4, sr=SR) + synth.clicks(100, 4, sr=SR)
    y[SR : 2 * SR] = 0.0  # a silent second: both masks 0 there
    S = np.abs(librosa.stft(y, n_fft=2048, hop_length=441))
    H, P = (X.T for X in hpss(S.T, 31))  # ours are (frames, bins), librosa's (bins, frames)
    H_ref, P_ref = librosa.decompose.hpss(S, kernel_size=31)
    np.testing.assert_allclose(H, H_ref, atol=1e-6 * S.max())
    np.testing.assert_allclose(P, P_ref, atol=1e-6 * S.max())
    # The tone lands in H, the clicks in P.
    assert H[40:42].sum() > 10 * P[40:42].sum()  # bins around 440 Hz
    assert P[600:].sum() > 10 * H[600:].sum()  # high bins: only the clicks' energy


# --- the default set -----------------------------------------------------------------------


SIGNALS = {
    "tone": lambda: synth.tone(440, 5, sr=SR),
    "noise": lambda: synth.noise(5, sr=SR),
    "clicks": lambda: synth.clicks(120, 5, sr=SR),
    "silence": lambda: np.zeros(5 * SR, np.float32),
    "one_second": lambda: synth.tone(220, 1, sr=SR) + synth.noise(1, sr=SR, amp=0.1),
    "one_frame": lambda: synth.noise(0.01, sr=SR),
}


@pytest.mark.parametrize("signal", SIGNALS)
def test_every_default_feature_is_finite(signal):
    values = default(SIGNALS[signal]())
    bad = [n for n, v in values.items() if not np.isfinite(v)]
    assert not bad
    assert len(values) == len(DEFAULT_NAMES) == 131 == len(set(DEFAULT_NAMES))


def test_default_contains_seed55_with_the_same_values():
    frames = frame_features(synth.clicks(100, 6, sr=SR) + synth.tone(300, 6, sr=SR))
    seed = dict(zip(SEED55_NAMES, FEATURE_SETS["seed55"].summarise(frames).tolist(), strict=True))
    full = dict(zip(DEFAULT_NAMES, summarise_default(frames).tolist(), strict=True))
    assert DEFAULT_NAMES[:55] == list(SEED55_NAMES)
    assert {n: full[n] for n in SEED55_NAMES} == seed


def test_mean_tempograms_equal_librosa():
    rng = np.random.default_rng(7)
    env = np.abs(rng.normal(size=9000)).astype(np.float32)
    env[::25] += 5.0  # a beat every 25 frames
    env[5000:5600] = 0.0  # a silent stretch: windows with no energy stay zero, as in librosa
    parts = [slice(None), slice(0, 1500), slice(4100, 4300), slice(5000, 5600), slice(8999, 9000)]
    whole = librosa.feature.tempogram(onset_envelope=env.astype(np.float64), win_length=384)
    ours = mean_tempograms(env, 384, parts)
    for part, mean in zip(parts, ours, strict=True):
        np.testing.assert_allclose(mean, whole[:, part].mean(axis=1), atol=1e-6)


@pytest.mark.parametrize("bpm", [90, 120, 150])
def test_click_tempo_and_confidence(bpm):
    v = default(synth.clicks(bpm, 10, sr=SR))
    ratio = v["bpm"] / bpm
    assert min(abs(ratio - k) for k in (0.5, 1.0, 2.0)) <= 0.02, v["bpm"]
    assert v["tempo_confidence"] > 0.5
    assert v["onset_rate"] == pytest.approx(bpm / 60, rel=0.1)
    noise = default(synth.noise(10, sr=SR))
    assert noise["tempo_confidence"] < 0.5 * v["tempo_confidence"]


def test_silence_has_no_beat_and_the_loudness_floor():
    v = default(np.zeros(3 * SR, np.float32))
    assert v["bpm"] == v["tempo_confidence"] == v["onset_rate"] == 0.0
    assert v["loudness_mean_db"] == v["loudness_p90_db"] == -100.0
    assert v["dynamic_range_db"] == 0.0


@pytest.mark.parametrize(("freq", "pitch"), [(440.0, "A"), (261.63, "C"), (392.0, "G")])
def test_chroma_peak_of_a_tone(freq, pitch):
    v = default(synth.tone(freq, 3, sr=SR))
    chroma = {n.removeprefix("chroma_mean_"): x for n, x in v.items()
              if n.startswith("chroma_mean_")}
    assert len(chroma) == 12
    assert max(chroma, key=chroma.get) == pitch
    assert chroma[pitch] == pytest.approx(1.0, abs=0.01)  # frames scaled to max 1


def test_mfcc_shapes_and_spectral_shape():
    frames = frame_features(synth.noise(3, sr=SR))
    mfcc = frames[[ROW[f"mfcc{i}"] for i in range(13)]]
    assert mfcc.shape == (13, frames.shape[1])
    reference = librosa.feature.mfcc(
        S=librosa.power_to_db(librosa.feature.melspectrogram(
            y=synth.noise(3, sr=SR), sr=SR, n_fft=2048, hop_length=441), top_db=None),
        n_mfcc=13)
    # Same definition as librosa's (128 mels, DCT-II ortho), away from the padded edges.
    np.testing.assert_allclose(mfcc[:, 30:-30], reference[:, 30:-30], rtol=1e-3, atol=1e-2)
    tone, white = default(synth.tone(1000, 3, sr=SR)), default(synth.noise(3, sr=SR))
    assert tone["flatness_mean"] < 0.01 < 0.5 < white["flatness_mean"]
    assert tone["rolloff_mean"] == pytest.approx(1000, rel=0.05)
    assert white["rolloff_mean"] == pytest.approx(0.85 * SR / 2, rel=0.05)
    # A sine of amplitude 0.5 has RMS 0.5 / sqrt(2): -9.03 dB full scale, as a plain frame sees.
    assert tone["loudness_p50_db"] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.1)


def test_dynamic_range_sees_quiet_and_loud_passages():
    loud, quiet = synth.noise(4, sr=SR, amp=0.5), synth.noise(4, sr=SR, amp=0.005, seed=2)
    steady = default(np.concatenate([loud, loud]))
    varied = default(np.concatenate([loud, quiet]))
    assert steady["dynamic_range_db"] < 2.0
    assert varied["dynamic_range_db"] == pytest.approx(40.0, abs=2.0)


def test_snippet_values_match_a_direct_computation_on_the_cut_out_audio():
    rng = np.random.default_rng(5)
    y = np.concatenate([synth.tone(f, 10, sr=SR) + synth.clicks(b, 10, sr=SR)
                        + synth.noise(10, sr=SR, amp=0.03, seed=int(s))
                        for f, b, s in zip([220, 330, 550], [90, 120, 140],
                                           rng.integers(0, 99, 3), strict=True)])
    params = FrameParams()
    frames = frame_features(y, params=params)
    start, end = 10.0, 20.0
    sliced = summarise_default(frames[:, frame_slice(start, end, frames.shape[1], params)])
    direct = summarise_default(frame_features(y[int(start * SR) : int(end * SR)], params=params))
    values = dict(zip(DEFAULT_NAMES, zip(sliced.tolist(), direct.tolist(), strict=True),
                      strict=True))
    # Only the first and last ~0.35 s differ (context beyond the cut), so means agree closely.
    for name in ["centroid_a", "bw_a", "zcr_a", "rmseH_a", "mfcc_mean_1", "chroma_mean_E",
                 "rolloff_mean", "loudness_p50_db", "tonnetz_a"]:
        a, b = values[name]
        assert a == pytest.approx(b, rel=0.05, abs=0.02), name
    assert values["bpm"][0] == pytest.approx(values["bpm"][1], rel=0.02)


# --- sets in the database ------------------------------------------------------------------


@pytest.fixture
def library(tmp_path):
    root = tmp_path / "lib"
    (root / "Hum").mkdir(parents=True)
    (root / "Beat").mkdir()
    synth.write_audio(root / "Hum" / "a.flac", synth.tone(440, 40))
    synth.write_audio(root / "Beat" / "b.ogg", synth.clicks(120, 40) + synth.noise(40, amp=0.05))
    return root


def test_adding_a_set_touches_no_existing_rows(run, shell, library, tmp_path, calls):
    db = tmp_path / "m.duckdb"
    ingest(run, library, db, "--feature-set", "seed55")
    fingerprint = ("SELECT feature_set_id, count(*), sum(hash(song_id, snippet, start_s, end_s, "
                   "vals)) FROM features GROUP BY ALL ORDER BY 1")
    before = shell(db, fingerprint)
    songs_before = shell(db, "SELECT song_id, path, content_hash FROM songs ORDER BY 1")
    calls.clear()

    ingest(run, library, db, "--feature-set", "seed55,default")
    assert sorted(calls) == ["a.flac", "b.ogg"]  # extracted once more, for the new set only
    after = shell(db, fingerprint)
    assert after[: len(before)] == before
    assert [r[0] for r in after] == ["1", "2"]
    assert after[1][1] == "4"
    assert shell(db, "SELECT song_id, path, content_hash FROM songs ORDER BY 1") == songs_before
    # Same parameters as the seed55 values: the default set's seed55 columns agree with them.
    assert shell(db, "SELECT count(*) FROM features_seed55 s JOIN features_default d "
                     "USING (song_id) WHERE abs(s.bpm - d.bpm) < 1e-3 "
                     "AND abs(s.centroid_a - d.centroid_a) < 1e-2") == [["2"]]
    calls.clear()
    ingest(run, library, db, "--feature-set", "default,seed55")
    assert calls == []  # both sets present: nothing to do


def test_a_parameter_change_is_a_new_version_and_old_values_stay(run, shell, library, tmp_path):
    db = tmp_path / "m.duckdb"
    ingest(run, library, db, "--feature-set", "seed55")
    v1 = shell(db, "SELECT title, bpm, centroid_a FROM features_seed55 ORDER BY path")
    assert [r[0] for r in v1] == ["b", "a"], v1  # no title tag: the file name's stem
    ingest(run, library, db, "--feature-set", "seed55", "--n-fft", "4096")
    assert shell(db, "SELECT name, version, n_fft, hop_length FROM feature_sets ORDER BY version"
                 ) == [["seed55", "1", "2048", "441"], ["seed55", "2", "4096", "441"]]
    assert shell(db, "SELECT title, bpm, centroid_a FROM features_seed55_v1 ORDER BY path") == v1
    latest = shell(db, "SELECT title, bpm, centroid_a FROM features_seed55 ORDER BY path")
    assert latest == shell(db, "SELECT title, bpm, centroid_a FROM features_seed55_v2 "
                               "ORDER BY path")
    assert latest != v1
    # The 440 Hz tone's centroid is ~440 Hz at either resolution.
    assert [round(float(r[2]) / 440, 1) for r in latest if r[0] == "a"] == [1.0]
    assert shell(db, "SELECT replace(params::JSON->>'band_edges', ',', ' ') FROM feature_sets "
                     "ORDER BY version") == [["[1 9 44 211 1000]"], ["[2 18 88 422 2000]"]]


def test_spectral_contrast_equals_librosa():
    from musicdb.analysis.features import _bank, _spectral_contrast

    rng = np.random.default_rng(3)
    S = rng.gamma(0.5, 1.0, (300, 1025)).astype(np.float32)  # (frames, bins), heavy-tailed
    S[:, 700:] = np.round(S[:, 700:], 1)  # ties
    S[:20] = 0.0  # silent frames
    bank = _bank(SR, 2048, FrameParams().band_edges)
    ours = _spectral_contrast(S, bank)
    theirs = librosa.feature.spectral_contrast(S=S.T, sr=SR, n_fft=2048)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4)
