"""Memory that does not grow with a file's length.

The analysis streams: decoded, resampled blocks go straight into the frame features
(features.FrameStream), which keep one block's samples, so the whole signal never exists. These
tests check that the streamed frames are the frames of the whole signal in every decoder path,
that the checks which used to need the whole signal (empty, silent) still work, and measure a
real analysis process's peak RSS on long files and on a header that claims 18 days.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import duckdb
import numpy as np
import pytest
import soundfile as sf

from musicdb.analysis import analyse
from musicdb.analysis.analyse import DEFAULT_SETS, analyse_file, summarise_sets
from musicdb.analysis.features import (
    MAX_SECONDS,
    SAMPLE_RATE,
    FrameParams,
    FrameStream,
    SignalTooLong,
    frame_features,
    n_frames,
    snippet_bounds,
)
from musicdb.audio import synth
from musicdb.audio.decode import decode
from tests.executors import in_process

MULTI_BLOCK = FrameParams(block_frames=40)  # a 3 s file is 4 blocks: every seam is crossed

# An ingest worker's set-up (one BLAS thread, the allocator, kernels warmed on 1 s of noise),
# then one analysis a file, in the order given, as a worker takes one file after another;
# prints the process's own peak RSS before the first and after each.
CHILD = """
import json, resource, sys
import musicdb.workers.preload
from musicdb.analysis.analyse import DEFAULT_SETS, analyse_file
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
base_mb = peak_mb()
for path in sys.argv[1:]:
    result = analyse_file(path, DEFAULT_SETS, 30.0)
    print(json.dumps({"ok": result.ok, "error": result.error, "duration_s": result.duration_s,
                      "base_mb": base_mb, "peak_mb": peak_mb()}))
"""


def analysed_in_a_worker_process(*paths: Path) -> list[dict]:
    """One fresh process analyses the files one after another; the peak RSS after each is the
    process's high-water mark so far: a file that needs more memory than the files before it
    raises it by what it needs beyond them."""
    proc = subprocess.run([sys.executable, "-c", CHILD, *map(str, paths)],
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()[-len(paths):]]


def write_long_wav(path: Path, minutes: float, sr: int = 44100) -> Path:
    """Tones, noise and clicks that change every 10 s; written 10 s at a time (seconds for 3 h).

    Six 10 s pieces in a seeded random order: cheap to make, not one repeating loop.
    """
    rng = np.random.default_rng(0)
    t = np.arange(10 * sr) / sr
    pieces = []
    for _ in range(6):
        freq, bpm = rng.uniform(80, 2000), rng.uniform(70, 170)
        y = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.size)
        y[(np.arange(0, 10, 60 / bpm) * sr).astype(int)] += 0.6
        pieces.append((y * 30000).astype(np.int16))
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, format="WAV",
                      subtype="PCM_16") as f:
        for k in rng.integers(0, len(pieces), round(minutes * 6)):
            f.write(pieces[k])
    return path


def streamed(path: Path, params: FrameParams = FrameParams()):
    stream = FrameStream(params)
    decoded = decode(path, sr=params.sample_rate, sink=stream)
    return decoded, stream.finish()


# --- the streamed frames are the whole signal's frames -----------------------------------------


def _mix(seconds: float, sr: int = synth.SR) -> np.ndarray:
    return (synth.tone(330, seconds, sr=sr) + synth.clicks(120, seconds, sr=sr)
            + synth.noise(seconds, sr=sr, amp=0.05)).astype(np.float32)


def _ffmpeg_m4a(path: Path) -> Path:
    wav = synth.write_audio(path.with_suffix(".wav"), _mix(3))
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(wav), "-c:a", "aac",
                    str(path)], check=True, timeout=120)
    wav.unlink()
    return path


FILES = {  # name: (how to write it, the decoder path it takes)
    "wav": (lambda p: synth.write_audio(p, _mix(3)), "soundfile, resampled"),
    "wav22k": (lambda p: synth.write_audio(p, _mix(3, SAMPLE_RATE), sr=SAMPLE_RATE),
               "soundfile, not resampled"),
    "mp3": (lambda p: synth.write_audio(p, _mix(3)), "soundfile"),
    "flac": (lambda p: synth.write_audio(p, np.stack([_mix(3), _mix(3)[::-1]], axis=1)),
             "PyAV, stereo"),
    "ogg": (lambda p: synth.write_audio(p, _mix(3)), "PyAV"),
    "opus": (lambda p: synth.write_audio(p, _mix(3, 48000), sr=48000), "PyAV"),
    "m4a": (_ffmpeg_m4a, "the ffmpeg program"),
}


@pytest.mark.parametrize("params", [FrameParams(), MULTI_BLOCK], ids=["one-block", "4-blocks"])
@pytest.mark.parametrize("name", FILES)
def test_streamed_frames_equal_the_whole_signals(tmp_path, name, params):
    if name == "m4a" and shutil.which("ffmpeg") is None:
        pytest.skip("needs ffmpeg on PATH to write and read m4a")
    write, _ = FILES[name]
    path = write(tmp_path / f"mix.{name.removesuffix('22k')}")
    whole = decode(path)
    decoded, frames = streamed(path, params)
    expected = frame_features(whole.y, params=params)
    assert frames.shape == expected.shape == (expected.shape[0], n_frames(len(whole.y), params))
    np.testing.assert_array_equal(frames, expected)
    # What the empty and silence checks read is counted on the way.
    assert decoded.samples.count == len(whole.y)
    assert decoded.samples.peak == float(np.abs(whole.y).max())
    assert (decoded.duration_s, decoded.codec) == (whole.duration_s, whole.codec)
    assert decoded.samples.y is None
    with pytest.raises(ValueError, match="sink"):
        _ = decoded.y


def test_a_file_of_several_default_blocks_gives_the_whole_signals_values(tmp_path):
    """100 s: 5,001 frames, two of the default 4,096-frame blocks; the stored summaries too."""
    path = synth.write_audio(tmp_path / "long.wav", np.tile(_mix(10), 10))
    y = decode(path).y
    frames = frame_features(y)
    assert frames.shape[1] == 5001
    np.testing.assert_array_equal(streamed(path)[1], frames)
    result = analyse_file(str(path), DEFAULT_SETS, 30.0)
    assert result.ok, result.error
    expected = summarise_sets(frames, DEFAULT_SETS, snippet_bounds(result.duration_s, 30.0),
                              FrameParams())
    for name in DEFAULT_SETS:
        np.testing.assert_array_equal(result.values[name].whole, expected[name].whole)
        np.testing.assert_array_equal(result.values[name].snippets, expected[name].snippets)


@pytest.mark.parametrize("sizes", [[1], [7, 1, 4000], [70000], [17640 * 3 + 5]])
def test_blocks_of_any_size_give_the_same_frames(sizes):
    y = _mix(3, SAMPLE_RATE)
    stream = FrameStream(MULTI_BLOCK)
    start, k = 0, 0
    while start < len(y):
        stream.add(y[start : start + sizes[k % len(sizes)]])
        start, k = start + sizes[k % len(sizes)], k + 1
    np.testing.assert_array_equal(stream.finish(), frame_features(y, params=MULTI_BLOCK))


# --- checks that used to need the whole signal ---------------------------------------------------


def test_empty_silent_and_late_peak_files_through_ingest(run, tmp_path, monkeypatch):
    """Counted per block: no samples, all below -120 dBFS, and one loud sample at the very end
    (it leaves the resampler only when the stream is flushed)."""
    in_process(monkeypatch)  # the checks are the analysis's; no worker pool to start for them
    root = tmp_path / "lib"
    root.mkdir()
    synth.write_audio(root / "empty.wav", np.zeros(0, np.float32))
    synth.write_audio(root / "silent.wav", np.full(5 * synth.SR, 5e-7, np.float32))
    late = np.zeros(5 * synth.SR, np.float32)
    late[-1] = 0.5
    synth.write_audio(root / "late.wav", late)
    db = tmp_path / "m.duckdb"
    run("ingest", root, "--db", db, "--workers", "1", "--snippet-seconds", "0")
    with duckdb.connect(str(db), read_only=True) as con:
        rows = dict(con.execute("SELECT regexp_extract(path, '[^/]*$'), "
                                "coalesce(error, status) FROM songs").fetchall())
    assert rows["empty.wav"] == "no audio samples"
    assert rows["silent.wav"].startswith("silent:")
    assert rows["late.wav"] == "ok"


def test_a_file_over_the_length_limit_is_an_error_naming_it(tmp_path, monkeypatch):
    path = synth.write_audio(tmp_path / "five.wav", _mix(5))
    monkeypatch.setattr(analyse, "FrameStream", partial(FrameStream, max_seconds=4.0))
    result = analyse_file(str(path), DEFAULT_SETS, 30.0)
    assert not result.ok
    assert result.error.startswith("longer than 4 s, the longest file musicdb analyses")
    with pytest.raises(SignalTooLong, match="longer than 12 h"):
        FrameStream().add(np.zeros(int(MAX_SECONDS * SAMPLE_RATE) + 1, np.float32))


# --- peak memory of a real analysis process -----------------------------------------------------


def absurd_flac(path: Path) -> Path:
    """A 5 s FLAC whose STREAMINFO claims 2^36 - 1 samples (18 days at 44.1 kHz)."""
    data = bytearray(synth.write_audio(path, _mix(5)).read_bytes())
    assert data[:4] == b"fLaC"
    data[21] |= 0x0F  # the 36-bit sample count: the low 4 bits of byte 13 of STREAMINFO...
    data[22:26] = b"\xff\xff\xff\xff"  # ...and bytes 14-17
    path.write_bytes(bytes(data))
    assert sf.info(path).frames == 2**36 - 1
    return path


def test_a_header_claiming_18_days_allocates_nothing_for_them(tmp_path):
    [claimed] = analysed_in_a_worker_process(absurd_flac(tmp_path / "absurd.flac"))
    assert not claimed["ok"]
    assert claimed["error"].startswith("truncated")
    # The old decoder reserved 24 h of signal (7.6 GB of address space) for such a header.
    assert claimed["peak_mb"] < claimed["base_mb"] + 50, claimed
    stream = FrameStream()
    stream.reserve(2**36 / 44100)  # what the header claims: room up to the limit, no more
    assert stream.out.shape[1] == n_frames(int(MAX_SECONDS * SAMPLE_RATE), FrameParams())


def test_peak_memory_of_an_hour_is_that_of_ten_minutes(tmp_path):
    """The decoded signal is 53 MB for 10 min and 318 MB for 60: neither may show.

    One worker analyses the 10 minutes, then the hour (one process start, not two): the hour
    may lift the peak the 10 minutes reached only by what it needs beyond them."""
    short, long = analysed_in_a_worker_process(write_long_wav(tmp_path / "10min.wav", 10),
                                               write_long_wav(tmp_path / "60min.wav", 60))
    assert short["ok"], short
    assert long["ok"], long
    assert long["duration_s"] == pytest.approx(3600)
    # What still grows is the frame matrix: 56 float32 a frame, 33 MB over these 50 minutes.
    assert long["peak_mb"] < short["peak_mb"] + 150, (short, long)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("MUSICDB_LONG_TESTS"),
                    reason="3-hour file: set MUSICDB_LONG_TESTS=1 (about 2 minutes)")
def test_peak_memory_of_three_hours(tmp_path):
    short, long = analysed_in_a_worker_process(write_long_wav(tmp_path / "10min.wav", 10),
                                               write_long_wav(tmp_path / "3h.wav", 180))
    assert long["ok"], long
    print(f"peak RSS: 10 min {short['peak_mb']:.0f} MB, 3 h {long['peak_mb']:.0f} MB")
    # The frame matrix grows by 40 MB an hour; the whole-song summaries' float64 copies of it
    # (summaries.moments) by about as much again, twice over.
    assert long["peak_mb"] < short["peak_mb"] + 400, (short, long)
