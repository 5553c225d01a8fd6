"""`musicdb` whose analysis takes at least a given time per file, its results written every
BATCH_SECONDS: the concurrency and crash-safety tests' ingests then last long enough (and write
enough batches) for other processes and kills to meet them, on an idle fast machine as on a
busy one, without costing more CPU (a worker sleeps out the rest of a file's time after the
real analysis). Importable by name, so the analysis workers find it (command() puts the
checkout on PYTHONPATH)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from musicdb.analysis.analyse import Analysis, analyse_file

REPO = Path(__file__).resolve().parent.parent
SECONDS_PER_FILE = 0.4
# Results are written every this many seconds (musicdb.ingest.run.BATCH_SECONDS is 5): a
# short run then writes many batches, each a moment for another process to meet it.
BATCH_SECONDS = 1.0


def analyse_slowly(path: str, *args, at_least: float = SECONDS_PER_FILE, **kwargs) -> Analysis:
    started = time.monotonic()
    result = analyse_file(path, *args, **kwargs)
    time.sleep(max(0.0, at_least - (time.monotonic() - started)))
    return result


def command(seconds_per_file: float = SECONDS_PER_FILE, batch_seconds: float = BATCH_SECONDS
            ) -> tuple[list[str], dict[str, str]]:
    """The argv (before the subcommand) and environment of the real musicdb command, in a
    process of its own, each file's analysis taking at least `seconds_per_file` (the workers
    are handed a partial of analyse_slowly, pickled by name) and a batch written every
    `batch_seconds`."""
    code = ("import functools, sys, musicdb.ingest.run as run, tests.slow as slow; "
            "run.analyse_file = functools.partial(slow.analyse_slowly, "
            f"at_least={float(seconds_per_file)!r}); "
            f"run.BATCH_SECONDS = {float(batch_seconds)!r}; sys.argv[0] = 'musicdb'; "
            "from musicdb.cli.app import main; main()")
    return [sys.executable, "-c", code], os.environ | {"PYTHONPATH": str(REPO)}
