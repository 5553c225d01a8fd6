"""Analyses that hurt their Dask worker on purpose, by file name (as tests/crashing.py does for
the local pool): *once* SIGKILLs its worker the first time only (a marker beside the file says
it did), *crash* SIGKILLs every worker that tries it (each death counted beside the file),
*hang* never returns. And a worker preload (`dask worker --preload tests.dask_faults`) that
makes every analysis take SLOW_S longer, so a test can act in the middle of a run.

Module-level, so Dask workers import it by name.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import musicdb.analysis.analyse
from musicdb.analysis.analyse import analyse_file

SLOW_S = float(os.environ.get("MUSICDB_TEST_SLOW_S", "1.0"))


def analyse_or_fail(path: str, *args, **kwargs):
    name = Path(path).name
    if "once" in name and not Path(path + ".killed").exists():
        Path(path + ".killed").write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    if "crash" in name:
        with open(path + ".deaths", "a") as deaths:
            deaths.write(f"{os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGKILL)
    if "hang" in name:
        while True:  # busy, as a spinning decoder is: only the end of its process ends it
            time.sleep(0.01)
    return analyse_file(path, *args, **kwargs)


def slow_analyse_file(path: str, *args, **kwargs):
    time.sleep(SLOW_S)
    return analyse_file(path, *args, **kwargs)


def dask_setup(worker) -> None:
    """Preload: the client sends analyse_file by name, so this worker runs the slow one."""
    musicdb.analysis.analyse.analyse_file = slow_analyse_file
