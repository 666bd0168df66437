"""Tiny random-weight pipelines of every model family, built as diffusers' own tests build
theirs (``get_dummy_components()``: the real classes with tiny configs), with tokenizers made
here (nothing from the hub). Each is seeded (the same weights on every build), saves to about
0.5-2.5 MB and paints its native size in 2 steps in well under a second (HiDream: see
``prepare``).

    from tests.family_fixtures import FAMILIES, NATIVE, build, saved, call_kwargs, prepare

``saved(name, root)`` writes ``build(name)`` with ``save_pretrained``, so it loads with
``DiffusionPipeline.from_pretrained(folder)`` like a real checkpoint. ``call_kwargs(name)`` is
what plain diffusers needs beyond prompt/steps/seed to paint the fixture at its native size
(several pipelines default to 1024 px whatever their model, or bin sizes, or need a switch to
use a negative prompt at all); ``prepare(name, pipe)`` is the one attribute a loaded pipeline
needs changed (HiDream's fixed 1024 x 1024 area). One module per family holds its builder.
"""

from __future__ import annotations

import importlib
from pathlib import Path

FAMILIES = ("sd15", "sdxl", "kolors", "sd3", "flux", "chroma", "qwenimage", "zimage", "sana",
            "pixart_sigma", "lumina2", "hidream")
VARIANTS = {"flux_schnell": ("flux", "build_schnell")}  # buildable, not in FAMILIES

# The side, in pixels, each fixture paints: its denoiser's sample_size x its VAE's scale where
# the pipeline defaults to that (sd15, sdxl, kolors, sd3, pixart_sigma, lumina2); the others'
# pipelines default to 1024 (128 x 8, or a literal 1024) whatever the model, so pass it.
NATIVE = {"sd15": 32, "sdxl": 32, "kolors": 64, "sd3": 64, "flux": 64, "flux_schnell": 64,
          "chroma": 64, "qwenimage": 64, "zimage": 64, "sana": 64, "pixart_sigma": 64,
          "lumina2": 64, "hidream": 64}

PIPELINES = {"sd15": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline",
             "kolors": "KolorsPipeline", "sd3": "StableDiffusion3Pipeline",
             "flux": "FluxPipeline", "flux_schnell": "FluxPipeline",
             "chroma": "ChromaPipeline", "qwenimage": "QwenImagePipeline",
             "zimage": "ZImagePipeline", "sana": "SanaPipeline",
             "pixart_sigma": "PixArtSigmaPipeline", "lumina2": "Lumina2Pipeline",
             "hidream": "HiDreamImagePipeline"}

_CALL = {
    # FLUX.1-dev takes a negative prompt only with true_cfg_scale > 1 (then two passes);
    # guidance_scale is the distilled guidance fed to the transformer.
    "flux": {"true_cfg_scale": 2.0, "guidance_scale": 3.5},
    "flux_schnell": {"guidance_scale": None},  # no guidance input; the default 3.5 only warns
    # Qwen-Image: CFG is true_cfg_scale (default 4) with a negative prompt; guidance_scale is
    # for guidance-distilled variants only (None here, else a warning).
    "qwenimage": {"true_cfg_scale": 4.0},
    # Sana and PixArt-Σ bin sizes to their training buckets by the transformer's sample_size
    # (and raise for a size they have no table for, as these fixtures' 8).
    "sana": {"use_resolution_binning": False},
    # clean_caption (default True) deletes CJK characters when bs4 and ftfy are installed.
    "pixart_sigma": {"use_resolution_binning": False, "clean_caption": False},
}


def _builder(name: str):
    if name == "sd15" or name == "sdxl":
        from tests import conftest

        return conftest.tiny_sd if name == "sd15" else conftest.tiny_sdxl
    module, function = VARIANTS.get(name, (name, "build"))
    if module not in FAMILIES:
        raise KeyError(f"no family fixture {name!r}; there are {FAMILIES + tuple(VARIANTS)}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), function)


def build(name: str):
    """A new tiny pipeline of family ``name`` (the same weights every time)."""
    import torch

    pipe = _builder(name)()
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def saved(name: str, root: str | Path) -> Path:
    """``build(name)`` saved with ``save_pretrained`` into ``root / name``."""
    folder = Path(root) / name
    build(name).save_pretrained(folder)
    return folder


def call_kwargs(name: str) -> dict:
    """Keyword arguments, beyond prompt, negative_prompt, steps and generator, with which plain
    diffusers paints fixture ``name`` at its native size."""
    side = NATIVE[name]
    return {"height": side, "width": side, **_CALL.get(name, {})}


def prepare(name: str, pipe) -> None:
    """What a loaded pipeline of family ``name`` needs changed to paint its native size."""
    if name == "hidream":
        # HiDreamImagePipeline rescales every request to the area of default_sample_size x
        # vae_scale_factor squared (128 x 8: 1024 x 1024), keeping only the aspect ratio.
        pipe.default_sample_size = NATIVE[name] // pipe.vae_scale_factor
    pipe.set_progress_bar_config(disable=True)
