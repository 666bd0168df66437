"""nft (DiffusionNFT) and craft (reward-filtered fine-tuning) on a tiny SD pipeline."""

import json

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from tests.training.test_rl import BrightnessCritic

from huajia.engine.loading import dtype_kwargs
from huajia.errors import HuajiaError
from huajia.training.rl.ddim import DdimSteps
from huajia.training.rl.final_pictures import (
    PictureSettings,
    craft_update,
    nft_update,
    optimality,
    top_winners,
)
from huajia.training.rl.methods import UpdateSettings
from huajia.training.rl.policy import Policy, sample
from huajia.training.rl.prompts import TrainPrompt
from huajia.training.rl.recipe import RLRecipe
from huajia.training.rl.run import train_rl

SETTINGS = UpdateSettings(eta=1.0, kl=0.0, clip_range=1e-4, adv_clip=5.0, train_timesteps=4,
                          updates=1, dpo_beta=2000.0)


def _rollout(sd_dir):
    pipe = StableDiffusionPipeline.from_pretrained(sd_dir, **dtype_kwargs(torch.float32))
    policy = Policy(pipe, guidance=3.0)
    steps = DdimSteps(pipe.scheduler.config, 4)
    prompts = [TrainPrompt("a red circle", "colors")] * 2
    return policy, steps, sample(policy, steps, prompts, seed=3, eta=0.0, positions=())


def _errors(policy, steps, rollout, cond):
    """Each picture's denoising error at a fixed probe (noise and timestep)."""
    noise = torch.randn(rollout.latents.shape, generator=torch.Generator().manual_seed(5))
    t = torch.tensor([300, 300])
    with torch.no_grad():
        noisy = steps.scheduler.add_noise(rollout.latents, noise, t)
        target = steps.scheduler.get_velocity(rollout.latents, noise, t)
        return ((policy.predict(noisy, t, cond) - target) ** 2).flatten(1).mean(1)


def test_optimality_and_winners_read_each_group_apart():
    r, skipped = optimality(np.array([1.0, 0.0, 0.4, 0.4, 0.9, 0.5, 0.1, 0.5]), 2)
    assert skipped == 1 and r[0] == pytest.approx(1.0, abs=1e-3) and r[1] == pytest.approx(0.0, abs=1e-3)
    assert list(r[2:4]) == [0.5, 0.5] and 0.5 < r[4] <= 1.0 and r[6] < 0.5
    rewards = np.array([0.2, 0.9, 0.8, 0.1, 0.5, 0.5, 0.5, 0.5])
    assert top_winners(rewards, 4, 2) == [1, 2]  # the best two, both above the mean
    assert top_winners(rewards, 4, 3) == [1, 2]  # 0.2 is below its group's mean: never a winner
    assert top_winners(np.array([0.3, 0.3, 0.9, 0.3]), 4, 2) == [2]


def test_nft_pulls_toward_the_better_picture_and_away_from_the_worse(sd_dir):
    policy, steps, rollout = _rollout(sd_dir)
    optimizer = torch.optim.SGD(policy.trainable(), lr=1e-1)
    before = _errors(policy, steps, rollout, rollout.cond)
    stats = nft_update(policy, steps, optimizer, rollout, np.array([1.0, 0.0]), 2, SETTINGS,
                       PictureSettings(), np.random.default_rng(0), torch.Generator().manual_seed(1))
    assert stats["trained_pairs"] == 2 and stats["skipped_groups"] == 0
    change = _errors(policy, steps, rollout, rollout.cond) - before
    assert change[0] < 0 < change[1]  # the winner is denoised better, the loser worse
    flat = nft_update(policy, steps, optimizer, rollout, np.array([0.5, 0.5]), 2, SETTINGS,
                      PictureSettings(), np.random.default_rng(0), torch.Generator().manual_seed(1))
    assert flat["trained_pairs"] == 0 and flat["skipped_groups"] == 1


@pytest.mark.parametrize("dropout", [0.0, 1.0])
def test_craft_learns_the_winner_under_the_prompt_or_the_empty_one(sd_dir, dropout):
    policy, steps, rollout = _rollout(sd_dir)
    empty = policy.encode([""])[0]
    optimizer = torch.optim.SGD(policy.trainable(), lr=1e-2)
    before = _errors(policy, steps, rollout, rollout.cond)
    seen, predict = [], policy.predict

    def recording(x, t, cond):
        seen.extend(bool(torch.equal(c, empty)) for c in cond)
        return predict(x, t, cond)

    policy.predict = recording
    stats = craft_update(policy, steps, optimizer, rollout, np.array([0.9, 0.1]), 2, SETTINGS,
                         PictureSettings(caption_dropout=dropout), np.random.default_rng(0),
                         torch.Generator().manual_seed(1))
    policy.predict = predict
    assert stats["trained_pairs"] == 1 and len(seen) == SETTINGS.train_timesteps
    assert all(seen) if dropout else not any(seen)  # the empty prompt's share is the dropout
    if not dropout:
        change = _errors(policy, steps, rollout, rollout.cond) - before
        assert change[0] < 0  # the winner is denoised better than before


def _train(sd_dir, out, steps, method, resume=False, **extra):
    recipe = RLRecipe(model=str(sd_dir), method=method, steps=steps, prompts_per_step=1, group_size=2,
                      sample_steps=4, train_timesteps=2, checkpoint_every=1, lr=1e-3, **extra)
    pipe = StableDiffusionPipeline.from_pretrained(sd_dir, **dtype_kwargs(torch.float32))
    return train_rl(recipe, out, resume=resume, critic=BrightnessCritic(), pipe=pipe)


@pytest.mark.parametrize("method", ["nft", "craft"])
def test_nft_and_craft_resume_bit_for_bit_and_export(sd_dir, tmp_path, method):
    straight = _train(sd_dir, tmp_path / "a", 2, method, anchor=0.5, anchor_batch=2)
    _train(sd_dir, tmp_path / "b", 1, method, anchor=0.5, anchor_batch=2)
    resumed = _train(sd_dir, tmp_path / "b", 2, method, resume=True, anchor=0.5, anchor_batch=2)
    assert [r["reward"] for r in straight.history] == [r["reward"] for r in resumed.history]
    assert all("anchor_loss" in r for r in straight.history if r["trained_pairs"])
    a = StableDiffusionPipeline.from_pretrained(straight.model_dir).unet.state_dict()
    b = StableDiffusionPipeline.from_pretrained(resumed.model_dir).unet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    original = StableDiffusionPipeline.from_pretrained(sd_dir).unet.state_dict()
    assert any(not torch.equal(a[k], original[k]) for k in a)
    record = json.loads((tmp_path / "a" / "rl.json").read_text())
    assert record["recipe"]["method"] == method and {"kl", "drift"} <= set(record["history"][0])
    assert method.upper() in (straight.model_dir / "README.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--method", "nfts"], "unknown method"),
    (["--method", "craft", "--winners", "0"], "winners=0 is out of range"),
    (["--method", "craft", "--caption-dropout", "1.5"], "caption_dropout=1.5 is out of range"),
    (["--method", "nft", "--nft-beta", "0"], "nft_beta=0.0 is out of range"),
    (["--anchor", "1", "--method", "raft"], "needs --method grpo, nft or craft"),
])
def test_cli_refuses_bad_settings_of_nft_and_craft(tmp_path, args, message, cli):
    out = tmp_path / "out"
    code, _, stderr = cli("train", "rl", "--out", str(out), *args)
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], stderr
    assert not out.exists()


def test_recipe_names_the_new_methods():
    assert RLRecipe(method="nft").stochastic_window(0) == ()  # pictures as deployed: deterministic DDIM
    with pytest.raises(HuajiaError, match="unknown method|must be one of"):
        RLRecipe(method="draftt")
