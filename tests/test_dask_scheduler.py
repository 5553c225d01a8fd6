"""A real `dask scheduler` + `dask worker` pair (issue 14): the ingest client killed (SIGTERM,
SIGKILL) mid-run and run again finishes only the missing files; the scheduler killed mid-run
ends the run with one line and keeps every written batch. The workers preload
tests/dask_faults.py, which makes each analysis a second longer, so the runs last long enough
for a batch to be written before the kill; the client writes a batch every second (not every
5 s), so that moment comes without minutes of waiting."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from musicdb.audio import synth
from tests.test_ingest import summary_counts

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SONGS = 12  # at ~2 a second, a first batch (BATCH_S) is written mid-run, and a third run is left
BATCH_S = 1.0
TIMEOUT_S = 180
INGEST = ("--feature-set", "seed55", "--snippet-seconds", "0")
# The real CLI, writing its batches BATCH_S apart: a killed run's written batches are what the
# tests check, and how long one waits does not change which code writes or keeps them.
CLIENT = f"""
import musicdb.ingest.run
musicdb.ingest.run.BATCH_SECONDS = {BATCH_S}
from musicdb.cli import main
main()
"""


@dataclass
class DaskPair:
    address: str
    scheduler: subprocess.Popen
    worker: subprocess.Popen


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO,
                                env=os.environ | {"PYTHONPATH": str(REPO),
                                                  "MUSICDB_TEST_SLOW_S": "1.0"})


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


@pytest.fixture(scope="module")
def dask_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dask")
    info = folder / "scheduler.json"
    scheduler = _spawn([str(BIN / "dask"), "scheduler", "--scheduler-file", str(info),
                        "--port", "0", "--no-dashboard"], folder / "scheduler.log")
    worker = None
    try:  # stopped whatever fails: a scheduler left behind holds ports for later tests
        deadline = time.monotonic() + TIMEOUT_S
        while not info.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        worker = _spawn([str(BIN / "dask"), "worker", address, "--nthreads", "1",
                         "--nworkers", "2", "--preload", "tests.dask_faults",
                         "--no-dashboard"], folder / "worker.log")
        from distributed import Client

        with Client(address, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=TIMEOUT_S)
        yield DaskPair(address, scheduler, worker)
    finally:
        if worker is not None:
            _stop(worker)
        _stop(scheduler)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lib")
    for i in range(SONGS):
        synth.write_audio(root / f"tone{i:02d}.flac", synth.tone(200 + 30 * i, 1))
    return root


def ingest(root: Path, db: Path, address: str, log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", CLIENT, "ingest", str(root), "--db", str(db), "--scheduler",
             address, *INGEST], stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
            env=os.environ | {"COLUMNS": "200"})


def ok_rows(db: Path) -> int:
    """Songs written as analysed; 0 while the file is being written (or not there yet)."""
    try:
        with duckdb.connect(str(db), read_only=True) as con:
            return con.execute("SELECT count(*) FROM songs WHERE status = 'ok'").fetchone()[0]
    except duckdb.Error:
        return 0


def wait_for_rows(db: Path, proc: subprocess.Popen, more_than: int) -> int:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        if (n := ok_rows(db)) > more_than:
            return n
        time.sleep(0.2)
    pytest.fail(f"no batch was written (exit code {proc.poll()})")


def test_an_interrupted_client_run_again_finishes_only_the_missing_files(
        dask_pair, library, tmp_path):
    db, log = tmp_path / "lib.duckdb", tmp_path / "ingest.log"
    written = 0
    for stop, code in ((signal.SIGTERM, 143), (signal.SIGKILL, -9)):
        proc = ingest(library, db, dask_pair.address, log)
        wait_for_rows(db, proc, written)
        proc.send_signal(stop)
        assert proc.wait(TIMEOUT_S) == code, log.read_text()
        after = ok_rows(db)
        assert after >= written  # a kill loses nothing written
        written = after
    assert written < SONGS, "the runs ended before the kills: make them longer"

    proc = ingest(library, db, dask_pair.address, log)
    assert proc.wait(TIMEOUT_S) == 0, log.read_text()
    output = log.read_text()
    counts = summary_counts(output)
    assert (counts["new"], counts["unchanged"], counts["failed"]) == (
        SONGS - written, written, 0), output
    assert "2 workers alive" in output
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT path), count(*) FILTER "
                           "(status = 'ok') FROM songs").fetchone() == (SONGS, SONGS, SONGS)
        assert con.execute("SELECT count(*) FROM features").fetchone() == (SONGS,)


def test_a_scheduler_that_goes_away_ends_the_run_with_one_line(dask_pair, library, tmp_path):
    """Last in this module: it kills the module's scheduler."""
    db, log = tmp_path / "lib.duckdb", tmp_path / "ingest.log"
    proc = ingest(library, db, dask_pair.address, log)
    written = wait_for_rows(db, proc, 0)
    _stop(dask_pair.scheduler)
    code = proc.wait(TIMEOUT_S)
    output = log.read_text()
    assert code == 1, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "Error:" in line]
    assert len(errors) == 1, output
    assert "lost the Dask scheduler" in errors[0]
    assert ok_rows(db) >= written  # every written batch kept
