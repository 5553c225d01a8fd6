"""Rich rendering of `musicdb evaluate`'s fits on stderr: one bar, a line per warning."""

from __future__ import annotations

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
)


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
