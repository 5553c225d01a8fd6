"""The real analysis, taking at least SECONDS_PER_FILE per file, written every BATCH_SECONDS:
the concurrency tests' ingests then last long enough (and write enough batches) for other
processes to meet them, on an idle fast machine as on a busy one, without costing more CPU.
Importable by name, so the analysis workers find it (tests/test_concurrency.py puts the
checkout on PYTHONPATH)."""

from __future__ import annotations

import time

from musicdb.analysis.analyse import Analysis, analyse_file

SECONDS_PER_FILE = 0.4
# Results are written every this many seconds (musicdb.ingest.run.BATCH_SECONDS is 5): a
# short run then writes many batches, each a moment for another process to meet it.
BATCH_SECONDS = 1.0


def analyse_slowly(path: str, *args, **kwargs) -> Analysis:
    started = time.monotonic()
    result = analyse_file(path, *args, **kwargs)
    time.sleep(max(0.0, SECONDS_PER_FILE - (time.monotonic() - started)))
    return result
