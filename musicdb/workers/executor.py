"""Where analyses run, behind one interface: in this process, in local worker processes that
survive a crash or a hang (musicdb.workers.pool), or on a Dask cluster (musicdb.workers.cluster).

Every executor has `slots` (how many jobs run at once), `warm_up()` (start what its workers need,
so that it overlaps the caller's scan; nothing for most) and `run(work, jobs)`, which yields
(key, result) as jobs finish. A job that fails, however it fails (an exception, a dead process,
a deadline), yields a JobFailed: the caller turns that into an error in one place.
"""

from __future__ import annotations

import os
import signal
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

# (key, args, seconds allowed or None): executors that cannot stop a job ignore the seconds.
Job = tuple[Any, tuple, float | None]

DIED = "the analysis process died while reading this file"
OVERDUE = "analysis took longer than"


@dataclass(frozen=True)
class JobFailed:
    """The result of a job that raised, whose process died, or that ran past its deadline."""

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
        return cls(f"{DIED} ({how})")

    @classmethod
    def overdue(cls, seconds: float) -> JobFailed:
        return cls(f"{OVERDUE} {seconds:.0f} s, so its process was stopped (a decoder stuck "
                   "on a damaged file?); --file-timeout allows more")


def call(work: Callable[..., Any], args: tuple) -> Any:
    """work(*args), or a JobFailed naming the exception it raised.

    A bug met on one strange file becomes that file's error, not the end of an hours-long run.
    Its error row names the exception; the traceback goes to stderr only with
    MUSICDB_TRACEBACKS=1 (for a bug report), so a library of odd files prints no tracebacks.
    """
    try:
        return work(*args)
    except Exception as exc:  # noqa: BLE001 - reported, not hidden: see above
        if os.environ.get("MUSICDB_TRACEBACKS") == "1":
            traceback.print_exc()
        return JobFailed(f"{type(exc).__name__}: {exc}".splitlines()[0])


class Executor(Protocol):
    slots: int  # jobs at once
    analyses_here: bool  # whether jobs run on this machine (with its compiled kernels)

    def warm_up(self) -> None: ...

    def run(self, work: Callable[..., Any], jobs: Iterable[Job]
            ) -> Iterator[tuple[Any, Any]]: ...


class InProcess:
    """Jobs one after another in this process, in the order given: for tests that count or
    patch analyses. No deadline: a job that hangs hangs the caller."""

    slots = 1
    analyses_here = True

    def warm_up(self) -> None:
        """Nothing to start."""

    def run(self, work: Callable[..., Any], jobs: Iterable[Job]) -> Iterator[tuple[Any, Any]]:
        from threadpoolctl import threadpool_limits

        from musicdb.workers.allocator import keep_freed_memory

        keep_freed_memory()  # as the pool's workers do (musicdb.workers.preload)
        with threadpool_limits(1):  # one slot, one core
            for key, args, _seconds in jobs:
                yield key, call(work, args)


def open_executor(workers: int | None = None, scheduler: str | None = None,
                  path_map: tuple[str, ...] = ()) -> AbstractContextManager[Executor]:
    """The executor `ingest --workers N` / `--scheduler ADDR|local[:N]` asks for (all cores by
    default); closed at the end of the `with` (a Dask client is disconnected, a local Dask
    cluster stopped, a worker pool's unused forkserver stopped). `path_map`: '/here=/there'
    prefixes for Dask workers that mount the library elsewhere."""
    if scheduler is not None:
        from musicdb.workers.cluster import Cluster  # distributed: ~1 s to import

        return Cluster(scheduler, path_map)
    from musicdb.workers.pool import LocalPool

    return LocalPool(workers or os.cpu_count() or 1)
