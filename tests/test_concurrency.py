"""One writer, many readers (issue 16, section 1), with real processes: `musicdb ingest` holds
the database only while it writes a batch, so `musicdb similar`, `info`, `experiment list` and
the `duckdb -readonly` shell read it during an ingest; an ingest waits for a shell that holds
the file, with one line naming it; a read-write shell gets one line naming it; a second ingest
is refused. Every wait here is bounded; leftovers are killed."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import psutil
import pytest

from musicdb.audio import synth
from tests import slow
from tests.conftest import duckdb_shell
from tests.test_hostile import MUSICDB

FILES = 12
SECONDS = 3.0  # per file; each takes at least tests.slow.SECONDS_PER_FILE: 5 s or more a run,
# written in batches of tests.slow.BATCH_SECONDS (half a dozen batches for readers to meet;
# after the first, 3.5 s or more of the run is left for a reader or a shell to start)
INGEST = ("--workers", "1", "--snippet-seconds", "0", "--feature-set", "seed55")
TIMEOUT_S = 240  # an ingest on a busy machine; every wait below is bounded by one of these
WAIT_S = 120


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """12 short songs in 4 folders (the folder is the label)."""
    root = tmp_path_factory.mktemp("concurrency") / "library"
    for i in range(FILES):
        path = root / f"band{i % 4}" / f"song{i:02d}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        y = synth.tone(180 + 25 * i, SECONDS) + synth.noise(SECONDS, amp=0.05, seed=i)
        synth.write_audio(path, y + synth.clicks(90 + i, SECONDS, amp=0.3))
    return root


@pytest.fixture(scope="module")
def earlier(tmp_path_factory) -> Path:
    """Four songs ingested before the library: similarity tables to answer from during it."""
    root = tmp_path_factory.mktemp("earlier") / "songs"
    for i in range(4):
        path = root / f"band{i % 2}" / f"early{i}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        synth.write_audio(path, synth.tone(900 + 50 * i, 3) + synth.noise(3, amp=0.1, seed=99))
    return root


# --- processes ----------------------------------------------------------------------------------


@contextlib.contextmanager
def ingesting(root: Path, db: Path, log: Path) -> Iterator[subprocess.Popen]:
    """`musicdb ingest` (the real command, each file's analysis taking at least 0.4 s, a batch
    written every second) in its own session, its output to a file; killed if it outlives the
    test (with its workers)."""
    argv, env = slow.command()
    with log.open("ab") as out:
        proc = subprocess.Popen([*argv, "ingest", str(root), "--db", str(db), *INGEST],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env | {"COLUMNS": "200"}, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(WAIT_S)


@contextlib.contextmanager
def shell_open(db: Path, *, read_only: bool) -> Iterator[tuple[subprocess.Popen, set[int]]]:
    """A duckdb shell on db reading SQL from a pipe, as a person leaves one open; yields it
    and the PIDs that may hold the file (the `duckdb` launcher and the shell it starts)."""
    args = [duckdb_shell(), *(["-readonly"] if read_only else []), "-csv", "-noheader", str(db)]
    with subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True) as proc:
        try:
            proc.stdin.write("SELECT 'open';\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "open", "the shell did not open the file"
            pids = {proc.pid} | {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
            yield proc, pids
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            try:
                proc.wait(WAIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()


def musicdb(*args: str | Path, timeout: float = WAIT_S) -> subprocess.CompletedProcess:
    return subprocess.run([MUSICDB, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=os.environ | {"COLUMNS": "200"})


def wait_for(what: str, check: Callable[[], bool], proc: subprocess.Popen | None = None,
             timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout:.0f} s")
        if proc is not None and proc.poll() is not None and not check():
            pytest.fail(f"the ingest ended (code {proc.returncode}) before {what}")
        time.sleep(0.2)  # not so often that the ingest waits for these reads


def songs_written(db: Path) -> int | None:
    """Songs in the database now, or None while it cannot be read (not there, a batch)."""
    try:
        with duckdb.connect(str(db), read_only=True) as con:
            return con.execute("SELECT count(*) FROM songs").fetchone()[0]
    except duckdb.Error:
        return None


def midway(db: Path, before: int = 0) -> bool:
    return before < (songs_written(db) or 0) < before + FILES


def assert_complete(db: Path, *roots: Path) -> None:
    """Every file exactly once, analysed."""
    files = sorted(str(p) for root in roots for p in root.rglob("*.flac"))
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT path, count(*), any_value(status) FROM songs "
                           "GROUP BY path").fetchall()
        features = con.execute("SELECT count(*) FROM features_seed55").fetchone()[0]
    assert sorted(p for p, _, _ in rows) == files
    assert {n for _, n, _ in rows} == {1}
    assert {s for _, _, s in rows} == {"ok"}
    assert features == len(files)


def one_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


# --- the tests ----------------------------------------------------------------------------------


def test_readers_work_while_an_ingest_runs(library, earlier, run, tmp_path):
    """`musicdb info`, `similar`, `experiment list` and the duckdb -readonly shell in a loop
    during an ingest: every call succeeds, no traceback, the counts never go back. (`similar`
    answers from the similarity tables of the ingest before: they are refreshed at its end.)"""
    db, log = tmp_path / "music.duckdb", tmp_path / "ingest.txt"
    run("ingest", earlier, "--db", db, *INGEST)  # in this process: the readers are what runs apart
    seen, shell_retries, calls = [], 0, 0
    with ingesting(library, db, log) as ingest:
        wait_for("first batch", lambda: midway(db, before=4), ingest)
        while ingest.poll() is None or calls < 4:
            info = musicdb("info", "--json", "--db", db)
            assert info.returncode == 0, info.stderr
            seen.append(json.loads(info.stdout)["songs"]["ok"])
            similar = musicdb("similar", "band0", "--label-from", "folder", "--json",
                              "--feature-set", "seed55", "--db", db)
            assert similar.returncode == 0, similar.stderr
            assert json.loads(similar.stdout)["query"] == "band0"
            listed = musicdb("experiment", "list", "--json", "--db", db)
            assert listed.returncode == 0, listed.stderr
            assert "xmas" in [e["name"] for e in json.loads(listed.stdout)]
            created = musicdb("experiment", "create", f"pair{calls}", "--labels", "band0,band1",
                              "--label-from", "folder", "--db", db)  # a writer, between batches
            assert created.returncode == 0, created.stderr
            for proc in (info, similar, listed, created):
                assert "Traceback" not in proc.stderr + proc.stdout
            for attempt in range(5):  # a shell's open can meet a batch being written
                shell = subprocess.run([duckdb_shell(), "-readonly", "-csv", "-noheader",
                                        str(db), "-c", "SELECT count(*) FROM songs"],
                                       capture_output=True, text=True, timeout=WAIT_S)
                if shell.returncode == 0:
                    break
                assert "Could not set lock" in shell.stderr, shell.stderr
                shell_retries += 1
                time.sleep(0.5 * (attempt + 1))
            assert shell.returncode == 0, shell.stderr
            seen.append(int(shell.stdout.strip()))
            calls += 1
        assert ingest.wait(TIMEOUT_S) == 0, log.read_text()
    assert seen == sorted(seen), seen  # a reader never sees fewer songs than the one before
    assert seen[0] < 4 + FILES, "no reader ran while the ingest was writing"
    assert calls >= 2
    assert "Traceback" not in log.read_text()
    assert_complete(db, library, earlier)


def test_ingest_waits_for_a_readonly_shell_and_finishes_when_it_closes(library, tmp_path):
    db, log = tmp_path / "music.duckdb", tmp_path / "ingest.txt"
    with ingesting(library, db, log) as ingest:
        wait_for("first batch", lambda: midway(db), ingest)
        with shell_open(db, read_only=True) as (shell, pids):
            wait_for("waiting line", lambda: "waiting for the duckdb shell" in log.read_text(),
                     ingest)
            # it keeps analysing meanwhile, and the shell still answers
            shell.stdin.write("SELECT count(*) FROM songs;\n")
            shell.stdin.flush()
            assert 0 < int(shell.stdout.readline()) < FILES
        assert ingest.wait(TIMEOUT_S) == 0, log.read_text()
    output = " ".join(log.read_text().split())
    lines = re.findall(r"waiting for the duckdb shell \(PID (\d+)\) to release music\.duckdb "
                       r"\(close it: this goes on as soon as it is closed\)", output)
    assert len(lines) == 1, output  # one line, not one per retry
    assert int(lines[0]) in pids
    assert "Traceback" not in output
    assert_complete(db, library)


def test_ctrl_c_while_waiting_says_what_was_not_written_and_resumes(library, tmp_path):
    db, log = tmp_path / "music.duckdb", tmp_path / "ingest.txt"
    with ingesting(library, db, log) as ingest:
        wait_for("first batch", lambda: midway(db), ingest)
        with shell_open(db, read_only=True):
            wait_for("waiting line", lambda: "waiting for the duckdb shell" in log.read_text(),
                     ingest)
            written = songs_written(db)
            ingest.send_signal(signal.SIGINT)
            assert ingest.wait(WAIT_S) == 130, log.read_text()
    output = " ".join(log.read_text().split())
    assert re.search(r"\d+ analysed files? (was|were) not written", output), output
    assert "run the same command again to resume" in output
    assert "Traceback" not in output
    assert songs_written(db) == written  # nothing written was lost, nothing half-written
    again = musicdb("ingest", library, "--db", db, *INGEST, timeout=TIMEOUT_S)  # nothing to meet
    assert again.returncode == 0, again.stderr
    assert_complete(db, library)


def test_a_second_ingest_is_refused_in_one_line(library, tmp_path):
    db, log = tmp_path / "music.duckdb", tmp_path / "ingest.txt"
    with ingesting(library, db, log) as first:
        wait_for("first batch", lambda: midway(db), first)
        with shell_open(db, read_only=True):  # the first cannot write meanwhile, nor finish
            second = musicdb("ingest", library, "--db", db, *INGEST)
            first_alive = first.poll() is None
        assert first.wait(TIMEOUT_S) == 0, log.read_text()
    if first_alive:
        assert second.returncode == 1, second.stderr
        line = one_line(second)
        assert f"musicdb ingest (PID {first.pid}) is updating {db} already" in line, line
    assert_complete(db, library)
    assert not (tmp_path / "music.duckdb.ingest-lock").exists()  # no stray file after a run


@pytest.fixture
def small_db(run, tmp_path) -> Path:
    root, db = tmp_path / "small", tmp_path / "small.duckdb"
    root.mkdir()
    for i in range(2):
        synth.write_audio(root / f"{i}.flac", synth.tone(300 + 200 * i, 2))
    run("ingest", root, "--db", db, "--workers", "1", "--feature-set", "seed55")
    return db


def test_a_shell_that_holds_the_file_is_named_in_one_line(small_db):
    """Where waiting would not end by itself, one line: the database, the program, its PID,
    what to do; within a bounded time."""
    with shell_open(small_db, read_only=False) as (_, pids):
        started = time.monotonic()
        info = musicdb("info", "--db", small_db)
        took = time.monotonic() - started
    assert info.returncode == 1
    line = one_line(info)
    found = re.search(r"is open for writing in the duckdb shell \(PID (\d+)\): close it, or "
                      r"open the shell with -readonly", line)
    assert found, line
    assert int(found[1]) in pids
    assert took < 30, took

    with shell_open(small_db, read_only=True) as (_, pids):  # readers share it...
        assert musicdb("info", "--db", small_db).returncode == 0
        created = musicdb("experiment", "create", "pair", "--labels", "a,b", "--db", small_db)
    assert created.returncode == 1  # ...but no writer gets in beside them
    line = one_line(created)
    assert re.search(r"is open in the duckdb shell \(PID \d+\), and DuckDB lets no process "
                     r"write while another reads: close it", line), line


@pytest.mark.parametrize(("argv", "name"), [
    (["/venv/bin/python3", "/venv/bin/musicdb", "ingest", "/music", "--db", "m.duckdb"],
     "musicdb ingest"),
    (["python", "-m", "musicdb", "similar", "a", "--db", "x"], "musicdb similar"),
    (["/venv/bin/python3", "/venv/bin/duckdb", "-readonly", "m.duckdb"], "the duckdb shell"),
    (["/venv/lib/python3.11/site-packages/duckdb_cli/duckdb", "m.duckdb"], "the duckdb shell"),
    (["/usr/bin/python3.11", "-c", "import duckdb"], "python"),
    (["/usr/bin/python3", "tool.py"], "python"),
    (["/opt/dbeaver/dbeaver", "-nosplash"], "dbeaver"),
])
def test_holders_are_named_as_people_call_them(argv, name):
    from musicdb.store.access import name_of

    assert name_of(argv) == name


def test_a_lock_message_names_its_holder_and_what_it_holds(tmp_path):
    """DuckDB's own words, both ways: a reader in the way of a writer, a writer in anyone's."""
    from musicdb.store.access import lock_holder

    reader = ('IO Error: Could not set lock on file "/m.duckdb": Conflicting lock is held in '
              f"/usr/bin/sleep (PID {os.getpid()}). However, you would be able to open this "
              "database in read-only mode, e.g. by using the -readonly parameter in the CLI.")
    held = lock_holder(reader, tmp_path / "m.duckdb")
    assert (held.pid, held.writing) == (os.getpid(), False)
    assert held.program == "python"  # from /proc, not the path in the message
    writer = lock_holder(reader.split(". However")[0].replace(str(os.getpid()), "999999999"))
    assert (writer.pid, writer.program, writer.writing) == (999999999, "sleep", True)
    assert lock_holder("IO Error: Cannot open file: No such file") is None
