"""What native decoders print. libmpg123 (inside libsndfile) writes "Note: Illegal
Audio-MPEG-Header ... Trying to resync" and "[src/libmpg123/layer3.c:...] error:
part2_3_length ..." to file descriptor 2 itself, past Python's sys.stderr, so on a damaged mp3
it lands in the middle of a live progress bar (or of `similar FILE`'s output). While a decoder
call runs, descriptor 2 points at a temporary file instead; the last line is kept for the
file's error row when the decoding fails. MUSICDB_TRACEBACKS=1 lets it all through.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from types import TracebackType

KEPT_BYTES = 4096  # of the log's end: the last message is what explains a failure


class DecoderLog:
    """A temporary file that a decoder's writes to descriptor 2 go to, call by call."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by __exit__
        self.through = os.environ.get("MUSICDB_TRACEBACKS") == "1"

    def __enter__(self) -> DecoderLog:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._file.close()

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        """Descriptor 2 into the log for the duration: one native call (an open, a block)."""
        if self.through:
            yield
            return
        try:
            saved = os.dup(2)
        except OSError:  # no descriptor 2 at all: nothing can reach a terminal
            yield
            return
        with contextlib.suppress(ValueError, OSError):
            sys.stderr.flush()  # Python's own pending text goes where it was going
        os.dup2(self._file.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)

    def last_message(self) -> str | None:
        """The decoder's last line, if it said anything."""
        self._file.seek(max(0, self._file.seek(0, os.SEEK_END) - KEPT_BYTES))
        lines = self._file.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1].strip() if lines else None
