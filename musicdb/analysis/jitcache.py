"""Where numba keeps the compiled analysis kernels: one folder per user, found by every run.

numba's default is a `__pycache__` beside each source file when that folder is writable: a
source checkout, or the venv's site-packages, which `pip install .` replaces wholesale, cache
included. Compiling musicdb's and librosa's kernels takes ~20 s (minutes on a busy machine),
so the cache goes where every later process finds it: `NUMBA_CACHE_DIR`, unless the user has
set it, is the user cache folder (`~/.cache/musicdb/numba` on Linux). It must be set before
a kernel is decorated: musicdb.analysis.features calls use_user_cache() before its imports.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path


def user_cache_dir() -> Path:
    """The user's cache folder for musicdb (platformdirs, which librosa's pooch installs)."""
    try:
        import platformdirs
    except ImportError:  # the XDG default, which platformdirs gives on Linux too
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "musicdb"
    return Path(platformdirs.user_cache_dir("musicdb", appauthor=False))


def use_user_cache() -> str:
    """Point numba's disk cache at the user cache folder (a set NUMBA_CACHE_DIR is kept);
    returns the folder. Inherited by the processes this one starts (analysis workers)."""
    if not os.environ.get("NUMBA_CACHE_DIR"):
        os.environ["NUMBA_CACHE_DIR"] = str(user_cache_dir() / "numba")
    if "numba" in sys.modules:  # imported already: numba reads its environment again
        from numba.core import config

        config.reload_config()
    return os.environ["NUMBA_CACHE_DIR"]


@contextlib.contextmanager
def one_compiler() -> Iterator[None]:
    """Hold the cache folder's lock while kernels are loaded or compiled: two processes that
    compiled at the same moment on a fresh machine left a cache that crashed every later load
    (SIGSEGV in librosa's peak_pick), seen with parallel test workers and with two ingests. A
    second process waits for the first, then loads what it wrote. Without a lock (a read-only
    cache folder) it goes on unguarded."""
    folder = Path(use_user_cache())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = (folder / "compile.lock").open("a")
    except OSError:
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
