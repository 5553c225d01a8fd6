"""The tonal set: known keys of generated progressions, tempo candidates of click tracks and of
an ambiguous rhythm, tempo_stable, finite values on anything, versioning, and the song_keys view
in the real duckdb shell. One library, ingested once through the real CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import musicdb.ingest.run
from musicdb.analysis.tonal import KEY_NAMES, TONAL_NAMES, estimate_key
from musicdb.audio import harmony, synth
from musicdb.cli import app
from tests.conftest import duckdb_shell
from tests.executors import in_process

SR = 22050  # the analysis rate: nothing to resample
SNIPPET_S = 3.0  # a progression of 4 chords lasts 3 s: one snippet each in the modulating file

# (tonic pitch class, major, progression number, expected key, Camelot) from the Camelot wheel.
KEYS = [
    (0, True, 0, "C major", "8B"), (4, True, 1, "E major", "12B"),
    (7, True, 2, "G major", "9B"), (10, True, 3, "Bb major", "6B"),
    (9, False, 0, "A minor", "8A"), (1, False, 1, "C# minor", "12A"),
    (5, False, 2, "F minor", "4A"), (2, False, 3, "D minor", "7A"),
]
CLICK_BPMS = (60, 90, 120, 150, 180)


def _write(folder: Path, name: str, y: np.ndarray) -> None:
    synth.write_audio(folder / f"{name}.wav", np.clip(y, -1, 1).astype(np.float32), sr=SR)


def _library(root: Path) -> Path:
    for tonic, major, number, key, _ in KEYS:
        _write(root, key.replace(" ", "_"),
               harmony.progression(tonic, major, harmony.PROGRESSIONS[major][number], sr=SR))
    cadence = harmony.PROGRESSIONS[True][0]  # I IV V I, 3 s: C major, then E major
    _write(root, "modulating", np.concatenate([harmony.progression(0, True, cadence, sr=SR),
                                               harmony.progression(4, True, cadence, sr=SR)]))
    for bpm in CLICK_BPMS:
        _write(root, f"click_{bpm}", synth.clicks(bpm, 6, sr=SR))
    _write(root, "steady_120", harmony.click_track([(120, 16)], sr=SR))
    _write(root, "change_120_150", harmony.click_track([(120, 8), (150, 8)], sr=SR))
    _write(root, "three_against_two", harmony.polyrhythm(80, 120, 6, sr=SR))
    # Digital silence is refused before analysis (an error row): a hiss at -100 dBFS instead.
    _write(root, "silence", synth.noise(2, sr=SR, amp=1e-5, seed=3))
    _write(root, "noise", synth.noise(3, sr=SR))
    _write(root, "one_second", synth.tone(440, 1, sr=SR))
    return root


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = _library(tmp_path_factory.mktemp("tonal_library"))
    db = folder.parent / "tonal.duckdb"
    result = CliRunner().invoke(app, ["ingest", str(folder), "--db", str(db), "--workers", "1",
                                      "--feature-set", "tonal", "--snippet-seconds",
                                      str(SNIPPET_S)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return db


def query(db: Path, sql: str) -> list[list[str]]:
    import csv
    import subprocess

    proc = subprocess.run([duckdb_shell(), "-readonly", "-csv", "-noheader", str(db), "-c", sql],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Error" not in proc.stderr, proc.stderr
    return [row for row in csv.reader(proc.stdout.splitlines()) if row]


def songs(db: Path, columns: str) -> dict[str, list[str]]:
    return {r[0]: r[1:] for r in query(db, f"SELECT title, {columns} FROM song_keys")}


# --- key -------------------------------------------------------------------------------------


def test_progressions_have_their_key_and_camelot(db):
    found = songs(db, "key, camelot, mode, key_strength, key_confidence")
    for _, major, _, key, camelot in KEYS:
        got_key, got_camelot, mode, strength, confidence = found[key.replace(" ", "_")]
        assert (got_key, got_camelot, mode) == (key, camelot, "major" if major else "minor")
        assert float(strength) > 0.7, (key, strength)
        assert float(confidence) > 0.02, (key, confidence)


def test_the_modulating_file_has_a_key_per_snippet(db):
    rows = query(db, "SELECT snippet, key, camelot FROM snippet_keys WHERE title = 'modulating' "
                     "ORDER BY snippet")
    assert rows == [["0", "C major", "8B"], ["1", "E major", "12B"]]


def test_key_estimate_is_the_best_correlation():
    # A C major scale's pitch classes (the tonic and fifth twice): C major, over A minor.
    chroma = np.array([2, 0, 1, 0, 1, 1, 0, 2, 0, 1, 0, 1], dtype=float)
    key, strength, confidence = estimate_key(chroma)
    assert KEY_NAMES[key] == "C major"
    assert 0 < confidence < strength <= 1
    assert estimate_key(np.roll(chroma, 3))[0] == 3  # Eb major
    assert estimate_key(np.zeros(12)) == (-1, 0.0, 0.0)


def test_the_key_table_spells_every_key_as_python_does(db):
    rows = query(db, "SELECT key_index, key, camelot FROM musical_keys ORDER BY key_index")
    assert [r[1] for r in rows] == KEY_NAMES
    assert len({r[2] for r in rows}) == 24
    # Relative keys share a number (C major 8B, A minor 8A).
    assert {r[1]: r[2] for r in rows}["A minor"] == "8A"
    pairs = [("8A", "8A"), ("8A", "8B"), ("8A", "9A"), ("8A", "7A"), ("12B", "1B"),
             ("1A", "12A"), ("8A", "10A"), ("8A", "9B"), ("3B", "9B")]
    sql = ", ".join(f"camelot_compatible('{a}', '{b}')" for a, b in pairs)
    assert query(db, f"SELECT {sql}") == [["true"] * 6 + ["false"] * 3]


# --- tempo -----------------------------------------------------------------------------------


def _near(value: str, truth: float, tolerance: float = 0.02) -> bool:
    return abs(float(value) / truth - 1) <= tolerance


def test_click_tracks_have_their_tempo_and_its_half_or_double(db):
    found = songs(db, "tempo_1, tempo_2, tempo_ratio, tempo_relation, tempo_1_confidence")
    for bpm in CLICK_BPMS:
        t1, t2, ratio, relation, c1 = found[f"click_{bpm}"]
        assert _near(t1, bpm) or _near(t2, bpm), (bpm, t1, t2)
        assert relation in ("half", "double"), (bpm, t1, t2, relation)
        assert math.isclose(float(ratio), float(t2) / float(t1), rel_tol=1e-5)
        assert float(c1) > 0.5, (bpm, c1)


def test_an_ambiguous_meter_reports_both_tempi(db):
    # 80 against 120 BPM clicks, equally loud: a beat of 120 or of 80 (2 against 3).
    t1, t2, relation, c1, c2 = songs(db, "tempo_1, tempo_2, tempo_relation, tempo_1_confidence, "
                                         "tempo_2_confidence")["three_against_two"]
    assert sorted([round(float(t1)), round(float(t2))]) == [80, 120], (t1, t2)
    assert relation in ("2:3", "3:2")
    noise = float(songs(db, "tempo_1_confidence")["noise"][0])
    assert min(float(c1), float(c2)) > 0.2 > noise, (c1, c2, noise)  # both are beats
    # Less sure than a single steady click: the ambiguity shows in the confidence.
    assert float(c1) < float(songs(db, "tempo_1_confidence")["steady_120"][0])


def test_tempo_stable_on_a_steady_click_not_on_a_tempo_change(db):
    found = songs(db, "tempo_stable, tempo_drift, tempo_1")
    stable, drift, _ = found["steady_120"]
    assert (stable, float(drift)) == ("1", pytest.approx(0.0, abs=0.01))
    stable, drift, tempo_1 = found["change_120_150"]
    assert stable == "0"
    assert float(drift) == pytest.approx(0.1), (drift, tempo_1)  # a block lost the beat
    assert found["silence"][:2] == ["0", "-1.0"]  # no beat: no tempo to be stable


def test_every_value_is_finite_on_silence_noise_and_a_one_second_file(db):
    columns = ", ".join(TONAL_NAMES)
    rows = query(db, f"SELECT title, snippet, {columns} FROM snippets_tonal UNION ALL "
                     f"SELECT title, -1, {columns} FROM features_tonal")
    titles = {r[0] for r in rows}
    assert {"silence", "noise", "one_second"} <= titles
    assert all(math.isfinite(float(v)) for r in rows for v in r[2:])
    # Under the onset floor (-60 dB log-mel): no onsets, so no tempo and no beat.
    silence = songs(db, "tempo_1, tempo_2, tempo_1_confidence, tempo_stable")["silence"]
    assert silence == ["0.0", "0.0", "0.0", "0"]


def test_digital_silence_has_no_key_and_no_tempo():
    # `ingest` refuses an all-zero file before analysis; the set itself still gives finite
    # values, with the documented "none" markers.
    from musicdb.analysis.features import frame_features
    from musicdb.analysis.summaries import summarise_tonal

    values = dict(zip(TONAL_NAMES, summarise_tonal(frame_features(np.zeros(2 * SR, np.float32)))
                      .tolist(), strict=True))
    assert values["key_index"] == values["key_mode"] == values["tempo_drift"] == -1
    assert values["tempo_1"] == values["tempo_2"] == values["tempo_stable"] == 0


# --- versioning ------------------------------------------------------------------------------


def test_adding_tonal_to_an_ingested_library_extracts_only_tonal(tmp_path, monkeypatch):
    folder = tmp_path / "small"
    folder.mkdir()
    _write(folder, "a", harmony.progression(9, False, ("i", "iv", "V", "i"), sr=SR))
    _write(folder, "b", synth.clicks(120, 2, sr=SR))
    db = tmp_path / "m.duckdb"
    seen: list[tuple[str, tuple[str, ...]]] = []
    real = musicdb.ingest.run.analyse_file

    def counting(path: str, sets: tuple[str, ...], *args, **kwargs):
        seen.append((Path(path).name, tuple(sets)))
        return real(path, sets, *args, **kwargs)

    monkeypatch.setattr(musicdb.ingest.run, "analyse_file", counting)
    in_process(monkeypatch)
    runner = CliRunner()

    def ingest(sets: str) -> None:
        result = runner.invoke(app, ["ingest", str(folder), "--db", str(db), "--feature-set",
                                     sets], catch_exceptions=False)
        assert result.exit_code == 0, result.output

    ingest("default,seed55")
    before = query(db, "SELECT title, bpm, chroma_mean_A FROM features_default ORDER BY title")
    seen.clear()
    ingest("default,seed55,tonal")
    assert sorted(seen) == [("a.wav", ("tonal",)), ("b.wav", ("tonal",))]
    assert query(db, "SELECT title, bpm, chroma_mean_A FROM features_default ORDER BY title"
                 ) == before
    assert query(db, "SELECT name, version FROM feature_sets ORDER BY name") == [
        ["default", "1"], ["seed55", "1"], ["tonal", "1"]]
    assert query(db, "SELECT title, key, camelot FROM song_keys ORDER BY title")[0] == [
        "a", "A minor", "8A"]
    # tempo_1 is the default set's bpm peak, placed between lags (bpm keeps the lag grid).
    for bpm, tempo_1 in query(db, "SELECT d.bpm, k.tempo_1 FROM features_default d "
                                  "JOIN song_keys k USING (song_id)"):
        assert _near(tempo_1, float(bpm), 0.04), (bpm, tempo_1)
    seen.clear()
    ingest("default,seed55,tonal")
    assert seen == []  # nothing left to extract
