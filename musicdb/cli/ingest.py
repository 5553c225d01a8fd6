"""`musicdb ingest` and `musicdb demo`: folders of audio into the database."""

from __future__ import annotations

import shutil
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from musicdb.cli.app import DEFAULT_DB, DbPath, app, err, out, user_errors

if TYPE_CHECKING:
    from musicdb.ingest.run import IngestSummary
    from musicdb.workers.executor import Executor


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(exists=True, metavar="PATH",
                                                help="Audio files or folders.")],
    db: DbPath = DEFAULT_DB,
    snippet_seconds: Annotated[float, typer.Option(
        min=0, help="Length of the snippets ('mini songs'); 0 = whole songs only.")] = 30.0,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Worker processes [default: all cores].")] = None,
    feature_set: Annotated[str, typer.Option(
        help="Comma-separated feature sets to extract, in one pass: 'default' (131 columns: "
        "seed55 plus MFCC, chroma, contrast per band, roll-off, flatness, loudness and dynamic "
        "range, onset rate, tempo confidence), 'seed55' (the study's 55), 'tonal' (12: "
        "key, mode, two tempo candidates, tempo_stable; the song_keys view) and 'musicnn' "
        "(450: mean and std of musicnn's 200-d embedding, 50 tag probabilities tag_rock ...; "
        "every 4th 3 s patch; an ingest with it takes ~1.5x the CPU, so not in the default). "
        "Sets already extracted with the same parameters are skipped.")] = "default,seed55,tonal",
    n_fft: Annotated[int, typer.Option(
        min=64, help="STFT size; any change makes a new feature-set version.")] = 2048,
    hop_length: Annotated[int, typer.Option(
        min=1, help="STFT hop in samples at 22,050 Hz (441 = 20 ms); a new version too.")] = 441,
    retry_errors: Annotated[bool, typer.Option(
        help="Try again files that failed before and have not changed.")] = False,
    scheduler: Annotated[str | None, typer.Option(
        help="Analyse on a Dask cluster (e.g. tcp://host:8786) instead of local workers; "
        "every worker must have musicdb installed and see the files (at the same paths, or "
        "as --path-map says). 'local' or 'local:N' starts a Dask cluster of N worker "
        "processes here [default N: all cores].")
    ] = None,
    path_map: Annotated[list[str] | None, typer.Option(
        help="With --scheduler: /local/prefix=/worker/prefix, where the workers see files "
        "under /local/prefix (repeatable; the longest prefix applies).")] = None,
    file_timeout: Annotated[float, typer.Option(
        min=1, help="Seconds any one file may take, plus 0.1 s per second of audio it "
        "declares (a 3-hour file: 120 + 1,080 s); a worker past that is stopped and the file "
        "becomes an error row.")] = 120.0,
) -> None:
    """Scan folders for audio, extract features of songs and snippets, store them.

    Incremental: unchanged files are skipped (their tags are still re-read), changed files are
    re-extracted, moved files keep their features, vanished files are marked missing. A bad
    file becomes a row with status 'error' and the run goes on. Ctrl-C or SIGTERM stops after
    writing what is finished; the same command resumes.

    The database is open only while a batch is written: other commands and `duckdb -readonly`
    read it meanwhile. A batch due while another program holds the file waits for it (one
    line says which); a second ingest of the same database is refused.
    """
    with _StopSignals() as stop:  # from the start: a SIGTERM at any moment gives its code
        from musicdb.workers.executor import open_executor

        try:
            with user_errors(), stop.raising(), open_executor(
                    workers, scheduler, tuple(path_map or ())) as executor:
                from musicdb.analysis.features import FrameParams
                from musicdb.ingest.run import check_sets

                sets = tuple(s.strip() for s in feature_set.split(",") if s.strip())
                check_sets(sets)  # before the database is opened (or created) and scanned
                summary = _ingest_with(
                    executor, paths, db, sets=sets, snippet_seconds=snippet_seconds,
                    retry_errors=retry_errors, file_timeout=file_timeout,
                    params=FrameParams(n_fft=n_fft, hop_length=hop_length))
        except KeyboardInterrupt:  # before any file was analysed: scanning, hashing, opening
            err.print("[yellow]Interrupted[/yellow] before any file was analysed; run the same "
                      "command again to resume.")
            raise typer.Exit(code=stop.exit_code) from None
        from musicdb.cli.progress import render_summary

        render_summary(err, summary, db)
        if not (summary.interrupted or stop.signum):
            _note_partial_sets(db, sets)
        if summary.interrupted or stop.signum:
            raise typer.Exit(code=stop.exit_code)
        if summary.nothing_ingested:
            raise typer.Exit(code=1)


def _note_partial_sets(db: Path, asked: tuple[str, ...]) -> None:
    """One note per extracted set this run did not extend that lacks some songs (a set
    added with --feature-set to part of the library): say how to complete it."""
    from musicdb.errors import MusicdbError
    from musicdb.store import access
    from musicdb.store.database import connect
    from musicdb.store.info import partial_sets

    try:
        with connect(db, read_only=True, patience=access.ONCE) as con:
            partial = partial_sets(con, asked)
    except MusicdbError:  # another program holds the file now: the note can wait
        return
    for name, covered, songs in partial:
        err.print(f"Note: feature set {name!r} covers {covered:,} of {songs:,} songs; "
                  f"`musicdb ingest FOLDER --feature-set {name}` adds the rest.",
                  highlight=False, markup=False, soft_wrap=True)


def _ingest_with(executor: Executor, paths: list[Path], db: Path, **options: Any
                 ) -> IngestSummary:
    """The library's ingest (its keyword options) into `db`, its progress bar on stderr, and
    any wait for another process holding the file as a line above the bar."""
    from musicdb.cli.progress import IngestProgress
    from musicdb.ingest.run import ingest as run_ingest
    from musicdb.store.writer import Writer

    with IngestProgress(err, getattr(executor, "workers_alive", None)) as progress, \
            Writer(db, notify=progress.notice) as writer:
        return run_ingest(writer, paths, executor=executor, progress=progress, **options)


class _StopSignals:
    """SIGTERM (`kill`, a service manager) and SIGHUP (a closed terminal) stop like Ctrl-C.

    While `raising()`, a signal raises KeyboardInterrupt: the ingest loop writes the finished
    files and stops. Outside it (the summary, the exit) it is only recorded. Either way the
    exit code says which signal it was: 128 + its number (SIGTERM: 143, Ctrl-C: 130).
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._raise = False
        self._previous: dict = {}

    def __enter__(self) -> _StopSignals:
        self._previous = {sig: signal.signal(sig, self._handle)
                          for sig in (signal.SIGTERM, signal.SIGHUP)}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        self.signum = signum
        if self._raise:
            raise KeyboardInterrupt

    @contextmanager
    def raising(self) -> Iterator[None]:
        self._raise = True
        try:
            yield
        finally:
            self._raise = False

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)


@app.command()
def demo(
    folder: Annotated[Path, typer.Option(help="Where to write the demo library.")] = Path(
        "musicdb-demo"),
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes.")] = None,
) -> None:
    """Generate a small labelled library of synthetic songs, ingest it, show what to try next."""
    from musicdb.workers.executor import open_executor

    library, db = folder / "library", folder / "demo.duckdb"
    with user_errors(), open_executor(workers) as executor:
        executor.warm_up()  # overlaps writing the songs
        from musicdb.audio.synth import demo_library
        from musicdb.cli.progress import render_summary

        err.print(f"Writing synthetic songs to {library}/ ...")
        demo_library(library)
        summary = _ingest_with(executor, [library], db)
    render_summary(err, summary, db)
    shell, me = _beside_python("duckdb"), _beside_python("musicdb")
    out.print(f"""
[bold]Try next:[/bold]
  {me} info --db {db}
  {shell} -readonly {db} -c "SELECT label, count(*) AS songs, round(avg(bpm)) AS bpm, round(avg(centroid_a)) AS centroid_hz FROM features_seed55 GROUP BY label ORDER BY label"
  {shell} -readonly {db} -c "SELECT label, title, snippet, start_s, end_s, round(zcr_a, 3) AS zcr FROM snippets_seed55 ORDER BY label, title, snippet"
  {me} similar "Click Machine" --db {db}
  {me} similar "Click Machine - Song 1" --songs --explain --db {db}
  {me} heatmap -o artists.html --db {db}
  {me} ingest ~/Music           # your own music, into ./music.duckdb
""", soft_wrap=True, highlight=False)  # noqa: E501


def _beside_python(command: str) -> str:
    """A command's name if it is on PATH, else its path in this Python's bin folder."""
    if shutil.which(command):
        return command
    beside = Path(sys.executable).with_name(command)
    return str(beside) if beside.exists() else command
