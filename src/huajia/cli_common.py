"""What every huajia command shares: the console, progress bars, a ShapesEval table."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

console = Console()
PROGRESS_COLUMNS = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn())


@contextmanager
def progress_bar(description: str, total: int):
    """A rich progress bar; yields ``advance(k)``."""
    with Progress(*PROGRESS_COLUMNS, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda k=1: progress.advance(task, k)


@contextmanager
def stage_progress():
    """One rich bar per training stage; yields ``progress(stage, done, total)``."""
    with Progress(*PROGRESS_COLUMNS, console=Console(stderr=True)) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        yield progress


def print_shapes_result(result) -> None:
    table = Table(title=f"ShapesEval — {result.model}")
    table.add_column("task")
    table.add_column("score", justify="right")
    for task, score in result.tasks.items():
        table.add_row(task, f"{score:.3f}")
    table.add_row("[bold]overall[/]", f"[bold]{result.overall:.3f}[/]")
    for lang, score in result.by_lang.items():
        table.add_row(f"overall ({lang})", f"{score:.3f}")
    console.print(table)
