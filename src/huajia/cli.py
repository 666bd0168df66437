"""The ``huajia`` command line: parses arguments, calls the packages, prints.

User errors (``HuajiaError``) print one line and exit 2; nothing here holds logic of its own.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import click
import typer
from rich.table import Table

from huajia.cli_batch import register as register_batch
from huajia.cli_common import (
    FAMILY,
    STYLES_FILE,
    Given,
    Options,
    console,
    print_shapes_result,
    progress_bar,
    vocabulary_options,
)
from huajia.cli_eval import register as register_metrics
from huajia.cli_finish import register as register_finishing
from huajia.cli_models import register as register_models
from huajia.cli_paint import register as register_painting
from huajia.cli_serve import register as register_serving
from huajia.cli_train import app as train_app
from huajia.curation.runner import FilterOptions
from huajia.engine.loading import LoadOptions
from huajia.engine.request import GenerationRequest
from huajia.errors import HuajiaError

app = typer.Typer(help="huajia (画家): text-to-image that thinks while it paints.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
world_app = typer.Typer(help="The shapes world: render, parse, verify, make datasets.",
                        no_args_is_help=True)
eval_app = typer.Typer(help="Benchmarks: ShapesEval.", no_args_is_help=True)
app.add_typer(world_app, name="world")
app.add_typer(eval_app, name="eval")
app.add_typer(train_app, name="train")
register_painting(app)
register_finishing(app)
register_serving(app)
register_batch(app)
register_models(app)
register_metrics(eval_app)


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
    concept: str = typer.Option(None, help="Teach a held-out concept: hexagon or checkered."),
    colour_drop: float = typer.Option(
        0.0, help="Chance a caption names no colour (the embedded model trained with 0.3)."),
    alpha_mask: bool = typer.Option(
        False, help="Mark the concept's objects (every object without --concept) in each "
                    "image's alpha channel, for 'train lora --mask-weight'."),
) -> None:
    """Render N captioned images (en + zh) into an HF imagefolder with metadata.jsonl."""
    from huajia.world.dataset import check_dataset_args, write_dataset

    check_dataset_args(out, n, split, size, concept, colour_drop)
    with progress_bar("rendering", n) as advance:
        path = write_dataset(out, n, seed=seed, split=split, side=size, workers=workers or None,
                             progress=advance, concept=concept, colour_drop=colour_drop,
                             alpha_mask=alpha_mask)
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
@vocabulary_options(request=Options(GenerationRequest, build=False,
                                    only=("steps", "guidance", "scheduler")), load=LoadOptions)
def eval_shapes(
    model: str = typer.Option("oracle", help="oracle, oracle-perturbed, random, embedded, or a "
                                             "diffusers pipeline folder / hub id."),
    family: str = FAMILY,
    json_path: Path = typer.Option(None, "--json", help="Write the full report here."),
    out: Path = typer.Option(None, "--out", help="Folder for failures.png (and report.json)."),
    images_per_prompt: int = typer.Option(4, "--images-per-prompt", "-n", min=1),
    specs_per_task: int = typer.Option(50, "--specs-per-task",
                                       help="Specs per task; each gives an en and a zh prompt."),
    size: int = typer.Option(128, help="Image side in pixels (64-512)."),
    *,
    request: Given,
    load: LoadOptions,
) -> None:
    """ShapesEval: GenEval-style compositional benchmark on held-out prompts (en + zh)."""
    GenerationRequest("check", **request.values)  # every request's checks, before a model loads
    _shapes_eval(model, json_path, out, images_per_prompt, specs_per_task, size,
                 dict(request.values, family=family, load=load))


def _shapes_eval(model: str, json_path: Path | None, out: Path | None, images_per_prompt: int,
                 specs_per_task: int, size: int, engine_options: dict) -> None:
    from huajia.evaluation.generators import make_generator
    from huajia.evaluation.prompts import shapes_eval_prompts
    from huajia.evaluation.report import failure_sheet, write_json
    from huajia.evaluation.shapes_eval import run_shapes_eval
    from huajia.world.dataset import prepare_out_dir

    if out is not None:
        prepare_out_dir(out)
    if json_path is not None:
        _out_file(json_path)
    plain = model in ("oracle", "oracle-perturbed", "random") or model.startswith("oracle-vae")
    generator = make_generator(model) if plain else make_generator(model, **engine_options)
    prompts = shapes_eval_prompts(specs_per_task)
    with progress_bar(f"ShapesEval {model}", len(prompts) * images_per_prompt) as advance:
        result = run_shapes_eval(generator, prompts, images_per_prompt, size, progress=advance)
    print_shapes_result(result)
    if json_path is not None:
        write_json(result, json_path)
        console.print(f"report: {json_path}")
    if out is not None:
        if json_path is None:  # one report, not two identical files
            write_json(result, out / "report.json")
        sheet = failure_sheet(result, out / "failures.png")
        console.print(f"failures: {sheet}" if sheet else "no failures")


@app.command("demo")
def demo(out: Path = typer.Option(Path("demo-out"), "--out", help="Where results go."),
         model: str = typer.Option("embedded", help="Model to show."),
         specs_per_task: int = typer.Option(5, "--specs-per-task")) -> None:
    """The main job: the world, a grid of generated pictures (en + zh), ShapesEval."""
    from huajia.drawing import Tile, captioned_grid
    from huajia.evaluation.generators import make_generator
    from huajia.evaluation.prompts import shapes_eval_prompts
    from huajia.evaluation.report import prompt_grid
    from huajia.world.dataset import make_example, prepare_out_dir
    from huajia.world.render import render

    prepare_out_dir(out)
    pictures = 12 + len(shapes_eval_prompts(specs_per_task)) * 2  # the grid, then ShapesEval
    console.print(f"demo: the world, a grid of 12 prompts, then ShapesEval ({pictures - 12} "
                  f"pictures); about {_demo_minutes(pictures)} on this machine's CPU")
    tiles = []
    for index in range(12):
        scene, _, text, text_zh = make_example(index, seed=7, split="train")
        tiles.append(Tile(render(scene), (text, text_zh)))
    captioned_grid(tiles, columns=4, text_lines=10, title="The shapes world (train split)").save(
        out / "world.png")
    console.print(f"world sample: {out / 'world.png'}")
    started = time.perf_counter()
    with console.status(f"painting a dozen prompts with {model}"):
        prompt_grid(make_generator(model)).save(out / "grid.png")
    pace = (time.perf_counter() - started) / 12
    console.print(f"generated grid: {out / 'grid.png'} ({pace:.1f} s a picture, so ShapesEval "
                  f"takes about {(pictures - 12) * pace / 60:.0f} min)")
    _shapes_eval(model, out / "shapes_eval.json", out, 2, specs_per_task, 128,
                 {"steps": 20, "guidance": 5.0, "scheduler": None})


def _demo_minutes(pictures: int) -> str:
    """A first guess before anything is measured: about 1 s a picture per core at 128 px."""
    cores = max(1, min(os.cpu_count() or 1, 4))
    low, high = pictures * 1.2 / cores / 60, pictures * 2.5 / cores / 60
    return f"{max(1, round(low))}-{max(2, round(high))} min"


@app.command("info")
def info(image: Path = typer.Argument(..., help="A PNG made by huajia (or A1111).")) -> None:
    """Print the generation parameters stored in a PNG."""
    from huajia.engine.infotext import read_infotext

    # verbatim, never wrapped: pasted into A1111, a wrapped line moves Steps, Sampler, CFG and
    # Size into the negative prompt
    sys.stdout.write(read_infotext(image) + "\n")


@app.command("styles")
def styles(styles_file: Path = STYLES_FILE) -> None:
    """List the style presets (and yours: --styles-file or $HUAJIA_STYLES)."""
    from huajia.engine.styles import load_styles

    for style in load_styles().values():
        console.print(f"[bold]{style.name}[/]: {style.prompt}", highlight=False)


@app.command("curate")
@vocabulary_options(filters=FilterOptions)
def curate_command(
    config: Path = typer.Option(None, "--config", help="A Data-Juicer YAML config."),
    data: str = typer.Option(None, "--data", help="Dataset (without --config)."),
    out: Path = typer.Option(None, "--out", help="Clean imagefolder + report go here."),
    workers: int = typer.Option(1, "--workers", "--np",
                                help="Ray actors with --ray (without it, Data-Juicer runs the "
                                "flags' operators in one process, so its tracer names each "
                                "drop; a --config keeps its own np)."),
    ray: str = typer.Option(None, "--ray", help="Run the operators on Ray Data: 'local', 'auto', "
                            "HOST:PORT or ray://HOST:PORT."),
    *,
    filters: FilterOptions,
) -> None:
    """Filter an image/caption dataset (Data-Juicer operators) into a clean imagefolder."""
    from huajia.curation.report import write_report
    from huajia.curation.runner import Recipe, curate
    from huajia.imagefolder import iter_samples
    from huajia.world.dataset import prepare_out_dir

    if config is not None:
        _curate_with_data_juicer(config, out, ray)
        return
    if data and out:
        recipe = Recipe(data, str(out), filters.steps(), workers)
    else:
        raise HuajiaError("pass --config FILE.yaml, or --data DIR --out DIR with filter flags")
    if ray:
        from dataclasses import replace

        recipe = replace(recipe, ray=ray)
    if recipe.ray:
        from huajia.ray_cluster import connect

        connect(recipe.ray)  # an unreachable cluster is one line before any work
    prepare_out_dir(recipe.out_dir)
    total = sum(1 for _ in iter_samples(recipe.dataset_path, recipe.text_key, recipe.image_key))
    with progress_bar("curating", total) as advance:
        report = curate(recipe, progress=advance)
    json_path, png_path = write_report(report, recipe.out_dir)
    table = Table(title=f"curation: {report.kept}/{report.total} kept")
    table.add_column("operator")
    table.add_column("dropped", justify="right")
    table.add_column("top reasons")
    for op, count in report.dropped.items():
        reasons = "; ".join(f"{r} ×{n}" for r, n in report.reasons[op].most_common(3))
        table.add_row(op, str(count), reasons)
    console.print(table)
    console.print(f"{recipe.out_dir}/metadata.jsonl\n{json_path}\n{png_path}")


def _curate_with_data_juicer(config: Path, out: Path | None, ray: str | None) -> None:
    """A Data-Juicer config, run by Data-Juicer as written (huajia's operators registered)."""
    from huajia.curation.dj import run_config, write_run_report

    if ray:
        from huajia.ray_cluster import connect

        connect(ray)  # an unreachable cluster is one line before any work
    run = run_config(config, out, ray)
    json_path, png_path = write_run_report(run, Path(run.export_path).parent)
    table = Table(title=f"Data-Juicer: {run.kept}/{run.total} kept")
    table.add_column("operator")
    table.add_column("dropped", justify="right")
    for op, count in run.dropped.items():
        table.add_row(op, str(count))
    console.print(table)
    console.print(f"{run.export_path}\n{json_path}\n{png_path}\n{run.console_log} (Data-Juicer's log)")


@app.command("version")
def version() -> None:
    """Print huajia's version."""
    from huajia import __version__

    console.print(__version__)


def _quiet_libraries() -> None:
    """Keep diffusers/transformers chatter (deprecations, loading bars) off the user's screen."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # torchao (the optional int8 quantizer) logs its unused CUDA kernels and torch notes at import
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category)


def _usage_errors() -> tuple[type[Exception], ...]:
    """click's exception classes: typer >= 0.20 raises those of its vendored copy of click."""
    vendored = next(k for k in typer.BadParameter.__mro__ if k.__name__ == "ClickException")
    return tuple({click.exceptions.ClickException, vendored})


def _aborts() -> tuple[type[BaseException], ...]:
    return tuple({click.exceptions.Abort, typer.Abort})


def _one_line(error: Exception) -> str:
    """A usage error as one line that names the problem and where help is."""
    message = " ".join(error.format_message().split())
    ctx = getattr(error, "ctx", None)
    if ctx is None:
        return f"error: {message}"
    if type(error).__name__ == "NoArgsIsHelpError":  # click has printed the help already
        return ""
    return f"error: {message} (see '{ctx.command_path} --help')"


def main() -> None:
    _quiet_libraries()
    try:
        code = app(standalone_mode=False)
    except HuajiaError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except _aborts():
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except _usage_errors() as error:
        line = _one_line(error)
        if line:
            print(line, file=sys.stderr)
        sys.exit(error.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
