"""Commands that answer from the similarity tables say so when those lag the data: during an
ingest (which rebuilds them at its end) and after a run stopped before rebuilding them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np

from musicdb.store.access import ingest_lock
from tests.test_similar import N_FEATURES, write_table

MUSICDB = str(Path(sys.executable).with_name("musicdb"))


def musicdb(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([MUSICDB, *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_similar_says_an_ingest_is_updating_the_tables(run, tmp_path):
    zero = np.zeros(N_FEATURES)
    table = write_table(tmp_path / "t.csv", {"A": zero, "B": zero + 1, "C": zero - 1}, songs=3)
    db = tmp_path / "t.duckdb"
    run("import", table, "--feature-set", "geo", "--db", db)
    quiet = musicdb("similar", "A", "--db", db)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""

    with ingest_lock(db):  # what a running ingest holds, taken by this process
        during = musicdb("similar", "A", "--db", db)
        heatmap = musicdb("heatmap", "--db", db, "-o", tmp_path / "h.html")
    assert during.returncode == 0, during.stderr
    assert during.stdout == quiet.stdout  # the answer of the tables there are
    assert during.stderr.strip() == (
        f"Note: musicdb ingest (PID {os.getpid()}) is updating {db}: similarity answers come "
        "from the tables of the run before it (songs it adds count once it ends).")
    assert heatmap.returncode == 0, heatmap.stderr
    assert "is updating" in heatmap.stderr

    with duckdb.connect(str(db)) as con:  # a run killed before its refresh leaves the flag
        con.execute("UPDATE similarity_state SET stale = true")
    stale = musicdb("similar", "A", "--db", db)
    assert stale.returncode == 0, stale.stderr
    assert "similarity tables are out of date" in stale.stderr
    info = musicdb("info", "--db", db)  # info says it in the same words
    assert info.returncode == 0, info.stderr
    assert "similarity tables are out of date" in info.stderr
    assert "Traceback" not in during.stderr + heatmap.stderr + stale.stderr
