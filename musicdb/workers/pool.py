"""Worker processes that survive one of them dying: the file that killed it is named, not lost.

concurrent.futures' ProcessPoolExecutor marks the whole pool broken when a worker dies (a
decoder crashing on a strange file), fails every pending job with it, cannot say which file
did it, and its shutdown can hang on a sibling left blocked (seen once in three runs). Here
each worker has its own pipe and one job at a time, so the parent knows exactly which job a
dead worker held: that job comes back as a JobFailed, a fresh worker takes the dead one's
place, and the other jobs go on. An exception a job raises comes back as a JobFailed too.
A job may carry a deadline: a worker still busy past it (a decoder spinning on a strange
file) is killed and replaced the same way, and its job comes back as a JobFailed that says so.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from typing import Any

from musicdb.errors import WorkerError
from musicdb.workers.executor import JobFailed, call

# What a user can do when no worker can start: the forkserver preloads librosa and the
# compiled kernels, and a damaged kernel cache (or a crashing library) kills it at once.
FORKSERVER_DIED = (
    "the analysis worker processes could not start: their server died while loading the "
    "analysis libraries (a damaged kernel cache? delete the folder NUMBA_CACHE_DIR names, "
    "~/.cache/musicdb/numba by default, and run again; MUSICDB_TRACEBACKS=1 shows its error)")

STOP_TIMEOUT_S = 5.0  # a worker told to stop gets this long before it is killed


def analysis_context() -> BaseContext:
    """The forkserver that analysis workers fork from, started now if it is not running.

    It imports librosa and loads the compiled kernels once (musicdb.workers.preload, ~1.6 s)
    before it forks any worker; ensure_running returns at once, so that preload overlaps
    whatever the caller does next (its own imports, the scan, hashing) instead of delaying
    the first analysis. Cheap to call again.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["musicdb.workers.preload"])
    multiprocessing.forkserver.ensure_running()
    return ctx


def _forkserver_pid() -> int | None:
    return getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)


def _stop_forkserver() -> None:
    """Stop the forkserver now, even in the middle of its preload (it would finish that first,
    then notice that this process is gone). Its lock on the kernel cache dies with it."""
    server = multiprocessing.forkserver._forkserver
    pid = _forkserver_pid()
    if pid is None or not hasattr(server, "_stop"):  # another Python's internals: let it be
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(OSError, ChildProcessError):
        server._stop()  # closes its pipe and reaps it


def _serve(conn: Connection, work: Callable[..., Any]) -> None:
    """A worker's loop: (key, args) in, (key, work(*args)) out, until None or a closed pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # Its own process group: a worker stopped at its deadline takes the ffmpeg it started
    # (and anything else below it) along, instead of leaving it spinning as an orphan.
    with contextlib.suppress(OSError):
        os.setpgrp()
    if os.environ.get("MUSICDB_TRACEBACKS") != "1":
        _quiet_stderr()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone (killed mid-send: a reset pipe)
            return
        if message is None:
            return
        key, args = message
        result = call(work, args)
        try:
            conn.send((key, result))
        except OSError:
            return  # the parent is gone (killed): nobody to answer, nothing to print
        except Exception as exc:  # noqa: BLE001 - a result that cannot be pickled: say so
            try:
                conn.send((key, JobFailed(f"its result cannot be sent back: {exc}")))
            except OSError:
                return


def _quiet_stderr() -> None:
    """Decoders' own chatter (mpg123's "Illegal Audio-MPEG-Header ... Trying to resync" on a
    damaged mp3) would land between the progress bar's lines: each file's error row already
    says what went wrong. The worker's fd 2 goes to /dev/null; MUSICDB_TRACEBACKS=1 keeps it."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)


class _Worker:
    def __init__(self, ctx: BaseContext, work: Callable[..., Any]) -> None:
        self.conn, child_end = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child_end, work), daemon=True)
        try:
            self.process.start()
        except (EOFError, ConnectionError) as exc:  # the forkserver died loading its libraries
            raise WorkerError(FORKSERVER_DIED) from exc
        child_end.close()
        self.key: Any = None
        self.busy = False
        self.deadline: float | None = None  # time.monotonic() by which the job must be done
        self.allowed: float | None = None

    def give(self, key: Any, args: tuple, seconds: float | None = None) -> None:
        self.key, self.busy = key, True
        self.allowed = seconds
        self.deadline = None if seconds is None else time.monotonic() + seconds
        # A worker that died since its last answer (or at start): collect() reports it.
        with contextlib.suppress(OSError):
            self.conn.send((key, args))

    def overdue(self, now: float) -> bool:
        return self.busy and self.deadline is not None and now >= self.deadline

    def collect(self, now: float) -> tuple[Any, Any] | None:
        """(key, result) of the job in hand, (key, JobFailed) if the process died or is past
        its deadline (then it is killed), or None while it works."""
        if self.overdue(now) and not self.conn.poll():
            self.kill()
            self.process.join(STOP_TIMEOUT_S)
            self.busy = False
            return self.key, JobFailed.overdue(self.allowed or 0.0)
        if self.conn.poll():  # an answer, or the end of a dead worker's pipe
            try:
                answer = self.conn.recv()
            except (EOFError, OSError):
                pass  # died before or while answering
            else:
                self.busy = False
                return answer
        elif self.process.is_alive():
            return None
        self.process.join(STOP_TIMEOUT_S)
        self.busy = False
        return self.key, JobFailed.died(self.process.exitcode)

    def stop(self) -> None:
        if self.process.is_alive() and not self.busy:
            with contextlib.suppress(OSError):  # its end of the pipe may be gone already
                self.conn.send(None)
            self.process.join(STOP_TIMEOUT_S)
        if self.process.is_alive():
            self.kill()
            self.process.join(STOP_TIMEOUT_S)
        self.conn.close()

    def kill(self) -> None:
        """SIGKILL to the worker's process group: the worker and the decoders it started."""
        pid = self.process.pid
        try:
            if pid is None or os.getpgid(pid) != pid:
                raise ProcessLookupError  # not (yet) a group of its own
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            self.process.kill()


Job = tuple[Any, tuple] | tuple[Any, tuple, float | None]  # (key, args[, seconds allowed])


class LocalPool:
    """The executor of a local ingest: `slots` worker processes forked from the analysis
    forkserver, each job under its own deadline (its seconds allowed)."""

    analyses_here = True

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self._context: BaseContext | None = None
        self._started_server = False  # this pool started the forkserver (no other user)
        self._used = False

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def warm_up(self) -> None:
        """Start the forkserver's preload now (~1.6 s), so that it overlaps the scan."""
        if self._context is None:
            self._started_server = _forkserver_pid() is None
            self._context = analysis_context()

    def close(self) -> None:
        """Stop a forkserver this pool started and never used (an unchanged re-scan): left
        alone it would go on importing librosa and loading kernels after the run is over,
        keeping a core busy and the terminal's stderr open (`ingest ... 2>&1 | tee log`
        waited seconds for it after the summary)."""
        if self._started_server and not self._used:
            _stop_forkserver()
        self._context, self._started_server = None, False

    def run(self, work: Callable[..., Any], jobs: Iterable[Job]) -> Iterator[tuple[Any, Any]]:
        """As run_in_workers; no more processes than jobs."""
        jobs = list(jobs)
        if not jobs:
            return
        if self._context is None:  # the caller did not warm up early: start it now
            self.warm_up()
        self._used = True
        yield from run_in_workers(work, jobs, min(self.slots, len(jobs)), self._context)


def run_in_workers(work: Callable[..., Any], jobs: Iterable[Job], workers: int,
                   ctx: BaseContext) -> Iterator[tuple[Any, Any]]:
    """work(*args) for each (key, args[, seconds]) in `workers` processes; yields (key, result)
    as done.

    `work` must be importable by name (it is pickled for the workers). A job that raised,
    whose worker died, or that ran past its seconds yields (key, JobFailed); a fresh worker
    replaces a dead or stopped one. Leaving the loop early (Ctrl-C, an exception in the
    caller) stops every worker, killing those still busy.
    """
    queue = iter(jobs)
    pool = [_Worker(ctx, work) for _ in range(workers)]
    try:
        for worker in pool:
            _feed(worker, queue)
        while busy := [w for w in pool if w.busy]:
            deadlines = [w.deadline for w in busy if w.deadline is not None]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout)
            now = time.monotonic()
            for i, worker in enumerate(pool):
                answer = worker.collect(now) if worker.busy else None
                if answer is None:
                    continue
                if not worker.process.is_alive():
                    worker.stop()
                    pool[i] = worker = _Worker(ctx, work)
                _feed(worker, queue)  # before yielding: the caller may take a while
                yield answer
    finally:
        for worker in pool:
            worker.stop()


def _feed(worker: _Worker, queue: Iterator[Job]) -> None:
    job = next(queue, None)
    if job is not None:
        worker.give(*job)
