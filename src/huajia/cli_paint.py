"""``huajia generate``, ``think``, ``compare`` and ``series``: the painting commands.

Their options are the request vocabulary (``GenerationRequest``, ``ThinkOptions``): each flag is
built from the dataclass field of the same name (``vocabulary_option``), so names, defaults and
limits are the Python API's and the HTTP API's. ``register(app)`` adds them to the main app.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

from huajia.cli_common import console, progress_bar, vocabulary_option
from huajia.cli_finish import (
    LLM_KEY,
    LLM_MODEL,
    LLM_URL,
    STYLES_FILE,
    WILDCARDS,
    finishing_fields,
    make_expander,
)
from huajia.drawing import check_font_for
from huajia.engine.request import GenerationRequest
from huajia.errors import HuajiaError
from huajia.thinking.options import CRITICS, ThinkOptions


def _r(name: str, *short: str):
    return vocabulary_option(GenerationRequest, name, *short)


def _t(name: str):
    return vocabulary_option(ThinkOptions, name)


PROMPT = typer.Argument(..., help="What to paint (English or 中文; A1111 (word:1.5) works).")
SIZE_HELP = "WIDTHxHEIGHT, multiples of 8 from 64 to 2048 (default: the model's native size)."
MODEL_HELP = "embedded, a diffusers folder or a hub id."
LORA_HELP = "PATH[:SCALE], repeatable."


def build_request(prompt: str, size: str | None, lora: list[str], **fields) -> GenerationRequest:
    """The request the options describe (every check happens here, before a model loads)."""
    from huajia.engine.lora import check_lora_paths
    from huajia.engine.request import LoraSpec, parse_size

    width, height = parse_size(size) if size else (None, None)
    request = GenerationRequest(prompt, width=width, height=height,
                                loras=tuple(LoraSpec.parse(x) for x in lora), **fields)
    check_lora_paths(request.loras)
    return request


def open_engine(model: str, expander=None):
    from huajia.engine.engine import Engine
    from huajia.world.parser import unknown_words

    return Engine(model, vocabulary=unknown_words, expander=expander)


def generate(
    prompt: str = PROMPT,
    n: int = _r("n", "-n"),
    seed: int = _r("seed"),
    steps: int = _r("steps"),
    guidance: float = _r("guidance"),
    size: str = typer.Option(None, help=SIZE_HELP),
    negative_prompt: str = _r("negative_prompt"),
    style: str = _r("style"),
    scheduler: str = _r("scheduler"),
    guidance_rescale: float = _r("guidance_rescale"),
    cfg_cutoff: float = _r("cfg_cutoff"),
    upscaler: str = _r("upscaler"),
    hires_scale: float = _r("hires_scale"),
    hires_upscaler: str = _r("hires_upscaler"),
    hires_steps: int = _r("hires_steps"),
    hires_denoise: float = _r("hires_denoise"),
    sharpen: float = _r("sharpen"),
    style_raw: str = _r("style_raw"),
    expand: str = _r("expand"),
    wildcards: Path = WILDCARDS,
    llm_url: str = LLM_URL,
    llm_model: str = LLM_MODEL,
    llm_key: str = LLM_KEY,
    styles_file: Path = STYLES_FILE,
    lora: list[str] = typer.Option([], "--lora", help=LORA_HELP),
    model: str = typer.Option("embedded", help=MODEL_HELP),
    out: Path = typer.Option(Path("outputs"), "--out", help="Folder for the PNGs."),
) -> None:
    """Generate images; each PNG carries A1111 'parameters' infotext."""
    from huajia.world.dataset import prepare_out_dir

    request = build_request(prompt, size, lora, n=n, seed=seed, steps=steps, guidance=guidance,
                            negative_prompt=negative_prompt, style=style, scheduler=scheduler,
                            guidance_rescale=guidance_rescale, cfg_cutoff=cfg_cutoff,
                            upscaler=upscaler,
                            **finishing_fields(hires_scale, hires_upscaler, hires_steps, hires_denoise,
                                               sharpen, style_raw, expand))
    expander = make_expander(wildcards, llm_url, llm_model, llm_key)
    expander.check(request.expand, request.prompt)  # unknown wildcards, no LLM: before any work
    prepare_out_dir(out)
    engine = open_engine(model, expander)
    second = int((request.hires_steps or steps) * request.hires_denoise) if request.hires_scale > 1 else 0
    with progress_bar("painting", steps + second) as advance:
        result = engine.generate(request, on_step=lambda done, total: advance(1))
    write_results(result, out)


def write_results(result, out: Path) -> None:
    """A result's warnings, then its PNGs (infotext inside) under ``out``, one path a line."""
    from huajia.engine.infotext import save_png

    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    for image, seed_used, infotext in zip(result.images, result.seeds, result.infotexts,
                                          strict=True):
        path = free_name(out, seed_used)
        save_png(image, path, infotext)
        console.print(str(path))


def free_name(folder: Path, seed: int) -> Path:
    index = len(list(folder.glob("*.png")))
    while (folder / f"{index:05d}-{seed}.png").exists():
        index += 1
    return folder / f"{index:05d}-{seed}.png"


def think(
    prompt: str = typer.Argument(None, help="What to paint (English or 中文; A1111 "
                                            "(word:1.5) works); omitted with --infotext."),
    critic: str = typer.Option("shapes", help=f"Critic: {', '.join(CRITICS)}."),
    pauses: int = _t("pauses"),
    budget: int = _t("budget"),
    threshold: float = _t("threshold"),
    max_repaints: int = _t("max_repaints"),
    restarts: int = _t("restarts"),
    steer: bool = _t("steer"),
    compose_tries: int = _t("compose_tries"),
    region_strength: float = _t("region_strength"),
    woken_strength: float = _t("woken_strength"),
    repaint_strength: float = _t("repaint_strength"),
    restart_below: float = _t("restart_below"),
    part_steps: int = _t("part_steps"),
    first_look: float = _t("first_look"),
    n: int = _r("n", "-n"),
    seed: int = _r("seed"),
    steps: int = _r("steps"),
    guidance: float = _r("guidance"),
    size: str = typer.Option(None, help=SIZE_HELP),
    negative_prompt: str = _r("negative_prompt"),
    style: str = _r("style"),
    scheduler: str = _r("scheduler"),
    guidance_rescale: float = _r("guidance_rescale"),
    cfg_cutoff: float = _r("cfg_cutoff"),
    upscaler: str = _r("upscaler"),
    hires_scale: float = _r("hires_scale"),
    hires_upscaler: str = _r("hires_upscaler"),
    hires_steps: int = _r("hires_steps"),
    hires_denoise: float = _r("hires_denoise"),
    sharpen: float = _r("sharpen"),
    style_raw: str = _r("style_raw"),
    expand: str = _r("expand"),
    wildcards: Path = WILDCARDS,
    llm_url: str = LLM_URL,
    llm_model: str = LLM_MODEL,
    llm_key: str = LLM_KEY,
    styles_file: Path = STYLES_FILE,
    model: str = typer.Option("embedded", help=MODEL_HELP),
    clip_model: str = typer.Option(None, help="Local CLIP checkpoint (critic clip)."),
    vlm_url: str = typer.Option(None, help="OpenAI-compatible base URL (critic vlm)."),
    vlm_model: str = typer.Option(None, help="Model name at that endpoint (critic vlm)."),
    vlm_key: str = typer.Option(None, envvar="HUAJIA_VLM_KEY", help="API key (critic vlm)."),
    lora: list[str] = typer.Option([], "--lora", help=LORA_HELP),
    infotext: Path = typer.Option(None, "--infotext", help="Repaint a thinking run's picture: "
                                  "a PNG it wrote (or its infotext as text); its prompt, seed, "
                                  "sampler, size, critic and think options replace the flags."),
    out: Path = typer.Option(Path("think-out"), "--out"),
) -> None:
    """Paint while thinking: writes final.png, thoughts.json and timeline.png (one set per
    picture, in numbered subfolders when -n is above 1)."""
    from huajia.engine.infotext import save_png
    from huajia.thinking.critics import check_plan, make_critic
    from huajia.thinking.loop import Thinker, thought_lines
    from huajia.thinking.plan import plan_prompt
    from huajia.thinking.timeline import timeline, write_thoughts
    from huajia.world.dataset import prepare_out_dir

    if infotext is not None:
        request, options, critic = _from_infotext(infotext, lora)
    elif prompt is None:
        raise HuajiaError("give a PROMPT to paint, or --infotext PNG to repaint a thinking run")
    else:
        request = build_request(prompt, size, lora, n=n, seed=seed, steps=steps,
                                guidance=guidance, negative_prompt=negative_prompt, style=style,
                                scheduler=scheduler, guidance_rescale=guidance_rescale,
                                cfg_cutoff=cfg_cutoff, upscaler=upscaler,
                                **finishing_fields(hires_scale, hires_upscaler, hires_steps,
                                                   hires_denoise, sharpen, style_raw, expand))
        options = ThinkOptions(pauses=pauses, budget=budget, threshold=threshold,
                               max_repaints=max_repaints, restarts=restarts, steer=steer,
                               compose_tries=compose_tries, region_strength=region_strength,
                               woken_strength=woken_strength, repaint_strength=repaint_strength,
                               restart_below=restart_below, part_steps=part_steps,
                               first_look=first_look)
    critic_impl = make_critic(critic, clip_model, vlm_url, vlm_model, vlm_key)
    expander = make_expander(wildcards, llm_url, llm_model, llm_key)
    expander.check(request.expand, request.prompt)
    if request.expand == "none":  # an expanded prompt is planned once it is written
        check_plan(critic_impl, plan_prompt(request.prompt))
    check_font_for(request.prompt)  # the timeline speaks the prompt's language
    prepare_out_dir(out)
    results = Thinker(open_engine(model, expander), critic_impl, options).think_all(
        request, on_thought=lambda i, t: console.print(
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


def compare(
    prompt: str = PROMPT,
    seed: int = _r("seed"),
    steps: int = _r("steps"),
    guidance: float = _r("guidance"),
    critic: str = typer.Option("shapes", help=f"Critic: {', '.join(CRITICS)}."),
    model: str = typer.Option("embedded", help=MODEL_HELP),
    out: Path = typer.Option(Path("compare.png"), "--out"),
) -> None:
    """Plain generation vs thinking while painting, same seed, side by side."""
    from huajia.thinking.critics import check_plan, make_critic
    from huajia.thinking.loop import Thinker, compare_note
    from huajia.thinking.plan import plan_prompt
    from huajia.thinking.timeline import comparison
    from huajia.world.dataset import prepare_out_dir

    request = build_request(prompt, None, [], seed=seed, steps=steps, guidance=guidance)
    critic_impl, plan = make_critic(critic), plan_prompt(prompt)
    check_plan(critic_impl, plan)
    check_font_for(prompt)
    prepare_out_dir(out.parent if str(out.parent) else Path("."))
    engine = open_engine(model)
    plain = engine.generate(request)
    plain_note = critic_impl.inspect(plain.images[0], plan, ThinkOptions.threshold).summary
    # the same seed as the plain picture (drawn there when --seed is left out)
    result = Thinker(engine, critic_impl).think(replace(request, seed=plain.seeds[0]))
    final = critic_impl.inspect(result.image, plan, ThinkOptions.threshold).summary
    note = compare_note(final, result.nfe, steps, plan.lang)
    comparison(prompt, plain.images[0], result.image, plain_note, note, plan.lang).save(out)
    console.print(str(out))


def series(
    prompts_file: Path = typer.Argument(..., help="One prompt per line."),
    seed: int = typer.Option(0, help="Seed of the first panel (then seed+1, …)."),
    negative_prompt: str = _r("negative_prompt"),
    lora: list[str] = typer.Option([], "--lora", help=LORA_HELP),
    steps: int = _r("steps"),
    guidance: float = _r("guidance"),
    style: str = _r("style"),
    model: str = typer.Option("embedded", help=MODEL_HELP),
    grid: Path = typer.Option(Path("series.png"), "--grid", help="Contact sheet PNG."),
) -> None:
    """A seeded series: one picture per line, fixed seeds, stitched into a contact sheet."""
    from huajia.engine.infotext import save_png
    from huajia.engine.series import make_series, read_prompts, series_sheet
    from huajia.world.dataset import prepare_out_dir

    prompts = read_prompts(prompts_file)
    template = build_request(prompts[0], None, lora, seed=seed, steps=steps, guidance=guidance,
                             negative_prompt=negative_prompt, style=style)
    prepare_out_dir(grid.parent if str(grid.parent) else Path("."))
    with console.status(f"painting {len(prompts)} panels"):
        panels = make_series(open_engine(model), prompts, template)
    folder = grid.with_suffix("")
    folder.mkdir(exist_ok=True)
    for index, panel in enumerate(panels, 1):
        save_png(panel.image, folder / f"{index:02d}-{panel.seed}.png", panel.infotext)
    series_sheet(panels, title=f"{prompts_file.name} · seed {seed}").save(grid)
    console.print(f"{grid}\n{folder}/")


def register(app: typer.Typer) -> None:
    for command in (generate, think, compare, series):
        app.command(command.__name__)(command)
