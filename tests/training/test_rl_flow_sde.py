"""GRPO on every family (``rl/family_sde.py``): Flow-GRPO's SDE step is its Gaussian and keeps
the ODE's marginals, a window at η = 0 is the pipeline's own sampler, the recorded
log-probabilities are reproduced before any update, and one GRPO step writes weights that load
back and change the picture."""

import math

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler
from tests.family_fixtures import NATIVE
from tests.training.test_rl import BrightnessCritic
from tests.training.test_rl_families import _paint, _pipe

from huajia.engine.families import detect
from huajia.engine.request import GenerationRequest
from huajia.errors import HuajiaError
from huajia.training.rl.ddim import log_prob
from huajia.training.rl.family_policy import FamilyPolicy
from huajia.training.rl.family_sde import FlowSde, flow_sigmas, sample_sde, sde_steps
from huajia.training.rl.prompts import TrainPrompt
from huajia.training.rl.recipe import RLRecipe
from huajia.training.rl.run import train_rl

PROMPTS = [TrainPrompt("a red circle", "file"), TrainPrompt("一只蓝色的方块", "file")]


def _sigmas(steps: int, shift: float) -> torch.Tensor:
    scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(steps)
    return scheduler.sigmas


def test_an_sde_step_is_flow_grpos_gaussian():
    """Mean and std as Flow-GRPO's ``sde_step_with_logprob`` computes them (written out here
    from its code), and the log-probability is the Gaussian density averaged over elements."""
    sigmas = _sigmas(10, 3.0)
    sde, a = FlowSde(sigmas), 0.7
    generator = torch.Generator().manual_seed(0)
    for i in (0, 4, 9):  # σ = 1 (read as the second σ), the middle, the last step to 0
        x, v = (torch.randn((3, 4, 8, 8), generator=generator, dtype=torch.float64) for _ in range(2))
        sigma, prev = sigmas[i].double(), sigmas[i + 1].double()
        dt = prev - sigma
        level = torch.sqrt(sigma / (1 - torch.where(sigma == 1, sigmas[1].double(), sigma))) * a
        want_mean = (x * (1 + level ** 2 / (2 * sigma) * dt)
                     + v * (1 + level ** 2 * (1 - sigma) / (2 * sigma)) * dt)
        mean, std = sde.mean_std(v, x, torch.full((3,), i), a)
        torch.testing.assert_close(mean, want_mean)
        torch.testing.assert_close(std.flatten(), (level * torch.sqrt(-dt)).expand(3))
        sample = mean + std * torch.randn(x.shape, generator=generator, dtype=torch.float64)
        density = torch.distributions.Normal(mean, std.expand_as(mean)).log_prob(sample)
        torch.testing.assert_close(log_prob(sample, mean, std), density.flatten(1).mean(dim=1))
    mean, std = sde.mean_std(v, x, torch.full((3,), 4), 0.0)  # a = 0: the ODE's Euler step
    torch.testing.assert_close(mean, x + v * (sigmas[5] - sigmas[4]).double())
    assert float(std.abs().max()) == 0.0


def test_the_sde_keeps_the_odes_marginals():
    """x0 ~ N(0, s²) with its exact velocity E[ε − x0 | x_σ]: the SDE's samples end with the
    data's spread, and on the way keep the spread of (1 − σ)·x0 + σ·ε."""
    s, sde, n = 0.5, FlowSde(_sigmas(40, 1.0)), 100_000
    for a in (0.7, 1.0):
        generator = torch.Generator().manual_seed(1)
        x = torch.randn((n, 1), generator=generator, dtype=torch.float64)
        worst = 0.0
        for i in range(len(sde)):
            sigma, following = float(sde.sigmas[i]), float(sde.sigmas[i + 1])
            velocity = (sigma - (1 - sigma) * s ** 2) * x / ((1 - sigma) ** 2 * s ** 2 + sigma ** 2)
            mean, std = sde.mean_std(velocity, x, torch.full((n,), i), a)
            x = mean + std * torch.randn((n, 1), generator=generator, dtype=torch.float64)
            want = math.sqrt((1 - following) ** 2 * s ** 2 + following ** 2)
            worst = max(worst, abs(float(x.std()) / want - 1))
        assert abs(float(x.std()) / s - 1) < 0.02 and abs(float(x.mean())) < 0.01
        assert worst < (0.1 if a < 1 else 0.2)  # the first steps: σ = 1 read as the second σ


def test_sana_gets_euler_on_its_own_shifted_sigmas(family_dirs):
    pipe = _pipe("sana", family_dirs["sana"])
    assert isinstance(pipe.scheduler, DPMSolverMultistepScheduler)
    sigmas = flow_sigmas(detect(pipe), pipe, NATIVE["sana"], 6)
    torch.testing.assert_close(sigmas, _sigmas(6, pipe.scheduler.config.flow_shift))


# the flow families, Sana with Euler swapped in, and the noise-prediction ones through DDIM
ODE = ["sd3", "flux", "chroma", "qwenimage", "zimage", "lumina2", "hidream", "sana", "sdxl", "kolors",
       "pixart_sigma"]


@pytest.mark.parametrize("name", ODE)
def test_a_window_at_eta_zero_is_the_pipelines_own_sampler(name, family_dirs):
    """No stochastic step, or a window at η = 0, paints what the pipeline paints from the same
    noise with the same guidance (CFG 4: the family's own combination, Qwen-Image's and
    Lumina 2's rescaling, FLUX.1 dev's distilled input), English and Chinese."""
    pipe, side, steps = _pipe(name, family_dirs[name]), NATIVE[name], 3
    family = detect(pipe)
    if family.flow and not isinstance(pipe.scheduler, FlowMatchEulerDiscreteScheduler):
        pipe.scheduler = FlowMatchEulerDiscreteScheduler(shift=pipe.scheduler.config.flow_shift)
    elif not family.flow:
        config = pipe.scheduler.config
        pipe.scheduler = DDIMScheduler.from_config(config, clip_sample=config.get("clip_sample", False))
    policy = FamilyPolicy(pipe, family, guidance=4.0, side=side, sample_steps=steps)
    sampler = sde_steps(policy, steps)
    ode = sample_sde(policy, sampler, PROMPTS, 7, eta=0.0, positions=(0, 1))
    noise = sampler.initial((2, *policy.latent_shape()), torch.Generator().manual_seed(7))
    plan = family.call_plan(pipe, GenerationRequest("x", guidance=4.0, steps=steps), has_negative=True)
    negative = {family.negative: ["", ""]} if family.negative and policy.cfg_scale != 1 else {}
    with family.sized(pipe, (side, side)):
        own = pipe(prompt=[p.text for p in PROMPTS], height=side, width=side, num_inference_steps=steps,
                   latents=family.pack(pipe, noise), output_type="latent", **negative, **plan.kwargs).images
    own = family.unpack(pipe, own, (side, side))
    assert float((own - ode.latents).abs().max()) < 1e-4 * max(1.0, float(own.abs().max()))
    stochastic = sample_sde(policy, sampler, PROMPTS, 7, eta=0.7, positions=(0, 1))
    assert stochastic.states.shape[:2] == (2, 2) and float((stochastic.latents - own).abs().mean()) > 1e-3


def test_recorded_log_probs_are_reproduced_before_any_update(family_dirs):
    """The ratio GRPO clips starts at exactly 1 and the KL at 0 (both CFG halves on SD3)."""
    pipe = _pipe("sd3", family_dirs["sd3"])
    policy = FamilyPolicy(pipe, detect(pipe), guidance=4.0, side=64, sample_steps=4)
    sampler = sde_steps(policy, 4)
    rollout = sample_sde(policy, sampler, PROMPTS, 3, eta=0.7, positions=(1, 2))
    rows, cols = torch.tensor([0, 1, 1]), torch.tensor([0, 0, 1])
    logp, kl = policy.step_log_prob(sampler, rollout, rows, cols, 0.7, with_reference=True)
    torch.testing.assert_close(logp, rollout.log_probs[rows, cols])
    assert float(kl.detach().abs().max()) == 0.0


# every flow family and SDXL/Kolors, one GRPO step each
GRPO = ["sd15", "sd3", "flux", "chroma", "qwenimage", "zimage", "sana", "lumina2", "hidream", "sdxl",
        "kolors", "pixart_sigma"]


@pytest.mark.parametrize("name", GRPO)
def test_one_grpo_step_writes_weights_that_load_back_and_change_the_picture(name, family_dirs, tmp_path):
    side = NATIVE[name]
    recipe = RLRecipe(model=str(family_dirs[name]), method="grpo", steps=1, prompts_per_step=1,
                      group_size=2, sample_steps=3, sde_window=2, train_timesteps=1, eta=0.7,
                      lr=3e-2, resolution=side)
    result = train_rl(recipe, tmp_path / "out", critic=BrightnessCritic(),
                      pipe=_pipe(name, family_dirs[name]))
    record = result.history[0]
    assert record["trained_pairs"] == 2 and np.isfinite(record["kl"])
    assert np.abs(_paint(family_dirs[name], side) - _paint(result.model_dir, side)).mean() > 0.5


def test_the_window_slides_as_mixgrpo_moves_it():
    recipe = RLRecipe(method="grpo", sample_steps=5, sde_window=2, sde_window_slide=3)
    assert [recipe.stochastic_window(step) for step in (0, 2, 3, 6, 9, 12)] == [
        (0, 1), (0, 1), (1, 2), (2, 3), (3, 4), (0, 1)]
    assert RLRecipe(method="grpo", sample_steps=5, sde_window=2).stochastic_window(7) == (0, 1)
    with pytest.raises(HuajiaError, match="--sde-window-slide 0 must be at least 1"):
        RLRecipe(method="grpo", sde_window_slide=0)


@pytest.mark.parametrize("name", ["flux", "qwenimage", "sdxl"])
def test_one_dpo_step_on_a_family_writes_weights_that_change_the_picture(name, family_dirs, tmp_path):
    """Diffusion-DPO under the family's objective (flow or DDPM), winner and loser under one
    time and noise."""
    side = NATIVE[name]
    recipe = RLRecipe(model=str(family_dirs[name]), method="dpo", steps=1, prompts_per_step=1,
                      group_size=2, sample_steps=2, train_timesteps=2, lr=3e-2, resolution=side)
    result = train_rl(recipe, tmp_path / "out", critic=BrightnessCritic(),
                      pipe=_pipe(name, family_dirs[name]))
    assert result.history[0]["trained_pairs"] == 1 and np.isfinite(result.history[0]["drift"])
    assert np.abs(_paint(family_dirs[name], side) - _paint(result.model_dir, side)).mean() > 0.5


@pytest.mark.parametrize("name", ["sd3", "kolors"])
def test_shared_noise_gives_every_copy_the_same_time_and_noise(name, family_dirs):
    pipe = _pipe(name, family_dirs[name])
    policy = FamilyPolicy(pipe, detect(pipe), guidance=4.0, side=NATIVE[name], sample_steps=2)
    x0 = torch.randn((6, *policy.latent_shape()), generator=torch.Generator().manual_seed(0))
    x0[3:] = x0[:3]  # the second copy holds the same pictures: its noisy latents must match
    noisy, t, target = policy.steps.shared_noise(x0, 2, torch.Generator().manual_seed(1))
    torch.testing.assert_close(t[:3], t[3:])
    torch.testing.assert_close(noisy[:3], noisy[3:])
    torch.testing.assert_close(target[:3], target[3:])
    assert len(set(t[:3].tolist())) == 3 and not torch.equal(noisy[:3], x0[:3])


@pytest.mark.parametrize("name", ["sd3", "flux", "kolors"])
def test_a_grpo_lora_loads_in_huajia_and_plain_diffusers_and_changes_the_picture(name, family_dirs, tmp_path):
    """Flow-GRPO's way: a LoRA learns, the denoiser without it is the reference (KL 0 at first)."""
    from diffusers import DiffusionPipeline
    from tests.family_fixtures import call_kwargs, prepare

    from huajia.engine.engine import Engine
    from huajia.engine.request import LoraSpec

    side = NATIVE[name]
    recipe = RLRecipe(model=str(family_dirs[name]), method="grpo", steps=1, prompts_per_step=1,
                      group_size=2, sample_steps=3, sde_window=2, train_timesteps=2, eta=0.7,
                      lr=3e-2, resolution=side, lora_rank=4, updates=2)
    result = train_rl(recipe, tmp_path / "out", critic=BrightnessCritic(),
                      pipe=_pipe(name, family_dirs[name]))
    assert result.model_dir is None and result.lora.is_file()
    engine = Engine(str(family_dirs[name]))

    def paint(*loras):
        request = GenerationRequest("一只红色的圆 a red circle", seed=3, steps=2, width=max(64, side),
                                    height=max(64, side), guidance=4.0, loras=loras)
        return np.asarray(engine.generate(request).images[0], dtype=float)

    assert result.history[0]["kl"] > 0  # the LoRA moved away from the reference
    assert np.abs(paint() - paint(LoraSpec(str(result.lora), 1.0))).mean() > 0.2  # Kolors: 0.41
    plain = DiffusionPipeline.from_pretrained(family_dirs[name])
    prepare(name, plain)
    before = plain("a red circle", num_inference_steps=2, output_type="np",
                   generator=torch.Generator().manual_seed(3), **call_kwargs(name)).images[0]
    plain.load_lora_weights(result.lora.parent)
    after = plain("a red circle", num_inference_steps=2, output_type="np",
                  generator=torch.Generator().manual_seed(3), **call_kwargs(name)).images[0]
    assert np.abs(before - after).mean() > 1e-3


# plain SGD, a step each model's gradients make small enough to stay first-order (a LoRA's
# B starts at zero, so its first step is small)
@pytest.mark.parametrize("name, lora_rank, lr", [("sd3", None, 0.1), ("flux", 2, 100.0),
                                                 ("kolors", None, 1e-3)])
def test_one_grpo_update_makes_the_rewarded_draws_likelier(name, lora_rank, lr, family_dirs):
    """The policy gradient points the right way through the SDE (flow) and DDIM (Kolors): the
    rewarded picture's stochastic steps get likelier, the other's less likely."""
    from huajia.training.rl.methods import UpdateSettings, grpo_update

    pipe = _pipe(name, family_dirs[name])
    torch.manual_seed(0)  # the LoRA's first weights
    policy = FamilyPolicy(pipe, detect(pipe), guidance=4.0, side=NATIVE[name], sample_steps=4,
                          lora_rank=lora_rank)
    sampler = sde_steps(policy, 4)
    rollout = sample_sde(policy, sampler, [PROMPTS[0]] * 2, 3, eta=0.7, positions=(0, 1, 2))
    optimizer = torch.optim.SGD(policy.trainable(), lr=lr)
    settings = UpdateSettings(eta=0.7, kl=0.0, clip_range=1e-4, adv_clip=5.0, train_timesteps=3,
                              updates=1, dpo_beta=2000.0)
    stats = grpo_update(policy, sampler, optimizer, rollout, np.array([1.0, 0.0]), 2, settings,
                        np.random.default_rng(0))
    assert stats["trained_pairs"] == 6 and stats["skipped_groups"] == 0
    rows, cols = torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        after, kl = policy.step_log_prob(sampler, rollout, rows, cols, 0.7, with_reference=True)
    gain = (after - rollout.log_probs[rows, cols]).reshape(2, 3).sum(dim=1)
    assert gain[0] > 1e-5 and gain[1] < -1e-5 and kl.sum() > 0  # beyond rounding


def test_a_window_over_ddims_noiseless_last_step_keeps_only_the_steps_that_add_noise():
    """SDXL's configs set ᾱ = 1 after the last step: that step has no variance, so a window
    over it once gave NaN log-probabilities and KL; it is left deterministic now."""
    from huajia.training.rl.ddim import noisy_positions
    from huajia.training.rl.family_sde import DdimFamilySteps

    config = dict(DDIMScheduler(set_alpha_to_one=True).config)
    steps = DdimFamilySteps(config, 2, torch.device("cpu"))
    assert steps.adds_noise(0) and not steps.adds_noise(1)
    assert noisy_positions(steps, (0, 1)) == (0,)
    with pytest.raises(HuajiaError, match="add no noise"):
        noisy_positions(steps, (1,))
    flow = FlowSde(torch.tensor([1.0, 0.5, 0.0]))
    assert noisy_positions(flow, (0, 1)) == (0, 1)
