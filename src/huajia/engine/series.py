"""Seeded series: one picture per prompt line, fixed seeds (seed, seed+1, …), a shared
negative prompt and LoRAs, stitched into a captioned contact sheet (a picture story)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from huajia.drawing import Tile, captioned_grid
from huajia.engine.engine import Engine
from huajia.engine.request import GenerationRequest
from huajia.errors import HuajiaError


@dataclass(frozen=True)
class Panel:
    prompt: str
    seed: int
    image: Image.Image
    infotext: str


def read_prompts(path: str | Path) -> list[str]:
    """Non-empty, non-comment lines of a prompts file."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise HuajiaError(f"cannot read prompts file '{path}': {error.strerror}") from error
    prompts = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not prompts:
        raise HuajiaError(f"'{path}' has no prompts; write one per line")
    return prompts


def make_series(engine: Engine, prompts: list[str],
                template: GenerationRequest | None = None, seed: int = 0,
                **fields) -> list[Panel]:
    """One panel per prompt: ``template`` (or a request made of ``fields``) with each prompt
    and the seeds seed, seed+1, … (the template's seed when it has one)."""
    template = template or GenerationRequest(prompts[0], seed=seed, **fields)
    first = template.seed if template.seed is not None else seed
    requests = [replace(template, prompt=p, seed=first + i, n=1) for i, p in enumerate(prompts)]
    panels = []
    for start in range(0, len(requests), 8):  # micro-batches of 8 panels
        for request, result in zip(requests[start:start + 8],
                                   engine.generate_batch(requests[start:start + 8]),
                                   strict=True):
            panels.append(Panel(request.prompt, request.seed, result.images[0],
                                result.infotexts[0]))
    return panels


def series_sheet(panels: list[Panel], title: str = "") -> Image.Image:
    tiles = [Tile(p.image, (f"{i + 1}. {p.prompt}", f"seed {p.seed}"))
             for i, p in enumerate(panels)]
    return captioned_grid(tiles, columns=4 if len(tiles) > 4 else len(tiles), tile_px=224,
                          text_lines=4, title=title)
