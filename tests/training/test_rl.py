import json

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline
from PIL import Image

from huajia.engine.loading import dtype_kwargs
from huajia.errors import HuajiaError
from huajia.thinking.critics import Critique, RegionReport, make_critic
from huajia.training import components as C
from huajia.training.rl.ddim import DdimSteps, log_prob
from huajia.training.rl.methods import (
    UpdateSettings,
    dpo_update,
    group_advantages,
    grpo_update,
    raft_update,
    ranked_pairs,
)
from huajia.training.rl.policy import Policy, sample, step_log_prob
from huajia.training.rl.prompts import PromptSource, TrainPrompt, read_prompt_file
from huajia.training.rl.run import RLRecipe, train_rl
from huajia.world import vocab
from huajia.world.parser import read_prompt

SETTINGS = UpdateSettings(eta=1.0, kl=0.0, clip_range=1e-4, adv_clip=5.0, train_timesteps=2,
                          updates=1, dpo_beta=2000.0)


class BrightnessCritic:
    """A stand-in critic for random-weight models: brighter pictures score higher."""

    name = "brightness"

    def inspect(self, image, plan, threshold):
        score = float(np.asarray(image.convert("L"), dtype=np.float64).mean() / 2.55)
        return Critique((RegionReport(0, score, "brightness"),), score >= threshold, "")


def _pipe(sd_dir):
    return StableDiffusionPipeline.from_pretrained(sd_dir, **dtype_kwargs(torch.float32))


@pytest.mark.parametrize("prediction, zero_snr", [("v_prediction", True), ("epsilon", False)])
def test_ddim_step_matches_diffusers_and_its_log_prob_is_the_gaussian_density(prediction, zero_snr):
    scheduler = DDIMScheduler.from_config(C.build_scheduler().config, prediction_type=prediction,
                                          rescale_betas_zero_snr=zero_snr)
    steps = DdimSteps(scheduler.config, 10)
    scheduler.set_timesteps(10)
    gen = torch.Generator().manual_seed(0)
    x, pred, noise = (torch.randn(2, 4, 8, 8, generator=gen) for _ in range(3))
    for t in steps.timesteps[[0, 4, 9]]:
        mean, std = steps.mean_std(pred, x, t, eta=1.0)
        assert torch.isfinite(mean).all() and torch.isfinite(std).all()
        deterministic, _ = steps.mean_std(pred, x, t, eta=0.0)
        for eta, ours in ((1.0, mean + std * noise), (0.0, deterministic)):
            expected = scheduler.step(pred, t, x, eta=eta, variance_noise=noise).prev_sample
            if torch.isfinite(expected).all():  # diffusers 0.42 gives NaN at the zero-SNR step
                torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)
        if steps.alphas[t] == 0:  # zero terminal SNR: x0 = -v, ε = x_t, and the closed form
            a_prev = steps.alphas[t - steps.stride]
            torch.testing.assert_close(mean, a_prev.sqrt() * -pred)
            torch.testing.assert_close(std.flatten(), (1 - a_prev).sqrt().expand(2))
            torch.testing.assert_close(deterministic, a_prev.sqrt() * -pred + (1 - a_prev).sqrt() * x)
        sample_ = mean + std * noise
        direct = torch.distributions.Normal(mean, std.expand_as(mean)).log_prob(sample_)
        torch.testing.assert_close(log_prob(sample_, mean, std), direct.flatten(1).mean(1))
    assert zero_snr == bool(steps.alphas[steps.timesteps[0]] == 0)  # the closed form was checked


def test_group_advantages_standardise_within_groups_and_skip_flat_ones():
    adv, skipped = group_advantages(np.array([1.0, 0.0, 0.5, 0.5, 0.2, 0.2]), 2)
    assert skipped == 2 and adv[0] > 0 > adv[1] and not adv[2:].any()
    assert ranked_pairs(np.array([[0.1, 0.9, 0.5, 0.5]])) == [(1, 0)]  # the tied middle pair is skipped


def _rollout(sd_dir, kl=0.0, lora_rank=None):
    pipe = _pipe(sd_dir)
    policy = Policy(pipe, guidance=3.0, lora_rank=lora_rank)
    steps = DdimSteps(pipe.scheduler.config, 4)
    prompts = [TrainPrompt("a red circle", "colors")] * 2
    return policy, steps, sample(policy, steps, prompts, seed=3, eta=1.0, positions=(0, 1, 2))


def test_kl_is_zero_at_the_start_and_recorded_log_probs_are_reproduced(sd_dir):
    policy, steps, rollout = _rollout(sd_dir)
    rows, cols = torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2])
    with torch.no_grad():
        logp, kl = step_log_prob(policy, steps, rollout, rows, cols, 1.0, with_reference=True)
    assert torch.equal(kl, torch.zeros(3))
    torch.testing.assert_close(logp, rollout.log_probs[rows, cols], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("lora_rank", [None, 2])
def test_one_grpo_step_moves_the_policy_toward_the_higher_reward_sample(sd_dir, lora_rank):
    policy, steps, rollout = _rollout(sd_dir, lora_rank=lora_rank)
    optimizer = torch.optim.SGD(policy.trainable(), lr=1e-2 if lora_rank else 1e-3)
    before = rollout.log_probs.clone()
    stats = grpo_update(policy, steps, optimizer, rollout, np.array([1.0, 0.0]), 2,
                        SETTINGS, np.random.default_rng(0))
    assert stats["trained_pairs"] == 4 and stats["skipped_groups"] == 0
    rows, cols = torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        after, kl = step_log_prob(policy, steps, rollout, rows, cols, 1.0, with_reference=True)
    gain = (after - before[rows, cols]).reshape(2, 3).sum(dim=1)
    assert gain[0] > 0 > gain[1]  # the rewarded draw got likelier, the other less likely
    assert kl.sum() > 0  # and the policy has left the reference


def test_an_update_is_the_same_in_one_pass_or_in_many(sd_dir):
    from dataclasses import replace

    weights = []
    for micro_batch in (1, 32):  # the CPU's 32 against a GPU's one pass for everything
        policy, steps, rollout = _rollout(sd_dir)
        optimizer = torch.optim.SGD(policy.trainable(), lr=1e-3)
        grpo_update(policy, steps, optimizer, rollout, np.array([1.0, 0.0]), 2,
                    replace(SETTINGS, micro_batch=micro_batch), np.random.default_rng(0))
        weights.append([p.detach().clone() for p in policy.trainable()])
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(*weights, strict=True))


def test_dpo_and_raft_prefer_the_winner(sd_dir):
    for method in ("dpo", "raft"):
        policy, steps, rollout = _rollout(sd_dir)
        optimizer = torch.optim.SGD(policy.trainable(), lr=1e-2)
        settings = UpdateSettings(**{**SETTINGS.__dict__, "train_timesteps": 4})
        rewards, satisfied = np.array([1.0, 0.0]), np.array([True, False])
        probe = torch.Generator().manual_seed(5)
        noise = torch.randn(rollout.latents.shape, generator=probe)
        t = torch.tensor([300, 300])

        def error(p, steps=steps, rollout=rollout, noise=noise, t=t):
            with torch.no_grad():
                noisy = steps.scheduler.add_noise(rollout.latents, noise, t)
                target = steps.scheduler.get_velocity(rollout.latents, noise, t)
                return ((p.predict(noisy, t, rollout.cond) - target) ** 2).flatten(1).mean(1)

        first = error(policy)
        gen = torch.Generator().manual_seed(1)
        if method == "dpo":
            stats = dpo_update(policy, steps, optimizer, rollout, rewards, 2, settings,
                               np.random.default_rng(0), gen)
        else:
            stats = raft_update(policy, steps, optimizer, rollout, rewards, satisfied, 2, settings,
                                np.random.default_rng(0), gen)
        assert stats["trained_pairs"] == 1
        change = error(policy) - first
        assert change[0] < 0, method  # the winner is denoised better than before
        if method == "dpo":  # and, for DPO, better relative to the loser
            assert change[0] < change[1]


def test_prompts_are_train_split_and_deterministic(tmp_path):
    source = PromptSource(seed=1)
    first = source.prompts(3, 40)
    assert [p.text for p in first] == [p.text for p in PromptSource(seed=1).prompts(3, 40)]
    assert [p.text for p in first] != [p.text for p in source.prompts(4, 40)]
    for p in first:
        spec = read_prompt(p.text).spec
        for g in spec.groups:
            assert (g.shape, g.colour) not in vocab.HELD_OUT_COMBOS
            assert g.shape != "hexagon" and g.texture != "checkered"
    assert {p.task for p in first} >= {"position", "counting", "color_attr"}
    weighted = PromptSource(seed=1, task_weights="position=4,texture_attr=0").prompts(3, 400)
    tasks = [p.task for p in weighted]
    assert "texture_attr" not in tasks and tasks.count("position") / len(tasks) > 0.3
    (tmp_path / "p.txt").write_text("# mine\na red circle\n\n两个蓝色正方形\n", encoding="utf-8")
    assert [p.text for p in read_prompt_file(tmp_path / "p.txt", True)] == ["a red circle", "两个蓝色正方形"]
    (tmp_path / "bad.txt").write_text("a red circle\na flying dragon\n")
    with pytest.raises(HuajiaError, match="line 2"):
        read_prompt_file(tmp_path / "bad.txt", True)
    assert len(read_prompt_file(tmp_path / "bad.txt", False)) == 2  # clip/vlm judge any words


def _train(sd_dir, out, steps, resume=False, **extra):
    recipe = RLRecipe(model=str(sd_dir), steps=steps, prompts_per_step=1, group_size=2,
                      sample_steps=4, sde_window=2, train_timesteps=2, checkpoint_every=1,
                      lr=1e-3, **extra)
    return train_rl(recipe, out, resume=resume, critic=BrightnessCritic(), pipe=_pipe(sd_dir))


def test_resume_continues_bit_for_bit_and_exports_a_pipeline(sd_dir, tmp_path):
    straight = _train(sd_dir, tmp_path / "a", 2)
    _train(sd_dir, tmp_path / "b", 1)
    resumed = _train(sd_dir, tmp_path / "b", 2, resume=True)
    assert [r["reward"] for r in straight.history] == [r["reward"] for r in resumed.history]
    a = StableDiffusionPipeline.from_pretrained(straight.model_dir).unet.state_dict()
    b = StableDiffusionPipeline.from_pretrained(resumed.model_dir).unet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    original = StableDiffusionPipeline.from_pretrained(sd_dir).unet.state_dict()
    assert any(not torch.equal(a[k], original[k]) for k in a)  # it did learn something
    assert len((tmp_path / "b" / "progress.jsonl").read_text().splitlines()) == 2
    assert Image.open(tmp_path / "a" / "reward_curve.png").size == (720, 360)
    record = json.loads((tmp_path / "a" / "rl.json").read_text())
    assert record["recipe"]["method"] == "grpo" and len(record["history"]) == 2
    assert "GRPO" in (straight.model_dir / "README.md").read_text()
    with pytest.raises(HuajiaError, match="--resume"):
        _train(sd_dir, tmp_path / "a", 3)
    with pytest.raises(HuajiaError, match="different lr"):
        train_rl(RLRecipe(model=str(sd_dir), steps=3, prompts_per_step=1, group_size=2, sample_steps=4,
                          sde_window=2, train_timesteps=2, checkpoint_every=1, lr=5e-3),
                 tmp_path / "a", resume=True, critic=BrightnessCritic(), pipe=_pipe(sd_dir))


def test_lora_and_second_methods_export(sd_dir, tmp_path):
    from huajia.engine.engine import Engine
    from huajia.engine.request import GenerationRequest, LoraSpec

    lora = _train(sd_dir, tmp_path / "lora", 1, lora_rank=2).lora
    assert lora.name == "pytorch_lora_weights.safetensors"
    request = GenerationRequest("a red circle", seed=0, steps=2, width=64, height=64,
                                loras=(LoraSpec(str(lora)),))
    assert Engine(str(sd_dir)).generate(request).images[0].size == (64, 64)
    for method in ("dpo", "raft"):
        assert _train(sd_dir, tmp_path / method, 1, method=method).model_dir.is_dir()


def test_clip_and_vlm_critics_are_rewards(sd_dir, tmp_path, clip_dir, vlm_url):
    from huajia.training.rl.rewards import CriticReward

    images = [Image.new("RGB", (32, 32), "white")] * 2
    prompts = [TrainPrompt("a red circle", "file"), TrainPrompt("a blue square", "file")]
    for critic in (make_critic("clip", clip_model=str(clip_dir)),
                   make_critic("vlm", vlm_url=vlm_url, vlm_model="fake")):
        rewards, satisfied = CriticReward(critic)(images, prompts)
        assert rewards.shape == (2,) and ((0 <= rewards) & (rewards <= 1)).all()
    # the fake VLM scores circles 42 and cannot answer about squares (unjudged: 0)
    assert list(rewards) == [0.42, 0.0] and not satisfied.any()


@pytest.mark.parametrize("args, message", [
    (["--reward", "beauty"], "unknown critic 'beauty'"),  # --reward: --critic's older name
    (["--critic", "vlm"], "the vlm critic needs --vlm-url"),
    (["--method", "ppo"], "unknown method"),
    (["--group-size", "1"], "at least 2 pictures"),
    (["--model", "{tmp}"], "not a diffusers pipeline"),
    (["--prompts", "{tmp}/words.txt"], "does not know"),
    (["--full", "--lora-rank", "4"], "exclude each other"),
    (["--task-weights", "positon=3"], "unknown task 'positon'"),
    (["--anchor", "1", "--method", "dpo"], "needs --method grpo"),
    (["--lora-rank", "4", "--snapshot-every", "5"], "--snapshot-every keeps the whole UNet"),
    (["--micro-batch", "0"], "micro-batch must be at least 1"),
])
def test_cli_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, args, message, cli):
    (tmp_path / "words.txt").write_text("a red circle\na purple dragon\n")
    out = tmp_path / "out"
    code, _, stderr = cli("train", "rl", "--out", str(out), *[a.format(tmp=tmp_path) for a in args])
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], stderr
    assert not out.exists()


def test_cli_trains_measures_and_writes_the_card(sd_dir, tmp_path):
    from typer.testing import CliRunner

    from huajia.cli import app

    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "rl", "--model", str(sd_dir), "--out", str(out),
                                      "--steps", "1", "--group-size", "2", "--prompts-per-step", "1",
                                      "--eval-specs", "1"])
    assert result.exit_code == 0, result.output
    card = (out / "model" / "README.md").read_text()
    assert "ShapesEval" in card and "| generation, 20 DDIM steps, CFG 5 |" in card
    assert (out / "model" / "reward_curve.png").is_file()


def test_world_anchor_is_deterministic_and_a_step_on_it_lowers_it(sd_dir):
    from huajia.training.rl.anchor import WorldAnchor

    policy = Policy(_pipe(sd_dir), guidance=5.0)
    steps = DdimSteps(policy.pipe.scheduler.config, 4, policy.device)
    anchor = WorldAnchor(policy, steps, weight=1.0, batch=4, seed=0)
    before = anchor.loss(3, 1)
    assert torch.equal(before, anchor.loss(3, 1)) and not torch.equal(before, anchor.loss(3, 0))
    optimizer = torch.optim.SGD(policy.trainable(), lr=1e-2)
    before.backward()
    optimizer.step()
    assert float(anchor.loss(3, 1).detach()) < float(before.detach())


def test_anchored_grpo_resumes_bit_for_bit(sd_dir, tmp_path):
    straight = _train(sd_dir, tmp_path / "a", 2, anchor=1.0, anchor_batch=2)
    _train(sd_dir, tmp_path / "b", 1, anchor=1.0, anchor_batch=2)
    resumed = _train(sd_dir, tmp_path / "b", 2, resume=True, anchor=1.0, anchor_batch=2)
    assert [r.get("anchor_loss") for r in straight.history] == [r.get("anchor_loss") for r in resumed.history]
    a = StableDiffusionPipeline.from_pretrained(straight.model_dir).unet.state_dict()
    b = StableDiffusionPipeline.from_pretrained(resumed.model_dir).unet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(HuajiaError, match="--anchor"):
        RLRecipe(method="dpo", anchor=1.0)


def test_wall_budget_stops_and_snapshots_keep_the_unet(sd_dir, tmp_path):
    from safetensors.torch import load_file

    from huajia.training.rl.snapshots import UNET_FILE, list_snapshots, with_unet

    result = _train(sd_dir, tmp_path / "w", 5, wall_minutes=1e-9, snapshot_every=1)
    assert len(result.history) == 1  # the budget is looked at before each step
    (step, path), = list_snapshots(tmp_path / "w")
    assert step == 1
    folder = with_unet(sd_dir, load_file(path), tmp_path / "snap")
    exported, kept = load_file(result.model_dir / UNET_FILE), load_file(folder / UNET_FILE)
    assert all(torch.equal(exported[k], kept[k]) for k in exported)
    resumed = _train(sd_dir, tmp_path / "w", 2, resume=True, wall_minutes=10.0, snapshot_every=1)
    assert len(resumed.history) == 2 and [s for s, _ in list_snapshots(tmp_path / "w")] == [1, 2]
    with pytest.raises(HuajiaError, match="snapshot-every"):
        RLRecipe(snapshot_every=5, lora_rank=4)


def test_a_unet_travels_in_parts_of_bounded_size(sd_dir, tmp_path):
    from safetensors.torch import load_file

    from huajia.training.rl.snapshots import UNET_FILE, read_shards, write_shards

    state = load_file(sd_dir / UNET_FILE)
    total = sum(v.numel() * v.element_size() for v in state.values())
    paths = write_shards(state, tmp_path / "parts", "best_unet", max_bytes=total // 2 + 70_000)
    assert len(paths) == 2 and all(p.stat().st_size <= total // 2 + 70_000 for p in paths)
    back = read_shards(tmp_path / "parts", "best_unet")
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)
    paths[1].unlink()
    with pytest.raises(HuajiaError, match="1 of the 2 parts"):
        read_shards(tmp_path / "parts", "best_unet")
    with pytest.raises(HuajiaError, match="does not fit"):
        write_shards(state, tmp_path / "small", "x", max_bytes=100)
