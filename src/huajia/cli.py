"""The ``huajia`` command line: parses arguments, calls the packages, prints.

User errors (``HuajiaError``) print one line and exit 2; nothing here holds logic of its own.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import click
import typer
from rich.table import Table

from huajia.cli_common import console, print_shapes_result, progress_bar
from huajia.cli_serve import register as register_serving
from huajia.cli_train import app as train_app
from huajia.errors import HuajiaError

app = typer.Typer(help="huajia (画家): text-to-image that thinks while it paints.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
world_app = typer.Typer(help="The shapes world: render, parse, verify, make datasets.",
                        no_args_is_help=True)
eval_app = typer.Typer(help="Benchmarks: ShapesEval.", no_args_is_help=True)
app.add_typer(world_app, name="world")
app.add_typer(eval_app, name="eval")
app.add_typer(train_app, name="train")
register_serving(app)


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
def eval_shapes(
    model: str = typer.Option("oracle", help="oracle, oracle-perturbed, random, embedded, or a "
                                             "diffusers pipeline folder / hub id."),
    json_path: Path = typer.Option(None, "--json", help="Write the full report here."),
    out: Path = typer.Option(None, "--out", help="Folder for failures.png (and report.json)."),
    images_per_prompt: int = typer.Option(4, "--images-per-prompt", "-n", min=1),
    specs_per_task: int = typer.Option(50, "--specs-per-task",
                                       help="Specs per task; each gives an en and a zh prompt."),
    size: int = typer.Option(128, help="Image side in pixels (64-512)."),
    steps: int = typer.Option(20, help="Denoising steps (models only)."),
    cfg: float = typer.Option(5.0, "--cfg", help="Guidance scale (models only)."),
    scheduler: str = typer.Option(None, help="ddim, euler, euler_a, dpmpp_2m, unipc, ddpm."),
) -> None:
    """ShapesEval: GenEval-style compositional benchmark on held-out prompts (en + zh)."""
    from huajia.evaluation.generators import make_generator
    from huajia.evaluation.prompts import shapes_eval_prompts
    from huajia.evaluation.report import failure_sheet, write_json
    from huajia.evaluation.shapes_eval import run_shapes_eval
    from huajia.world.dataset import prepare_out_dir

    if out is not None:
        prepare_out_dir(out)
    if json_path is not None:
        _out_file(json_path)
    engine_options = {"steps": steps, "guidance": cfg, "scheduler": scheduler}
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
    from huajia.evaluation.report import prompt_grid
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
    with console.status(f"painting a dozen prompts with {model}"):
        prompt_grid(make_generator(model)).save(out / "grid.png")
    console.print(f"generated grid: {out / 'grid.png'}")
    eval_shapes(model=model, json_path=out / "shapes_eval.json", out=out, images_per_prompt=2,
                specs_per_task=specs_per_task, size=128, steps=20, cfg=5.0, scheduler=None)


@app.command("generate")
def generate(
    prompt: str = typer.Argument(..., help="What to paint (English or 中文; A1111 (word:1.5) works)."),
    n: int = typer.Option(1, "-n", "--n", help="Number of images."),
    seed: int = typer.Option(None, help="Seed of the first image (the next ones: seed+1, …)."),
    steps: int = typer.Option(20, help="Denoising steps."),
    cfg: float = typer.Option(5.0, "--cfg", help="Guidance scale."),
    size: str = typer.Option(None, help="WIDTHxHEIGHT (default: the model's native size)."),
    negative: str = typer.Option("", "--negative", help="Negative prompt."),
    style: str = typer.Option("none", help="Style preset (see 'huajia styles')."),
    model: str = typer.Option("embedded", help="embedded, a diffusers folder or a hub id."),
    scheduler: str = typer.Option(None, help="ddim, euler, euler_a, dpmpp_2m, unipc, ddpm."),
    lora: list[str] = typer.Option([], "--lora", help="PATH[:SCALE], repeatable."),
    out: Path = typer.Option(Path("outputs"), "--out", help="Folder for the PNGs."),
) -> None:
    """Generate images; each PNG carries A1111 'parameters' infotext."""
    from huajia.engine.engine import Engine
    from huajia.engine.infotext import save_png
    from huajia.engine.lora import check_lora_paths
    from huajia.engine.request import GenerationRequest, LoraSpec, parse_size
    from huajia.engine.styles import get_style
    from huajia.world.dataset import prepare_out_dir

    width, height = parse_size(size) if size else (None, None)
    request = GenerationRequest(
        prompt=prompt, negative_prompt=negative, seed=seed, steps=steps, guidance=cfg,
        width=width, height=height, n=n, style=style, scheduler=scheduler,
        loras=tuple(LoraSpec.parse(x) for x in lora))
    get_style(style)  # unknown styles and missing LoRAs fail before the model loads
    check_lora_paths(request.loras)
    prepare_out_dir(out)
    engine = Engine(model)
    with progress_bar("painting", steps) as advance:
        result = engine.generate(request, on_step=lambda done, total: advance(1))
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    for image, seed_used, infotext in zip(result.images, result.seeds, result.infotexts,
                                          strict=True):
        path = _free_name(out, seed_used)
        save_png(image, path, infotext)
        console.print(str(path))


def _free_name(folder: Path, seed: int) -> Path:
    index = len(list(folder.glob("*.png")))
    while (folder / f"{index:05d}-{seed}.png").exists():
        index += 1
    return folder / f"{index:05d}-{seed}.png"


def _think_options(pauses: int, budget: int | None, threshold: float, repaints: int,
                   restarts: int, steer: bool, compose_tries: int):
    from huajia.thinking.loop import ThinkOptions

    return ThinkOptions(pauses=pauses, budget=budget, threshold=threshold, restarts=restarts,
                        max_repaints=repaints, steer=steer, compose_tries=compose_tries)


@app.command("think")
def think(
    prompt: str = typer.Argument(..., help="What to paint (English or 中文)."),
    critic: str = typer.Option("shapes", help="shapes, clip or vlm."),
    pauses: int = typer.Option(3, help="Pauses to look during denoising (0: reflect only)."),
    budget: int = typer.Option(None, help="Max network evaluations per image."),
    threshold: float = typer.Option(90.0, help="Region score (0-100) below which it is fixed."),
    repaints: int = typer.Option(5, help="Max repaint rounds after the last step."),
    restarts: int = typer.Option(8, help="Max fresh starts while the first look is not yet "
                                 "satisfied."),
    steer: bool = typer.Option(False, help="Also steer failing regions at the pauses "
                               "(stronger guidance, fresh noise); off: measured worse on the "
                               "embedded model."),
    compose_tries: int = typer.Option(3, help="A region wrong after the end is first painted "
                                      "alone (this many checked seeds) and pasted into its "
                                      "box; 0: repaint in place only."),
    seed: int = typer.Option(0),
    steps: int = typer.Option(20),
    cfg: float = typer.Option(5.0, "--cfg"),
    size: str = typer.Option(None, help="WIDTHxHEIGHT (default: the model's native size)."),
    negative: str = typer.Option("", "--negative"),
    style: str = typer.Option("none"),
    model: str = typer.Option("embedded"),
    clip_model: str = typer.Option(None, help="Local CLIP checkpoint (critic clip)."),
    vlm_url: str = typer.Option(None, help="OpenAI-compatible base URL (critic vlm)."),
    vlm_model: str = typer.Option(None, help="Model name at that endpoint (critic vlm)."),
    vlm_key: str = typer.Option(None, envvar="HUAJIA_VLM_KEY", help="API key (critic vlm)."),
    lora: list[str] = typer.Option([], "--lora", help="PATH[:SCALE], repeatable."),
    out: Path = typer.Option(Path("think-out"), "--out"),
) -> None:
    """Paint while thinking: writes final.png, thoughts.json and timeline.png."""
    from huajia.engine.engine import Engine
    from huajia.engine.infotext import save_png
    from huajia.engine.lora import check_lora_paths
    from huajia.engine.request import GenerationRequest, LoraSpec, parse_size
    from huajia.thinking.critics import make_critic
    from huajia.thinking.loop import Thinker, thought_lines
    from huajia.thinking.timeline import timeline, write_thoughts
    from huajia.world.dataset import prepare_out_dir

    width, height = parse_size(size) if size else (None, None)
    request = GenerationRequest(prompt=prompt, negative_prompt=negative, seed=seed, steps=steps,
                                guidance=cfg, width=width, height=height, style=style,
                                loras=tuple(LoraSpec.parse(x) for x in lora))
    check_lora_paths(request.loras)
    critic_impl = make_critic(critic, clip_model, vlm_url, vlm_model, vlm_key)
    prepare_out_dir(out)
    thinker = Thinker(Engine(model), critic_impl, _think_options(pauses, budget, threshold,
                                                                  repaints, restarts, steer,
                                                                  compose_tries))
    result = thinker.think(request, on_thought=lambda t: console.print(
        f"[cyan]thought[/] {thought_lines(t)}", highlight=False))
    save_png(result.image, out / "final.png", result.infotext)
    write_thoughts(result, out / "thoughts.json")
    timeline(result).save(out / "timeline.png")
    console.print(f"{out / 'final.png'}\n{out / 'thoughts.json'}\n{out / 'timeline.png'}")


@app.command("compare")
def compare(
    prompt: str = typer.Argument(..., help="What to paint."),
    seed: int = typer.Option(0),
    steps: int = typer.Option(20),
    cfg: float = typer.Option(5.0, "--cfg"),
    critic: str = typer.Option("shapes"),
    model: str = typer.Option("embedded"),
    out: Path = typer.Option(Path("compare.png"), "--out"),
) -> None:
    """Plain generation vs thinking while painting, same seed, side by side."""
    from huajia.engine.engine import Engine
    from huajia.engine.request import GenerationRequest
    from huajia.thinking.critics import make_critic
    from huajia.thinking.loop import Thinker
    from huajia.thinking.plan import plan_prompt
    from huajia.thinking.timeline import comparison

    _out_file(out)
    engine = Engine(model)
    request = GenerationRequest(prompt=prompt, seed=seed, steps=steps, guidance=cfg)
    critic_impl = make_critic(critic)
    plain = engine.generate(request).images[0]
    plan = plan_prompt(prompt)
    plain_note = critic_impl.inspect(plain, plan, 90.0).summary
    result = Thinker(engine, critic_impl).think(request)
    final = critic_impl.inspect(result.image, plan, 90.0).summary
    note = (f"{final}（{result.nfe} 次网络计算；一次画成 {2 * steps} 次）" if plan.lang == "zh"
            else f"{final} ({result.nfe} NFE; plain: {2 * steps})")
    comparison(prompt, plain, result.image, plain_note, note, plan.lang).save(out)
    console.print(str(out))


@app.command("series")
def series(
    prompts_file: Path = typer.Argument(..., help="One prompt per line."),
    seed: int = typer.Option(0, help="Seed of the first panel (then seed+1, …)."),
    negative: str = typer.Option("", "--negative", help="Shared negative prompt."),
    lora: list[str] = typer.Option([], "--lora", help="PATH[:SCALE], repeatable."),
    steps: int = typer.Option(20), cfg: float = typer.Option(5.0, "--cfg"),
    style: str = typer.Option("none"), model: str = typer.Option("embedded"),
    grid: Path = typer.Option(Path("series.png"), "--grid", help="Contact sheet PNG."),
) -> None:
    """A seeded series: one picture per line, fixed seeds, stitched into a contact sheet."""
    from huajia.engine.engine import Engine
    from huajia.engine.infotext import save_png
    from huajia.engine.lora import check_lora_paths
    from huajia.engine.request import LoraSpec
    from huajia.engine.series import make_series, read_prompts, series_sheet

    prompts = read_prompts(prompts_file)
    loras = tuple(LoraSpec.parse(x) for x in lora)
    check_lora_paths(loras)
    _out_file(grid)
    with console.status(f"painting {len(prompts)} panels"):
        panels = make_series(Engine(model), prompts, seed, negative, loras, steps, cfg, style)
    folder = grid.with_suffix("")
    folder.mkdir(exist_ok=True)
    for index, panel in enumerate(panels, 1):
        save_png(panel.image, folder / f"{index:02d}-{panel.seed}.png", panel.infotext)
    series_sheet(panels, title=f"{prompts_file.name} · seed {seed}").save(grid)
    console.print(f"{grid}\n{folder}/")


@app.command("info")
def info(image: Path = typer.Argument(..., help="A PNG made by huajia (or A1111).")) -> None:
    """Print the generation parameters stored in a PNG."""
    from huajia.engine.infotext import read_infotext

    console.print(read_infotext(image), markup=False, highlight=False)


@app.command("styles")
def styles() -> None:
    """List the style presets."""
    from huajia.engine.styles import load_styles

    for style in load_styles().values():
        console.print(f"[bold]{style.name}[/]: {style.prompt}", highlight=False)


@app.command("curate")
def curate_command(
    config: Path = typer.Option(None, "--config", help="A Data-Juicer YAML config."),
    data: str = typer.Option(None, "--data", help="Dataset (without --config)."),
    out: Path = typer.Option(None, "--out", help="Clean imagefolder + report go here."),
    min_width: int = typer.Option(None), min_height: int = typer.Option(None),
    min_ratio: float = typer.Option(None), max_ratio: float = typer.Option(None),
    max_size: str = typer.Option(None, help="e.g. 5MB"),
    dedup: str = typer.Option(None, help="phash, dhash, whash or ahash"),
    min_similarity: float = typer.Option(None, help="Verifier/CLIP image-text score."),
    clip_model: str = typer.Option("shapes-verifier", help="Local CLIP folder, or the verifier."),
    nsfw_threshold: float = typer.Option(None, help="Drop at or above this nudenet score."),
    np_workers: int = typer.Option(1, "--np", help="Worker processes."),
) -> None:
    """Filter an image/caption dataset (Data-Juicer operators) into a clean imagefolder."""
    from huajia.curation.report import write_report
    from huajia.curation.runner import Recipe, curate, load_config
    from huajia.curation.sources import iter_samples
    from huajia.world.dataset import prepare_out_dir

    if config is not None:
        recipe = load_config(config, str(out) if out else None)
    elif data and out:
        steps = _flag_steps(min_width, min_height, min_ratio, max_ratio, max_size, dedup,
                            min_similarity, clip_model, nsfw_threshold)
        recipe = Recipe(data, str(out), tuple(steps), np_workers)
    else:
        raise HuajiaError("pass --config FILE.yaml, or --data DIR --out DIR with filter flags")
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


def _flag_steps(min_width, min_height, min_ratio, max_ratio, max_size, dedup, min_similarity,
                clip_model, nsfw_threshold) -> list[tuple[str, dict]]:
    steps: list[tuple[str, dict]] = []
    if min_width or min_height:
        steps.append(("image_shape_filter", {"min_width": min_width or 1,
                                             "min_height": min_height or 1}))
    if min_ratio is not None or max_ratio is not None:
        steps.append(("image_aspect_ratio_filter", {"min_ratio": min_ratio or 0.0,
                                                    "max_ratio": max_ratio or 1e9}))
    if max_size:
        steps.append(("image_size_filter", {"max_size": max_size}))
    if min_similarity is not None:
        steps.append(("image_text_similarity_filter", {"hf_clip": clip_model,
                                                       "min_score": min_similarity}))
    if nsfw_threshold is not None:
        steps.append(("image_nsfw_filter", {"score_threshold": nsfw_threshold}))
    if dedup:
        steps.append(("image_deduplicator", {"method": dedup}))
    return steps


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
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category)


def main() -> None:
    _quiet_libraries()
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
