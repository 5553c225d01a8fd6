"""Analyse a file the way a stored feature-set version was made, or say why this musicdb cannot.

`similar --songs FILE` and `predict FILE` compare a file analysed now with values stored by an
earlier ingest: both go through analyse_like, so a set made by other feature code or with
parameters this musicdb does not know is refused instead of giving wrong numbers.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import librosa
import numpy as np

from musicdb.analysis.analyse import EXTRACTORS, SetValues, analyse_file, set_params
from musicdb.analysis.features import FEATURE_CODE_VERSION, FrameParams
from musicdb.errors import MusicdbError

# The FrameParams fields a stored set's params record (block_frames changes memory, not values).
_FRAME_KEYS = tuple(f.name for f in dataclasses.fields(FrameParams) if f.name != "block_frames")
_REINGEST = "re-ingest the library with this musicdb to make a version it can match"


def library_versions() -> dict[str, str]:
    """The versions of the libraries extraction runs on, as feature_sets records them."""
    return {"librosa_version": librosa.__version__, "numpy_version": np.__version__}


def reproducible_params(set_name: str, kind: str, params: dict, *,
                        error: type[MusicdbError] = MusicdbError) -> FrameParams:
    """The FrameParams that reproduce a stored set's values exactly, or `error` saying why not.

    params is the set's feature_sets.params, parsed. Only today's feature code is here, so a
    set stamped with another code_version cannot be reproduced, nor one with a parameter this
    musicdb does not have (a newer release's) or one whose values would differ.
    """
    summary = params.get("summary")
    if kind != "extracted" or summary not in EXTRACTORS:
        raise error(f"feature set {set_name!r} was imported, not extracted: musicdb cannot "
                    "analyse a file the way its values were made")
    code = params.get("code_version", 1)
    if code != FEATURE_CODE_VERSION:
        raise error(f"feature set {set_name!r} was extracted by feature code version {code}, "
                    f"this musicdb computes version {FEATURE_CODE_VERSION}: {_REINGEST}")
    try:
        kwargs = {k: params[k] for k in _FRAME_KEYS if k in params}
        if "band_edges" in kwargs:  # JSON gave a list; FrameParams is hashable, with a tuple
            kwargs["band_edges"] = tuple(kwargs["band_edges"])
        frame = FrameParams(**kwargs)
    except (TypeError, ValueError, IndexError) as exc:
        raise error(f"feature set {set_name!r} has parameters this musicdb cannot use "
                    f"({exc}): {_REINGEST}") from exc
    rebuilt = set_params(summary, params.get("snippet_seconds", 0.0), frame)
    if rebuilt != params:
        keys = sorted(k for k in rebuilt.keys() | params.keys()
                      if rebuilt.get(k) != params.get(k))
        raise error(f"feature set {set_name!r} has parameters this musicdb cannot reproduce "
                    f"({', '.join(keys)}): {_REINGEST}")
    return frame


def analyse_like(path: Path, set_name: str, kind: str, params: dict, *, snippets: bool = False,
                 error: type[MusicdbError] = MusicdbError) -> SetValues:
    """A file's values for a stored set version, computed as that version's were.

    With `snippets`, also its snippets at the set's own snippet length. Failures (a set that
    cannot be reproduced, a file that cannot be analysed) are `error`, one line.
    """
    frame = reproducible_params(set_name, kind, params, error=error)
    seconds = params["snippet_seconds"] if snippets else 0.0
    result = analyse_file(str(path), (params["summary"],), seconds, frame)
    if not result.ok:
        raise error(f"cannot analyse {path}: {result.error}")
    return result.values[params["summary"]]
