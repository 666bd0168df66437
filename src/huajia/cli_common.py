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


def vocabulary_option(cls: type, name: str, *short: str):
    """The typer option of a vocabulary parameter (``huajia.params``): the canonical flag, its
    aliases (``--cfg`` for ``--guidance``), the declared default and help with the limits.
    Limits are enforced by the dataclass itself, so an out-of-range value is the same one-line
    error (exit 2) here as in the Python API and a 400 over HTTP."""
    import typer

    from huajia.params import describe_range, flag, params

    field, spec = params(cls)[name]
    flags = [flag(name), *(flag(alias) for alias in spec.aliases), *short]
    help_text = spec.help
    if spec.low is not None or spec.high is not None:
        help_text += f" (range {describe_range(spec)})"
    if spec.choices:
        help_text += f" (one of {', '.join(spec.choices)})"
    if field.type in ("bool", bool):
        flags = [f"{flag(name)}/--no-{name.replace('_', '-')}"]
    return typer.Option(field.default, *flags, help=help_text, show_default=True)
