"""``huajia edit`` (inpaint a masked area) and ``huajia upscale``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from huajia.cli_common import (
    FAMILY,
    MODEL_HELP,
    STYLES_FILE,
    Options,
    console,
    open_engine,
    vocabulary_options,
    write_results,
)
from huajia.engine.loading import LoadOptions
from huajia.engine.request import GenerationRequest
from huajia.errors import HuajiaError

if TYPE_CHECKING:
    from huajia.cli_common import Given

EDIT_REQUEST = Options(GenerationRequest, build=False, only=(
    "n", "seed", "steps", "guidance", "negative_prompt", "style", "sharpen"))


@vocabulary_options(request=EDIT_REQUEST, load=LoadOptions)
def edit(
    image: Path = typer.Argument(..., help="The picture to edit."),
    prompt: str = typer.Argument(..., help="What to paint in the masked area."),
    mask: Path = typer.Option(None, "--mask", help="White (or transparent) where to paint; "
                              "omitted: the picture's transparent pixels."),
    strength: float = typer.Option(1.0, help="How far back into the noise the area starts "
                                   "(1: painted anew; 0.5 keeps its colours and layout)."),
    styles_file: Path = STYLES_FILE,
    model: str = typer.Option("embedded", help=MODEL_HELP),
    family: str = FAMILY,
    out: Path = typer.Option(Path("outputs"), "--out", help="Folder for the PNGs."),
    *,
    request: Given,
    load: LoadOptions,
) -> None:
    """Inpaint: paint the masked area again with the same model; the rest stays as it was."""
    from huajia.drawing import load_image
    from huajia.engine.edits import edit_size, read_mask
    from huajia.world.dataset import prepare_out_dir

    painted = GenerationRequest(prompt, **request.values)
    picture = load_image(image)
    area_mask = load_image(mask) if mask is not None else None
    read_mask(picture, area_mask)  # size and emptiness: errors before the model loads
    edit_size(picture, None)
    if not 0 < strength <= 1:
        raise HuajiaError(f"--strength {strength} is out of range; use above 0 up to 1")
    prepare_out_dir(out)
    with console.status("painting the masked area"):
        engine = open_engine(model, family=family, load=load)
        result = engine.edit(painted, picture, area_mask, strength=strength)
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
