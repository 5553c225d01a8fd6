"""Cut files and stuck decoders (issue 11): truncated Vorbis, Opus, MP3 and FLAC are errors,
complete ones and damaged last packets are kept; ffmpeg and ffprobe run under a deadline.

Sources are real encodes (ffmpeg's libvorbis/libopus/libmp3lame/flac, and libsndfile's own
writers) of a generated song-like signal, cut at 10, 50 and 95 % of their bytes.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
import soundfile as sf

import musicdb.audio.decode
from musicdb.audio.decode import decode
from musicdb.errors import DecodeError

SR = 44100
FULL_S = 20.0
HAS_FFMPEG = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None
needs_ffmpeg = pytest.mark.skipif(not HAS_FFMPEG, reason="ffmpeg/ffprobe are not on PATH")
FFMPEG_CODECS = {".ogg": "libvorbis", ".opus": "libopus", ".mp3": "libmp3lame", ".flac": "flac"}
SOUNDFILE_FORMATS = {".ogg": ("OGG", "VORBIS"), ".opus": ("OGG", "OPUS"),
                     ".mp3": ("MP3", "MPEG_LAYER_III"), ".flac": ("FLAC", "PCM_16")}


def song(seconds: float, *, sr: int = SR) -> np.ndarray:
    """Stereo, song-like: a moving chord, a beat of noise bursts, a little hiss."""
    rng = np.random.default_rng(7)
    t = np.arange(int(seconds * sr)) / sr
    chord = sum(np.sin(2 * np.pi * f * (1 + 0.01 * np.sin(t / 3)) * t) for f in (220, 277, 330))
    beat = rng.standard_normal(len(t)) * np.exp(-((t * 2) % 1) * 30)
    mono = 0.15 * chord + 0.2 * beat + 0.02 * rng.standard_normal(len(t))
    return np.stack([mono, np.roll(mono, 300)], axis=1).astype(np.float32)


def encode_ffmpeg(wav: Path, target: Path, *extra: str) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", str(wav),
                    "-c:a", FFMPEG_CODECS[target.suffix], *extra, str(target)],
                   check=True, timeout=120)
    return target


def write_soundfile(target: Path, seconds: float) -> Path:
    fmt, subtype = SOUNDFILE_FORMATS[target.suffix]
    sr = 48000 if target.suffix == ".opus" else SR  # Opus has no 44.1 kHz
    y = song(seconds, sr=sr)
    with sf.SoundFile(target, "w", samplerate=sr, channels=y.shape[1], format=fmt,
                      subtype=subtype) as f:
        for start in range(0, len(y), 10 * sr):  # one big Vorbis write crashes soundfile 0.14
            f.write(y[start : start + 10 * sr])
    return target


def cut(source: Path, percent: int, folder: Path) -> Path:
    data = source.read_bytes()
    target = folder / f"{source.stem}_{percent}pc{source.suffix}"
    target.write_bytes(data[: len(data) * percent // 100])
    return target


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[tuple[str, str], Path]:
    """(writer, suffix) -> a complete 20 s file; ffmpeg's only when it is installed."""
    folder = tmp_path_factory.mktemp("sources")
    files = {}
    for suffix in SOUNDFILE_FORMATS:
        files["soundfile", suffix] = write_soundfile(folder / f"sndfile{suffix}", FULL_S)
    if HAS_FFMPEG:
        wav = folder / "song.wav"
        sf.write(wav, song(FULL_S), SR)
        for suffix in FFMPEG_CODECS:
            files["ffmpeg", suffix] = encode_ffmpeg(wav, folder / f"ffmpeg{suffix}")
    return files


def source(sources: dict, writer: str, suffix: str) -> Path:
    if (writer, suffix) not in sources:
        pytest.skip("ffmpeg is not on PATH")
    return sources[writer, suffix]


WRITERS_AND_FORMATS = [(w, s) for w in ("ffmpeg", "soundfile") for s in SOUNDFILE_FORMATS]


@pytest.mark.parametrize(("writer", "suffix"), WRITERS_AND_FORMATS)
def test_complete_files_decode_whole(sources, writer, suffix):
    decoded = decode(source(sources, writer, suffix))
    assert decoded.duration_s == pytest.approx(FULL_S, abs=0.1)


@pytest.mark.parametrize("percent", [10, 50, 95])
@pytest.mark.parametrize(("writer", "suffix"), WRITERS_AND_FORMATS)
def test_cut_files_are_truncated(sources, writer, suffix, percent, tmp_path):
    damaged = cut(source(sources, writer, suffix), percent, tmp_path)
    with pytest.raises(DecodeError) as caught:
        decode(damaged)
    assert caught.value.reason.startswith("truncated"), caught.value.reason
    assert "\n" not in caught.value.reason


@needs_ffmpeg
def test_mp3_without_a_length_header_cannot_be_seen_as_cut(tmp_path):
    """The documented limit: no Xing/Info/VBRI frame count, so the cut file looks whole."""
    wav = tmp_path / "song.wav"
    sf.write(wav, song(FULL_S), SR)
    bare = encode_ffmpeg(wav, tmp_path / "bare.mp3", "-write_xing", "0")
    assert decode(bare).duration_s == pytest.approx(FULL_S, abs=0.1)
    half = decode(cut(bare, 50, tmp_path))
    assert half.duration_s == pytest.approx(FULL_S / 2, abs=0.5)  # kept: a shorter song


@pytest.mark.parametrize("suffix", [".ogg", ".opus"])
def test_a_damaged_last_packet_keeps_the_song(sources, suffix, tmp_path):
    """Its end-of-stream page is there, only its data is garbage: nearly all of it decodes."""
    data = bytearray(source(sources, "soundfile", suffix).read_bytes())
    last = data.rfind(b"OggS")
    body = last + 27 + data[last + 26]  # after the page header and its segment table
    data[body:] = bytes(b ^ 0x5A for b in data[body:])
    damaged = tmp_path / f"damaged{suffix}"
    damaged.write_bytes(bytes(data))
    assert decode(damaged).duration_s == pytest.approx(FULL_S, abs=0.1 * FULL_S)


def test_truncated_files_become_error_rows_beside_good_ones(run, db, sources, tmp_path, calls):
    """Through the real CLI: each cut file is one error row saying so; the whole one is kept."""
    library = tmp_path / "library"
    library.mkdir()
    whole = shutil.copy(source(sources, "soundfile", ".opus"), library / "whole.opus")
    for suffix in SOUNDFILE_FORMATS:
        cut(source(sources, "soundfile", suffix), 50, library)
    run("ingest", library, "--db", db, "--workers", "1")
    with duckdb.connect(str(db), read_only=True) as con:
        rows = dict((Path(p).name, (s, e)) for p, s, e in
                    con.execute("SELECT path, status, error FROM songs").fetchall())
    assert rows.pop(Path(whole).name) == ("ok", None)
    assert sorted(rows) == sorted(f"sndfile_50pc{s}" for s in SOUNDFILE_FORMATS)
    for status, error in rows.values():
        assert status == "error"
        assert error.startswith("truncated"), error


# --- ffmpeg and ffprobe under a deadline ------------------------------------------------------

PROBE_JSON = ('{"streams": [{"codec_name": "aac", "sample_rate": "22050", "channels": 1, '
              '"duration": "2.0"}], "format": {"duration": "2.0"}}')


def fake_tools(folder: Path, *, ffprobe: str, ffmpeg: str) -> Path:
    """A PATH folder whose ffprobe and ffmpeg are the given scripts (Python unless they start
    with #!)."""
    folder.mkdir()
    for name, body in (("ffprobe", ffprobe), ("ffmpeg", ffmpeg)):
        script = folder / name
        if not body.startswith("#!"):
            body = f"#!{sys.executable}\nimport sys\n{body}"
        script.write_text(f"{body}\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return folder


def stuck(pids: Path) -> str:
    """A shell script (it starts in milliseconds) that notes its pid and then hangs."""
    return f"#!/bin/sh\necho $$ >> '{pids}'\nexec sleep 120"


def all_gone(pids: Path) -> bool:
    """Every process noted is neither running nor a zombie waiting to be reaped."""
    noted = [int(pid) for pid in pids.read_text().split()] if pids.exists() else []
    return all(not Path(f"/proc/{pid}").exists() for pid in noted)


@pytest.fixture
def not_for_libsndfile(tmp_path) -> Path:
    """A file only ffmpeg could read, so decode() hands it to the fakes."""
    path = tmp_path / "song.m4a"
    path.write_bytes(b"\0\0\0\x20ftypM4A " + np.random.default_rng(1).bytes(4000))
    return path


@pytest.mark.parametrize("tool", ["ffmpeg", "ffprobe"])
def test_a_stuck_tool_is_killed_at_its_deadline(monkeypatch, tmp_path, not_for_libsndfile, tool):
    pids = tmp_path / "pids"
    scripts = {"ffprobe": f"print({PROBE_JSON!r})",
               "ffmpeg": "sys.exit('ffmpeg must not run when ffprobe failed')"}
    scripts[tool] = stuck(pids)
    tools = fake_tools(tmp_path / "bin", **scripts)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(musicdb.audio.decode, "FFMPEG_DEADLINE_S", 1.0)
    monkeypatch.setattr(musicdb.audio.decode, "FFMPEG_DEADLINE_PER_AUDIO_S", 0.0)
    monkeypatch.setattr(musicdb.audio.decode, "FFPROBE_DEADLINE_S", 1.0)
    with pytest.raises(DecodeError) as caught:
        decode(not_for_libsndfile)
    assert caught.value.reason.startswith(f"{tool} took longer than 1 s on this file; ")
    assert all_gone(pids)


def test_a_chatty_ffmpeg_cannot_block_on_its_stderr(monkeypatch, tmp_path, not_for_libsndfile):
    """4 MB of warnings before any audio: far more than a pipe holds (64 KB)."""
    tone = "import math, struct\n" \
           "samples = [0.5 * math.sin(i / 10) for i in range(44100)]\n" \
           "sys.stderr.write('a warning about this packet\\n' * 150000)\n" \
           "sys.stderr.flush()\n" \
           "sys.stdout.buffer.write(struct.pack(f'<{len(samples)}f', *samples))"
    tools = fake_tools(tmp_path / "bin", ffprobe=f"print({PROBE_JSON!r})", ffmpeg=tone)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    decoded = decode(not_for_libsndfile)
    assert decoded.codec == "ffmpeg/aac"
    assert decoded.duration_s == pytest.approx(2.0)


def test_nan_from_ffmpeg_is_an_error(monkeypatch, tmp_path, not_for_libsndfile):
    """A float source ffmpeg passes on as it is: NaN and infinity must not reach the analysis."""
    bad = "import struct\n" \
          "samples = [0.5, float('nan'), -0.5, float('inf')] * 11025\n" \
          "sys.stdout.buffer.write(struct.pack(f'<{len(samples)}f', *samples))"
    tools = fake_tools(tmp_path / "bin", ffprobe=f"print({PROBE_JSON!r})", ffmpeg=bad)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(DecodeError, match=": 22050 samples are NaN or infinite: "):
        decode(not_for_libsndfile)


def test_a_failing_ffmpeg_says_why_in_one_line(monkeypatch, tmp_path, not_for_libsndfile):
    fails = "sys.stderr.write('noise\\n' * 5000 + 'Invalid data found when processing input\\n')" \
            "\nsys.exit(1)"
    tools = fake_tools(tmp_path / "bin", ffprobe=f"print({PROBE_JSON!r})", ffmpeg=fails)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(DecodeError) as caught:
        decode(not_for_libsndfile)
    assert caught.value.reason == (
        "ffmpeg could not decode it (Invalid data found when processing input)")


def test_the_deadline_grows_with_the_declared_length():
    assert musicdb.audio.decode._deadline_s(0) == musicdb.audio.decode.FFMPEG_DEADLINE_S
    three_hours = musicdb.audio.decode._deadline_s(3 * 3600)
    assert three_hours > 3 * 3600 * 0.25 + musicdb.audio.decode.FFMPEG_DEADLINE_S
    decode_module = musicdb.audio.decode
    assert decode_module._deadline_s(1e12) == decode_module._deadline_s(86400)  # headers lie


def test_a_stuck_ffmpeg_is_an_error_row_and_the_run_goes_on(run, db, monkeypatch, tmp_path,
                                                             not_for_libsndfile, calls):
    """The real CLI, analysis in-process (the `calls` fixture) so the short deadline and the
    fake tools apply."""
    library = not_for_libsndfile.parent / "library"
    library.mkdir()
    not_for_libsndfile.rename(library / "stuck.m4a")
    sf.write(library / "good.flac", song(3.0), SR)
    tools = fake_tools(tmp_path / "bin", ffprobe=f"print({PROBE_JSON!r})",
                       ffmpeg=stuck(tmp_path / "pids"))
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(musicdb.audio.decode, "FFMPEG_DEADLINE_S", 1.0)
    monkeypatch.setattr(musicdb.audio.decode, "FFMPEG_DEADLINE_PER_AUDIO_S", 0.0)
    run("ingest", library, "--db", db, "--workers", "1")
    with duckdb.connect(str(db), read_only=True) as con:
        rows = dict((Path(p).name, (s, e)) for p, s, e in
                    con.execute("SELECT path, status, error FROM songs").fetchall())
    assert sorted(calls) == ["good.flac", "stuck.m4a"]
    assert rows["good.flac"] == ("ok", None)
    status, error = rows["stuck.m4a"]
    assert status == "error"
    assert error.startswith("ffmpeg took longer than 1 s on this file; "), error
    assert all_gone(tmp_path / "pids")


def test_nonfinite_samples_are_counted_whichever_decoder_made_them():
    """The PyAV path has no per-decoder check: the gathering of samples counts them for all."""
    from musicdb.audio.decode import _Signal

    signal = _Signal(22050, 22050, 1.0)
    signal.add(np.array([0.1, np.nan, -0.5, np.inf], np.float32))
    signal.add(np.array([0.2, -np.inf], np.float32))
    samples = signal.finish()
    assert (samples.count, samples.nonfinite, samples.peak) == (6, 3, 0.5)
