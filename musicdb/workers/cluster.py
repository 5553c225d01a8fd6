"""Analysis on a Dask cluster, for libraries bigger than one machine: `ingest --scheduler ADDR`.

The writer stays in this process; each file's analysis runs on whichever Dask worker is free.
Workers open the files themselves (the scheduler is sent paths, not audio), so the library
must be mounted at the same path on every machine, and musicdb installed there. Start
workers as processes with one thread each (`dask worker ADDR --nthreads 1 --nworkers N`):
the analysis is CPU-bound Python around numpy, so threads of one process would share a GIL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from distributed import Client, WorkerPlugin, as_completed

from musicdb.errors import WorkerError
from musicdb.workers.executor import Job, JobFailed

CONNECT_TIMEOUT_S = 10
IN_FLIGHT_PER_THREAD = 2  # jobs handed to the scheduler ahead, per worker thread


class AnalysisSetup(WorkerPlugin):
    """Every worker process: BLAS held to one thread, freed arrays kept (as local workers)."""

    name = "musicdb-analysis-setup"

    def setup(self, worker: Any) -> None:
        from threadpoolctl import threadpool_limits

        from musicdb.workers.allocator import keep_freed_memory

        threadpool_limits(1)
        keep_freed_memory()


class Cluster:
    """The executor of `ingest --scheduler ADDR`: a connection to a Dask scheduler; `slots` is
    how many jobs run at once over there (its workers' threads). A job's seconds are not
    enforced: a Dask worker cannot be stopped from here mid-job."""

    analyses_here = False

    def __init__(self, address: str) -> None:
        self.address = address
        try:
            self.client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s",
                                 set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise WorkerError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        try:
            self.client.register_plugin(AnalysisSetup())  # fails if a worker lacks musicdb
        except Exception as exc:  # whatever a worker raised: one line, then stop
            self.client.close()
            raise WorkerError(f"the Dask workers at {address} could not be set up (is "
                               f"musicdb installed on every worker?): {type(exc).__name__}: "
                               f"{exc}".splitlines()[0]) from exc
        self.slots = sum(self.client.nthreads().values())
        if self.slots == 0:
            self.client.close()
            raise WorkerError(f"the Dask scheduler at {address} has no workers")

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.client.close()

    def warm_up(self) -> None:
        """Nothing to start: the workers set themselves up when they join (AnalysisSetup)."""

    def run(self, work: Callable[..., Any], jobs: Iterable[Job]) -> Iterator[tuple[Any, Any]]:
        """work(*args) for each (key, args, seconds) on the cluster; yields (key, result) as done.

        A job that raised, or whose worker kept dying (Dask retries it elsewhere first),
        yields (key, JobFailed). Leaving the loop early cancels what is still queued.
        """
        queue = iter(jobs)
        keys: dict[str, Any] = {}
        run_id = uuid.uuid4().hex[:8]

        def submit_next() -> list:
            job = next(queue, None)
            if job is None:
                return []
            key, args, _seconds = job
            future = self.client.submit(work, *args, pure=False,
                                        key=f"musicdb-{run_id}-{len(keys)}")
            keys[future.key] = key
            return [future]

        first = [f for _ in range(IN_FLIGHT_PER_THREAD * self.slots) for f in submit_next()]
        if not first:
            return
        done = as_completed(first, loop=self.client.loop)
        try:
            for future in done:
                key = keys[future.key]
                if future.status == "finished":
                    result = future.result()
                elif future.status == "cancelled":  # the scheduler went away: not this file
                    raise WorkerError(f"lost the Dask scheduler at {self.address}; the "
                                       "files written so far are kept: run again to go on")
                else:
                    exc = future.exception()
                    result = JobFailed(f"on the Dask cluster: {type(exc).__name__}: {exc}"
                                       .splitlines()[0])
                future.release()
                for queued in submit_next():
                    done.add(queued)
                yield key, result
        finally:
            self.client.cancel([f for f in done.futures if not f.done()])
