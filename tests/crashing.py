"""An analysis that crashes its process on files named *crash* (a decoder segfault, simulated),
raises an unexpected exception on files named *bug* and never returns on files named *hang*
(a decoder spinning on a damaged file) or *orphan* (the same, with a subprocess of its own,
whose pid it writes beside the file).

Module-level, so ingest's worker processes can import it by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from musicdb.analysis.analyse import analyse_file


def analyse_or_crash(path: str, *args, **kwargs):
    if "crash" in Path(path).name:
        os.kill(os.getpid(), signal.SIGSEGV)
    if "bug" in Path(path).name:
        raise KeyError("a key no file should miss")
    if "orphan" in Path(path).name:  # a stuck decoder subprocess, as ffmpeg can be
        child = subprocess.Popen(["sleep", "600"])
        Path(path + ".pid").write_text(str(child.pid))
    if "hang" in Path(path).name or "orphan" in Path(path).name:
        while True:  # busy, as a spinning decoder is: only a kill ends it
            time.sleep(0.01)
    return analyse_file(path, *args, **kwargs)


def echo_or_unpicklable(value: str):
    """value back, except for "lock": a result that cannot be pickled back to the parent."""
    if value == "lock":
        return threading.Lock()
    return value


def echo_or_raise(value: str):
    """value back, except for "bug": an exception no caller expects."""
    if value == "bug":
        raise KeyError("a key no file should miss")
    return value
