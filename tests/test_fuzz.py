"""Fuzzing decode + analyse (issue 11, point 6) with hypothesis, and the strange sample data
every decoder meets sooner or later (point 2).

Properties, for random bytes under audio names, for damaged copies of real encodes and for
random short waveforms (0-5 s, 1-192 kHz, 1-8 channels, written by libsndfile in several
formats): decode() either returns finite samples or raises DecodeError; analyse_file() never
raises and returns either finite values or ok=False with a one-line reason; no example runs
longer than EXAMPLE_LIMIT_S.

    MUSICDB_FUZZ_EXAMPLES=5000 .venv/bin/pytest -q tests/test_fuzz.py   # a longer campaign
"""

from __future__ import annotations

import contextlib
import faulthandler
import math
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicdb.analysis.analyse import DEFAULT_SETS, Analysis, analyse_file
from musicdb.audio.decode import Decoded, decode
from musicdb.errors import DecodeError

EXAMPLE_LIMIT_S = 60.0  # generous: the slowest example in CI takes well under 2 s


def fuzz(examples: int) -> settings:
    """This many examples in CI (240 in all), MUSICDB_FUZZ_EXAMPLES each if it is set."""
    return settings(max_examples=int(os.environ.get("MUSICDB_FUZZ_EXAMPLES", examples)),
                    deadline=None, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SUFFIXES = [".mp3", ".ogg", ".flac", ".opus", ".wav", ".m4a"]
# First bytes that get random data past the format sniffing into the parsers proper.
MAGIC = [b"", b"OggS\0\x02", b"fLaC\0\0\0\x22", b"RIFF\xff\xff\xff\xffWAVEfmt ", b"ID3\x03\0\0",
         b"\xff\xfb\x90\x64", b"\0\0\0\x20ftypM4A ", b"FORM\0\0\x10\0AIFF"]
ANY_RATE = st.integers(1000, 192000)
# libFLAC takes a rate above 65,535 Hz only in steps of 10 Hz.
FLAC_RATE = st.integers(1000, 65535) | st.integers(6554, 19200).map(lambda r: r * 10)
# (format, subtype, the sample rates it takes, most channels)
WRITERS = [("WAV", "PCM_U8", ANY_RATE, 8), ("WAV", "PCM_16", ANY_RATE, 8),
           ("WAV", "PCM_24", ANY_RATE, 8), ("WAV", "PCM_32", ANY_RATE, 8),
           ("WAV", "FLOAT", ANY_RATE, 8), ("WAV", "DOUBLE", ANY_RATE, 8),
           ("AIFF", "PCM_16", ANY_RATE, 8), ("FLAC", "PCM_16", FLAC_RATE, 8),
           ("FLAC", "PCM_24", FLAC_RATE, 8), ("OGG", "VORBIS", ANY_RATE, 8),
           ("OGG", "OPUS", st.sampled_from([8000, 12000, 16000, 24000, 48000]), 8),
           ("MP3", "MPEG_LAYER_III",
            st.sampled_from([8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000]), 2)]
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")  # the only ones that can hold NaN, infinity or > 1.0
SUFFIX_OF = {"WAV": ".wav", "AIFF": ".aiff", "FLAC": ".flac", "OGG": ".ogg", "MP3": ".mp3"}
KINDS = ["noise", "sine", "silence", "dc", "square", "clicks", "loud", "drawn"]


class ExampleHung(BaseException):
    """Not an Exception: nothing under test may catch it and call it a bad file."""


@contextlib.contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """Fail an example that runs too long; kill the run if even that cannot interrupt it."""

    def hung(signum, frame):
        raise ExampleHung(f"an example ran longer than {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(2 * seconds, exit=True)  # stuck inside C code
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        faulthandler.cancel_dump_traceback_later()


def one_line(reason: str | None) -> bool:
    return bool(reason) and "\n" not in reason


def decoded_or_reason(path: Path) -> tuple[Decoded | None, str | None]:
    try:
        return decode(path), None
    except DecodeError as exc:
        return None, exc.reason


def check(path: Path, snippet_seconds: float = 2.0) -> Analysis | None:
    """The properties, for one file; its analysis, or None when decode() refused it."""
    with bounded(EXAMPLE_LIMIT_S):
        decoded, reason = decoded_or_reason(path)
        if decoded is None:  # analyse_file would only repeat it (one more ffprobe, ~0.2 s)
            assert one_line(reason), reason
            return None
        assert np.isfinite(decoded.y).all()
        assert math.isfinite(decoded.duration_s)
        assert decoded.duration_s >= 0
        assert min(decoded.sample_rate, decoded.source_rate, decoded.channels) > 0
        analysis = analyse_file(str(path), DEFAULT_SETS, snippet_seconds)
    if not analysis.ok:
        assert one_line(analysis.error), analysis.error
        return analysis
    assert math.isfinite(analysis.duration_s)
    assert set(analysis.values) == set(DEFAULT_SETS)
    for name, values in analysis.values.items():
        assert np.isfinite(values.whole).all(), name
        assert np.isfinite(values.snippets).all(), name
    return analysis


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="musicdb-fuzz-") as name:
        yield Path(name)


@pytest.fixture(scope="module")
def real_files(folder: Path) -> list[bytes]:
    """Small real encodes, one per format libsndfile writes, to be damaged at random."""
    rng = np.random.default_rng(5)
    y = (0.3 * np.sin(np.arange(44100) / 9) + 0.05 * rng.standard_normal(44100))
    stereo = np.stack([y, y[::-1]], axis=1).astype(np.float32)
    contents = []
    for fmt, subtype, _, _ in WRITERS:
        rate = 48000 if subtype == "OPUS" else 44100
        path = folder / f"real{SUFFIX_OF[fmt]}"
        sf.write(path, stereo, rate, format=fmt, subtype=subtype)
        contents.append(path.read_bytes())
    return contents


@fuzz(80)
@given(suffix=st.sampled_from(SUFFIXES), magic=st.sampled_from(MAGIC),
       data=st.binary(max_size=64 * 1024))
def test_random_bytes(folder, suffix, magic, data):
    path = folder / f"random{suffix}"
    path.write_bytes(magic + data)
    check(path)


@fuzz(80)
@given(which=st.integers(0, len(WRITERS) - 1), cut=st.floats(0, 1),
       flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
                      max_size=20),
       suffix=st.sampled_from([*SUFFIXES, None]))
def test_damaged_real_files(folder, real_files, which, cut, flips, suffix):
    """A real file with bytes flipped and its end cut off, under its own name or another."""
    data = bytearray(real_files[which])
    for where, xor in flips:
        data[int(where * len(data))] ^= xor
    del data[max(1, int(cut * len(data))):]
    path = folder / f"damaged{suffix or SUFFIX_OF[WRITERS[which][0]]}"
    path.write_bytes(bytes(data))
    check(path)


@st.composite
def waveforms(draw) -> tuple[np.ndarray, int, tuple]:
    writer = draw(st.sampled_from(WRITERS))
    _, subtype, rates, most_channels = writer
    rate = draw(rates)
    channels = draw(st.integers(1, most_channels))
    kind = draw(st.sampled_from(KINDS))
    if kind == "drawn":  # any values at all, a few thousand at most
        values = draw(st.lists(st.floats(width=32), max_size=4000))
        y = np.resize(np.array(values, np.float32), (len(values) // channels, channels))
    else:
        frames = int(draw(st.floats(0, 5)) * rate)
        y = signal_of(kind, frames, rate, channels, draw(st.integers(0, 2**32 - 1)))
    if subtype not in FLOAT_SUBTYPES:  # what integer and lossy encoders can be given
        y = np.clip(np.nan_to_num(y), -1, 1)
    return y, rate, writer


def signal_of(kind: str, frames: int, rate: int, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, np.newaxis] / rate
    freq = rng.uniform(20, rate / 2)
    y = {
        "noise": lambda: rng.uniform(-1, 1, (frames, channels)),
        "sine": lambda: np.sin(2 * np.pi * freq * t) * np.ones(channels),
        "silence": lambda: np.zeros((frames, channels)),
        "dc": lambda: np.full((frames, channels), rng.uniform(-1, 1)),
        "square": lambda: np.sign(np.sin(2 * np.pi * freq * t)) * np.ones(channels),
        "clicks": lambda: (rng.random((frames, channels)) > 0.999) * 1.0,
        "loud": lambda: rng.uniform(-1, 1, (frames, channels)) * 10.0 ** rng.uniform(0, 30),
    }[kind]()
    return y.astype(np.float32)


@fuzz(80)
@given(wave=waveforms(), snippet_seconds=st.sampled_from([1.0, 2.0, 30.0]))
def test_random_waveforms(folder, wave, snippet_seconds):
    y, rate, (fmt, subtype, _, _) = wave
    path = folder / f"wave{SUFFIX_OF[fmt]}"
    sf.write(path, y, rate, format=fmt, subtype=subtype)
    check(path, snippet_seconds)


# --- named cases: each strange input once, with what it must give ------------------------------

SR = 44100


def music(seconds: float, sr: int = SR, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(1)
    mono = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(len(t))
    return np.repeat(mono[:, np.newaxis], channels, axis=1).astype(np.float32)


def with_every(y: np.ndarray, value: float, step: int = 5000) -> np.ndarray:
    y = y.copy()
    y[::step] = value
    return y


TOO_SHORT = "too short to analyse"  # analyse_file's: decode() returns the samples
STRANGE = {  # name: (samples, rate, subtype, the start of the error or None when it is a song)
    "nan": (with_every(music(3), np.nan), SR, "FLOAT", "27 samples are NaN or infinite"),
    "inf": (with_every(music(3), np.inf), SR, "FLOAT", "27 samples are NaN or infinite"),
    "-inf": (with_every(music(3), -np.inf), SR, "DOUBLE", "27 samples are NaN or infinite"),
    "beyond float32": (with_every(music(3).astype(np.float64), 1e300), SR, "DOUBLE",
                       "27 samples are NaN or infinite"),
    "+250 dBFS": (music(3) * 1e12, SR, "FLOAT", "samples reach"),
    "+20 dBFS": (music(3) * 10, SR, "FLOAT", None),
    "1 sample": (np.array([[0.5]], np.float32), SR, "PCM_16", TOO_SHORT),
    "10 ms": (music(0.01), SR, "PCM_16", TOO_SHORT),
    "100 ms": (music(0.1), SR, "PCM_16", None),
    "silence": (np.zeros((3 * SR, 1), np.float32), SR, "PCM_16", "silent"),
    "DC offset only": (np.full((3 * SR, 1), 0.5, np.float32), SR, "PCM_16", None),
    "full-scale square": (np.sign(np.sin(np.arange(3 * SR) / 20))[:, np.newaxis], SR, "FLOAT",
                          None),
    **{f"{rate} Hz": (music(3, rate), rate, "PCM_16", None)
       for rate in (1000, 8000, 11025, 96000, 192000)},
    **{f"{n} channels": (music(3, channels=n), SR, "PCM_16", None) for n in (1, 2, 6, 8)},
    **{subtype: (music(3), SR, subtype, None)
       for subtype in ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")},
}


@pytest.mark.parametrize("name", STRANGE)
def test_strange_samples(name, tmp_path):
    y, rate, subtype, error = STRANGE[name]
    path = tmp_path / "strange.wav"
    sf.write(path, y, rate, subtype=subtype)
    # check() analyses the file with the same 2 s snippets once decode() has taken it.
    analysis = check(path) or analyse_file(str(path), DEFAULT_SETS, 2.0)
    if error is None:
        assert analysis.ok, analysis.error
        assert (analysis.channels, analysis.sample_rate) == (y.shape[1], rate)
    else:
        assert not analysis.ok
        assert analysis.error.startswith(error), analysis.error
        if error != TOO_SHORT:
            with pytest.raises(DecodeError, match=error):
                decode(path)


@pytest.mark.parametrize(("fmt", "subtype", "rate", "channels"), [
    *[("OGG", "VORBIS", SR, n) for n in (7, 8, 9, 12)],
    *[("OGG", "OPUS", 48000, n) for n in (7, 8, 9)],
    *[("FLAC", "PCM_16", SR, n) for n in (7, 8)],  # FLAC holds up to 8
])
def test_many_channels_in_ogg_and_flac(fmt, subtype, rate, channels, tmp_path):
    """Found by the fuzzer: 8 or more channels crashed PyAV (a segfault, the whole process)."""
    path = tmp_path / f"many{SUFFIX_OF[fmt]}"
    sf.write(path, music(2, rate, channels), rate, format=fmt, subtype=subtype)
    decoded = decode(path)
    assert decoded.channels == channels
    assert decoded.duration_s == pytest.approx(2.0, abs=0.05)
    check(path)
