"""One file in, feature vectors out: decode -> frame matrix -> whole-song and snippet summaries.

Runs inside worker processes; returns plain arrays to the single writer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from librosa.util.exceptions import ParameterError

from musicdb.analysis.embedding import MUSICNN_PATCH_HOP, MusicnnStream, summarise_patches
from musicdb.analysis.features import (
    ROW,
    FrameParams,
    FrameStream,
    SignalTooLong,
    frame_slice,
    snippet_bounds,
)
from musicdb.analysis.summaries import FEATURE_SETS, mean_tempograms, tempogram_window
from musicdb.audio.decode import decode
from musicdb.errors import DecodeError

EXTRACTORS = FEATURE_SETS
DEFAULT_SETS = ("default", "seed55", "tonal")


def set_params(name: str, snippet_seconds: float, params: FrameParams = FrameParams()) -> dict:
    """Everything that identifies a version of an extracted set; any change is a new version.

    A set with its own code version (tonal) adds it; the others' parameters stay as they were.
    """
    own = EXTRACTORS[name].code_version if name in EXTRACTORS else None
    return (params.as_dict() | {"summary": name, "snippet_seconds": snippet_seconds}
            | ({} if own is None else {"set_code_version": own}))


@dataclass
class SetValues:
    whole: np.ndarray  # (n_features,)
    snippets: np.ndarray  # (n_snippets, n_features)
    bounds: list[tuple[float, float]]


@dataclass
class Analysis:
    path: str
    ok: bool
    error: str | None = None
    codec: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    duration_s: float | None = None
    values: dict[str, SetValues] = field(default_factory=dict)
    cpu_s: float = 0.0


def summarise_sets(frames: np.ndarray, sets: tuple[str, ...], bounds: list[tuple[float, float]],
                   params: FrameParams) -> dict[str, SetValues]:
    """Every requested set for the whole song and each snippet.

    A set whose columns lead another requested set's (seed55 is the first 55 of default) is
    cut from it rather than computed twice.
    """
    total = frames.shape[1]
    slices = [slice(None)] + [frame_slice(s, e, total, params) for s, e in bounds]
    # The song and its snippets share tempogram columns: one pass serves them all.
    tempograms = mean_tempograms(frames[ROW["onset"]], tempogram_window(params), slices)
    computed: dict[str, np.ndarray] = {}
    sets = tuple(name for name in sets if not EXTRACTORS[name].from_signal)
    for name in sets:
        fs = EXTRACTORS[name]
        if fs.prefix_of in sets:
            continue
        computed[name] = np.vstack([fs.summarise(frames[:, part], params=params, tempogram=tg)
                                    for part, tg in zip(slices, tempograms, strict=True)])
    values = {}
    for name in sets:
        fs = EXTRACTORS[name]
        rows = computed[name] if name in computed else computed[fs.prefix_of][:, : len(fs.names)]
        values[name] = SetValues(rows[0], rows[1:], bounds)
    return values


class Tee:
    """A decode sink handing every block to two sinks: one decode serves both."""

    def __init__(self, first, second) -> None:
        self.sinks = (first, second)

    def reserve(self, seconds: float) -> None:
        for sink in self.sinks:
            sink.reserve(seconds)

    def add(self, block: np.ndarray) -> None:
        for sink in self.sinks:
            sink.add(block)


def too_short(duration_s: float, params: FrameParams) -> str:
    """Less than one STFT window of audio has no spectrum to describe (a 1-sample file)."""
    need = params.n_fft / params.sample_rate
    return (f"too short to analyse: {duration_s * 1000:.1f} ms of audio, at least "
            f"{need * 1000:.0f} ms (one analysis window) are needed")


def analyse_file(path: str, sets: tuple[str, ...], snippet_seconds: float,
                 params: FrameParams = FrameParams()) -> Analysis:
    """Decode and summarise one file; a bad file becomes an Analysis with ok=False and a reason."""
    started = time.process_time()
    try:
        # Decoded blocks go straight into the frame features: the signal is never whole.
        stream = FrameStream(params)
        # musicnn's 16 kHz signal comes from the same decoded blocks (see Tee).
        embedding = (MusicnnStream(params.sample_rate, patch_hop=MUSICNN_PATCH_HOP)
                     if "musicnn" in sets else None)
        sink = stream if embedding is None else Tee(stream, embedding)
        decoded = decode(Path(path), sr=params.sample_rate, sink=sink)
        frames = stream.finish()
        if decoded.duration_s * params.sample_rate < params.n_fft:
            return Analysis(path, False, error=too_short(decoded.duration_s, params),
                            cpu_s=time.process_time() - started)
        bounds = snippet_bounds(decoded.duration_s, snippet_seconds)
        values = summarise_sets(frames, sets, bounds, params)
        if embedding is not None:
            rows = summarise_patches(embedding.finish(), bounds)
            values["musicnn"] = SetValues(rows[0], rows[1:], bounds)
    except DecodeError as exc:
        return Analysis(path, False, error=exc.reason, cpu_s=time.process_time() - started)
    except SignalTooLong as exc:
        return Analysis(path, False, error=str(exc), cpu_s=time.process_time() - started)
    except (ParameterError, ValueError, MemoryError, OSError) as exc:
        # Data-dependent failures of a strange file: record them, keep the run going.
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return Analysis(path, False, error=reason, cpu_s=time.process_time() - started)
    return Analysis(
        path, True, codec=decoded.codec, sample_rate=decoded.source_rate,
        channels=decoded.channels, duration_s=decoded.duration_s, values=values,
        cpu_s=time.process_time() - started,
    )
