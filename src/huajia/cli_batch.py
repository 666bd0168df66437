"""``huajia batch``: a JSON-lines file of requests → an HF imagefolder, here or on Ray Data.
``register(app)`` adds it to the main typer app."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from huajia.cli_common import (
    FAMILY,
    MODEL_HELP,
    Options,
    console,
    progress_bar,
    vocabulary_options,
)
from huajia.engine.loading import LoadOptions
from huajia.ray_cluster import ADDRESS_HELP
from huajia.thinking.options import CriticOptions


@vocabulary_options(critics=Options(CriticOptions, only=("critic",)), load=LoadOptions)
def batch(
    prompts: Path = typer.Argument(..., help="JSON lines: one request a line, with the Python "
                                   "API's names, e.g. {\"prompt\": \"a red circle\", \"seed\": 1, "
                                   "\"n\": 2, \"size\": \"128x128\"}."),
    out: Path = typer.Option(..., "--out", help="The imagefolder: images/ and metadata.jsonl "
                             "(a rerun skips what is there)."),
    ray: str = typer.Option(None, "--ray", help=ADDRESS_HELP + " Omitted: paint here."),
    workers: int = typer.Option(2, "--workers", "--np", min=1, max=256,
                                help="Engines on Ray (an actor each)."),
    threads: int = typer.Option(None, "--threads", min=1, max=256,
                                help="Torch threads per engine (default: 1 on Ray, all here)."),
    think: bool = typer.Option(False, "--think", help="Think while painting every line (a "
                               "line's \"think\" overrides; the shapes critic judges)."),
    lora: list[str] = typer.Option([], "--lora", help="PATH[:SCALE] for every line, repeatable."),
    model: str = typer.Option("embedded", help=MODEL_HELP),
    family: str = FAMILY,
    *,
    critics: CriticOptions,
    load: LoadOptions,
) -> None:
    """Paint every line of a batch file into an HF imagefolder (resumable)."""
    from huajia.batch.lines import read_lines, with_loras
    from huajia.batch.runner import BatchSettings, pictures_to_paint, run_batch
    from huajia.engine.loading import resolve_model
    from huajia.errors import HuajiaError

    name = critics.critic
    if name != "shapes":
        raise HuajiaError(f"batch thinking uses the shapes critic; '{name}' is for "
                          "'huajia think' and the server")
    resolve_model(model)
    lines, errors = read_lines(prompts, think)
    for error in errors:  # each named by its line; the good lines still run
        print(f"error: {error.line(prompts)}", file=sys.stderr)
    lines = with_loras(lines, lora)
    if ray:
        from huajia.ray_cluster import connect

        connect(ray)  # an unreachable cluster is one line before any work
    settings = BatchSettings(model, threads or (1 if ray else None), critic=name, family=family,
                             load=load)
    total = pictures_to_paint(lines, out)
    with progress_bar("painting", total) as advance:
        summary = run_batch(lines, out, settings, ray, workers, progress=advance)
    console.print(f"{summary.written} picture(s) written, {summary.skipped_lines} line(s) "
                  f"already done, {len(errors)} bad line(s); {out}/metadata.jsonl")
    if errors:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.command("batch")(batch)
