"""`musicdb serve --workers N`: N real processes on one port (uvicorn's supervisor), each with
its own snapshot, answering as one server does; a worker that dies is replaced; Ctrl-C and
SIGTERM stop them all (exit 0); a bad database is one line before any worker starts."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import serving
from tests.serving import MUSICDB, Server, library_db, start_server  # noqa: F401

DEADLINE_S = 120.0


def workers_of(parent: int) -> set[int]:
    """The worker processes of a `musicdb serve --workers` process (its spawned children;
    not multiprocessing's resource tracker)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        if int(stat[1]) == parent and b"spawn_main" in command:
            found.add(int(entry.name))
    return found


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def pair(library_db: Path, tmp_path_factory) -> Iterator[tuple[Server, Server]]:  # noqa: F811
    """One server with two workers and one plain server, on the same library."""
    two = start_server(library_db, tmp_path_factory.mktemp("workers"), args=("--workers", "2"))
    one = start_server(library_db, tmp_path_factory.mktemp("single"))
    yield two, one
    for server in (two, one):
        if server.process.poll() is None:
            assert server.stop() == 0, server.stderr()


def songs(server: Server) -> list[str]:
    found = server.call("search3", query="", songCount=100)["searchResult3"]["song"]
    return sorted(s["id"] for s in found)


def test_two_workers_answer_as_one_server_does(pair) -> None:
    two, one = pair
    wait_for(lambda: len(workers_of(two.process.pid)) == 2, "two workers")
    assert songs(two) == songs(one)
    assert len(songs(one)) >= len(serving.LIBRARY_SONGS)
    for song in songs(one):
        # many requests, so both workers answer some (the kernel spreads the connections)
        for _ in range(4):
            mine = two.call("getSimilarSongs2", id=song, count=5)["similarSongs2"]["song"]
            theirs = one.call("getSimilarSongs2", id=song, count=5)["similarSongs2"]["song"]
            assert [s["id"] for s in mine] == [s["id"] for s in theirs]
            two.client.close()  # a new connection each time: another worker may take it
            two.client = type(two.client)(timeout=60)


def test_a_worker_that_dies_is_replaced(pair) -> None:
    two, _ = pair
    wait_for(lambda: len(workers_of(two.process.pid)) == 2, "two workers")
    victim = min(workers_of(two.process.pid))
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(workers_of(two.process.pid)) == 2
             and victim not in workers_of(two.process.pid), "a new worker")
    assert two.call("ping")["status"] == "ok"
    assert two.process.poll() is None


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_stop_ends_every_worker(library_db: Path, tmp_path: Path, sig) -> None:  # noqa: F811
    server = start_server(library_db, tmp_path, args=("--workers", "2"))
    wait_for(lambda: len(workers_of(server.process.pid)) == 2, "two workers")
    workers = workers_of(server.process.pid)
    assert server.stop(sig) == 0, server.stderr()
    assert "musicdb serve: stopped" in server.stderr()
    assert "Traceback" not in server.stderr()
    for pid in workers:  # reaped by the parent before it exits
        assert not Path(f"/proc/{pid}").exists()


def test_a_bad_database_is_one_line_before_any_worker(tmp_path: Path) -> None:
    (tmp_path / "not.duckdb").write_text("not a database at all\n")
    for db in ("missing.duckdb", "not.duckdb"):
        done = subprocess.run([MUSICDB, "serve", "--db", str(tmp_path / db), "--port", "0",
                               "--workers", "2", "--users", str(tmp_path / "users.json")],
                              capture_output=True, text=True, timeout=DEADLINE_S)
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert db in lines[0], done.stderr
        assert "Traceback" not in done.stderr
