"""Expected failures. The CLI prints these as one line; anything else is a bug and tracebacks."""

from pathlib import Path


class MusicdbError(Exception):
    """Base class for errors a user can act on."""


class DecodeError(MusicdbError):
    """An audio file could not be read or analysed."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class MigrationError(MusicdbError):
    """The schema cannot be brought up to date."""


class StoreError(MusicdbError):
    """The database refused an operation or does not exist."""


class ImportTableError(MusicdbError):
    """A table of precomputed features cannot be imported."""


class WorkerError(MusicdbError):
    """The workers that analyse the files cannot be reached or set up (a Dask cluster)."""


class SimilarityError(MusicdbError):
    """A similarity query cannot be answered (unknown name, feature set or label rule)."""


class QueryRefused(MusicdbError):
    """User-written SQL (`musicdb sql`, `--where`) tried something confined SQL may not do."""


class MapError(MusicdbError):
    """A map cannot be made (unknown option value, too few points, a missing extra)."""


class ExperimentError(MusicdbError):
    """An experiment cannot be defined, found or evaluated."""


class ServeError(MusicdbError):
    """`musicdb serve` or `musicdb user` cannot start or do what was asked (a port in use, a
    refused bind, an unsafe users file, an unknown user)."""


class ModelFileError(MusicdbError):
    """A stored model is missing, changed since it was written, or holds untrusted types."""


class NonFiniteValues(DecodeError):
    """Frames or summaries that are NaN or infinite. Never stored: one such song would turn
    every song's standardised vector (feature_stats' means and stds) into NaN."""

    def __init__(self, names: list[str]) -> None:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        super().__init__("", f"its analysis gave values that are not finite ({shown}); the "
                         "audio may be damaged")


def interrupted_statement(exc: BaseException) -> bool:
    """Whether `exc` is DuckDB's end of a statement that a signal interrupted.

    A KeyboardInterrupt raised while DuckDB runs a statement (Ctrl-C; the SIGTERM handler of
    `musicdb ingest`) comes back from it as RuntimeError('Query interrupted'), with the
    KeyboardInterrupt as its context: callers treat it as the KeyboardInterrupt it was."""
    return isinstance(exc, RuntimeError) and isinstance(exc.__context__, KeyboardInterrupt)
