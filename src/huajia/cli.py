"""The ``huajia`` command line: parses arguments, calls the packages, prints.

User errors (``HuajiaError``) print one line and exit 2; nothing here holds logic of its own.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from huajia.errors import HuajiaError

app = typer.Typer(help="huajia (画家): text-to-image that thinks while it paints.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
world_app = typer.Typer(help="The shapes world: render, parse, verify, make datasets.",
                        no_args_is_help=True)
eval_app = typer.Typer(help="Benchmarks: ShapesEval.", no_args_is_help=True)
app.add_typer(world_app, name="world")
app.add_typer(eval_app, name="eval")
console = Console()


@contextmanager
def progress_bar(description: str, total: int):
    """A rich progress bar; yields ``advance(k)``."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda k=1: progress.advance(task, k)


def _out_file(path: Path) -> Path:
    from huajia.world.dataset import prepare_out_dir

    prepare_out_dir(path.parent if str(path.parent) else Path("."))
    return path


@world_app.command("dataset")
def world_dataset(
    n: int = typer.Option(..., "--n", help="Number of images."),
    out: Path = typer.Option(..., "--out", help="Output imagefolder."),
    split: str = typer.Option("train", help="train (base concepts) or eval (all concepts)."),
    seed: int = typer.Option(0, help="Dataset seed."),
    size: int = typer.Option(128, help="Image side in pixels (64-512)."),
    workers: int = typer.Option(0, help="Processes (0: one per core)."),
) -> None:
    """Render N captioned images (en + zh) into an HF imagefolder with metadata.jsonl."""
    from huajia.world.dataset import check_dataset_args, write_dataset

    check_dataset_args(out, n, split, size)
    with progress_bar("rendering", n) as advance:
        path = write_dataset(out, n, seed=seed, split=split, side=size, workers=workers or None,
                             progress=advance)
    console.print(f"wrote {n} images and {path / 'metadata.jsonl'}")


@world_app.command("render")
def world_render(
    prompt: str = typer.Argument(..., help="What to draw (English or 中文)."),
    out: Path = typer.Option(Path("world.png"), "--out", help="PNG file to write."),
    seed: int = typer.Option(0, help="Layout seed."),
    size: int = typer.Option(128, help="Image side in pixels (64-512)."),
    perturb: bool = typer.Option(False, help="Degrade like a generative model's output."),
) -> None:
    """Draw exactly what PROMPT says with the world's renderer (the oracle)."""
    from huajia.evaluation.generators import OracleGenerator

    image = OracleGenerator(perturb).generate([prompt], [seed], size)[0]
    image.save(_out_file(out))
    console.print(str(out))


@world_app.command("parse")
def world_parse(prompt: str = typer.Argument(..., help="Prompt to read.")) -> None:
    """Show the scene spec a prompt asks for, and any words the world does not know."""
    from huajia.world.parser import parse

    parsed = parse(prompt)
    console.print_json(json.dumps({"lang": parsed.lang, "spec": parsed.spec.to_dict(),
                                   "unparsed": list(parsed.unparsed)}, ensure_ascii=False))


@world_app.command("verify")
def world_verify(
    image: Path = typer.Argument(..., help="Picture to check."),
    prompt: str = typer.Argument(..., help="What it should show."),
) -> None:
    """Check a picture against a prompt, constraint by constraint (exit 1 if it fails)."""
    from huajia.drawing import load_image
    from huajia.world.parser import read_prompt
    from huajia.world.verifier import verify

    parsed = read_prompt(prompt)
    verdict = verify(load_image(image), parsed.spec, parsed.lang)
    for constraint in verdict.constraints:
        mark = "[green]✓[/]" if constraint.passed else "[red]✗[/]"
        console.print(f"{mark} {constraint.kind}: {constraint.explanation}")
    console.print("[bold green]PASS[/]" if verdict.passed else "[bold red]FAIL[/]")
    raise typer.Exit(0 if verdict.passed else 1)


@eval_app.command("shapes")
def eval_shapes(
    model: str = typer.Option("oracle", help="oracle, oracle-perturbed, random."),
    json_path: Path = typer.Option(None, "--json", help="Write the full report here."),
    out: Path = typer.Option(None, "--out", help="Folder for failures.png (and report.json)."),
    images_per_prompt: int = typer.Option(4, "--images-per-prompt", "-n", min=1),
    specs_per_task: int = typer.Option(50, "--specs-per-task",
                                       help="Specs per task; each gives an en and a zh prompt."),
    size: int = typer.Option(128, help="Image side in pixels (64-512)."),
) -> None:
    """ShapesEval: GenEval-style compositional benchmark on held-out prompts (en + zh)."""
    from huajia.evaluation.generators import builtin_generator
    from huajia.evaluation.prompts import shapes_eval_prompts
    from huajia.evaluation.report import failure_sheet, write_json
    from huajia.evaluation.shapes_eval import run_shapes_eval
    from huajia.world.dataset import prepare_out_dir

    if out is not None:
        prepare_out_dir(out)
    if json_path is not None:
        _out_file(json_path)
    generator = builtin_generator(model)
    prompts = shapes_eval_prompts(specs_per_task)
    with progress_bar(f"ShapesEval {model}", len(prompts) * images_per_prompt) as advance:
        result = run_shapes_eval(generator, prompts, images_per_prompt, size, progress=advance)
    _print_result(result)
    if json_path is not None:
        write_json(result, json_path)
        console.print(f"report: {json_path}")
    if out is not None:
        write_json(result, out / "report.json")
        sheet = failure_sheet(result, out / "failures.png")
        console.print(f"failures: {sheet}" if sheet else "no failures")


def _print_result(result) -> None:
    table = Table(title=f"ShapesEval — {result.model}")
    table.add_column("task")
    table.add_column("score", justify="right")
    for task, score in result.tasks.items():
        table.add_row(task, f"{score:.3f}")
    table.add_row("[bold]overall[/]", f"[bold]{result.overall:.3f}[/]")
    for lang, score in result.by_lang.items():
        table.add_row(f"overall ({lang})", f"{score:.3f}")
    console.print(table)


@app.command("demo")
def demo(out: Path = typer.Option(Path("demo-out"), "--out", help="Where results go."),
         specs_per_task: int = typer.Option(20, "--specs-per-task")) -> None:
    """The main job: a sample of the world and ShapesEval on the oracle."""
    from huajia.drawing import Tile, captioned_grid
    from huajia.world.dataset import make_example, prepare_out_dir
    from huajia.world.render import render

    prepare_out_dir(out)
    tiles = []
    for index in range(12):
        scene, _, text, text_zh = make_example(index, seed=7, split="train")
        tiles.append(Tile(render(scene), (text, text_zh)))
    captioned_grid(tiles, columns=4, text_lines=10, title="The shapes world (train split)").save(
        out / "world.png")
    console.print(f"world sample: {out / 'world.png'}")
    eval_shapes(model="oracle", json_path=out / "shapes_eval.json", out=out,
                images_per_prompt=2, specs_per_task=specs_per_task, size=128)


@app.command("version")
def version() -> None:
    """Print huajia's version."""
    from huajia import __version__

    console.print(__version__)


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except HuajiaError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except click.exceptions.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
