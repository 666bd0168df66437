"""The finishing options the painting commands share (hires fix, sharpen, custom styles, prompt
expansion), and ``huajia edit`` and ``huajia upscale``."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from huajia.cli_common import console, vocabulary_option
from huajia.engine.request import GenerationRequest
from huajia.errors import HuajiaError


def _r(name: str, *short: str):
    return vocabulary_option(GenerationRequest, name, *short)


def use_styles_file(path: Path | None) -> Path | None:
    """``--styles-file``: the user's styles for this command (as $HUAJIA_STYLES), read now so
    a broken file is a one-line error before any work."""
    from huajia.engine.styles import STYLES_ENV, load_styles

    if path is not None:
        load_styles(path)
        os.environ[STYLES_ENV] = str(path)
    return path


STYLES_FILE = typer.Option(None, "--styles-file", callback=use_styles_file, is_eager=True,
                           help="Your own styles (JSON list of {name, prompt, negative_prompt}); "
                                "same as $HUAJIA_STYLES.")
WILDCARDS = typer.Option(None, "--wildcards", envvar="HUAJIA_WILDCARDS",
                         help="Folder of NAME.txt wildcard files for --expand wildcards "
                              "(default: the shapes world's words).")
LLM_URL = typer.Option(None, "--llm-url", help="--expand llm: OpenAI-compatible base URL.")
LLM_MODEL = typer.Option(None, "--llm-model", help="--expand llm: model name.")
LLM_KEY = typer.Option(None, "--llm-key", envvar="HUAJIA_LLM_KEY", help="--expand llm: API key.")


def make_expander(wildcards: Path | None, llm_url: str | None, llm_model: str | None,
                  llm_key: str | None, strict: bool = True):
    from huajia.engine.expansion import LlmSettings, PromptExpander

    if bool(llm_url) != bool(llm_model):
        raise HuajiaError("--llm-url and --llm-model go together; give both")
    llm = LlmSettings(llm_url, llm_model, llm_key) if llm_url else None
    return PromptExpander(wildcards, llm, strict=strict)


def finishing_fields(hires_scale, hires_upscaler, hires_steps, hires_denoise, sharpen, style_raw,
                     expand) -> dict:
    return {"hires_scale": hires_scale, "hires_upscaler": hires_upscaler, "hires_steps": hires_steps,
            "hires_denoise": hires_denoise, "sharpen": sharpen, "style_raw": style_raw,
            "expand": expand}


def edit(
    image: Path = typer.Argument(..., help="The picture to edit."),
    prompt: str = typer.Argument(..., help="What to paint in the masked area."),
    mask: Path = typer.Option(None, "--mask", help="White (or transparent) where to paint; "
                              "omitted: the picture's transparent pixels."),
    strength: float = typer.Option(1.0, help="How far back into the noise the area starts "
                                   "(1: painted anew; 0.5 keeps its colours and layout)."),
    n: int = _r("n", "-n"),
    seed: int = _r("seed"),
    steps: int = _r("steps"),
    guidance: float = _r("guidance"),
    negative_prompt: str = _r("negative_prompt"),
    style: str = _r("style"),
    sharpen: float = _r("sharpen"),
    styles_file: Path = STYLES_FILE,
    model: str = typer.Option("embedded", help="embedded, a diffusers folder or a hub id."),
    out: Path = typer.Option(Path("outputs"), "--out", help="Folder for the PNGs."),
) -> None:
    """Inpaint: paint the masked area again with the same model; the rest stays as it was."""
    from huajia.cli_paint import open_engine, write_results
    from huajia.drawing import load_image
    from huajia.engine.edits import edit_size, read_mask
    from huajia.world.dataset import prepare_out_dir

    request = GenerationRequest(prompt, n=n, seed=seed, steps=steps, guidance=guidance,
                                negative_prompt=negative_prompt, style=style, sharpen=sharpen)
    picture = load_image(image)
    area_mask = load_image(mask) if mask is not None else None
    read_mask(picture, area_mask)  # size and emptiness: errors before the model loads
    edit_size(picture, None)
    if not 0 < strength <= 1:
        raise HuajiaError(f"--strength {strength} is out of range; use above 0 up to 1")
    prepare_out_dir(out)
    with console.status("painting the masked area"):
        result = open_engine(model).edit(request, picture, area_mask, strength=strength)
    write_results(result, out)


def upscale(
    image: Path = typer.Argument(..., help="The picture to upscale."),
    scale: float = typer.Option(2.0, help="Factor, 1-8 (the result is rounded to multiples of 8)."),
    model: Path = typer.Option(None, "--model", help="An ESRGAN-family weights file spandrel "
                               "loads (.pth/.safetensors); omitted: Lanczos."),
    out: Path = typer.Option(None, "--out", help="PNG to write (default: IMAGE-x2.png)."),
) -> None:
    """Upscale a picture with Lanczos or a super-resolution model file; the infotext is kept."""
    from huajia.drawing import load_image
    from huajia.engine.infotext import save_png
    from huajia.engine.upscalers import Upscalers, label, target_size

    if not 1 <= scale <= 8:
        raise HuajiaError(f"--scale {scale:g} is out of range; use 1 to 8")
    picture = load_image(image)
    size = target_size(picture.size, scale)
    upscalers = Upscalers()
    name = str(model) if model else "lanczos"
    upscalers.get(name)  # a file that is not a model fails here, before anything is written
    out = out or image.with_name(f"{image.stem}-x{scale:g}.png")
    if out.suffix.lower() != ".png":
        raise HuajiaError(f"--out '{out}' must end in .png")
    bigger = upscalers.upscale(picture.convert("RGB"), size, name)
    info = picture.info.get("parameters")
    if info:  # A1111's Extras keys, on the fields line PNG-info tools read
        save_png(bigger, out, f"{info}, Postprocess upscale by: {scale:g}, "
                              f"Postprocess upscaler: {label(name)}")
    else:
        bigger.save(out)
    console.print(str(out))


def register(app: typer.Typer) -> None:
    app.command("edit")(edit)
    app.command("upscale")(upscale)
