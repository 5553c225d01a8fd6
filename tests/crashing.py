"""An analysis that kills its worker process for files named *crash*: what a segfaulting decoder
looks like to the pool. Importable by the workers (the forkserver gets the test's sys.path)."""

from __future__ import annotations

import os
from pathlib import Path

from musicdb.analyse import Analysis, analyse_file


def analyse_or_crash(path: str, *args) -> Analysis:
    if "crash" in Path(path).name:
        os._exit(70)
    return analyse_file(path, *args)
