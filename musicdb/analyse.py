"""One file in, feature vectors out: decode -> frame matrix -> whole-song and snippet summaries.

Runs inside worker processes; returns plain arrays to the single writer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from librosa.util.exceptions import ParameterError

from musicdb.audio import decode
from musicdb.errors import DecodeError
from musicdb.features import FrameParams, frame_features, frame_slice, snippet_bounds
from musicdb.summaries import FEATURE_SETS

EXTRACTORS = FEATURE_SETS
DEFAULT_SETS = ("default", "seed55")


def set_params(name: str, snippet_seconds: float, params: FrameParams = FrameParams()) -> dict:
    """Everything that identifies a version of an extracted set; any change is a new version."""
    return params.as_dict() | {"summary": name, "snippet_seconds": snippet_seconds}


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


def analyse_file(path: str, sets: tuple[str, ...], snippet_seconds: float,
                 params: FrameParams = FrameParams()) -> Analysis:
    """Decode and summarise one file; a bad file becomes an Analysis with ok=False and a reason."""
    started = time.process_time()
    try:
        decoded = decode(Path(path), sr=params.sample_rate)
        frames = frame_features(decoded.y, params=params)
        values = {}
        total = frames.shape[1]
        bounds = snippet_bounds(decoded.duration_s, snippet_seconds)
        for name in sets:
            summarise = EXTRACTORS[name].summarise
            whole = summarise(frames, params=params)
            snippets = [summarise(frames[:, frame_slice(s, e, total, params)], params=params)
                        for s, e in bounds]
            values[name] = SetValues(
                whole,
                np.vstack(snippets) if snippets else np.zeros((0, whole.size), np.float32),
                bounds,
            )
    except DecodeError as exc:
        return Analysis(path, False, error=exc.reason, cpu_s=time.process_time() - started)
    except (ParameterError, ValueError, MemoryError, OSError) as exc:
        # Data-dependent failures of a strange file: record them, keep the run going.
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return Analysis(path, False, error=reason, cpu_s=time.process_time() - started)
    return Analysis(
        path, True, codec=decoded.codec, sample_rate=decoded.source_rate,
        channels=decoded.channels, duration_s=decoded.duration_s, values=values,
        cpu_s=time.process_time() - started,
    )
