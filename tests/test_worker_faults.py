"""Workers that hang or die: a deadline per file, a dead worker's file retried once by the next
run, and a crash that repeats kept as an error. Real worker processes throughout."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import duckdb
import pytest

import musicdb.ingest.run
from musicdb.audio import synth
from tests import crashing


def statuses(db: Path) -> dict[str, tuple[str, str | None]]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT path, status, error FROM songs").fetchall()
    return {Path(p).name: (s, e) for p, s, e in rows}


@pytest.fixture
def faulty(monkeypatch):
    monkeypatch.setattr(musicdb.ingest.run, "analyse_file", crashing.analyse_or_crash)


def test_a_file_that_hangs_its_worker_is_stopped_and_the_run_goes_on(run, db, tmp_path, faulty):
    root = tmp_path / "lib"
    root.mkdir()
    synth.write_audio(root / "hang.flac", synth.tone(440, 3))  # largest: taken first
    for i in range(4):
        synth.write_audio(root / f"tone{i}.flac", synth.tone(300 + 100 * i, 2))
    started = time.monotonic()
    result = run("ingest", root, "--db", db, "--workers", "2", "--feature-set", "seed55",
                 "--file-timeout", "2")
    elapsed = time.monotonic() - started
    rows = statuses(db)
    status, error = rows.pop("hang.flac")
    assert status == "error"
    assert error.startswith("analysis took longer than 2 s"), error
    assert "--file-timeout" in error
    assert {name: s for name, (s, _) in rows.items()} == {f"tone{i}.flac": "ok" for i in range(4)}
    assert "1 failed" in result.output
    assert elapsed < 60  # the hang cost its deadline, not the run


def stuck_beside_a_song(run, db: Path, root: Path, stuck: str, workers: int
                        ) -> dict[str, tuple[str, str | None]]:
    """Ingest a file that never finishes (tests/crashing.py) beside a good one."""
    root.mkdir()
    synth.write_audio(root / stuck, synth.tone(440, 3))
    synth.write_audio(root / "tone.flac", synth.tone(300, 2))
    run("ingest", root, "--db", db, "--workers", str(workers), "--feature-set", "seed55",
        "--file-timeout", "1")
    return statuses(db)


def test_a_stopped_worker_takes_its_subprocesses_along(run, db, tmp_path, faulty):
    root = tmp_path / "lib"
    assert stuck_beside_a_song(run, db, root, "orphan.flac", 2)["orphan.flac"][0] == "error"
    child = int((root / "orphan.flac.pid").read_text())
    for _ in range(50):  # killed with its group; give the kernel a moment to reap it
        if not _alive(child):
            break
        time.sleep(0.1)
    assert not _alive(child), "the stuck worker's subprocess outlived it"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (killed, not yet reaped by its parent) counts as gone.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    return False


def test_one_worker_is_a_process_too_so_the_deadline_holds(run, db, tmp_path, faulty):
    rows = stuck_beside_a_song(run, db, tmp_path / "lib", "hang.flac", 1)
    assert rows["hang.flac"][0] == "error"
    assert rows["tone.flac"] == ("ok", None)


def test_a_file_whose_worker_died_is_retried_once_by_the_next_run(run, db, tmp_path, faulty):
    root = tmp_path / "lib"
    root.mkdir()
    synth.write_audio(root / "crash.flac", synth.tone(440, 2))
    synth.write_audio(root / "tone.flac", synth.tone(300, 2))
    args = ("ingest", root, "--db", db, "--workers", "2", "--feature-set", "seed55")
    run(*args)
    assert statuses(db)["crash.flac"][1].startswith(
        "the analysis process died while reading this file (killed by SIGSEGV)")
    # Killed from outside, it may have been transient: the next run tries it by itself once.
    result = run(*args)
    assert "1 failed" in result.output
    error = statuses(db)["crash.flac"][1]
    assert error.startswith("the analysis process died again while reading this file"), error
    # Twice is not transient: the run after that leaves it alone unless asked.
    result = run(*args)
    assert "0 failed" in result.output
    assert "1 known failure skipped" in " ".join(result.output.split())
    assert statuses(db)["tone.flac"] == ("ok", None)
