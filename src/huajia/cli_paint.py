"""``huajia generate``, ``think``, ``compare`` and ``series``: the painting commands.

Their options are the vocabulary (``GenerationRequest``, ``ThinkOptions``, ``CriticOptions``,
``ExpansionOptions``): ``vocabulary_options`` builds one flag per dataclass field, so names,
defaults and limits are the Python API's and the HTTP API's. ``register(app)`` adds them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from huajia.cli_common import (
    FAMILY,
    LORA_HELP,
    MODEL_HELP,
    SIZE_HELP,
    STYLES_FILE,
    Options,
    build_request,
    console,
    open_engine,
    progress_bar,
    vocabulary_options,
    write_results,
)
from huajia.drawing import check_font_for
from huajia.engine.expansion import ExpansionOptions
from huajia.engine.loading import LoadOptions
from huajia.engine.request import GenerationRequest
from huajia.errors import HuajiaError
from huajia.thinking.options import CriticOptions, ThinkOptions

if TYPE_CHECKING:
    from huajia.cli_common import Given

PROMPT = typer.Argument(..., help="What to paint (English or 中文; A1111 (word:1.5) works).")
REQUEST = Options(GenerationRequest, build=False)  # the command adds the prompt, size and LoRAs


@vocabulary_options(request=REQUEST, expansion=ExpansionOptions, load=LoadOptions)
def generate(
    prompt: str = PROMPT,
    size: str = typer.Option(None, help=SIZE_HELP),
    lora: list[str] = typer.Option([], "--lora", help=LORA_HELP),
    styles_file: Path = STYLES_FILE,
    model: str = typer.Option("embedded", help=MODEL_HELP),
    family: str = FAMILY,
    out: Path = typer.Option(Path("outputs"), "--out", help="Folder for the PNGs."),
    watermark_key: str = typer.Option(None, "--watermark-key", envvar="HUAJIA_WATERMARK_KEY",
                                      help="Mark the pictures with this key's invisible "
                                      "watermark (huajia detect --watermark-key reads it)."),
    *,
    request: Given,
    expansion: ExpansionOptions,
    load: LoadOptions,
) -> None:
    """Generate images; each PNG carries A1111 'parameters' infotext."""
    from huajia.world.dataset import prepare_out_dir

    painted = build_request(prompt, size, lora, **request.values)
    expander = expansion.expander()
    expander.check(painted.expand, painted.prompt)  # unknown wildcards, no LLM: before any work
    prepare_out_dir(out)
    engine = open_engine(model, expander, family, load)
    steps = painted.steps
    second = (int((painted.hires_steps or steps) * painted.hires_denoise)
              if painted.hires_scale > 1 else 0)
    with progress_bar("painting", steps + second) as advance:
        result = engine.generate(painted, on_step=lambda done, total: advance(1))
    if watermark_key:
        from dataclasses import replace

        from huajia.serving.provenance import embed_watermark

        result = replace(result, images=tuple(embed_watermark(i, watermark_key)
                                              for i in result.images))
    write_results(result, out)


@vocabulary_options(request=REQUEST, options=ThinkOptions, critics=CriticOptions,
                    expansion=ExpansionOptions, load=LoadOptions)
def think(
    prompt: str = typer.Argument(None, help="What to paint (English or 中文; A1111 "
                                            "(word:1.5) works); omitted with --infotext."),
    size: str = typer.Option(None, help=SIZE_HELP),
    lora: list[str] = typer.Option([], "--lora", help=LORA_HELP),
    styles_file: Path = STYLES_FILE,
    model: str = typer.Option("embedded", help=MODEL_HELP),
    family: str = FAMILY,
    infotext: Path = typer.Option(None, "--infotext", help="Repaint a thinking run's picture: "
                                  "a PNG it wrote (or its infotext as text); its prompt, seed, "
                                  "sampler, size, critic and think options replace the flags."),
    out: Path = typer.Option(Path("think-out"), "--out"),
    *,
    request: Given,
    options: ThinkOptions,
    critics: CriticOptions,
    expansion: ExpansionOptions,
    load: LoadOptions,
) -> None:
    """Paint while thinking: writes final.png, thoughts.json and timeline.png (one set per
    picture, in numbered subfolders when -n is above 1)."""
    from huajia.engine.infotext import save_png
    from huajia.thinking.critics import check_plan
    from huajia.thinking.loop import Thinker, thought_lines
    from huajia.thinking.plan import plan_prompt
    from huajia.thinking.planner import check_planner
    from huajia.thinking.timeline import timeline, write_thoughts
    from huajia.world.dataset import prepare_out_dir

    if infotext is not None:
        painted, options, critic = _from_infotext(infotext, lora)
        critics = replace(critics, critic=critic)
    elif prompt is None:
        raise HuajiaError("give a PROMPT to paint, or --infotext PNG to repaint a thinking run")
    else:
        painted = build_request(prompt, size, lora, **request.values)
    critic_impl = critics.make()
    expander = expansion.expander()
    expander.check(painted.expand, painted.prompt)
    if painted.expand == "none":  # an expanded prompt is planned once it is written
        check_planner(options.planner, painted.prompt, expander.llm)
        check_plan(critic_impl, plan_prompt(painted.prompt, world=options.planner != "bands"))
    check_font_for(painted.prompt)  # the timeline speaks the prompt's language
    prepare_out_dir(out)
    results = Thinker(open_engine(model, expander, family, load), critic_impl, options).think_all(
        painted, on_thought=lambda i, t: console.print(
            f"[cyan]thought[/] {thought_lines(t)}", highlight=False))
    for index, result in enumerate(results, 1):
        folder = out if len(results) == 1 else prepare_out_dir(out / f"{index:02d}-{result.seed}")
        save_png(result.image, folder / "final.png", result.infotext)
        write_thoughts(result, folder / "thoughts.json")
        timeline(result).save(folder / "timeline.png")
        console.print(f"{folder / 'final.png'}\n{folder / 'thoughts.json'}\n"
                      f"{folder / 'timeline.png'}")


def _from_infotext(path: Path, lora: list[str]):
    """(request, think options, critic) that repaint the picture an infotext describes."""
    from huajia.engine.infotext import read_infotext
    from huajia.engine.request import request_fields
    from huajia.thinking.options import options_from_infotext

    if not path.is_file():
        raise HuajiaError(f"--infotext '{path}' is not a file; give a PNG huajia think wrote")
    text = read_infotext(path) if path.suffix.lower() == ".png" else path.read_text("utf-8")
    fields = request_fields(text)
    options, critic = options_from_infotext(text)
    size = f"{fields.pop('width')}x{fields.pop('height')}" if "width" in fields else None
    return build_request(fields.pop("prompt"), size, lora, **fields), options, critic


@vocabulary_options(request=Options(GenerationRequest, only=("seed", "steps", "guidance"),
                                    build=False), critics=CriticOptions, load=LoadOptions)
def compare(
    prompt: str = PROMPT,
    size: str = typer.Option(None, help=SIZE_HELP),
    model: str = typer.Option("embedded", help=MODEL_HELP),
    family: str = FAMILY,
    out: Path = typer.Option(Path("compare.png"), "--out"),
    *,
    request: Given,
    critics: CriticOptions,
    load: LoadOptions,
) -> None:
    """Plain generation vs thinking while painting, same seed, side by side."""
    from huajia.thinking.critics import check_plan
    from huajia.thinking.loop import Thinker, compare_note
    from huajia.thinking.plan import plan_prompt
    from huajia.thinking.timeline import comparison
    from huajia.world.dataset import prepare_out_dir

    painted = build_request(prompt, size, [], **request.values)
    critic_impl, plan = critics.make(), plan_prompt(prompt)
    check_plan(critic_impl, plan)
    check_font_for(prompt)
    prepare_out_dir(out.parent if str(out.parent) else Path("."))
    engine = open_engine(model, family=family, load=load)
    plain = engine.generate(painted)
    plain_note = critic_impl.inspect(plain.images[0], plan, ThinkOptions.threshold).summary
    # the same seed as the plain picture (drawn there when --seed is left out)
    result = Thinker(engine, critic_impl).think(replace(painted, seed=plain.seeds[0]))
    final = critic_impl.inspect(result.image, plan, ThinkOptions.threshold).summary
    note = compare_note(final, result.nfe, painted.steps, plan.lang)
    comparison(prompt, plain.images[0], result.image, plain_note, note, plan.lang).save(out)
    console.print(str(out))


@vocabulary_options(request=Options(GenerationRequest, build=False, only=(
    "negative_prompt", "steps", "guidance", "style")), load=LoadOptions)
def series(
    prompts_file: Path = typer.Argument(..., help="One prompt per line."),
    seed: int = typer.Option(0, help="Seed of the first panel (then seed+1, …)."),
    lora: list[str] = typer.Option([], "--lora", help=LORA_HELP),
    model: str = typer.Option("embedded", help=MODEL_HELP),
    family: str = FAMILY,
    grid: Path = typer.Option(Path("series.png"), "--grid", help="Contact sheet PNG."),
    *,
    request: Given,
    load: LoadOptions,
) -> None:
    """A seeded series: one picture per line, fixed seeds, stitched into a contact sheet."""
    from huajia.engine.infotext import save_png
    from huajia.engine.series import make_series, read_prompts, series_sheet
    from huajia.world.dataset import prepare_out_dir

    prompts = read_prompts(prompts_file)
    template = build_request(prompts[0], None, lora, seed=seed, **request.values)
    prepare_out_dir(grid.parent if str(grid.parent) else Path("."))
    with console.status(f"painting {len(prompts)} panels"):
        panels = make_series(open_engine(model, family=family, load=load), prompts, template)
    folder = grid.with_suffix("")
    folder.mkdir(exist_ok=True)
    for index, panel in enumerate(panels, 1):
        save_png(panel.image, folder / f"{index:02d}-{panel.seed}.png", panel.infotext)
    series_sheet(panels, title=f"{prompts_file.name} · seed {seed}").save(grid)
    console.print(f"{grid}\n{folder}/")


def register(app: typer.Typer) -> None:
    for command in (generate, think, compare, series):
        app.command(command.__name__)(command)
