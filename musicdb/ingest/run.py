"""`musicdb ingest`: scan -> plan -> extract in worker processes -> one writer, batch by batch."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import duckdb
import numpy as np

from musicdb.analysis.analyse import (
    DEFAULT_SETS,
    EXTRACTORS,
    Analysis,
    SetValues,
    analyse_file,
    set_params,
)
from musicdb.analysis.features import FrameParams, kernels_cached
from musicdb.audio.scan import Candidate, content_hash, find_audio, shown
from musicdb.audio.tags import TAG_FIELDS, TagReadError, read_file_info
from musicdb.errors import StoreError
from musicdb.store import catalog
from musicdb.store.database import (
    FeatureSetDef,
    create_views,
    ensure_feature_set,
    mark_similarity_stale,
    refresh_similarity,
    similarity_stale,
    transaction,
    write_failure,
)
from musicdb.workers.allocator import keep_freed_memory
from musicdb.workers.pool import DIED, JobFailed, analysis_context, call, run_in_workers

if TYPE_CHECKING:  # imported by the caller only when a scheduler is given (distributed: ~1 s)
    from musicdb.workers.cluster import Cluster

BATCH_FILES = 64  # results per write transaction
BATCH_SECONDS = 5.0  # ...or sooner, so an interrupted run loses little
FILE_TIMEOUT_S = 120.0  # every file's allowance before its worker is stopped, plus...
TIMEOUT_PER_AUDIO_S = 0.1  # ...this per second of audio: ~27x slower than a normal analysis
BYTES_PER_AUDIO_S = 16_000  # a 128 kb/s guess when the container declares no length
# Tests that count or patch analyses in this process set this; real runs always analyse in
# worker processes, so that a file that hangs a decoder can be stopped.
RUN_IN_PROCESS = False


class Progress(Protocol):
    def stage(self, text: str) -> None: ...
    def start(self, total: int) -> None: ...
    def advance(self, audio_s: float) -> None: ...


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


@dataclass
class Job:
    candidate: Candidate
    kind: str  # new | changed | sets | retry
    sets: tuple[str, ...]
    tags: dict
    content_hash: str | None
    song_id: int | None = None
    copy_from: int | None = None  # a song with the same content and every set: copy, not analyse
    twin: bool = False  # same content as another job of this run, which is analysed instead
    failure: str | None = None  # known before any analysis (a FIFO, unreadable): its error row
    declared_s: float | None = None  # the length its container declares, when it does

    def seconds_allowed(self, floor: float) -> float:
        audio_s = self.declared_s or self.candidate.size / BYTES_PER_AUDIO_S
        return floor + TIMEOUT_PER_AUDIO_S * audio_s

    @property
    def content_key(self) -> tuple:
        return self.content_hash or str(self.candidate.path), self.sets


def _set_ids(con: duckdb.DuckDBPyConnection, sets: tuple[str, ...],
             snippet_seconds: float, params: FrameParams) -> dict[str, int]:
    unknown = [s for s in sets if s not in EXTRACTORS]
    if unknown:
        raise StoreError(f"unknown feature set(s) {unknown}; extracted sets: {sorted(EXTRACTORS)}")
    with transaction(con, "the feature sets"):
        ids = {name: ensure_feature_set(con, FeatureSetDef(
            name, "extracted", set_params(name, snippet_seconds, params),
            EXTRACTORS[name].names, EXTRACTORS[name].descriptions)) for name in sets}
    create_views(con)  # a new set or version gets its wide views now
    return ids


def _file_row(c: Candidate, tags: dict, digest: str | None) -> dict:
    return {"path": str(c.path), "root": shown(c.root), "folder": c.folder,
            "size_bytes": c.size, "mtime_ns": c.mtime_ns, "content_hash": digest} | tags


def _keep_broader_root(c: Candidate, known_root: str | None) -> Candidate:
    """A song first scanned from ~/Music keeps its folder label when ~/Music/Artist is scanned."""
    if (known_root and Path(known_root) != c.root and c.root.is_relative_to(known_root)
            and c.path.is_relative_to(known_root)):
        parts = c.path.relative_to(known_root).parts
        return Candidate(c.path, Path(known_root), parts[0] if len(parts) > 1 else None,
                         c.size, c.mtime_ns, c.problem)
    return c


def _work_ahead(candidates: list[Candidate], known: dict, present: dict, wanted: set,
                retry_errors: bool) -> bool:
    """Whether some file will surely or likely need analysis (new, changed, sets missing)."""
    for c in candidates:
        row = known.get(str(c.path))
        if c.problem:
            continue
        if row is None or (row.size_bytes, row.mtime_ns) != (c.size, c.mtime_ns):
            return True
        if row.status == "error" and (retry_errors or _retry_once(row)):
            return True
        if row.status != "error" and wanted - present.get(row.song_id, set()):
            return True
    return False


def _retry_once(row: catalog.KnownSong) -> bool:
    """A process that died may have been killed from outside: the next run tries once more."""
    return (row.error or "").startswith(DIED)


def _file_info(c: Candidate) -> tuple[dict, float | None, str | None]:
    """(tags, declared length, why the file cannot be used); never opens a problem file."""
    if c.problem:
        return dict.fromkeys(TAG_FIELDS), None, c.problem
    try:
        tags, length = read_file_info(c.path)
    except TagReadError as exc:
        return dict.fromkeys(TAG_FIELDS), None, str(exc)
    return tags, length, None


def _hash(c: Candidate) -> tuple[str | None, str | None]:
    """(content hash, or None and why it cannot be read). A file whose size or mtime changes
    while it is read is still being written: recorded now, picked up by the next run."""
    try:
        digest = content_hash(c.path)
        st = c.path.stat()
    except OSError as exc:
        return None, f"cannot read it: {exc.strerror or exc}"
    if (st.st_size, st.st_mtime_ns) != (c.size, c.mtime_ns):
        return None, "it changed while being read (still being written?): run again to ingest it"
    return digest, None


def plan(con: duckdb.DuckDBPyConnection, paths: list[Path], set_ids: dict[str, int],
         summary: IngestSummary, progress: Progress, retry_errors: bool,
         local: bool = True) -> list[Job]:
    """Classify every file found and apply the cheap changes (tags, moves, missing) at once."""
    progress.stage("scanning")
    candidates = list(find_audio(paths, summary.unreadable_folders))
    summary.found = len(candidates)
    known = {s.path: s for s in catalog.scanned_songs(con)}
    roots = {r[0]: r[1] for r in con.execute(
        "SELECT path, root FROM songs WHERE source = 'scan'").fetchall()}
    present = catalog.sets_present(con, set_ids.values())
    wanted = set(set_ids.values())
    by_id = {v: k for k, v in set_ids.items()}
    if (local and not RUN_IN_PROCESS
            and _work_ahead(candidates, known, present, wanted, retry_errors)):
        analysis_context()  # its warm-up overlaps tag reading and hashing

    progress.stage(f"reading tags of {len(candidates)} files")
    with ThreadPoolExecutor(max_workers=4) as pool:
        infos = list(pool.map(_file_info, candidates))

    jobs: list[Job] = []
    refresh: list[dict] = []
    to_hash: list[tuple[Candidate, dict, float | None, catalog.KnownSong | None]] = []
    for c, (t, length, problem) in zip(candidates, infos, strict=True):
        c = _keep_broader_root(c, roots.get(str(c.path)))
        row = known.get(str(c.path))
        unchanged = row is not None and (row.size_bytes, row.mtime_ns) == (c.size, c.mtime_ns)
        if problem and not (unchanged and row.status == "error"):
            if unchanged and row.status == "ok":  # e.g. read permission taken away: keep it
                summary.unchanged += 1
                continue
            jobs.append(Job(c, "new" if row is None else "changed", tuple(set_ids), t, None,
                            None if row is None else row.song_id, failure=problem))
            continue
        if not unchanged:
            to_hash.append((c, t, length, row))
            continue
        refresh.append({"song_id": row.song_id, "root": shown(c.root), "folder": c.folder,
                        "status": "error" if row.status == "error" else "ok"} | t)
        if row.status == "error":
            if (retry_errors or _retry_once(row)) and not problem:
                jobs.append(Job(c, "retry", tuple(set_ids), t, row.content_hash, row.song_id,
                                declared_s=length))
            else:
                summary.unchanged_failed += 1
            continue
        lacking = wanted - present.get(row.song_id, set())
        if lacking:
            sets = tuple(by_id[i] for i in sorted(lacking))
            jobs.append(Job(c, "sets", sets, t, row.content_hash, row.song_id,
                            declared_s=length))
        else:
            summary.unchanged += 1

    progress.stage(f"hashing {len(to_hash)} new or changed files")
    with ThreadPoolExecutor(max_workers=4) as pool:
        hashed = list(pool.map(lambda item: _hash(item[0]), to_hash))
    found_paths = {str(c.path) for c in candidates}
    # A known hash whose file has vanished from its old path: the same song, moved.
    vanished = {s.content_hash: s for s in known.values()
                if s.content_hash and s.status != "error" and s.path not in found_paths
                and (not os.path.exists(s.path)  # gone, or spelled through a link or `..`
                     or os.path.realpath(s.path) in found_paths)}
    # Content already in the library with every wanted set (a copy in a second folder).
    analysed = {s.content_hash: s.song_id for s in known.values()
                if s.content_hash and s.status == "ok" and wanted <= present.get(s.song_id, set())}
    moved_ids = set()
    for (c, t, length, row), (digest, problem) in zip(to_hash, hashed, strict=True):
        song_id = None if row is None else row.song_id
        if problem:
            jobs.append(Job(c, "new" if row is None else "changed", tuple(set_ids), t, None,
                            song_id, failure=problem))
        elif row is not None:
            jobs.append(Job(c, "changed", tuple(set_ids), t, digest, song_id, declared_s=length))
        elif digest in vanished:
            old = vanished.pop(digest)
            moved_ids.add(old.song_id)
            refresh.append({"song_id": old.song_id, "status": "ok"}
                           | _file_row(c, t, digest))
            summary.moved += 1
            lacking = wanted - present.get(old.song_id, set())
            if lacking:
                sets = tuple(by_id[i] for i in sorted(lacking))
                jobs.append(Job(c, "sets", sets, t, digest, old.song_id, declared_s=length))
        else:
            jobs.append(Job(c, "new", tuple(set_ids), t, digest, copy_from=analysed.get(digest),
                            declared_s=length))

    dirs = [Path(p).expanduser().resolve() for p in paths if Path(p).is_dir()]
    unlisted = [Path(folder) for folder, _ in summary.unreadable_folders]
    gone = [s.song_id for s in known.values()
            if s.status != "missing" and s.song_id not in moved_ids and s.path not in found_paths
            and any(Path(s.path).is_relative_to(d) for d in dirs)
            and not any(Path(s.path).is_relative_to(u) for u in unlisted)]
    summary.missing = len(gone)

    with transaction(con, "the scan's changes"):
        # Moved rows carry path/size/mtime/hash, unchanged rows do not: update each kind of row
        # only in the columns it has, or the others' would be overwritten with NULL.
        groups: dict[tuple[str, ...], list[dict]] = {}
        for r in refresh:
            groups.setdefault(tuple(sorted(set(r) - {"song_id"})), []).append(r)
        summary.tags_updated = sum(_refresh(con, rows, list(columns))
                                   for columns, rows in groups.items())
        catalog.mark_missing(con, gone)
        if summary.tags_updated or summary.moved or gone:  # labels and paths changed
            mark_similarity_stale(con)
    return jobs


def _refresh(con: duckdb.DuckDBPyConnection, rows: list[dict], columns: list[str]) -> int:
    """Update only rows whose values differ; returns how many changed."""
    if not rows:
        return 0
    rows = [{c: r.get(c) for c in ["song_id", *columns]} for r in rows]
    table = catalog._song_table(rows, ["song_id", *columns])
    con.register("_refresh", table)
    differs = " OR ".join(f"songs.{c} IS DISTINCT FROM u.{c}" for c in columns)
    assignments = ", ".join(f"{c} = u.{c}" for c in columns)
    changed = con.execute(
        f"UPDATE songs SET {assignments}, updated_at = current_timestamp FROM _refresh u "
        f"WHERE songs.song_id = u.song_id AND ({differs})"
    ).fetchone()[0]
    con.unregister("_refresh")
    return int(changed)


Analyse = Callable[..., Analysis]  # analyse_file's signature


def _run_jobs(jobs: list[Job], workers: int, snippet_seconds: float, params: FrameParams,
              analyse: Analyse, cluster: Cluster | None = None, file_timeout: float = FILE_TIMEOUT_S
              ) -> Iterator[tuple[Job, Analysis]]:
    """Analyse jobs: on a Dask cluster if given, else in a pool of local processes (each file
    with its deadline); yields as they finish."""
    if RUN_IN_PROCESS and cluster is None:
        from threadpoolctl import threadpool_limits

        keep_freed_memory()  # as the pool's workers do (see worker_preload)
        with threadpool_limits(1):  # one worker, one core
            for job in jobs:
                path = str(job.candidate.path)
                yield job, _analysis(job, call(analyse, (path, job.sets, snippet_seconds, params)))
        return
    # Largest files first: a long file started last would leave the other workers idle.
    ordered = sorted(jobs, key=lambda job: -job.candidate.size)
    args = [(str(job.candidate.path), job.sets, snippet_seconds, params) for job in ordered]
    if cluster is not None:
        results = cluster.run(analyse, enumerate(args))
    else:
        tasks = ((i, a, ordered[i].seconds_allowed(file_timeout)) for i, a in enumerate(args))
        results = run_in_workers(analyse, tasks, workers, analysis_context())
    for i, result in results:
        yield ordered[i], _analysis(ordered[i], result)


def _analysis(job: Job, result: Analysis | JobFailed) -> Analysis:
    """A JobFailed (a decoder crashed, a file overran its time) as this file's error."""
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


def _copied(con: duckdb.DuckDBPyConnection, job: Job, set_ids: dict[str, int]) -> Analysis:
    """The analysis of a file whose content the library holds already: read, not recomputed."""
    (codec, rate, channels, duration), per_set = catalog.stored_values(
        con, job.copy_from, [set_ids[name] for name in job.sets])
    values = {}
    for name in job.sets:
        rows = per_set[set_ids[name]]
        whole = np.asarray(rows[0][3], dtype=np.float32)  # snippet -1 sorts first
        snippets = rows[1:]
        table = np.array([r[3] for r in snippets], np.float32)
        values[name] = SetValues(whole, table.reshape(len(snippets), whole.size),
                                 [(r[1], r[2]) for r in snippets])
    return Analysis(str(job.candidate.path), True, codec=codec, sample_rate=rate,
                    channels=channels, duration_s=duration, values=values)


def _write_batch(con: duckdb.DuckDBPyConnection, batch: list[tuple[Job, Analysis]],
                 set_ids: dict[str, int]) -> None:
    if not batch:
        return
    new = [job for job, _ in batch if job.song_id is None]
    for job, song_id in zip(new, catalog.reserve_song_ids(con, len(new)), strict=True):
        job.song_id = song_id
    inserts, updates, broken = [], [], []
    rows = catalog.FeatureRows.empty()
    for job, result in batch:
        row = {"song_id": job.song_id, "source": "scan",
               "status": "ok" if result.ok else "error", "error": result.error,
               "codec": result.codec, "sample_rate": result.sample_rate,
               "channels": result.channels, "duration_s": result.duration_s,
               } | _file_row(job.candidate, job.tags, job.content_hash)
        (inserts if job.kind == "new" else updates).append(row)
        if not result.ok and job.kind == "changed":
            broken.append(job.song_id)
        for name, values in result.values.items():
            set_id = set_ids[name]
            rows.add(job.song_id, set_id, -1, 0.0, result.duration_s, values.whole)
            for k, ((start, end), vec) in enumerate(zip(values.bounds, values.snippets,
                                                        strict=True)):
                rows.add(job.song_id, set_id, k, start, end, vec)
    # Ctrl-C mid-write rolls it back, so the final write can redo the batch.
    with transaction(con, f"a batch of {len(batch)} files"):
        catalog.insert_songs(con, inserts)
        catalog.update_songs(con, updates, [c for c in catalog.SONG_COLUMNS
                                            if c not in ("song_id", "imported_label",
                                                         "imported_from")])
        catalog.delete_features(con, broken)
        catalog.replace_features(con, rows)
        mark_similarity_stale(con)  # committed with the rows: a kill before the refresh shows


def ingest(con: duckdb.DuckDBPyConnection, paths: list[Path], *,
           sets: tuple[str, ...] = DEFAULT_SETS, snippet_seconds: float = 30.0,
           workers: int | None = None, retry_errors: bool = False,
           progress: Progress | None = None, params: FrameParams = FrameParams(),
           analyse: Analyse | None = None, cluster: Cluster | None = None,
           file_timeout: float = FILE_TIMEOUT_S) -> IngestSummary:
    """Bring the database up to date with the audio files under `paths`.

    `analyse` turns one file into an Analysis (default: analyse_file, looked up at call time).
    `cluster` (musicdb.workers.cluster.Cluster): analyse on a Dask cluster instead of local workers.
    `file_timeout`: seconds every file may take, plus TIMEOUT_PER_AUDIO_S per second of audio
    it declares; a worker past that is stopped and the file becomes an error row.
    """
    analyse = analyse or analyse_file
    started, wall0 = datetime.now(), time.perf_counter()
    progress = progress or _Quiet()
    workers = cluster.threads if cluster else max(1, workers or os.cpu_count() or 1)
    summary = IngestSummary(workers=workers)
    set_ids = _set_ids(con, sets, snippet_seconds, params)
    jobs = plan(con, paths, set_ids, summary, progress, retry_errors, cluster is None)
    refused = [job for job in jobs if job.failure is not None]
    copies = [job for job in jobs if job.copy_from is not None and job.failure is None]
    fresh = [job for job in jobs if job.copy_from is None and job.failure is None]
    distinct = len({job.content_key for job in fresh})  # the analyses to run
    summary.copied = len(copies) + len(fresh) - distinct
    workers = summary.workers = min(workers, max(1, distinct))
    if distinct and cluster is None and not kernels_cached():
        progress.stage("compiling the analysis kernels: the first run only, ~20 s")
    progress.start(len(jobs))
    batch: list[tuple[Job, Analysis]] = []
    processed, last_write = 0, time.perf_counter()
    results = itertools.chain(
        ((job, Analysis(str(job.candidate.path), False, error=job.failure)) for job in refused),
        ((job, _copied(con, job, set_ids)) for job in copies),
        ((job, _still_there(job, result) if result.ok else result)
         for job, result in _once_per_content(fresh, lambda todo: _run_jobs(
             todo, workers, snippet_seconds, params, analyse, cluster, file_timeout))))
    try:
        for job, result in results:
            processed += 1
            batch.append((job, result))
            analysed = (job.copy_from is None and not job.twin  # counted once, for the speed
                        and job.failure is None)
            summary.cpu_s += result.cpu_s if analysed else 0.0
            if result.ok:
                summary.audio_s += (result.duration_s or 0.0) if analysed else 0.0
                kind = {"new": "new", "changed": "changed", "retry": "changed",
                        "sets": "extracted_sets"}[job.kind]
                setattr(summary, kind, getattr(summary, kind) + 1)
            else:
                summary.failed.append((str(job.candidate.path), result.error or "unknown"))
            progress.advance(result.duration_s or 0.0)
            if len(batch) >= BATCH_FILES or time.perf_counter() - last_write > BATCH_SECONDS:
                _write_batch(con, batch, set_ids)
                batch, last_write = [], time.perf_counter()
    except KeyboardInterrupt:
        summary.interrupted = True
    summary.not_reached = len(jobs) - processed
    _write_batch(con, batch, set_ids)  # finished results are never thrown away
    if not summary.interrupted and (summary.library_changed or similarity_stale(con)):
        progress.stage("updating similarity tables")
        try:
            refresh_similarity(con)  # an unchanged re-scan skips this (8 s at 100,000 songs)
        except KeyboardInterrupt:  # rolled back; still marked stale: the next run rebuilds
            summary.interrupted = True
    summary.wall_s = time.perf_counter() - wall0
    _record_run(con, started, paths, sets, summary)
    return summary


def _record_run(con: duckdb.DuckDBPyConnection, started: datetime, paths: list[Path],
                sets: tuple[str, ...], s: IngestSummary) -> None:
    try:
        con.execute(
            "INSERT INTO ingest_runs (started_at, roots, feature_sets, n_new, n_changed, "
            "n_unchanged, n_moved, n_failed, n_missing, audio_s, wall_s) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [started, [shown(Path(p).expanduser().absolute()) for p in paths], list(sets),
             s.new, s.changed, s.unchanged, s.moved, len(s.failed), s.missing, s.audio_s,
             s.wall_s],
        )
    except duckdb.Error as exc:
        raise write_failure(con, exc, "the run's record") from exc
