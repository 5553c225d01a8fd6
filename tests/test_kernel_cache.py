"""numba's compiled kernels live in the user's cache folder, where every later process finds
them: not in a `__pycache__` of the source checkout or of site-packages (which `pip install`
replaces). Real processes: an ingest compiles, a second process loads."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from musicdb.audio import synth

MUSICDB = str(Path(sys.executable).with_name("musicdb"))
REPO = Path(__file__).resolve().parent.parent
WHERE = ("import numba, musicdb.analysis.features as f; from musicdb.analysis import kernels; "
         "print(numba.config.CACHE_DIR); print(kernels.bank_sums._cache._cache_file._index_path);"
         " print(f.kernels_cached())")


def fresh_cache_env(tmp_path: Path) -> dict[str, str]:
    """This machine's environment with an empty user cache folder and no NUMBA_CACHE_DIR."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    return env | {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path / "home")}


def with_librosas_kernels(cache: Path) -> None:
    """Copy librosa's compiled kernels from this process's cache (test.sh compiled them) into
    the empty one: the ingest then compiles musicdb's own (what kernels_cached() and the index
    below look at), not the ~25 CPU-seconds of librosa's, which land by the same setting."""
    mine = Path(os.environ.get("NUMBA_CACHE_DIR", ""))
    for folder in mine.glob("*_*") if mine.name else ():
        if folder.is_dir() and not folder.name.startswith("analysis_"):  # musicdb.analysis
            shutil.copytree(folder, cache / folder.name)


def where(env: dict[str, str], cwd: Path) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", WHERE], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_an_ingest_compiles_into_the_user_cache_and_the_next_process_finds_it(tmp_path):
    env = fresh_cache_env(tmp_path)
    cache = tmp_path / "cache" / "musicdb" / "numba"
    folder, index, cached = where(env, tmp_path)
    assert Path(folder) == cache
    assert Path(index).is_relative_to(cache)  # not beside the source
    assert cached == "False"

    with_librosas_kernels(cache)
    assert not list(cache.glob("analysis_*/*.nbi"))  # musicdb's own kernels are to compile
    started = time.time()
    (tmp_path / "lib").mkdir()
    synth.write_audio(tmp_path / "lib" / "a.flac", synth.tone(440, 2))
    proc = subprocess.run([MUSICDB, "ingest", str(tmp_path / "lib"), "--db",
                           str(tmp_path / "m.duckdb"), "--workers", "1", "--feature-set",
                           "seed55"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "1 new" in proc.stderr

    other = tmp_path / "elsewhere"  # another working folder: the same cache
    other.mkdir()
    assert where(env, other) == [str(cache), index, "True"]
    written = [p for p in (REPO / "musicdb").rglob("*.nbi") if p.stat().st_mtime >= started]
    assert written == []  # nothing compiled into the source checkout


def test_a_cache_folder_the_user_chose_is_kept(tmp_path):
    env = fresh_cache_env(tmp_path) | {"NUMBA_CACHE_DIR": str(tmp_path / "mine")}
    folder, index, _cached = where(env, tmp_path)
    assert Path(folder) == tmp_path / "mine"
    assert Path(index).is_relative_to(tmp_path / "mine")
