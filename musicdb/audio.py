"""Decoding: any supported file to mono float32 at 22,050 Hz, block by block. The only audio I/O."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import av
import numpy as np
import soundfile as sf
import soxr

from musicdb.errors import DecodeError

TARGET_SR = 22050
BLOCK = 1 << 16  # input frames per read: memory stays bounded on long files
# A file that decodes to less than this share of the length its header declares is truncated.
MIN_DECODED_SHARE = 0.9
SILENCE_PEAK = 1e-6  # -120 dBFS: nothing to analyse below this
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
    peak: float  # the largest |sample|
    y: np.ndarray | None  # mono float32; None when the blocks went to a sink instead


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
        if _head(path, 4) in PYAV_MAGIC:
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
    if decoded.samples.peak < SILENCE_PEAK:
        raise DecodeError(path, "silent: no sample above -120 dBFS, nothing to analyse")
    return decoded


def _head(path: Path, size: int) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(size)
    except OSError as exc:
        raise DecodeError(path, f"cannot read it: {exc.strerror or exc}") from exc


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
        self.count, self.peak = 0, 0.0  # output samples, largest |sample|

    def add(self, mono: np.ndarray) -> None:
        self.read += len(mono)
        self._put(mono if self.stream is None else self.stream.resample_chunk(mono))

    def _put(self, block: np.ndarray) -> None:
        if block.size == 0:
            return
        self.count += block.size
        # fmax/fmin skip NaN samples (an all-NaN block gives NaN, which max() then skips).
        self.peak = max(self.peak, float(np.fmax.reduce(block)), -float(np.fmin.reduce(block)))
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
        return Samples(self.count, self.peak, y)


def _decode_soundfile(path: Path, sr: int, sink: SampleSink | None = None) -> Decoded:
    try:
        f = sf.SoundFile(path)
    except sf.LibsndfileError as exc:
        if path.stat().st_size == 0:
            raise DecodeError(path, "empty file (0 bytes)") from exc
        raise _NotForSoundfile(str(exc).split(": ", 1)[-1]) from exc
    with f:
        signal = _Signal(f.samplerate, sr, f.frames / f.samplerate, sink)
        try:
            for block in f.blocks(blocksize=BLOCK, dtype="float32", always_2d=True):
                signal.add(_mix(list(block.T)))
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise DecodeError(path, f"decoding stopped after {signal.read / f.samplerate:.1f} s: "
                              f"{exc}") from exc
        declared, read = f.frames, signal.read
        if declared > 0 and read < MIN_DECODED_SHARE * declared:
            raise DecodeError(
                path, f"truncated: decoded {read / f.samplerate:.1f} s of the "
                f"{declared / f.samplerate:.1f} s its header declares"
            )
        y = signal.finish()
        codec = f"{f.format}/{f.subtype}".lower()
        return Decoded(y, sr, f.samplerate, f.channels, codec, read / f.samplerate)


def _mix(channels: list[np.ndarray]) -> np.ndarray:
    """Same-length channels of one sample type, as float32 mono in [-1, 1].

    Summed channel by channel: a mean over an interleaved axis, with the int-to-float
    conversion inside it, costs as much as decoding FLAC does.
    """
    kind = channels[0].dtype
    mono = channels[0].astype(np.float32)
    for channel in channels[1:]:
        np.add(mono, channel, out=mono, casting="unsafe")
    scale = 1.0 / len(channels)
    if kind == np.uint8:  # unsigned 8-bit: silence is 128
        mono -= np.float32(128 * len(channels))
        scale /= 128.0
    elif kind.kind == "i":  # full scale -> 1.0, as libsndfile converts
        scale /= float(np.iinfo(kind).max) + 1.0
    if scale != 1.0:
        mono *= np.float32(scale)
    return mono


# ffmpeg's sample formats by name, without the planar "p" suffix.
_SAMPLE_TYPES = {"flt": np.float32, "dbl": np.float64, "s16": np.int16, "s32": np.int32,
                 "s64": np.int64, "u8": np.uint8}


class _Frames:
    """Decoded PyAV frames, kept as raw channel buffers and mixed down BLOCK samples at a time.

    Per frame only np.frombuffer per plane: PyAV's to_ndarray stacks the planes with np.vstack
    (~6 us a frame of ~1,000 samples: a fifth of the cost of decoding Vorbis).
    """

    def __init__(self, signal: _Signal, channels: int) -> None:
        self.signal, self.channels = signal, channels
        self.planes: list[list[np.ndarray]] = []  # per frame: one buffer per plane
        self.planar, self.waiting = True, 0

    def add(self, frame: av.AudioFrame) -> None:
        self.planar = frame.format.is_planar
        dtype = _SAMPLE_TYPES.get(frame.format.name.removesuffix("p"))
        if dtype is None:  # a format not listed: PyAV's own (slower) conversion
            self.planes.append(list(frame.to_ndarray()))
        else:
            count = frame.samples if self.planar else frame.samples * self.channels
            self.planes.append([np.frombuffer(plane, dtype, count) for plane in frame.planes])
        self.waiting += frame.samples
        if self.waiting >= BLOCK:
            self.flush()

    def flush(self) -> None:
        if not self.planes:
            return
        if self.planar:
            mono = _mix([np.concatenate(channel) for channel in zip(*self.planes, strict=True)])
        else:
            joined = np.concatenate([frame[0] for frame in self.planes])
            mono = _mix(list(joined.reshape(-1, self.channels).T))
        self.signal.add(mono)
        self.planes, self.waiting = [], 0


def _decode_pyav(path: Path, sr: int, sink: SampleSink | None = None) -> Decoded | None:
    """Ogg Vorbis/Opus or FLAC through PyAV (ffmpeg's libraries); None if it sees no audio."""
    try:
        container = av.open(str(path))
    except av.FFmpegError:
        return None  # not for ffmpeg after all: libsndfile and its error messages take over
    with container:
        if not container.streams.audio:
            return None
        audio = container.streams.audio[0]
        audio.thread_type = "NONE"  # one core per worker: the pool provides the parallelism
        rate, channels = audio.rate, audio.channels
        if audio.duration is not None and audio.time_base is not None:
            declared = float(audio.duration * audio.time_base)
        else:
            declared = (container.duration or 0) / 1e6
        signal = _Signal(rate, sr, declared, sink)
        frames = _Frames(signal, channels)
        try:
            for frame in container.decode(audio):
                frames.add(frame)
        except av.FFmpegError as exc:
            frames.flush()
            # A damaged last packet or two (seen in real game music) loses a fraction of a
            # second: keep the song when nearly all of it decoded, as for truncation.
            if not declared or signal.read / rate < MIN_DECODED_SHARE * declared:
                raise DecodeError(path, f"decoding stopped after {signal.read / rate:.1f} s: "
                                  f"{exc}") from exc
        frames.flush()
        read = signal.read
        if declared > 0 and read / rate < MIN_DECODED_SHARE * declared:
            raise DecodeError(path, f"truncated: decoded {read / rate:.1f} s of the "
                              f"{declared:.1f} s its header declares")
        codec = f"{container.format.name}/{audio.codec_context.name}"
        return Decoded(signal.finish(), sr, rate, channels, codec, read / rate)


def _probe(path: Path) -> dict:
    try:
        proc = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
             "stream=codec_name,sample_rate,channels,duration:format=duration", "-of", "json",
             str(path)], capture_output=True, text=True, timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise DecodeError(path, f"ffprobe (ffmpeg) failed: {exc}") from exc
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["unknown error"])[-1].replace(f"{path}: ", "")
        raise DecodeError(path, f"not audio that libsndfile or ffmpeg can read ({why})")
    info = json.loads(proc.stdout or "{}")
    if not info.get("streams"):
        raise DecodeError(path, "no audio stream found (ffprobe)")
    stream = info["streams"][0]
    duration = stream.get("duration") or info.get("format", {}).get("duration")
    return {"codec": stream.get("codec_name", "unknown"), "rate": int(stream["sample_rate"]),
            "channels": int(stream.get("channels", 1)),
            "duration": float(duration) if duration else 0.0}


def _decode_ffmpeg(path: Path, sr: int, sink: SampleSink | None = None) -> Decoded:
    info = _probe(path)
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-map", "0:a:0", "-ac", "1",
           "-f", "f32le", "-"]
    signal = _Signal(info["rate"], sr, info["duration"], sink)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        while raw := proc.stdout.read(BLOCK * 4):
            signal.add(np.frombuffer(raw[: len(raw) // 4 * 4], dtype="<f4"))
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        why = (stderr.strip().splitlines() or ["unknown error"])[-1]
        raise DecodeError(path, f"ffmpeg could not decode it ({why})")
    decoded_s = signal.read / info["rate"]
    if info["duration"] > 0 and decoded_s < MIN_DECODED_SHARE * info["duration"]:
        raise DecodeError(path, f"truncated: decoded {decoded_s:.1f} s of the "
                          f"{info['duration']:.1f} s its header declares")
    return Decoded(signal.finish(), sr, info["rate"], info["channels"],
                   f"ffmpeg/{info['codec']}", decoded_s)
