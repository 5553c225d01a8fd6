"""Crash safety with real processes (issue 11, point 3): `musicdb ingest` killed with SIGKILL
at seeded random moments, its workers killed from outside, and SIGTERM; after every kill the
database opens and is consistent, and re-runs finish the library without losing a row."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psutil
import pytest

from tests.test_hostile import MUSICDB, NON_FINITE_VALUES, music, write_wav

SEED = 11
MAIN_KILLS = 8
WORKER_KILLS = 4  # tried; a fast machine may finish the run after 2 of them
MIN_WORKER_KILLS = 2
RUN_TIMEOUT_S = 240
ORPHAN_WAIT_S = 30  # workers left by a killed ingest finish their file, then must go
INGEST = ("--workers", "2", "--snippet-seconds", "30")


def write_library(root: Path) -> None:
    rng = random.Random(SEED)
    for i in range(12):
        path = root / f"artist{i % 3}" / f"song{i:02d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_wav(path, music(rng.uniform(40, 100), sr=22050, seed=500 + i), sr=22050)


@pytest.fixture(scope="module")
def library(built_once) -> list[Path]:
    """Twelve songs of 40-100 s (14 min of audio): an ingest takes several seconds.

    Each test below runs on a pytest-xdist worker of its own (its own xdist_group); the songs
    are written once for all three, which only read them."""
    root = built_once("crash-library", write_library)
    return sorted(root.glob("artist*/song*.wav"))


# --- processes --------------------------------------------------------------------------------


@dataclass
class Ingest:
    proc: subprocess.Popen
    log: Path

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None


def start(root: Path, db: Path, log: Path) -> Ingest:
    """`musicdb ingest` in its own session, stdout and stderr to one file (not a pipe: workers
    orphaned by a kill would hold a pipe open)."""
    with log.open("ab") as out:
        proc = subprocess.Popen([MUSICDB, "ingest", str(root), "--db", str(db), *INGEST],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=os.environ | {"COLUMNS": "200"}, start_new_session=True)
    return Ingest(proc, log)


def finish(run: Ingest, timeout: float = RUN_TIMEOUT_S) -> int:
    try:
        return run.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(run.proc.pid, signal.SIGKILL)
        pytest.fail(f"ingest hung: no exit after {timeout:.0f} s\n{run.output[-3000:]}")


def workers(run: Ingest) -> list[psutil.Process]:
    """The analysis workers: children of the forkserver the ingest process started."""
    try:
        children = psutil.Process(run.proc.pid).children()
    except psutil.Error:
        return []
    found = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            if "forkserver" in " ".join(child.cmdline()):
                found += child.children()
    return found


def session_members(sids: set[int]) -> list[psutil.Process]:
    """The processes in any of these sessions (one pass over the process table for all)."""
    members = []
    for p in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):  # it may exit while we look
            if os.getsid(p.pid) in sids:
                members.append(p)
    return members


def reap_orphans(*runs: Ingest) -> int:
    """Wait for what killed ingests left behind to exit by itself; kill the rest. Returns how
    many had to be killed."""
    sids = {run.proc.pid for run in runs}  # each ingest leads a session of its own
    deadline = time.monotonic() + ORPHAN_WAIT_S
    while (left := session_members(sids)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.kill()
    return len(left)


def sleep_while_alive(run: Ingest, seconds: float) -> bool:
    """Sleep up to `seconds`; False when the run exited first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not run.alive():
            return False
        time.sleep(0.05)
    return run.alive()


def wait_for_output(run: Ingest, text: str, timeout: float = 120) -> bool:
    """Whether the run printed `text` (while alive, within the timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.alive():
        if text in run.output:
            return True
        time.sleep(0.02)
    return False


def wait_for_workers(run: Ingest, timeout: float = 120) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.alive():
        if found := workers(run):
            return found
        time.sleep(0.1)
    return []


# --- the database after a kill ------------------------------------------------------------------


def query(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def consistency_problems(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Everything that must hold after any kill, however early (one connection for all the
    checks: opening a killed run's file replays its journal)."""
    checks = {
        "duplicate paths": "SELECT path FROM songs WHERE source = 'scan' "
                           "GROUP BY path HAVING count(*) > 1",
        "ok songs without whole-song features": (
            "SELECT s.path, fs.name FROM songs s CROSS JOIN feature_sets fs "
            "WHERE s.status = 'ok' AND fs.kind = 'extracted' AND NOT EXISTS (SELECT 1 FROM "
            "features f WHERE f.song_id = s.song_id AND f.feature_set_id = fs.feature_set_id "
            "AND f.snippet = -1)"),
        "feature rows without a song": "SELECT DISTINCT f.song_id FROM features f "
                                       "ANTI JOIN songs s USING (song_id)",
        "feature rows of songs that are not ok": "SELECT DISTINCT s.path FROM features f "
                                                 "JOIN songs s USING (song_id) "
                                                 "WHERE s.status = 'error'",
        "feature rows without a feature set": "SELECT DISTINCT f.feature_set_id FROM "
                                              "features f ANTI JOIN feature_sets USING "
                                              "(feature_set_id)",
        "orphan snippet rows": "SELECT DISTINCT f.song_id, f.feature_set_id FROM features f "
                               "WHERE f.snippet >= 0 AND NOT EXISTS (SELECT 1 FROM features w "
                               "WHERE w.song_id = f.song_id AND w.feature_set_id = "
                               "f.feature_set_id AND w.snippet = -1)",
        "duplicate feature rows": "SELECT song_id, feature_set_id, snippet FROM features "
                                  "GROUP BY ALL HAVING count(*) > 1",
    }
    problems = [f"{what}: {rows[:5]}" for what, sql in checks.items()
                if (rows := con.execute(sql).fetchall())]
    if nan := con.execute(NON_FINITE_VALUES).fetchone()[0]:
        problems.append(f"{nan} non-finite feature values")
    return problems


def statuses(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, str | None]]:
    return {p: (s, e) for p, s, e in con.execute("SELECT path, status, error FROM songs "
                                                 "WHERE source = 'scan'").fetchall()}


def opened_consistent(db: Path, context: str) -> dict[str, tuple[str, str | None]]:
    """The database opens (if the kill came before it existed, there is nothing to check) and
    is consistent; returns each path's (status, error)."""
    if not db.exists():
        return {}
    try:
        with duckdb.connect(str(db), read_only=True) as con:
            problems, rows = consistency_problems(con), statuses(con)
    except duckdb.Error as exc:
        pytest.fail(f"{context}: the database does not open: {exc}")
    assert problems == [], f"{context}: {problems}"
    return rows


def assert_complete(db: Path, library: list[Path]) -> dict[str, tuple[str, str | None]]:
    rows = opened_consistent(db, "after the final run")
    assert sorted(rows) == sorted(str(p) for p in library), "not one row per file"
    assert {p: s for p, (s, _) in rows.items() if s != "ok"} == {}, rows
    assert similarity_lag(db) == [], "similarity tables stale after the final run"
    return rows


def similarity_lag(db: Path) -> list[tuple]:
    """Feature sets whose similarity tables do not hold exactly the ok songs (a kill during
    the refresh must not leave them stale for good)."""
    return query(db, "SELECT fs.name, count(DISTINCT s.song_id), any_value(st.songs), "
                     "(SELECT count(*) FROM song_vectors v WHERE v.feature_set_id = "
                     "fs.feature_set_id) FROM feature_sets fs "
                     "JOIN features f USING (feature_set_id) "
                     "JOIN songs s ON s.song_id = f.song_id AND s.status = 'ok' "
                     "LEFT JOIN feature_stats st ON st.feature_set_id = fs.feature_set_id "
                     "GROUP BY fs.name, fs.feature_set_id HAVING count(DISTINCT s.song_id) "
                     "IS DISTINCT FROM any_value(st.songs) OR count(DISTINCT s.song_id) <> "
                     "(SELECT count(*) FROM song_vectors v WHERE v.feature_set_id = "
                     "fs.feature_set_id)")


def kept(before: dict, after: dict) -> list[str]:
    """Songs that were ok and are not any more: rows a kill lost."""
    return [p for p, (s, _) in before.items() if s == "ok" and after.get(p, ("gone",))[0] != "ok"]


# --- the tests ----------------------------------------------------------------------------------


# Where each kill lands: the first four at a seeded random moment inside one stage each (which
# waiting on the clock alone hit only by chance, and only after seconds of start-up), the other
# four at seeded random moments anywhere from start-up on, or once analysis is under way
# (workers busy, batches being written).
KILL_STAGES = ("start-up", "scanning", "hashing", "first analyses",
               "anywhere", "analysis", "anywhere", "analysis")
assert len(KILL_STAGES) == MAIN_KILLS


def kill_moment(run: Ingest, rng: random.Random, kill: int) -> bool:
    """Wait for kill number `kill`'s random moment in its stage (KILL_STAGES). False when the
    run finished first."""
    stage = KILL_STAGES[kill]
    if stage == "start-up":  # imports, creating the file, migrations (and the scan, if quick)
        return sleep_while_alive(run, rng.uniform(0.05, 1.5))
    if stage in ("scanning", "hashing"):  # the stage's own line, as the ingest prints it
        if not wait_for_output(run, stage):
            assert stage in run.output, f"no '{stage}' line (new wording?)\n{run.output[-2000:]}"
            return False
        return sleep_while_alive(run, rng.uniform(0.0, 0.3))
    if stage == "anywhere":
        return sleep_while_alive(run, rng.uniform(0.3, 10.0))
    longest = 1.0 if stage == "first analyses" else 5.0
    return bool(wait_for_workers(run)) and sleep_while_alive(run, rng.uniform(0.0, longest))


@pytest.mark.xdist_group("crash-sigkill")
def test_sigkill_of_ingest_at_random_moments_loses_nothing(library, tmp_path):
    """kill -9 of the ingest process, MAIN_KILLS times at seeded random moments (in the stages
    of KILL_STAGES); each run
    resumes the last one, started at once as an impatient user would (the killed run's workers
    may still be finishing). Then a run to the end."""
    rng = random.Random(SEED)
    root, db = library[0].parent.parent, tmp_path / "music.duckdb"
    kills, lost, runs, before = 0, [], [], {}
    while kills < MAIN_KILLS and len(runs) < 3 * MAIN_KILLS:
        run = start(root, db, tmp_path / f"log{len(runs)}.txt")
        runs.append(run)
        if kill_moment(run, rng, kills):
            run.proc.send_signal(signal.SIGKILL)
            run.proc.wait()
            kills += 1
            after = opened_consistent(db, f"after kill {kills}")
            lost += kept(before, after)
            before = after
        else:  # it finished first: begin the library again, so later kills land mid-ingest
            assert run.proc.returncode == 0, run.output[-3000:]
            for done in (db, db.with_name(db.name + ".wal")):
                done.unlink(missing_ok=True)
            before = {}
    assert kills == MAIN_KILLS, "the library ingests too fast for the kills to land"
    final = start(root, db, tmp_path / "final.txt")
    runs.append(final)
    assert finish(final) == 0, final.output[-3000:]
    lost += kept(before, assert_complete(db, library))
    assert lost == []
    reap_orphans(*runs)
    printed = [run.output for run in runs if "Traceback" in run.output]
    assert printed == [], f"{len(printed)} killed runs printed tracebacks:\n{printed[0][-3000:]}"


@pytest.mark.xdist_group("crash-workers")
def test_workers_killed_from_outside_cost_one_retry(library, tmp_path):
    """Workers killed with SIGKILL during a run: the run goes on and finishes by itself; a
    killed worker's file is an error row that says the process died, or fine if the worker
    was idle; the next run retries those files once by itself, and the run after that finds
    nothing to do."""
    rng = random.Random(SEED + 1)
    root, db, log = library[0].parent.parent, tmp_path / "music.duckdb", tmp_path / "log.txt"
    run = start(root, db, log)
    kills = 0
    while kills < WORKER_KILLS and (found := wait_for_workers(run)):
        if not sleep_while_alive(run, rng.uniform(0.1, 0.6)):  # 4 kills in a 3 s run
            break
        victim = rng.choice(found)
        with contextlib.suppress(psutil.Error):
            victim.kill()
            kills += 1
    assert kills >= MIN_WORKER_KILLS, "the run ended before the kills could land"
    assert finish(run) == 0, run.output[-3000:]
    assert "Traceback" not in run.output, run.output[-3000:]
    first = opened_consistent(db, "after the run whose workers were killed")
    assert sorted(first) == sorted(str(p) for p in library)
    for path, (status, error) in first.items():
        assert status == "ok" or "died" in (error or ""), (path, error)

    for _ in range(2):  # the retry run, then a run that finds nothing to do
        log.write_text("")
        again = start(root, db, log)
        assert finish(again) == 0, again.output[-3000:]
        assert "Traceback" not in again.output, again.output[-3000:]
        assert_complete(db, library)
    assert "0 new, 0 changed" in " ".join(again.output.split()), again.output[-2000:]


@pytest.mark.xdist_group("crash-sigterm")
def test_sigterm_finishes_the_batch_and_exits_143(library, tmp_path):
    """SIGTERM (a closing terminal, `kill`, systemd) behaves like Ctrl-C: the finished files
    are written, the output says how to resume, the exit code is 128 + 15."""
    rng = random.Random(SEED + 2)
    root, db, log = library[0].parent.parent, tmp_path / "music.duckdb", tmp_path / "log.txt"
    run = start(root, db, log)
    assert wait_for_workers(run), run.output[-3000:]
    assert sleep_while_alive(run, rng.uniform(0.3, 1.5)), "finished before the signal"
    run.proc.send_signal(signal.SIGTERM)
    code = finish(run, timeout=120)
    output = " ".join(run.output.split())
    assert code == 143, run.output[-3000:]
    assert "resume" in output, run.output[-3000:]
    assert "Traceback" not in output, run.output[-3000:]
    assert reap_orphans(run) == 0, "workers outlived the ingest they belonged to"
    opened_consistent(db, "after SIGTERM")
    log.write_text("")
    again = start(root, db, log)
    assert finish(again) == 0, again.output[-3000:]
    assert_complete(db, library)
