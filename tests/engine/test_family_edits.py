"""Masked edits, variations and the hires fix on every model family: through the family's
diffusers image-to-image/inpainting pipeline where it has one, else huajia's own partial denoise
(engine/partial); outside the mask an edit keeps the input's pixels exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from tests.family_fixtures import FAMILIES

from huajia.engine.engine import Engine
from huajia.engine.infotext import parse_infotext
from huajia.engine.partial import tail_scheduler
from huajia.engine.request import GenerationRequest

SMALL = {"steps": 3, "width": 64, "height": 64}
# which path each family's edits take: (image-to-image, inpainting); None: huajia's own
PATHS = {
    "sd15": ("StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline"),
    "sdxl": ("StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline"),
    "kolors": ("KolorsImg2ImgPipeline", None),
    "sd3": ("StableDiffusion3Img2ImgPipeline", "StableDiffusion3InpaintPipeline"),
    "flux": ("FluxImg2ImgPipeline", "FluxInpaintPipeline"),
    "chroma": ("ChromaImg2ImgPipeline", None),
    "qwenimage": ("QwenImageImg2ImgPipeline", "QwenImageInpaintPipeline"),
    "zimage": ("ZImageImg2ImgPipeline", "ZImageInpaintPipeline"),
    "sana": (None, None), "pixart_sigma": (None, None), "lumina2": (None, None),
    "hidream": (None, None),
}
FLOW = ("sd3", "flux", "chroma", "qwenimage", "zimage", "sana", "lumina2", "hidream")


@pytest.fixture(scope="module")
def engines():
    return {}  # one per family, built on first use


@pytest.fixture(scope="module")
def pictures():
    return {}  # each family's own 64x64 picture, painted once


def _engine(engines, family_dirs, name: str) -> Engine:
    if name not in engines:
        engines[name] = Engine(str(family_dirs[name]))
    return engines[name]


def _picture(engines, family_dirs, pictures, name: str) -> Image.Image:
    if name not in pictures:
        engine = _engine(engines, family_dirs, name)
        pictures[name] = engine.generate(GenerationRequest("a red circle", seed=1,
                                                           **SMALL)).images[0]
    return pictures[name]


def _pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_every_family_names_its_path():
    assert set(PATHS) == set(FAMILIES)


@pytest.mark.parametrize("name", FAMILIES)
def test_a_masked_edit_keeps_every_pixel_outside_the_mask(engines, family_dirs, pictures, name):
    engine = _engine(engines, family_dirs, name)
    assert (engine.family.img2img_pipeline(engine.pipe),
            engine.family.inpaint_pipeline(engine.pipe)) == PATHS[name]
    picture = _picture(engines, family_dirs, pictures, name)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (32, 0, 64, 64))  # the right half
    result = engine.edit(GenerationRequest("a blue square", seed=2, **SMALL), picture, mask)
    [edited] = result.images
    inside = np.asarray(mask) > 0
    diff = np.abs(_pixels(edited) - _pixels(picture))
    assert edited.size == (64, 64)
    assert diff[~inside].max() == 0 and diff[inside].mean() > 1
    fields = parse_infotext(result.infotexts[0])
    assert fields["Denoising strength"] == "1.0" and fields["Mask blur"] == "2"
    assert ("Distilled CFG Scale" in fields) == (name == "flux")  # the family's own fields


@pytest.mark.parametrize("name", FAMILIES)
def test_a_variation_differs_and_keeps_the_size(engines, family_dirs, pictures, name):
    engine = _engine(engines, family_dirs, name)
    picture = _picture(engines, family_dirs, pictures, name)
    result = engine.vary(GenerationRequest("a red circle", seed=4, **SMALL), picture,
                         strength=0.6)
    [varied] = result.images
    assert varied.size == (64, 64)
    assert np.abs(_pixels(varied) - _pixels(picture)).mean() > 1


@pytest.mark.parametrize("upscaler", ["lanczos", "latent"])
@pytest.mark.parametrize("name", FAMILIES)
def test_the_hires_fix_paints_at_the_scaled_size(engines, family_dirs, name, upscaler):
    engine = _engine(engines, family_dirs, name)
    request = GenerationRequest("a red circle", seed=3, hires_scale=1.5, hires_upscaler=upscaler,
                                hires_steps=2, hires_denoise=0.6, **SMALL)
    assert engine.hires_size(request) == (96, 96)  # a multiple of every family's size step
    result = engine.generate(request)
    [image] = result.images
    assert image.size == (96, 96) and _pixels(image).std() > 1
    fields = parse_infotext(result.infotexts[0])
    assert fields["Size"] == "64x64" and fields["Hires upscale"] == "1.5"
    assert "Hires resize" not in fields


def test_the_hires_fix_paints_in_the_familys_multiples(engines, family_dirs):
    # FLUX.1 packs 2x2 latents, so it paints multiples of 16: 64 x 1.4 = 88 (in 8s) is painted
    # at 96 (88 in 16s, halves up), then brought to the asked 88
    engine = _engine(engines, family_dirs, "flux")
    request = GenerationRequest("a red circle", seed=3, hires_scale=1.4, hires_steps=2,
                                **SMALL)
    assert engine.family.size_multiple(engine.pipe) == 16
    assert engine.hires_size(request) == (96, 96)
    result = engine.generate(request)
    assert result.images[0].size == (88, 88)
    assert parse_infotext(result.infotexts[0])["Hires resize"] == "88x88"


@pytest.mark.parametrize("name", FAMILIES)
def test_a_repaint_keeps_the_latents_outside_the_mask_exactly(engines, family_dirs, pictures,
                                                              name):
    # thinking's repaint: the session's own latents in and out, unpacked, whatever the family
    engine = _engine(engines, family_dirs, name)
    request = GenerationRequest("a blue square", seed=2, **SMALL)
    with engine.session(request) as run:
        latents = run.encode_image(_picture(engines, family_dirs, pictures, name))
        assert latents.ndim == 4 and latents.shape[-1] == 64 // run.latent_scale
        half = latents.shape[-1] // 2
        mask = torch.zeros(1, 1, *latents.shape[-2:])
        mask[..., half:] = 1
        painted = run.repaint(engine.prepare(request).kwargs, latents, mask, 0.7, seed=5)
    assert painted.shape == latents.shape
    assert torch.equal(painted[..., :half], latents[..., :half])
    assert (painted[..., half:] - latents[..., half:]).abs().mean() > 0.05


@pytest.mark.parametrize("name", FLOW)
def test_a_partial_run_at_full_strength_is_the_text_to_image_run(engines, family_dirs, name):
    # the same schedule as the family's own pipeline (its sigma spacing and shift), so from
    # pure noise huajia's partial denoise paints exactly what text to image paints
    engine = _engine(engines, family_dirs, name)
    request = GenerationRequest("a red circle", seed=1, scheduler="euler", **SMALL)
    with engine.session(request) as run:
        kwargs = engine.prepare(request).kwargs
        painted = run.denoise(kwargs, [torch.Generator().manual_seed(7)], (64, 64),
                              output_type="latent")
        again = run.partial(kwargs, torch.zeros_like(painted), 1.0, SMALL["steps"],
                            [torch.Generator().manual_seed(7)])
    assert torch.equal(painted, again)


def test_a_setting_the_inpainting_pipeline_lacks_is_a_warning(engines, family_dirs, pictures):
    engine = _engine(engines, family_dirs, "sd15")
    mask = Image.new("L", (64, 64), 255)
    result = engine.edit(GenerationRequest("a blue square", seed=2, guidance_rescale=0.7,
                                           **SMALL),
                         _picture(engines, family_dirs, pictures, "sd15"), mask)
    assert any("guidance_rescale is not applied by StableDiffusionInpaintPipeline" in warning
               for warning in result.warnings)


@pytest.mark.parametrize("scheduler", ["EulerDiscreteScheduler", "DDIMScheduler",
                                       "HeunDiscreteScheduler", "UniPCMultistepScheduler",
                                       "FlowMatchEulerDiscreteScheduler"])
def test_a_tail_scheduler_runs_the_last_steps_of_the_whole_schedule(scheduler):
    import diffusers

    whole = getattr(diffusers, scheduler)()
    whole.set_timesteps(10)
    tail = tail_scheduler(whole, 10, 6, {})
    tail.set_timesteps(50)  # what the pipeline asks does not matter
    first = 6 * whole.order
    assert torch.equal(tail.timesteps, whole.timesteps[first:])
    if getattr(whole, "sigmas", None) is not None:
        assert torch.equal(tail.sigmas, whole.sigmas[first:])
    assert tail.init_noise_sigma == 1.0 and type(tail).__name__ == scheduler


def test_edits_paint_in_the_familys_multiples_and_refuse_what_paints_nothing(
        engines, family_dirs, pictures):
    from huajia.errors import HuajiaError

    engine = _engine(engines, family_dirs, "flux")  # multiples of 16
    picture = _picture(engines, family_dirs, pictures, "flux").resize((88, 88))
    varied = engine.vary(GenerationRequest("a red circle", seed=4, steps=3), picture)
    assert varied.images[0].size == (96, 96)  # the picture's size in 16s
    with pytest.raises(HuajiaError, match="paints sizes in multiples of 16; 72x72 is not one"):
        engine.vary(GenerationRequest("a red circle", steps=3, width=72, height=72), picture)
    with pytest.raises(HuajiaError, match="strength=0.2 of 3 steps paints no step"):
        engine.vary(GenerationRequest("a red circle", steps=3), picture, strength=0.2)
