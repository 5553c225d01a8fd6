"""Channels to mono float32: decoded frames in any sample type, mixed down block by block."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    import av  # decode.py imports it only when it decodes with it

BLOCK = 1 << 16  # input frames per read and per mix-down: memory stays bounded on long files


class MonoSink(Protocol):
    def add(self, mono: np.ndarray) -> None: ...


def mix(channels: list[np.ndarray]) -> np.ndarray:
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
SAMPLE_TYPES = {"flt": np.float32, "dbl": np.float64, "s16": np.int16, "s32": np.int32,
                 "s64": np.int64, "u8": np.uint8}


class Frames:
    """Decoded PyAV frames, kept as raw channel buffers and mixed down BLOCK samples at a time.

    Per frame only np.frombuffer per plane: PyAV's to_ndarray stacks the planes with np.vstack
    (~6 us a frame of ~1,000 samples: a fifth of the cost of decoding Vorbis).
    """

    def __init__(self, signal: MonoSink, channels: int) -> None:
        self.signal, self.channels = signal, channels
        self.planes: list[list[np.ndarray]] = []  # per frame: one buffer per plane
        self.planar, self.waiting = True, 0

    def add(self, frame: av.AudioFrame) -> None:
        self.planar = frame.format.is_planar
        dtype = SAMPLE_TYPES.get(frame.format.name.removesuffix("p"))
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
            mono = mix([np.concatenate(channel) for channel in zip(*self.planes, strict=True)])
        else:
            joined = np.concatenate([frame[0] for frame in self.planes])
            mono = mix(list(joined.reshape(-1, self.channels).T))
        self.signal.add(mono)
        self.planes, self.waiting = [], 0
