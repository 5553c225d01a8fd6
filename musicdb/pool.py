"""Worker processes that survive one of them dying: the file that killed it is named, not lost.

concurrent.futures' ProcessPoolExecutor marks the whole pool broken when a worker dies (a
decoder crashing on a strange file), fails every pending job with it, cannot say which file
did it, and its shutdown can hang on a sibling left blocked (seen once in three runs). Here
each worker has its own pipe and one job at a time, so the parent knows exactly which job a
dead worker held: that job comes back as a JobFailed, a fresh worker takes the dead one's
place, and the other jobs go on. An exception a job raises comes back as a JobFailed too.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.forkserver
import signal
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from typing import Any

STOP_TIMEOUT_S = 5.0  # a worker told to stop gets this long before it is killed


def analysis_context() -> BaseContext:
    """The forkserver that analysis workers fork from, started now if it is not running.

    It imports librosa and loads the compiled kernels once (musicdb.worker_preload, ~1.6 s)
    before it forks any worker; ensure_running returns at once, so that preload overlaps
    whatever the caller does next (its own imports, the scan, hashing) instead of delaying
    the first analysis. Cheap to call again.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["musicdb.worker_preload"])
    multiprocessing.forkserver.ensure_running()
    return ctx


@dataclass(frozen=True)
class JobFailed:
    """The result of a job that raised in its worker, or whose worker process died."""

    reason: str

    @classmethod
    def died(cls, exitcode: int | None) -> JobFailed:
        if exitcode is not None and exitcode < 0:
            try:
                how = f"killed by {signal.Signals(-exitcode).name}"
            except ValueError:
                how = f"killed by signal {-exitcode}"
        else:
            how = f"exit code {exitcode}"
        return cls(f"the analysis process died while reading this file ({how})")


def _serve(conn: Connection, work: Callable[..., Any]) -> None:
    """A worker's loop: (key, args) in, (key, work(*args)) out, until None or a closed pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        key, args = message
        result = call(work, args)
        try:
            conn.send((key, result))
        except Exception as exc:  # noqa: BLE001 - a result that cannot be pickled: say so
            conn.send((key, JobFailed(f"its result cannot be sent back: {exc}")))


def call(work: Callable[..., Any], args: tuple) -> Any:
    """work(*args), or a JobFailed naming the exception it raised (traceback on stderr).

    A bug met on one strange file becomes that file's error, not the end of an hours-long run.
    """
    try:
        return work(*args)
    except Exception as exc:  # noqa: BLE001 - reported, not hidden: see above
        traceback.print_exc()
        return JobFailed(f"{type(exc).__name__}: {exc}".splitlines()[0])


class _Worker:
    def __init__(self, ctx: BaseContext, work: Callable[..., Any]) -> None:
        self.conn, child_end = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child_end, work), daemon=True)
        self.process.start()
        child_end.close()
        self.key: Any = None
        self.busy = False

    def give(self, key: Any, args: tuple) -> None:
        self.key, self.busy = key, True
        # A worker that died since its last answer (or at start): collect() reports it.
        with contextlib.suppress(OSError):
            self.conn.send((key, args))

    def collect(self) -> tuple[Any, Any] | None:
        """(key, result) of the job in hand, (key, JobFailed) if the process died, or None."""
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
            self.process.kill()
            self.process.join(STOP_TIMEOUT_S)
        self.conn.close()


def run_in_workers(work: Callable[..., Any], jobs: Iterable[tuple[Any, tuple]], workers: int,
                   ctx: BaseContext) -> Iterator[tuple[Any, Any]]:
    """work(*args) for each (key, args) in `workers` processes; yields (key, result) as done.

    `work` must be importable by name (it is pickled for the workers). A job that raised,
    or whose worker died, yields (key, JobFailed); a fresh worker replaces a dead one.
    Leaving the loop early (Ctrl-C, an exception in the caller) stops every worker, killing
    those still busy.
    """
    queue = iter(jobs)
    pool = [_Worker(ctx, work) for _ in range(workers)]
    try:
        for worker in pool:
            _feed(worker, queue)
        while busy := [w for w in pool if w.busy]:
            wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for i, worker in enumerate(pool):
                answer = worker.collect() if worker.busy else None
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


def _feed(worker: _Worker, queue: Iterator[tuple[Any, tuple]]) -> None:
    job = next(queue, None)
    if job is not None:
        worker.give(*job)
