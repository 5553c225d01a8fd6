"""Decoding: any supported file to mono float32 at 22,050 Hz, block by block. The only audio I/O."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

import numpy as np
import soundfile as sf
import soxr

from musicdb.audio.chatter import DecoderLog
from musicdb.audio.lengths import (
    MIN_DECODED_SHARE,
    check_length,
    check_ogg_end,
    mp3_states_length,
)
from musicdb.audio.mixdown import BLOCK, Frames, mix
from musicdb.errors import DecodeError

if TYPE_CHECKING:
    import av

TARGET_SR = 22050
# ffmpeg is killed past this deadline: a floor, plus a share of the declared length (it
# decodes at hundreds of times real time; this allows 2x). ffprobe only reads the headers.
FFMPEG_DEADLINE_S = 60.0
FFMPEG_DEADLINE_PER_AUDIO_S = 0.5
FFPROBE_DEADLINE_S = 60.0
SILENCE_PEAK = 1e-6  # -120 dBFS: nothing to analyse below this
LOUDEST_PEAK = 1e6  # +120 dBFS: float files may exceed full scale, not by this much
FFMPEG_ONLY = {".m4a", ".m4b", ".mp4", ".aac", ".alac", ".wma", ".webm"}
# Ogg and FLAC go to ffmpeg's decoders through PyAV first, recognised by their first bytes:
# measured on real files (benchmarks/extract.py corpus, decode + downmix + resample), Opus
# 2.2x, FLAC 1.9x and Vorbis 1.4x faster than through libsndfile. MP3 stays with libsndfile:
# ffmpeg estimates a VBR file's length from its first frame's bitrate when there is no Xing
# header (60 s declared for a 40 s file, seen), which would fail the truncation check.
PYAV_MAGIC = (b"OggS", b"fLaC")


@dataclass(frozen=True)
class Samples:
    """The decoded signal at the target rate: how long and how loud, and itself unless streamed."""

    count: int
    peak: float  # the largest finite |sample|
    y: np.ndarray | None  # mono float32; None when the blocks went to a sink instead
    nonfinite: int = 0  # NaN or infinite samples: whatever decoder produced them


@dataclass(frozen=True)
class Decoded:
    samples: Samples
    sample_rate: int  # of the result
    source_rate: int  # of the file
    channels: int
    codec: str
    duration_s: float

    @property
    def y(self) -> np.ndarray:
        """Mono float32 at sample_rate (decode() without a sink)."""
        if self.samples.y is None:
            raise ValueError("the signal went to a sink block by block; none was kept")
        return self.samples.y


def decode(path: Path, *, sr: int = TARGET_SR, sink: SampleSink | None = None) -> Decoded:
    """Decode with libsndfile, falling back to ffmpeg for what it cannot read (m4a/AAC, ...)."""
    path = Path(path)
    try:
        decoded = None
        head = _head(path, 4)
        if head == b"OggS":
            check_ogg_end(path)
        if head in PYAV_MAGIC:
            decoded = _decode_pyav(path, sr, sink)  # None when it is not Ogg audio after all
        decoded = decoded or _decode_soundfile(path, sr, sink)
    except _NotForSoundfile as exc:
        if shutil.which("ffmpeg") is None:
            hint = ("needs ffmpeg, which is not on PATH (install it, e.g. `apt-get install "
                    "ffmpeg`, and re-run with --retry-errors)")
            if path.suffix.lower() in FFMPEG_ONLY:
                raise DecodeError(path, f"{path.suffix.lower()[1:]} {hint}") from exc
            raise DecodeError(path, f"not a readable audio file ({exc}); ffmpeg might read it but "
                              "is not on PATH") from exc
        decoded = _decode_ffmpeg(path, sr, sink)
    if decoded.samples.count == 0:
        raise DecodeError(path, "no audio samples")
    if decoded.samples.nonfinite:
        raise _not_finite(path, decoded.samples.nonfinite)
    if decoded.samples.peak < SILENCE_PEAK:
        raise DecodeError(path, "silent: no sample above -120 dBFS, nothing to analyse")
    if not decoded.samples.peak <= LOUDEST_PEAK:  # also infinity
        raise DecodeError(path, f"samples reach {decoded.samples.peak:.3g}, over +120 dBFS: "
                          "not audio that can be analysed")
    return decoded


def _head(path: Path, size: int) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(size)
    except OSError as exc:
        raise DecodeError(path, f"cannot read it: {exc.strerror or exc}") from exc


def _deadline_s(declared_s: float) -> float:
    """Generous: the floor plus a share of the declared length (capped: headers may lie)."""
    return FFMPEG_DEADLINE_S + FFMPEG_DEADLINE_PER_AUDIO_S * min(max(declared_s, 0.0), 86400.0)


class _NotForSoundfile(Exception):
    """libsndfile does not recognise the format (as opposed to failing inside a known one)."""


class SampleSink(Protocol):
    """Takes the decoded signal block by block (mono float32 at the target rate)."""

    def reserve(self, seconds: float) -> None:
        """The length the header declares: a hint, which may be wrong or absurd."""

    def add(self, block: np.ndarray) -> None: ...


class _Signal:
    """Mono blocks in; resampled to sr and handed on block by block.

    To a sink when decode() was given one (the analysis: the whole signal never exists), else
    gathered and joined into one array (decode(path).y, for tests and tools). Counts samples
    and the peak on the way, so the empty and silence checks need no signal; sizes nothing
    from the declared length, which a header may set to anything.
    """

    def __init__(self, source_rate: int, sr: int, declared_s: float,
                 sink: SampleSink | None = None) -> None:
        self.stream = None if source_rate == sr else soxr.ResampleStream(
            source_rate, sr, 1, dtype="float32")
        self.sink, self.blocks = sink, []
        if sink is not None:
            sink.reserve(declared_s)
        self.read = 0  # input frames
        self.count, self.peak = 0, 0.0  # output samples, largest finite |sample|
        self.nonfinite = 0

    def add(self, mono: np.ndarray) -> None:
        self.read += len(mono)
        self._put(mono if self.stream is None else self.stream.resample_chunk(mono))

    def _put(self, block: np.ndarray) -> None:
        if block.size == 0:
            return
        self.count += block.size
        hi, lo = float(block.max()), float(block.min())  # NaN or inf if any sample is
        if not (np.isfinite(hi) and np.isfinite(lo)):
            finite = np.isfinite(block)
            self.nonfinite += int(block.size - np.count_nonzero(finite))
            block_finite = block[finite]
            hi = float(block_finite.max()) if block_finite.size else 0.0
            lo = float(block_finite.min()) if block_finite.size else 0.0
        self.peak = max(self.peak, hi, -lo)
        if self.sink is None:
            self.blocks.append(block)
        else:
            self.sink.add(block)

    def finish(self) -> Samples:
        if self.stream is not None:
            self._put(self.stream.resample_chunk(np.zeros(0, np.float32), last=True))
        y = None
        if self.sink is None:
            y = np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)
        return Samples(self.count, self.peak, y, self.nonfinite)


def _decode_soundfile(path: Path, sr: int, sink: SampleSink | None = None) -> Decoded:
    """libsndfile, its decoders' own messages kept off the terminal (musicdb.audio.chatter)."""
    with DecoderLog() as log:
        return _read_soundfile(path, sr, sink, log)


def _read_soundfile(path: Path, sr: int, sink: SampleSink | None, log: DecoderLog) -> Decoded:
    try:
        with log.capturing():
            f = sf.SoundFile(path)
    except sf.LibsndfileError as exc:
        if path.stat().st_size == 0:
            raise DecodeError(path, "empty file (0 bytes)") from exc
        raise _NotForSoundfile(str(exc).split(": ", 1)[-1]) from exc
    with f:
        signal = _Signal(f.samplerate, sr, f.frames / f.samplerate, sink)
        floats = f.subtype in ("FLOAT", "DOUBLE")  # only these can hold NaN or infinity
        nonfinite = 0
        try:
            # Not f.blocks(): past a cut file's real end it repeats the last block's samples
            # up to the declared length, which hides the truncation.
            while True:
                with log.capturing():
                    block = f.read(BLOCK, dtype="float32", always_2d=True)
                if not len(block):
                    break
                mono = mix(list(block.T))
                if floats:
                    nonfinite += int(np.count_nonzero(~np.isfinite(mono)))
                signal.add(mono)
        except (sf.LibsndfileError, RuntimeError) as exc:
            said = log.last_message()
            raise DecodeError(path, f"decoding stopped after {signal.read / f.samplerate:.1f} s: "
                              f"{exc}" + (f" (decoder: {said})" if said else "")) from exc
        if nonfinite:
            raise _not_finite(path, nonfinite)
        exact = f.format == "FLAC" or (f.format == "MP3" and mp3_states_length(path))
        read = signal.read
        check_length(path, read / f.samplerate, f.frames / f.samplerate, exact=exact)
        y = signal.finish()
        codec = f"{f.format}/{f.subtype}".lower()
        return Decoded(y, sr, f.samplerate, f.channels, codec, read / f.samplerate)


def _ffmpeg_reason(exc: av.FFmpegError) -> str:
    """FFmpeg's own words for a failure, without its errno and C function name."""
    return (getattr(exc, "strerror", None) or str(exc)).rstrip(".").lower() + " in the file"


def _not_finite(path: Path, count: int) -> DecodeError:
    return DecodeError(path, f"{count} samples are NaN or infinite: a damaged float file, "
                       "nothing reliable to analyse")


def _decode_pyav(path: Path, sr: int, sink: SampleSink | None = None) -> Decoded | None:
    """Ogg Vorbis/Opus or FLAC through PyAV (ffmpeg's libraries); None if it sees no audio."""
    import av  # here: 0.2 s to import, and an ingest's main process never decodes

    try:
        container = av.open(str(path))
    except av.FFmpegError:
        return None  # not for ffmpeg after all: libsndfile and its error messages take over
    with container:
        if not container.streams.audio or container.streams.audio[0].channels >= 8:
            # 8 or more channels: PyAV (18.1) counts a frame's planes by reading its channel
            # pointers up to a NULL that is not there, and crashes (found by tests/test_fuzz.py).
            # libsndfile reads Ogg and FLAC too.
            return None
        audio = container.streams.audio[0]
        audio.thread_type = "NONE"  # one core per worker: the pool provides the parallelism
        rate, channels = audio.rate, audio.channels
        if audio.duration is not None and audio.time_base is not None:
            declared = float(audio.duration * audio.time_base)
        else:
            declared = (container.duration or 0) / 1e6
        signal = _Signal(rate, sr, declared, sink)
        frames = Frames(signal, channels)
        try:
            for frame in container.decode(audio):
                frames.add(frame)
        except av.FFmpegError as exc:
            frames.flush()
            # A damaged last packet or two (seen in real game music) loses a fraction of a
            # second: keep the song when nearly all of it decoded, as for truncation.
            if not declared or signal.read / rate < MIN_DECODED_SHARE * declared:
                if container.format.name == "flac":  # its header counts the samples
                    raise DecodeError(path, "truncated or damaged: decoded "
                                      f"{signal.read / rate:.1f} s of the {declared:.1f} s its "
                                      "header declares") from exc
                raise DecodeError(path, f"decoding stopped after {signal.read / rate:.1f} s: "
                                  f"{_ffmpeg_reason(exc)}") from exc
        frames.flush()
        read = signal.read
        # FLAC's header counts its samples; an Ogg length is the last page's
        # (see lengths.check_ogg_end).
        check_length(path, read / rate, declared, exact=container.format.name == "flac")
        codec = f"{container.format.name}/{audio.codec_context.name}"
        return Decoded(signal.finish(), sr, rate, channels, codec, read / rate)


def _run_tool(path: Path, cmd: list[str], deadline_s: float,
              consume: Callable[[IO[bytes]], None]) -> tuple[int, str]:
    """Run ffprobe or ffmpeg, `consume` reading its output; killed past the deadline.

    stderr goes to a temporary file, so a chatty decoder cannot fill a pipe and stall. The
    process is always waited for (no zombie), also when `consume` fails. Returns the exit
    status and the end of stderr.
    """
    expired = threading.Event()
    try:
        with tempfile.TemporaryFile() as errors, subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors) as proc:

            def expire() -> None:
                expired.set()
                proc.kill()

            timer = threading.Timer(deadline_s, expire)
            timer.daemon = True
            timer.start()
            try:
                consume(proc.stdout)
                proc.wait()
            finally:
                timer.cancel()
                if proc.poll() is None:  # consume failed: stop the tool rather than wait on it
                    proc.kill()
            errors.seek(max(0, errors.seek(0, 2) - 4096))  # the last lines say why
            stderr = errors.read().decode(errors="replace")
    except OSError as exc:
        raise DecodeError(path, f"{cmd[0]} could not be run: {exc}") from exc
    if expired.is_set():
        raise DecodeError(path, f"{cmd[0]} took longer than {deadline_s:.0f} s on this file; "
                          "it may be stuck on damaged data (re-run with --retry-errors to try "
                          "again)")
    return proc.returncode, stderr


def _last_line(stderr: str, path: Path) -> str:
    return (stderr.strip().splitlines() or ["unknown error"])[-1].replace(f"{path}: ", "")


def _probe(path: Path) -> dict:
    cmd = ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=codec_name,sample_rate,channels,duration:format=duration", "-of", "json",
           str(path)]
    output = bytearray()
    code, stderr = _run_tool(path, cmd, FFPROBE_DEADLINE_S,
                             lambda out: output.extend(out.read(1 << 20)))
    if code != 0:
        raise DecodeError(path, "not audio that libsndfile or ffmpeg can read "
                          f"({_last_line(stderr, path)})")
    try:
        info = json.loads(output.decode(errors="replace") or "{}")
        stream = info["streams"][0]
        rate, channels = int(stream["sample_rate"]), int(stream.get("channels", 1))
        duration = float(stream.get("duration") or info.get("format", {}).get("duration") or 0)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise DecodeError(path, "no audio stream found (ffprobe)") from exc
    if rate <= 0 or channels <= 0:
        raise DecodeError(path, f"no playable audio stream (ffprobe: {rate} Hz, {channels} "
                          "channels)")
    return {"codec": stream.get("codec_name", "unknown"), "rate": rate, "channels": channels,
            "duration": duration if np.isfinite(duration) and duration > 0 else 0.0}


def _decode_ffmpeg(path: Path, sr: int, sink: SampleSink | None = None) -> Decoded:
    info = _probe(path)
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-map", "0:a:0", "-ac", "1",
           "-f", "f32le", "-"]
    signal = _Signal(info["rate"], sr, info["duration"], sink)

    nonfinite = 0

    def consume(out: IO[bytes]) -> None:
        nonlocal nonfinite
        while raw := out.read(BLOCK * 4):
            block = np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<f4")
            nonfinite += int(np.count_nonzero(~np.isfinite(block)))  # a float source's
            signal.add(block)

    code, stderr = _run_tool(path, cmd, _deadline_s(info["duration"]), consume)
    if code != 0:
        raise DecodeError(path, f"ffmpeg could not decode it ({_last_line(stderr, path)})")
    if nonfinite:
        raise _not_finite(path, nonfinite)
    decoded_s = signal.read / info["rate"]
    check_length(path, decoded_s, info["duration"], exact=False)
    return Decoded(signal.finish(), sr, info["rate"], info["channels"],
                   f"ffmpeg/{info['codec']}", decoded_s)
