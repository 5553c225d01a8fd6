"""Analysis on a Dask cluster, for libraries bigger than one machine: `ingest --scheduler ADDR`,
or `--scheduler local[:N]` for a cluster of N worker processes on this machine.

The writer stays in this process; each file's analysis runs on whichever Dask worker is free.
Workers open the files themselves (the scheduler is sent paths, not audio): a worker that
mounts the library elsewhere is told so by `--path-map /here=/there`, and musicdb must be
installed there. Start workers as processes with one thread each (`dask worker ADDR --nthreads
1 --nworkers N`): the analysis is CPU-bound Python around numpy, so threads of one process
would share a GIL.

Faults: a worker that dies mid-file (killed, out of memory) is Dask's to handle: the file runs
again on another worker; a file whose workers keep dying becomes an error row once the
scheduler gives up (`local:N` starts its scheduler with allowed-failures 1: the second death).
A file past its deadline (the same seconds the local pool allows) is abandoned and its
worker restarted by its nanny (musicdb.workers.dask_task). A scheduler that goes away ends the
run (everything written is kept; the same command resumes).

Backpressure: at most IN_FLIGHT_PER_THREAD jobs per worker thread are submitted at a time,
and results stay on the workers until this process takes them, one at a time: the client
holds one result and the batch being written, whatever the library's size.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import multiprocessing.forkserver
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import PurePosixPath
from typing import Any

import dask
from distributed import Client, KilledWorker, LocalCluster, as_completed
from distributed.utils import get_mp_context

from musicdb.errors import WorkerError
from musicdb.workers.dask_task import AnalysisSetup, Stuck, run_job
from musicdb.workers.executor import Job, JobFailed

CONNECT_TIMEOUT_S = 10
IN_FLIGHT_PER_THREAD = 2  # jobs handed to the scheduler ahead, per worker thread
WORKERS_REFRESH_S = 1.0  # how often the count of live workers is asked for
LOCAL_ALLOWED_FAILURES = 1
DIED_TIMES = "the analysis process died {times} on this file"
LOCAL_SCHEDULER = {  # the scheduler local:N starts; a remote one's own settings apply there
    # A file's second dead worker makes it an error row (Dask's default is a fourth).
    "distributed.scheduler.allowed-failures": LOCAL_ALLOWED_FAILURES,
    # A worker holds only the file it analyses: a worker killed by one file counts no death
    # against a file merely queued behind it.
    "distributed.scheduler.worker-saturation": 1.0,
    # The analysis runs in a thread (dask_task.run_job), and a thread's glibc arena unmaps
    # each freed block array whatever keep_freed_memory says: one arena keeps the pool's
    # allocator settings (measured: 0.91 -> 0.76 CPU s on one file, 11,000 -> 100 page
    # faults). Set before the worker's interpreter starts: glibc reads it once.
    "distributed.nanny.pre-spawn-environ.MALLOC_ARENA_MAX": 1,
    # The workers' sampling profiler (a thread walking every stack each 10 ms) is for the
    # dashboard, which local:N does not start.
    "distributed.worker.profile.enabled": False,
    # Workers fork from one server that has loaded everything (local_forkserver).
    "distributed.worker.multiprocessing-method": "forkserver",
}
FORKSERVER_PRELOAD = ["musicdb.workers.dask_preload", "distributed"]


def local_workers(scheduler: str) -> int | None:
    """N for `local` (all cores) or `local:N`; None for a scheduler's address."""
    name, _, count = scheduler.partition(":")
    if name != "local":
        return None
    if not count:
        return os.cpu_count() or 1
    if not count.isdigit() or int(count) < 1:
        raise WorkerError(f"--scheduler {scheduler}: local:N needs a whole number of worker "
                          "processes, at least 1 (e.g. local:4)")
    return int(count)


def local_forkserver() -> None:
    """local:N's workers fork from a forkserver that imported distributed and librosa and
    loaded the compiled kernels once (musicdb.workers.dask_preload), as the local pool's
    workers do, instead of each spawned interpreter doing all of it again (and a restarted
    worker starts in a moment). Call with LOCAL_SCHEDULER set."""
    # distributed's own preload list first, then ours in its place; the server starts now.
    get_mp_context().set_forkserver_preload(FORKSERVER_PRELOAD)
    multiprocessing.forkserver.ensure_running()


class PathMap:
    """Prefixes of this machine's paths and where the workers see them: '/here=/there'."""

    def __init__(self, pairs: Iterable[str] = ()) -> None:
        self.prefixes: list[tuple[PurePosixPath, PurePosixPath]] = []
        for pair in pairs:
            here, sep, there = pair.partition("=")
            if not sep or not here.startswith("/") or not there.startswith("/"):
                raise WorkerError(f"--path-map {pair!r}: give /local/prefix=/worker/prefix, "
                                  "both absolute")
            self.prefixes.append((PurePosixPath(here), PurePosixPath(there)))
        # The longest prefix wins: /music/classical=... before /music=...
        self.prefixes.sort(key=lambda p: -len(p[0].parts))

    def to_worker(self, path: str) -> str:
        here = PurePosixPath(path)
        for local, remote in self.prefixes:
            if here.is_relative_to(local):
                return str(remote / here.relative_to(local))
        return path


class Cluster:
    """The executor of `ingest --scheduler`: a client of a Dask scheduler (given by address,
    or a LocalCluster started here and closed at the end); `slots` is how many jobs run at
    once over there (its workers' threads)."""

    analyses_here = False

    def __init__(self, scheduler: str, path_map: Iterable[str] = ()) -> None:
        self.address = scheduler
        self.path_map = PathMap(path_map)
        self.local_workers = local_workers(scheduler)
        self.cluster: LocalCluster | None = None
        self.client: Client | None = None
        self._alive = (0.0, 0)  # (when asked, worker threads)
        self._starting: threading.Thread | None = None  # local:N's start, in the background
        self._start_error: BaseException | None = None
        if self.local_workers is not None:
            self.slots = self.local_workers  # started by warm_up(): a re-scan starts none
        else:
            self._connect(scheduler)
            self.slots = self.threads()
            if self.slots == 0:
                self.close()
                raise WorkerError(f"the Dask scheduler at {scheduler} has no workers")

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        starting = self._starting
        if starting is not None and starting is not threading.current_thread():
            starting.join()  # a cluster half started would outlive this process
            self._starting = None
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None

    def warm_up(self) -> None:
        """Start the local cluster, in the background: its few seconds (spawning each worker,
        which imports distributed and librosa and loads the kernels) overlap the scan's
        hashing, as the pool's forkserver does; run() waits for it. A remote cluster's
        workers set themselves up when they join (AnalysisSetup)."""
        if self.local_workers is not None and self.client is None and self._starting is None:
            self._starting = threading.Thread(target=self._start_local, daemon=True,
                                              name="musicdb-local-cluster")
            self._starting.start()

    def _start_local(self) -> None:
        try:
            with dask.config.set(LOCAL_SCHEDULER):
                local_forkserver()
                self.cluster = LocalCluster(
                    n_workers=self.local_workers, threads_per_worker=1, processes=True,
                    # Its HTTP routes on a free loopback port: None means 8787, and
                    # another cluster there costs a retry and a leaked socket.
                    dashboard_address="127.0.0.1:0", memory_limit=0,
                    silence_logs=logging.CRITICAL)  # each fault is its file's error row
            self._connect(self.cluster.scheduler_address)
        except BaseException as exc:  # noqa: BLE001 - raised where run() waits for it
            self._start_error = exc

    def _started(self) -> Client:
        """The client, once warm_up's start is done; that start's error raised here."""
        self.warm_up()
        if self._starting is not None:
            self._starting.join()
            self._starting = None
        error, self._start_error = self._start_error, None
        if error is not None:
            raise error
        assert self.client is not None
        return self.client

    def _connect(self, address: str) -> None:
        try:
            self.client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s",
                                 set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise WorkerError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        try:
            self.client.register_plugin(  # fails if a worker lacks musicdb
                AnalysisSetup(ignore_ctrl_c=self.cluster is not None))
        except Exception as exc:  # whatever a worker raised: one line, then stop
            self.close()
            raise WorkerError(f"the Dask workers at {address} could not be set up (is "
                              f"musicdb installed on every worker?): {type(exc).__name__}: "
                              f"{exc}".splitlines()[0]) from exc

    def threads(self) -> int:
        """Worker threads alive now (asked of the scheduler at most once a second)."""
        asked, threads = self._alive
        if self.client is not None and time.monotonic() - asked > WORKERS_REFRESH_S:
            try:
                threads = sum(self.client.nthreads().values())
            except (OSError, TimeoutError):  # the scheduler is going: run() says so
                threads = 0
            self._alive = (time.monotonic(), threads)
        return threads

    def workers_alive(self) -> int:
        """For the progress bar: worker processes (one thread each) alive now."""
        return self.threads()

    def run(self, work: Callable[..., Any], jobs: Iterable[Job]) -> Iterator[tuple[Any, Any]]:
        """work(*args) for each (key, args, seconds) on the cluster; yields (key, result) as
        done. args[0], the file's path, is mapped to the workers' (--path-map).

        A job that raised, ran past its seconds, or whose workers kept dying yields
        (key, JobFailed). Leaving the loop early cancels what is still queued.
        """
        client = self._started()
        queue = iter(jobs)
        keys: dict[str, tuple[Any, str | None, str | None]] = {}  # dask key: (key, here, there)
        names = (f"musicdb-{uuid.uuid4().hex[:8]}-{i}" for i in itertools.count())
        done = as_completed([], loop=client.loop)

        def top_up() -> None:
            """Submit until IN_FLIGHT_PER_THREAD jobs wait or run per live worker thread."""
            while done.count() < IN_FLIGHT_PER_THREAD * max(1, self.threads()):
                job = next(queue, None)
                if job is None:
                    return
                key, args, seconds = job
                here = args[0] if args and isinstance(args[0], str) else None
                there = self.path_map.to_worker(here) if here is not None else None
                if there is not None:
                    args = (there, *args[1:])
                future = client.submit(run_job, work, args, seconds, there, pure=False,
                                       key=next(names))
                keys[future.key] = (key, here, there)
                done.add(future)

        top_up()
        try:
            for future in done:
                if future.status not in ("finished", "error", "cancelled"):
                    # Lost with the worker that held its result (status "lost", then pending
                    # again): the scheduler computes it again, so wait for that, not a failure.
                    done.add(future)
                    continue
                key, here, there = keys.pop(future.key)
                result = self._outcome(future, here, there)
                future.release()
                top_up()  # before yielding: the caller may take a while to write
                yield key, result
        finally:
            client.cancel([f for f in done.futures if not f.done()])

    def _outcome(self, future: Any, here: str | None, there: str | None) -> Any:
        """A finished future's result: the analysis (its path this machine's), or a JobFailed."""
        if future.status == "cancelled":  # the scheduler went away: not this file's fault
            # The client's reconnect attempts, cancelled by close(), log tracebacks from here
            # on; the one line below says all of it.
            for name in ("distributed.client", "distributed.comm", "distributed.core"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
            raise WorkerError(f"lost the Dask scheduler at {self.address}; the files written "
                              "so far are kept: run the same command again to go on")
        if future.status != "finished":
            exc = future.exception()
            if isinstance(exc, KilledWorker):
                deaths = exc.allowed_failures + 1
                times = "twice" if deaths == 2 else f"{deaths} times"
                return JobFailed(DIED_TIMES.format(times=times) + f" (each time on another "
                                 f"Dask worker, the last {exc.last_worker.address})")
            return JobFailed(f"on the Dask cluster: {type(exc).__name__}: {exc}"
                             .splitlines()[0])
        result = future.result()
        if isinstance(result, Stuck):
            self._replace_worker(result.worker)
            return JobFailed(f"{JobFailed.overdue(result.seconds).reason} (the Dask worker "
                             f"{result.worker}, restarted)")
        if there != here and getattr(result, "path", None) == there:
            result = dataclasses.replace(result, path=here)
        return result

    def _replace_worker(self, address: str) -> None:
        """Restart a worker whose analysis thread is stuck (its nanny starts a fresh process);
        a worker without a nanny is retired instead. In the background: it takes seconds."""
        client = self.client

        def replace() -> None:
            try:
                status = client.restart_workers([address], raise_for_error=False)
                if status.get(address) != "OK":
                    client.retire_workers([address], close_workers=True)
            except Exception:  # noqa: BLE001 - the client closing meanwhile: nothing to do
                logging.getLogger(__name__).debug("could not restart %s", address)

        if client is not None:
            threading.Thread(target=replace, daemon=True, name="musicdb-restart").start()
