"""What runs on a Dask worker for `ingest --scheduler`: its one-time setup and each job's wrapper.

The wrapper gives a Dask worker what a local pool worker has: the file checked readable first
(a worker that mounts the library elsewhere, or not at all, names the path it tried and
itself), and a deadline per file. A Dask task cannot be stopped, so the analysis runs in a
thread of its own and the task returns `Stuck` once its seconds are up: the client then
restarts that worker (its nanny starts a fresh process), which ends the stuck thread.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from distributed import WorkerPlugin, get_worker
from distributed.core import Status

from musicdb.workers.arena import one_malloc_arena
from musicdb.workers.executor import JobFailed, call


class AnalysisSetup(WorkerPlugin):
    """Every worker process as the local pool's forkserver (musicdb.workers.preload): BLAS
    held to one thread, freed arrays kept, librosa imported and the compiled kernels loaded
    before the first file (so that load is not inside its deadline), compiled on a first run
    under the cache's lock: two workers compiling at once left a cache that crashed every
    later load (SIGSEGV), seen with local:2 on a fresh cache."""

    name = "musicdb-analysis-setup"

    def __init__(self, ignore_ctrl_c: bool = False) -> None:
        # local:N's workers share the terminal's Ctrl-C: it is the client's to handle (it
        # writes what is finished, then closes the cluster), as the pool's workers ignore it.
        self.ignore_ctrl_c = ignore_ctrl_c

    def setup(self, worker: Any) -> None:
        if self.ignore_ctrl_c:
            with contextlib.suppress(ValueError):  # not the main thread: leave it
                signal.signal(signal.SIGINT, signal.SIG_IGN)
        one_malloc_arena()  # for `dask worker`s; local:N's have it from their forkserver
        import musicdb.workers.preload  # noqa: F401 - its import is the setup


@dataclass(frozen=True)
class Stuck:
    """A job still running past its seconds on `worker`: abandoned; the worker must go."""

    seconds: float
    worker: str


def worker_address() -> str:
    try:
        return get_worker().address
    except ValueError:  # not on a worker (a test calling this directly)
        return "this process"


def run_job(work: Callable[..., Any], args: tuple, seconds: float | None,
            path: str | None) -> Any:
    """work(*args) on this worker: a JobFailed if `path` cannot be read here or the work
    raised, Stuck if it is still running after `seconds`."""
    if path is not None:
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            return JobFailed(f"the Dask worker {worker_address()} cannot read {path}: "
                             f"{exc.strerror or exc}")
    if seconds is None:
        return _tagged(call(work, args))
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(call(work, args)), daemon=True,
                              name="musicdb-analysis")
    thread.start()
    thread.join(seconds)
    if not box:
        _take_no_more_work()
        return Stuck(seconds, worker_address())
    return _tagged(box[0])


def _take_no_more_work() -> None:
    """Pause this worker before its Stuck goes back: the scheduler sends it no next file,
    which the restart that ends the stuck thread would kill mid-analysis (seen under load:
    the next file came back as an error with no exception)."""
    with contextlib.suppress(ValueError):  # not on a worker
        worker = get_worker()
        # Queued on the event loop ahead of this task's result: the pause reaches the
        # scheduler first.
        worker.loop.add_callback(setattr, worker, "status", Status.paused)


def _tagged(result: Any) -> Any:
    """An exception's JobFailed says where it happened (the local pool's says nothing more)."""
    if isinstance(result, JobFailed):
        return JobFailed(f"on the Dask cluster: {result.reason}")
    return result
