"""When no analysis worker can start (the forkserver dies loading librosa and the kernels, as
a damaged kernel cache makes it do), ingest says so in one line and what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from musicdb.audio import synth

MUSICDB = str(Path(sys.executable).with_name("musicdb"))

# Python runs sitecustomize at every start: in the forkserver only, it dies as a crash would.
DIE_IN_FORKSERVER = """
import os, sys
if any("multiprocessing.forkserver" in arg for arg in sys.orig_argv):
    os._exit(139)
"""


def test_a_forkserver_that_dies_at_start_is_one_line(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(DIE_IN_FORKSERVER)
    lib = tmp_path / "lib"
    lib.mkdir()
    synth.write_audio(lib / "a.flac", synth.tone(440, 2))
    env = os.environ | {"PYTHONPATH": os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([MUSICDB, "ingest", str(lib), "--db", str(tmp_path / "m.duckdb"),
                           "--workers", "1"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: the analysis worker processes could not start: their server died "
                      "while loading the analysis libraries (a damaged kernel cache? delete the "
                      "folder NUMBA_CACHE_DIR names, ~/.cache/musicdb/numba by default, and run "
                      "again; MUSICDB_TRACEBACKS=1 shows its error)"], proc.stderr
