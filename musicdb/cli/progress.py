"""Rich rendering of long runs on stderr: the ingest progress bar and its closing summary,
and evaluate's fits."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from musicdb.ingest.run import IngestSummary
from musicdb.terminal import one_line, plural


class IngestProgress:
    """Files done / total, hours of audio, speed as x realtime, ETA; with `workers_alive` (a
    Dask cluster's, musicdb.workers.cluster), how many workers are alive."""

    def __init__(self, console: Console, workers_alive: Callable[[], int] | None = None
                 ) -> None:
        self.console = console
        self.workers_alive = workers_alive
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files{task.fields[workers]} · {task.fields[hours]} · "
                       "{task.fields[speed]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task: TaskID | None = None
        self.audio_s = 0.0
        self.started = time.perf_counter()

    def __enter__(self) -> IngestProgress:
        self.progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.progress.stop()

    def stage(self, text: str) -> None:
        self.console.print(f"[dim]{text} ...[/dim]")

    def notice(self, text: str) -> None:
        """A line above the bar that must be seen: the ingest waits for another process."""
        self.console.print(f"[yellow]{escape(one_line(text))}[/yellow]", soft_wrap=True,
                           highlight=False)

    def start(self, total: int) -> None:
        self.started = time.perf_counter()
        self.task = self.progress.add_task("extracting", total=total, hours="0.00 h audio",
                                           speed="-× realtime", workers=self._workers())

    def _workers(self) -> str:
        return "" if self.workers_alive is None else f" · {self.workers_alive()} workers alive"

    def advance(self, audio_s: float) -> None:
        self.audio_s += audio_s
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        assert self.task is not None
        self.progress.update(self.task, advance=1, hours=f"{self.audio_s / 3600:.2f} h audio",
                             speed=f"{self.audio_s / elapsed:.0f}× realtime",
                             workers=self._workers())


def render_summary(console: Console, s: IngestSummary, db: Path) -> None:
    per_core = s.realtime / max(1, s.workers)
    console.print(
        f"[bold]{plural(s.found, 'file')}[/bold]: [green]{s.new:,} new[/green], "
        f"{s.changed:,} changed, {s.unchanged:,} unchanged, {s.moved:,} moved, "
        f"{s.missing:,} missing, [red]{s.failed_count:,} failed[/red]"
        + (f" ({plural(s.unchanged_failed, 'known failure')} skipped; --retry-errors retries "
           "them)" if s.unchanged_failed else ""), soft_wrap=True)
    if s.unwritten:  # first: every count and figure below includes these files
        console.print(f"[yellow]Interrupted[/yellow] while another process held the database: "
                      f"{plural(s.unwritten, 'analysed file was', 'analysed files were')} not "
                      "written (the counts here include them). Everything written before is "
                      "kept; run the same command again to resume (those files are analysed "
                      "again).", soft_wrap=True)
    if s.found == 0:
        console.print("No audio files found there (by extension or by content).")
    if s.not_reached:
        console.print(f"{plural(s.not_reached, 'file')} not reached before the interruption.")
    if s.copied:
        console.print(f"{plural(s.copied, 'file has', 'files have')} the same content as "
                      "another file: values copied, not computed again", soft_wrap=True)
    if s.extracted_sets:
        console.print(f"{plural(s.extracted_sets, 'file')} got a missing feature set")
    if s.tags_updated:
        console.print(f"{plural(s.tags_updated, 'song')} had new tags or labels")
    if s.audio_s > 0:
        console.print(
            f"{s.audio_s / 3600:.2f} h of audio analysed in {s.wall_s:.1f} s: {s.realtime:.0f}× "
            f"realtime ({per_core:.0f}× per core, {plural(s.workers, 'worker')}) → "
            f"{one_line(str(db))}", soft_wrap=True)
    else:
        console.print(f"Nothing to analyse ({s.wall_s:.1f} s) → {one_line(str(db))}",
                      soft_wrap=True)
    for path, reason in s.failed[:20]:
        console.print(f"  [red]failed[/red] {one_line(path)}: {one_line(reason)}",
                      highlight=False, soft_wrap=True)
    for folder, reason in s.unreadable_folders[:20]:
        console.print(f"  [yellow]folder not scanned[/yellow] {one_line(folder)}: "
                      f"{one_line(reason)}",
                      highlight=False, soft_wrap=True)
    if len(s.failed) > 20:
        console.print(f"  ... and {len(s.failed) - 20} more (SELECT path, error FROM songs "
                      "WHERE status = 'error')")
    if any("ffmpeg, which is not on PATH" in reason for _, reason in s.failed):
        console.print("[yellow]Some files need ffmpeg (m4a/AAC/...), which is not on PATH."
                      "[/yellow]")
    if s.interrupted and not s.unwritten:
        console.print("[yellow]Interrupted.[/yellow] Finished files are saved; run the same "
                      "command again to resume.")


class EvaluateProgress:
    """Fits done / total (folds, the model kept, album folds), what is fitting now, elapsed.

    Implements musicdb.ml.evaluate.Progress. The bar is transient: the result printed after
    it is what stays on the screen; warnings are printed above it and stay. Drawn only when
    stderr is a terminal.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]evaluating"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("fits · {task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task: TaskID | None = None
        self.started = False  # the first fitting() only names the fit, later ones finish one

    def __enter__(self) -> EvaluateProgress:
        if self.console.is_terminal:  # a log file gets the warnings and the result, no frames
            self.progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.progress.stop()

    def start(self, total: int) -> None:
        self.task = self.progress.add_task("starting", total=total)

    def fitting(self, what: str) -> None:
        if self.task is None:
            return
        if self.started:
            self.progress.advance(self.task)
        self.started = True
        self.progress.update(self.task, description=escape(what))

    def warn(self, text: str) -> None:
        self.console.print(f"[yellow]Warning:[/yellow] {escape(text)}", soft_wrap=True,
                           highlight=False)
