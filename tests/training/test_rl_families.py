"""``train rl --method nft | craft`` on every family's tiny fixture (SDXL and Kolors with their
added conditions, and the flow-matching families): one step writes a pipeline whose weights load
back in huajia and change the picture; what a family cannot do is refused in one line."""

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from tests.family_fixtures import NATIVE, prepare
from tests.training.test_rl import BrightnessCritic

from huajia.engine.engine import Engine
from huajia.engine.request import GenerationRequest
from huajia.errors import HuajiaError
from huajia.training.rl.recipe import RLRecipe
from huajia.training.rl.run import train_rl

# (family, method): every family RL reaches through its pipeline, each method at least twice
TRAINED = [("sdxl", "nft"), ("kolors", "craft"), ("sd3", "nft"), ("flux", "craft"), ("chroma", "nft"),
           ("qwenimage", "craft"), ("zimage", "nft"), ("sana", "craft"), ("lumina2", "nft"),
           ("pixart_sigma", "craft"), ("hidream", "nft"), ("sd15", "craft")]


def _pipe(name, folder):
    pipe = DiffusionPipeline.from_pretrained(folder)
    prepare(name, pipe)
    return pipe.to(torch.float32)


def _paint(folder, side):
    request = GenerationRequest("一只红色的圆 a red circle", seed=3, steps=2, width=max(64, side),
                                height=max(64, side), guidance=4.0)
    return np.asarray(Engine(str(folder)).generate(request).images[0], dtype=float)


@pytest.mark.parametrize("name, method", TRAINED)
def test_one_step_writes_weights_that_load_back_and_change_the_picture(name, method, family_dirs, tmp_path):
    side = NATIVE[name]
    recipe = RLRecipe(model=str(family_dirs[name]), method=method, steps=1, prompts_per_step=1,
                      group_size=2, sample_steps=2, train_timesteps=2, lr=3e-2, resolution=side,
                      winners=1, caption_dropout=0.5)
    result = train_rl(recipe, tmp_path / "out", critic=BrightnessCritic(),
                      pipe=_pipe(name, family_dirs[name]))
    record = result.history[0]
    assert record["trained_pairs"] >= 1 and np.isfinite(record["kl"]) and record["kl"] > 0
    assert np.abs(_paint(family_dirs[name], side) - _paint(result.model_dir, side)).mean() > 0.5


def test_what_a_family_cannot_do_is_refused_in_one_line(family_dirs, tmp_path):
    pipe = _pipe("sdxl", family_dirs["sdxl"])
    pixart = _pipe("pixart_sigma", family_dirs["pixart_sigma"])
    for changes, message, on in (({"method": "grpo", "lora_rank": 4}, "has no LoRA loader", pixart),
                                 ({"method": "nft", "anchor": 1.0}, "drop it on", pipe)):
        recipe = RLRecipe(model="x", steps=1, group_size=2, **changes)
        with pytest.raises(HuajiaError, match=message):
            train_rl(recipe, tmp_path / "x", critic=BrightnessCritic(), pipe=on)
        assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", ["sdxl", "flux", "sana"])
def test_rollout_latents_decode_to_the_pipelines_own_picture(name, family_dirs):
    """The latents a rollout keeps (unpacked, the denoiser's scale) are the pipeline's own:
    decoded, they give the picture the pipeline paints for the same seed."""
    from huajia.engine.families import detect
    from huajia.training.rl.family_policy import FamilyPolicy

    pipe, side = _pipe(name, family_dirs[name]), NATIVE[name]
    policy = FamilyPolicy(pipe, detect(pipe), guidance=4.0, side=side, sample_steps=2)
    latents, images = policy.paint(["a red circle"], seed=5)
    assert latents.shape[-2:] == (side // policy.family.vae_scale(pipe),) * 2
    plan = policy.family.call_plan(pipe, GenerationRequest("x", guidance=4.0, steps=2), False)
    direct = pipe(prompt=["a red circle"], height=side, width=side, num_inference_steps=2,
                  generator=torch.Generator().manual_seed(5), output_type="pil", **plan.kwargs).images[0]
    assert np.abs(np.asarray(images[0], dtype=float) - np.asarray(direct, dtype=float)).mean() < 1.0


def test_a_family_run_resumes_bit_for_bit(family_dirs, tmp_path):
    def run(out, steps, resume=False):
        recipe = RLRecipe(model=str(family_dirs["sd3"]), method="nft", steps=steps, prompts_per_step=1,
                          group_size=2, sample_steps=2, train_timesteps=1, lr=3e-2, resolution=64,
                          checkpoint_every=1)
        return train_rl(recipe, out, resume=resume, critic=BrightnessCritic(),
                        pipe=_pipe("sd3", family_dirs["sd3"]))

    straight = run(tmp_path / "a", 2)
    run(tmp_path / "b", 1)
    resumed = run(tmp_path / "b", 2, resume=True)
    assert [r["reward"] for r in straight.history] == [r["reward"] for r in resumed.history]
    a = DiffusionPipeline.from_pretrained(straight.model_dir).transformer.state_dict()
    b = DiffusionPipeline.from_pretrained(resumed.model_dir).transformer.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_python_api_loads_the_recipes_model_and_asks_for_a_critic(family_dirs, tmp_path):
    """``train_rl(recipe, out, critic=…)`` without a pipeline loads ``recipe.model`` itself."""
    recipe = RLRecipe(model=str(family_dirs["sd3"]), method="nft", steps=1, prompts_per_step=1,
                      group_size=2, sample_steps=2, train_timesteps=2, lr=3e-2,
                      resolution=NATIVE["sd3"])
    result = train_rl(recipe, tmp_path / "out", critic=BrightnessCritic())
    assert result.model_dir.is_dir() and len(result.history) == 1
    with pytest.raises(HuajiaError, match="needs a critic"):
        train_rl(recipe, tmp_path / "again")
