"""`musicdb ingest`: register sets -> plan -> apply the scan -> analyse on an executor -> write
batch by batch -> similarity tables. One way through; the executor decides where analyses run."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from musicdb.analysis.analyse import DEFAULT_SETS, EXTRACTORS, Analysis, analyse_file
from musicdb.analysis.features import FrameParams, kernels_cached
from musicdb.errors import StoreError, WorkerError
from musicdb.ingest.plan import Job, Progress, ScanPlan, plan
from musicdb.ingest.write import (
    apply_scan,
    record_run,
    register_sets,
    stored_analysis,
    write_batch,
)
from musicdb.store.database import create_views, refresh_similarity, similarity_stale
from musicdb.store.writer import Writer
from musicdb.workers.executor import DIED, Executor, JobFailed

BATCH_FILES = 64  # results per write transaction
BATCH_SECONDS = 5.0  # ...or sooner, so an interrupted run loses little
RETRY_SECONDS = 1.0  # a batch held back by another process's lock is tried again this often
FILE_TIMEOUT_S = 120.0  # every file's allowance before its worker is stopped (plus its length)


class _Quiet:
    def stage(self, text: str) -> None: ...
    def start(self, total: int) -> None: ...
    def advance(self, audio_s: float) -> None: ...


@dataclass
class IngestSummary:
    found: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    moved: int = 0
    missing: int = 0
    tags_updated: int = 0
    extracted_sets: int = 0  # unchanged files that only lacked a feature set
    failed: list[tuple[str, str]] = field(default_factory=list)
    audio_s: float = 0.0
    cpu_s: float = 0.0
    wall_s: float = 0.0
    workers: int = 1
    interrupted: bool = False

    unchanged_failed: int = 0  # unchanged files that failed before (--retry-errors retries)
    not_reached: int = 0  # files an interruption stopped before their analysis
    unwritten: int = 0  # analysed, but the interruption came while another process held the file
    copied: int = 0  # files whose content was analysed already: values copied, not recomputed
    # (path, reason) of folders that could not be listed: their songs are not marked missing
    unreadable_folders: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failed_count(self) -> int:
        return len(self.failed)

    @property
    def library_changed(self) -> bool:
        """Anything the similarity tables read changed: songs, paths, labels, features."""
        return bool(self.new or self.changed or self.moved or self.missing or self.tags_updated
                    or self.extracted_sets or self.failed)

    @property
    def nothing_ingested(self) -> bool:
        """Files were found and not one of them is usable: the run failed."""
        usable = self.new + self.changed + self.unchanged + self.moved + self.extracted_sets
        return self.found > 0 and usable == 0

    @property
    def realtime(self) -> float:
        return self.audio_s / self.wall_s if self.wall_s > 0 else 0.0

    def add_scan(self, scan: ScanPlan) -> None:
        self.found, self.moved, self.missing = scan.found, scan.moved, len(scan.gone)
        self.unchanged, self.unchanged_failed = scan.unchanged, scan.unchanged_failed
        self.unreadable_folders = scan.unreadable_folders


Analyse = Callable[..., Analysis]  # analyse_file's signature


def _analyse(jobs: list[Job], executor: Executor, analyse: Analyse, snippet_seconds: float,
             params: FrameParams, file_timeout: float) -> Iterator[tuple[Job, Analysis]]:
    """Each job's analysis on the executor, as they finish; each file with its deadline."""
    # Largest files first, when several run at once: one started last would leave the others
    # idle. One at a time, the scan's order is kept (writes follow the folders).
    ordered = sorted(jobs, key=lambda job: -job.candidate.size) if executor.slots > 1 else jobs
    work = ((i, (str(job.candidate.path), job.sets, snippet_seconds, params),
             job.seconds_allowed(file_timeout)) for i, job in enumerate(ordered))
    for i, result in executor.run(analyse, work):
        yield ordered[i], _as_analysis(ordered[i], result)


def _as_analysis(job: Job, result: Analysis | JobFailed) -> Analysis:
    """The one place a failed job (it raised, its process died, it overran its time) becomes
    this file's error."""
    if not isinstance(result, JobFailed):
        return result
    reason = result.reason
    if job.kind == "retry" and reason.startswith(DIED):  # killed twice: no more automatic tries
        reason = reason.replace(DIED, DIED.replace(" died ", " died again "), 1)
    return Analysis(str(job.candidate.path), False, error=reason)


def _still_there(job: Job, result: Analysis) -> Analysis:
    """The result, or an error if the file changed while it was analysed (still written)."""
    try:
        st = job.candidate.path.stat()
    except OSError as exc:
        return Analysis(result.path, False, error=f"it vanished while being analysed: "
                        f"{exc.strerror or exc}")
    if (st.st_size, st.st_mtime_ns) != (job.candidate.size, job.candidate.mtime_ns):
        return Analysis(result.path, False, error="it changed while being analysed (still "
                        "being written?): run again to ingest it")
    return result


def _once_per_content(jobs: list[Job], run: Callable[[list[Job]], Iterator[tuple[Job, Analysis]]]
                      ) -> Iterator[tuple[Job, Analysis]]:
    """Run the analysis once per distinct content: identical files share one result."""
    twins: dict[tuple, list[Job]] = {}
    for job in jobs:
        twins.setdefault(job.content_key, []).append(job)
    for group in twins.values():
        for twin in group[1:]:
            twin.twin = True
    for job, result in run([group[0] for group in twins.values()]):
        for twin in twins[job.content_key]:
            yield twin, result


def _count(summary: IngestSummary, job: Job, result: Analysis) -> None:
    analysed = job.copy_from is None and not job.twin and job.failure is None  # once, for speed
    summary.cpu_s += result.cpu_s if analysed else 0.0
    if result.ok:
        summary.audio_s += (result.duration_s or 0.0) if analysed else 0.0
        kind = {"new": "new", "changed": "changed", "retry": "changed",
                "sets": "extracted_sets"}[job.kind]
        setattr(summary, kind, getattr(summary, kind) + 1)
    else:
        summary.failed.append((str(job.candidate.path), result.error or "unknown"))


def check_sets(sets: tuple[str, ...]) -> None:
    """Refuse an unknown feature set before anything is scanned, opened or started."""
    unknown = [s for s in sets if s not in EXTRACTORS]
    known = ", ".join(sorted(EXTRACTORS))
    if not sets:
        raise StoreError(f"no feature set given; extracted sets: {known}")
    if unknown:
        raise StoreError(f"unknown feature set(s) {', '.join(map(repr, unknown))}; extracted "
                         f"sets: {known}")


def ingest(writer: Writer, paths: list[Path], *,
           executor: Executor | None = None, sets: tuple[str, ...] = DEFAULT_SETS,
           snippet_seconds: float = 30.0, retry_errors: bool = False,
           progress: Progress | None = None, params: FrameParams = FrameParams(),
           analyse: Analyse | None = None, file_timeout: float = FILE_TIMEOUT_S) -> IngestSummary:
    """Bring the database up to date with the audio files under `paths`.

    `writer` (musicdb.store.writer.Writer, entered) opens the database only while it writes:
    the sets and the scan's changes, each batch of results, the similarity tables at the end.
    The scan reads it on a read-only connection. Between writes other programs can read it.
    `executor` (musicdb.workers.executor) runs the analyses: default, a local pool with a
    worker per core. Its warm_up() is called once the plan knows a file may need
    analysing (before hashing, so the start overlaps it): an unchanged re-scan starts none.
    `analyse` turns one file into an Analysis (default: analyse_file, looked up at call time).
    `file_timeout`: seconds every file may take, plus TIMEOUT_PER_AUDIO_S per second of audio
    it declares; past that, an executor that can stop a job does, and the file is an error row.
    """
    check_sets(sets)
    if executor is None:
        from musicdb.workers.pool import LocalPool

        executor = LocalPool(os.cpu_count() or 1)
    analyse = analyse or analyse_file
    started, wall0 = datetime.now(), time.perf_counter()
    progress = progress or _Quiet()
    summary = IngestSummary()
    with writer.writing() as con:
        set_ids = register_sets(con, sets, snippet_seconds, params)
    with writer.reading() as con:  # the scan and hashing may take minutes: readers welcome
        # The workers start only when a file may need analysing: an unchanged re-scan
        # starts none (2-4 s of a 10,000-file re-scan on two busy cores).
        scan = plan(con, paths, set_ids, progress, retry_errors, on_work=executor.warm_up)
        jobs = scan.jobs
        refused = [job for job in jobs if job.failure is not None]
        copies = [(job, stored_analysis(con, job, set_ids)) for job in jobs
                  if job.copy_from is not None and job.failure is None]
    summary.add_scan(scan)
    if not scan.writes_nothing:  # an unchanged re-scan opens the file for writing no more
        with writer.writing() as con:
            summary.tags_updated = apply_scan(con, scan)
    fresh = [job for job in jobs if job.copy_from is None and job.failure is None]
    distinct = len({job.content_key for job in fresh})  # the analyses to run
    summary.copied = len(copies) + len(fresh) - distinct
    summary.workers = min(executor.slots, max(1, distinct))
    if distinct and executor.analyses_here and not kernels_cached():
        # No estimate: it took 20 s on an idle machine and 140 s on a busy one. The bar's
        # clock shows the time passing, and the first file finishes when it is done.
        progress.stage("compiling the analysis kernels, the first run on this machine only "
                       "(the bar's clock shows the time it takes)")
    progress.start(len(jobs))
    results = itertools.chain(
        ((job, Analysis(str(job.candidate.path), False, error=job.failure)) for job in refused),
        copies,
        ((job, _still_there(job, result) if result.ok else result)
         for job, result in _once_per_content(fresh, lambda todo: _analyse(
             todo, executor, analyse, snippet_seconds, params, file_timeout))))
    processed = _write_as_they_come(writer, results, set_ids, summary, progress)
    summary.not_reached = len(jobs) - processed
    _finish(writer, started, paths, sets, summary, progress, wall0)
    return summary


def _finish(writer: Writer, started: datetime, paths: list[Path], sets: tuple[str, ...],
            summary: IngestSummary, progress: Progress, wall0: float) -> None:
    """The similarity tables (when anything changed) and the run's record, in one open.

    After an interruption, or a run that changed nothing, only the record, and only if the
    file is free at once: a reader's shell is not waited for when no song would be lost."""
    if not summary.interrupted and not summary.library_changed:
        with writer.reading() as con:
            nothing_to_do = not similarity_stale(con)
        if nothing_to_do:
            summary.wall_s = time.perf_counter() - wall0
            writer.attempt(lambda con: record_run(con, started, paths, sets, summary),
                           checkpoint=True)
            return
    if not summary.interrupted:
        try:
            with writer.writing(checkpoint=True) as con:  # the run's journal into the file
                if summary.library_changed or similarity_stale(con):
                    create_views(con)  # features_<set> follow the current version
                    progress.stage("updating similarity tables")
                    refresh_similarity(con)  # an unchanged re-scan skips this (8 s at 100k)
                summary.wall_s = time.perf_counter() - wall0
                record_run(con, started, paths, sets, summary)
            return
        except KeyboardInterrupt:  # rolled back; still marked stale: the next run rebuilds
            summary.interrupted = True
    summary.wall_s = time.perf_counter() - wall0
    writer.attempt(lambda con: record_run(con, started, paths, sets, summary), checkpoint=True)


def _write_as_they_come(writer: Writer, results: Iterator[tuple[Job, Analysis]],
                        set_ids: dict[str, int], summary: IngestSummary,
                        progress: Progress) -> int:
    """Count and write results in batches; Ctrl-C stops the loop, never loses a written file.

    A batch meeting the file held by another process (a reader's shell) stays pending: the
    analysis goes on, and the write is tried again at a later result, at most once a second,
    with one waiting line. Once every file is analysed, it waits for as long as it takes.
    Returns how many results were taken."""
    pending: list[tuple[Job, Analysis]] = []
    processed, last_write, next_try = 0, time.perf_counter(), 0.0

    def write(con: duckdb.DuckDBPyConnection) -> None:
        write_batch(con, pending, set_ids)

    try:
        for job, result in results:
            processed += 1
            pending.append((job, result))
            _count(summary, job, result)
            progress.advance(result.duration_s or 0.0)
            now = time.perf_counter()
            due = len(pending) >= BATCH_FILES or now - last_write > BATCH_SECONDS
            if due and now >= next_try:
                if writer.attempt(write):
                    pending, last_write = [], now
                else:
                    next_try = now + RETRY_SECONDS
        if pending:
            with writer.writing() as con:  # nothing left to analyse: wait for the file
                write(con)
            pending = []
    except KeyboardInterrupt:
        summary.interrupted = True
        # Finished results are written now if the file is free; a rolled-back batch too.
        if pending and not writer.attempt(write):
            summary.unwritten = len(pending)
    except WorkerError:  # the cluster went away: keep what was analysed, then say so
        if pending:
            writer.attempt(write)
        raise
    return processed
