"""Pipelines built as diffusers' own tests build them (tests/family_fixtures/diffusers_dummies)
paint through huajia at diffusers' own default size, edit and take the hires fix, and what
their denoiser cannot place is one line: a one-block VAE keeps FLUX.1's latent size (128 px,
as the pipeline's default_sample_size × its VAE's scale, not 1024 px of 262,144 tokens), SD3's
inpainting pipeline (16-channel latents only) gives way to huajia's partial denoise on 4
channels, and Z-Image's rotary table bounds both the picture and the prompt."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from tests.family_fixtures.diffusers_dummies import BUILDERS

from huajia import Engine, GenerationRequest
from huajia.errors import HuajiaError


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("diffusers-dummies")
    made = {}

    def get(name: str):
        if name not in made:
            made[name] = root / name
            BUILDERS[name]().save_pretrained(made[name])
        return made[name]

    return get


def _pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.mark.parametrize(("name", "native"), [("flux", 128), ("sd3", 32), ("zimage", 64)])
def test_the_default_size_is_the_pipelines_own_and_it_paints(folders, name, native):
    import diffusers

    engine = Engine(str(folders(name)))
    assert engine.native_size == native
    [image] = engine.generate(GenerationRequest("a red circle", seed=1, steps=2)).images
    assert image.size == (native, native) and _pixels(image).std() > 1
    if name == "flux":  # what plain diffusers paints when given no size
        pipe = diffusers.DiffusionPipeline.from_pretrained(folders(name))
        assert pipe.default_sample_size * pipe.vae_scale_factor == native
    hires = engine.generate(GenerationRequest("a red circle", seed=1, steps=2, width=64,
                                              height=64, hires_scale=1.5)).images[0]
    assert hires.size == (96, 96)


def test_sd3_on_four_channels_is_edited_by_huajias_own_partial_denoise(folders):
    engine = Engine(str(folders("sd3")))
    assert engine.family.inpaint_pipeline(engine.pipe) is None  # diffusers' takes 16 or 33
    request = GenerationRequest("a red circle", seed=1, steps=3, width=64, height=64)
    picture = engine.generate(request).images[0]
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (32, 0, 64, 64))
    [edited] = engine.edit(GenerationRequest("a blue square", seed=2, steps=3, width=64,
                                             height=64), picture, mask).images
    diff = np.abs(_pixels(edited) - _pixels(picture))
    inside = np.asarray(mask) > 0
    assert diff[~inside].max() == 0 and diff[inside].mean() > 1


def test_z_image_refuses_what_its_rotary_table_cannot_place(folders):
    engine = Engine(str(folders("zimage")))
    family = engine.family
    assert family.largest_side(engine.pipe) == 128  # 32 positions x patch 2 x VAE scale 2
    assert engine.facts.describe["largest_side"] == 128  # /v1/models and the server's checks
    engine.generate(GenerationRequest("a red circle", seed=1, steps=2, width=128, height=64,
                                      upscaler="none"))
    with pytest.raises(HuajiaError, match="at most 128 pixels a side") as error:
        engine.generate(GenerationRequest("a red circle", seed=1, steps=2, width=192,
                                          height=64, upscaler="none"))
    assert "\n" not in str(error.value)
    # beyond it with the upscaler on: painted at most 128, then upscaled
    [image] = engine.generate(GenerationRequest("a red circle", seed=1, steps=2, width=256,
                                                height=256)).images
    assert image.size == (256, 256)
    # text: 256 positions, padded to 32, then the picture: at most 224 tokens of prompt
    assert family.prompt_window(engine.pipe) == 224
    engine.generate(GenerationRequest("a red circle, " * 30, seed=1, steps=2))
    with pytest.raises(HuajiaError, match="at most 224 tokens of prompt"):
        engine.generate(GenerationRequest("a red circle, " * 60, seed=1, steps=2))


def test_hidream_refuses_an_oblong_picture_beyond_its_padding(family_dirs):
    """HiDream pads a picture that is not square to max_resolution's patches (4096 on the real
    model and this fixture: 1024x1024 of area); a square one has no such limit."""
    engine = Engine(str(family_dirs["hidream"]))
    assert engine.facts.describe["largest_oblong_area"] == 1024 * 1024
    engine.family.check_size(engine.pipe, (1024, 512))
    engine.family.check_size(engine.pipe, (1536, 1536))
    with pytest.raises(HuajiaError, match="not square in at most 1024x1024 of area"):
        engine.generate(GenerationRequest("a red circle", seed=1, steps=2, width=1536,
                                          height=1024, upscaler="none"))
