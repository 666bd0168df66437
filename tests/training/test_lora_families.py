"""``train lora`` on every family's tiny fixture: 2 steps with gradient checkpointing; the file
loads back in huajia and in plain diffusers (``load_lora_weights``; PixArt-Σ's pipeline has
none, huajia injects it) and changes the picture; the family's denoiser call, objective and
refusals."""

import numpy as np
import pytest
import torch
from safetensors import safe_open
from tests.family_fixtures import NATIVE, call_kwargs, prepare

from huajia.engine.engine import Engine
from huajia.engine.request import GenerationRequest, LoraSpec
from huajia.errors import HuajiaError
from huajia.training.lora import LoraRecipe, recipe_from_file, train_lora
from huajia.world.dataset import write_dataset

TRAINED = ("sdxl", "kolors", "sd3", "flux", "chroma", "qwenimage", "zimage", "sana",
           "pixart_sigma", "lumina2", "hidream")
CLIP = {"sd15": ("text_encoder",), "sdxl": ("text_encoder", "text_encoder_2"),
        "sd3": ("text_encoder", "text_encoder_2"), "flux": ("text_encoder",)}


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    return str(write_dataset(tmp_path_factory.mktemp("pictures") / "data", 3, seed=1,
                             workers=1, side=64))


def _recipe(name, family_dirs, pictures, out, **changes):
    return LoraRecipe(**{"data": pictures, "out": str(out), "model": str(family_dirs[name]),
                         "rank": 4, "alpha": 4.0, "steps": 2, "batch": 2, "lr": 3e-2,
                         "sample_every": 0, "conv_rank": 0, "resolution": 32,
                         "gradient_checkpointing": True, **changes})


def _plain(name, folder, lora_dir=None):
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(folder)
    prepare(name, pipe)
    if lora_dir is not None:
        pipe.load_lora_weights(lora_dir)
    image = pipe("一只红色的圆 a red circle", num_inference_steps=2, output_type="np",
                 generator=torch.Generator().manual_seed(3), **call_kwargs(name)).images[0]
    return np.asarray(image, dtype=np.float64)


@pytest.mark.parametrize("name", ("sd15", *TRAINED))
def test_two_steps_write_a_lora_that_loads_back_and_changes_the_picture(
        name, family_dirs, pictures, tmp_path):
    path = train_lora(_recipe(name, family_dirs, pictures, tmp_path / "out"))
    with safe_open(path, "pt") as handle:
        keys, meta = list(handle.keys()), handle.metadata()
    assert meta["huajia_family"] and meta["ss_steps"] == "2"
    trained_encoders = {k.split(".", 1)[0] for k in keys} - {"unet", "transformer"}
    assert trained_encoders == set(CLIP.get(name, ()))  # text-encoder LoRA on CLIP alone
    assert any(".to_q.lora_A" in k for k in keys)
    side = NATIVE[name]
    engine = Engine(str(family_dirs[name]))

    def paint(*loras):
        request = GenerationRequest("一只红色的圆 a red circle", seed=3, steps=2, width=max(64, side),
                                    height=max(64, side), guidance=4.0, loras=loras)
        return np.asarray(engine.generate(request).images[0], dtype=float)

    assert np.abs(paint() - paint(LoraSpec(str(path), 1.0))).mean() > 0.5
    if name != "pixart_sigma":  # diffusers' PixArt-Σ pipeline has no LoRA loader
        base = _plain(name, family_dirs[name])
        assert np.abs(base - _plain(name, family_dirs[name], path.parent)).mean() > 1e-3


def test_flow_objective_shift_and_target():
    from huajia.training.objectives import FlowObjective

    generator = torch.Generator().manual_seed(0)
    plain, shifted = FlowObjective(1.0), FlowObjective(3.0)
    u = plain.sigmas(4000, torch.Generator().manual_seed(1))
    s = shifted.sigmas(4000, torch.Generator().manual_seed(1))
    assert torch.allclose(s, 3 * u / (1 + 2 * u))  # the family's shift on the same draws
    assert 0.45 < u.median() < 0.55 and s.median() > 0.7  # logit-normal around 1/2, shifted up
    z, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    noised = plain.noised(z, noise, generator)
    sigma = (noised.timesteps / 1000).view(-1, 1, 1, 1)
    assert torch.allclose(noised.latents, (1 - sigma) * z + sigma * noise)
    assert torch.allclose(noised.target, noise - z)


def test_the_denoiser_call_is_the_pipelines_own(family_dirs):
    """Run at the pipeline's own latents and time, the captured call gives exactly what the
    pipeline's denoiser gave at its first step."""
    from diffusers import DiffusionPipeline

    from huajia.engine import families
    from huajia.training.denoiser_call import capture

    pipe = DiffusionPipeline.from_pretrained(family_dirs["flux"])
    family = families.detect(pipe)
    seen = []
    handle = family.denoiser(pipe).register_forward_hook(
        lambda _m, args, kwargs, out: seen.append((kwargs, out[0])), with_kwargs=True)
    pipe("a red circle", num_inference_steps=2, generator=torch.Generator().manual_seed(0),
         output_type="latent", **{**call_kwargs("flux"), "true_cfg_scale": 1.0,
                                  "guidance_scale": 1.0})
    handle.remove()
    kwargs, first = seen[0]
    call = capture(pipe, family, "a red circle", NATIVE["flux"])
    with torch.no_grad():
        again = call.run(family.denoiser(pipe), kwargs["hidden_states"], kwargs["timestep"])
    assert torch.equal(again, first)


def test_refusals_in_one_line(family_dirs, pictures, tmp_path):
    with pytest.raises(HuajiaError, match="Kolors's text encoder is not CLIP.*--no-train-text"):
        train_lora(_recipe("kolors", family_dirs, pictures, tmp_path, train_text_encoder=True))
    with pytest.raises(HuajiaError, match="new words .* not on SDXL"):
        train_lora(_recipe("sdxl", family_dirs, pictures, tmp_path, new_words=("hexagon",)))


def test_diffsynth_kolors_recipe_is_the_seeds_settings(tmp_path):
    recipe = recipe_from_file("diffsynth-kolors", data="d", out="o", steps=3)
    assert (recipe.rank, recipe.alpha, recipe.conv_rank, recipe.resolution, recipe.center_crop,
            recipe.gradient_checkpointing, recipe.train_text_encoder, recipe.lr, recipe.steps) == (
        16, 4.0, 0, 1024, True, True, False, 1e-4, 3)
    assert recipe.precision == ("fp16" if torch.cuda.is_available() else "fp32")


def test_centre_crop_keeps_the_middle(tmp_path):
    from PIL import Image

    from huajia.training.lora import _fit

    wide = Image.new("RGB", (300, 100), "red")
    wide.paste((0, 0, 255), (100, 0, 200, 100))  # blue middle third
    cropped = _fit(wide, (50, 50), crop=True)
    assert cropped.size == (50, 50)
    for x in (0, 25, 49):  # blue edge to edge (bicubic rings a little at the border)
        red, _, blue = cropped.getpixel((x, 25))
        assert blue > 220 and red < 40
    assert _fit(wide, (50, 50), crop=False).getpixel((2, 25))[0] > 200  # squashed: red at the edge


def test_a_lora_with_alpha_below_rank_paints_as_trained_in_plain_diffusers(family_dirs, tmp_path):
    """rank 4, alpha 1: the file holds alpha / rank in lora_B, so diffusers' loader (which
    takes alpha = rank without adapter metadata) paints what the trained model painted."""
    from diffusers import DiffusionPipeline
    from peft import LoraConfig

    from huajia.training.lora import LoraRun, save_lora

    recipe = LoraRecipe(data="x", out=str(tmp_path), model=str(family_dirs["kolors"]), rank=4,
                        alpha=1.0, train_text_encoder=False)
    run = LoraRun(Engine(str(family_dirs["kolors"])), recipe)
    run.denoiser.add_adapter(LoraConfig(r=4, lora_alpha=1.0, init_lora_weights="gaussian",
                                        target_modules=run.family.training_targets(run.pipe)))
    with torch.no_grad():
        for name, param in run.denoiser.named_parameters():
            if "lora_B" in name:
                param.normal_(generator=torch.Generator().manual_seed(1))
    latents, t = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)), \
        torch.tensor([400])
    with torch.no_grad():
        trained = run.predict(run.denoiser, latents, t, ["二次元"])
    path = save_lora(run, tmp_path, recipe, 1, 1)
    plain = DiffusionPipeline.from_pretrained(family_dirs["kolors"])
    plain.load_lora_weights(path.parent)
    run.pipe.unet = plain.unet  # the same text conditioning, diffusers' loaded LoRA
    with torch.no_grad():
        loaded = run.predict(plain.unet, latents, t, ["二次元"])
    assert torch.allclose(loaded, trained, atol=1e-5)


@pytest.mark.parametrize("name", ("sd15", *TRAINED))
def test_a_batch_predicts_what_its_pictures_predict_one_by_one(name, family_dirs):
    """Captions' calls stacked into one denoiser call (or run one by one where they cannot
    stack) give each picture the prediction it gets alone."""
    from huajia.training.lora import LoraRun

    recipe = LoraRecipe(data="x", out="y", model=str(family_dirs[name]), resolution=32,
                        train_text_encoder=False)
    run = LoraRun(Engine(str(family_dirs[name])), recipe)
    channels = run.family.to_latents(run.pipe, torch.zeros(1, 3, 32, 32)).shape[1]
    side = 32 // run.family.vae_scale(run.pipe)
    latents = torch.randn(3, channels, side, side, generator=torch.Generator().manual_seed(0))
    timesteps = torch.tensor([100.0, 500.0, 900.0])
    captions = ["一只红色的圆", "two blue squares on a white background", "一只红色的圆"]
    with torch.no_grad():
        batched = run.predict(run.denoiser, latents, timesteps, captions)
        alone = run.predict(run.denoiser, latents, timesteps, captions, batched=False)
    assert batched.shape == latents.shape
    assert torch.allclose(batched, alone, atol=1e-4, rtol=1e-3)


def test_a_vae_folder_replaces_the_models(family_dirs, pictures, tmp_path):
    """--vae (the seed's SDXL fp16-fix VAE): a diffusers VAE folder is trained with; anything
    else is one line."""
    vae = family_dirs["kolors"] / "vae"
    path = train_lora(_recipe("kolors", family_dirs, pictures, tmp_path / "a", vae=str(vae),
                              steps=1))
    assert path.is_file()
    with pytest.raises(HuajiaError, match="--vae .* is not a diffusers VAE folder") as error:
        train_lora(_recipe("kolors", family_dirs, pictures, tmp_path / "b",
                           vae=str(tmp_path / "nothing")))
    assert "\n" not in str(error.value)
