"""DRaFT (--method draft) and its distilled differentiable critic (huajia train critic), on tiny
settings: the critic reads oracle renders as the verifier does and passes gradients, a DRaFT
step raises the critic's score, the early stop sees hacking, and bad input is refused."""

import json

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from tests.training.test_rl import BrightnessCritic

from huajia.engine.loading import dtype_kwargs
from huajia.errors import HuajiaError
from huajia.scorers.world_features import load_feature_net
from huajia.training.critic_model import (
    CRITIC_RECORD,
    SoftCritic,
    load_critic,
    picture_side,
    save_critic,
)
from huajia.training.rl.ddim import DdimSteps
from huajia.training.rl.draft import draft_step, hacking
from huajia.training.rl.policy import Policy
from huajia.training.rl.prompts import TrainPrompt
from huajia.training.rl.recipe import RLRecipe
from huajia.training.rl.run import train_rl
from huajia.world.parser import parse
from huajia.world.render import render
from huajia.world.sampler import scene_for
from huajia.world.verifier import verify


def _pipe(sd_dir):
    return StableDiffusionPipeline.from_pretrained(sd_dir, **dtype_kwargs(torch.float32))


def _pixels(image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]


@pytest.mark.parametrize("shipped", [False, True])
def test_the_critic_reads_an_oracle_render_as_the_verifier_does_and_passes_gradients(shipped):
    critic = load_critic("embedded", 128) if shipped else SoftCritic(load_feature_net(), 128).eval()
    right = parse("a red circle to the left of a blue square").spec
    picture = render(scene_for(right, 0), 128)
    assert verify(picture, right).passed
    pixels = _pixels(picture).requires_grad_(True)
    wrong = [parse(p).spec for p in ("a red circle to the right of a blue square",
                                     "a green circle to the left of a blue square",
                                     "two red circles", "一个红色的三角形")]
    scores = critic(pixels.expand(5, -1, -1, -1), [right, *wrong])
    assert scores[0] > 0.8 and (scores[1:] < scores[0] - 0.2).all(), scores
    scores[0].backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0


def test_count_credit_is_the_verifiers_on_whole_counts():
    from huajia.training.critic_model import _count_credit

    for want, found, credit in [(2, 0, 0.0), (2, 1, 0.5), (2, 2, 1.0), (2, 4, 0.5), (None, 1, 0.5),
                                (None, 3, 1.0), (1, 3, 1 / 3)]:
        assert float(_count_credit(torch.tensor(float(found)), want)) == pytest.approx(credit)


def test_train_critic_writes_a_critic_its_card_and_refuses_other_sizes_and_worlds(sd_dir, tmp_path):
    from huajia.training.critic import CriticRecipe, train_critic

    pipe = _pipe(sd_dir)
    recipe = CriticRecipe(model=str(sd_dir), pictures=16, renders=16, holdout=8, epochs=1, batch=16,
                          sample_steps=2)
    record = train_critic(recipe, tmp_path / "critic", pipe=pipe)
    for key in ("pearson_r", "pass_agreement", "constraint_agreement", "mean_abs_diff"):
        assert key in record["agreement"] and key in record["agreement_shipped_net"]
    assert record["agreement"]["pictures"] == 8 and record["distillation_pictures"] == 32
    card = (tmp_path / "critic" / "README.md").read_text()
    assert "held-out" in card and "pass/fail agreement" in card
    side = picture_side(pipe)
    assert side == 32 and load_critic(tmp_path / "critic", side).image_side == 32
    with pytest.raises(HuajiaError, match="judges 32 px pictures; this model paints 128 px"):
        load_critic(tmp_path / "critic", 128)
    saved = json.loads((tmp_path / "critic" / CRITIC_RECORD).read_text())
    (tmp_path / "critic" / CRITIC_RECORD).write_text(json.dumps({**saved, "world": "0123abcd"}))
    with pytest.raises(HuajiaError, match="another world"):
        load_critic(tmp_path / "critic", 32)
    with pytest.raises(HuajiaError, match="not a critic folder"):
        load_critic(tmp_path, 32)


def _tiny_critic(folder, side=32):
    return save_critic(SoftCritic(load_feature_net(), side), folder, {"agreement": {}})


def test_a_draft_step_raises_the_critics_score_and_stays_near_the_reference(sd_dir):
    pipe = _pipe(sd_dir)
    policy = Policy(pipe, guidance=3.0)
    steps = DdimSteps(pipe.scheduler.config, 4)
    critic = SoftCritic(load_feature_net(), 32).requires_grad_(False).eval()
    prompts = [TrainPrompt("a red circle", "single_object"), TrainPrompt("两个蓝色的正方形", "counting")]
    optimizer = torch.optim.SGD(policy.trainable(), lr=0.5)

    def score():  # a step at lr 0 measures without moving
        images, stats = draft_step(policy, steps, torch.optim.SGD(policy.trainable(), lr=0.0),
                                   critic, prompts, 5, backprop_steps=2, kl=0.1,
                                   max_grad_norm=1e9, rng=np.random.default_rng(0))
        return stats["critic_reward"], images

    before, images = score()
    assert len(images) == 2 and images[0].size == (32, 32)
    _, first = draft_step(policy, steps, optimizer, critic, prompts, 5, backprop_steps=2, kl=0.1,
                          max_grad_norm=1e9, rng=np.random.default_rng(0))
    assert first["kl"] == 0.0 and first["backprop_steps"] in (1, 2) and first["grad_norm"] > 0
    for _ in range(3):
        _, stats = draft_step(policy, steps, optimizer, critic, prompts, 5, backprop_steps=2, kl=0.1,
                              max_grad_norm=1e9, rng=np.random.default_rng(0))
    after, _ = score()
    assert after > before and stats["kl"] > 0  # it climbed the critic, away from the reference


def test_hacking_is_the_critic_rising_while_the_verifier_does_not():
    def history(critic, verifier):
        return [{"critic_reward": c, "reward": v} for c, v in zip(critic, verifier, strict=True)]

    flat = [0.6] * 10
    assert hacking(history([0.6] * 5 + [0.8] * 5, flat), 5).startswith("early stop")
    assert hacking(history([0.6] * 5 + [0.8] * 5, [0.6] * 5 + [0.75] * 5), 5) is None  # both rose
    assert hacking(history([0.6] * 5 + [0.8] * 5, flat), 0) is None  # switched off
    assert hacking(history([0.6] * 9, [0.6] * 9), 5) is None  # too few steps to tell


def _train(sd_dir, out, steps, critic_dir, resume=False):
    recipe = RLRecipe(model=str(sd_dir), method="draft", critic_model=str(critic_dir), steps=steps,
                      prompts_per_step=1, group_size=2, sample_steps=4, backprop_steps=2,
                      checkpoint_every=1, lr=1e-3)
    return train_rl(recipe, out, resume=resume, critic=BrightnessCritic(), pipe=_pipe(sd_dir))


def test_draft_runs_resumes_bit_for_bit_and_records_both_judges(sd_dir, tmp_path):
    critic_dir = _tiny_critic(tmp_path / "critic")
    straight = _train(sd_dir, tmp_path / "a", 2, critic_dir)
    _train(sd_dir, tmp_path / "b", 1, critic_dir)
    resumed = _train(sd_dir, tmp_path / "b", 2, critic_dir, resume=True)
    assert [r["critic_reward"] for r in straight.history] == [r["critic_reward"] for r in resumed.history]
    assert [r["reward"] for r in straight.history] == [r["reward"] for r in resumed.history]
    a = StableDiffusionPipeline.from_pretrained(straight.model_dir).unet.state_dict()
    b = StableDiffusionPipeline.from_pretrained(resumed.model_dir).unet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    record = json.loads((tmp_path / "a" / "rl.json").read_text())
    assert record["recipe"]["method"] == "draft" and "critic_reward" in record["history"][0]


@pytest.mark.parametrize("args, message", [
    (["--method", "draft"], "give --critic-model DIR"),
    (["--method", "draft", "--critic-model", "{critic}", "--backprop-steps", "0"],
     "--backprop-steps 0 must be between 1"),
    (["--method", "draft", "--critic-model", "{critic}", "--model", "{sd}"],
     "judges 128 px pictures; this model paints 32 px"),
    (["--method", "draft", "--critic-model", "{tmp}"], "not a critic folder"),
    (["--method", "drafts"], "unknown method"),
    (["--method", "nft", "--critic-model", "{critic}"], "--critic-model is the differentiable critic"),
])
def test_cli_refuses_bad_draft_input_in_one_line_and_writes_nothing(sd_dir, tmp_path, args, message, cli):
    critic = _tiny_critic(tmp_path / "critic", side=128)
    out = tmp_path / "out"
    code, _, stderr = cli("train", "rl", "--out", str(out),
                          *[a.format(tmp=tmp_path, critic=critic, sd=sd_dir) for a in args])
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], stderr
    assert not out.exists()


def test_cli_train_critic_distils_and_refuses_bad_input(sd_dir, tmp_path, cli):
    out = tmp_path / "critic"
    code, stdout, stderr = cli("train", "critic", "--model", str(sd_dir), "--out", str(out), "--pictures",
                               "16", "--renders", "16", "--holdout", "8", "--epochs", "1",
                               "--sample-steps", "2")
    assert code == 0, stderr
    assert "held-out agreement with the verifier (8 pictures)" in stdout
    assert load_critic(out, 32).image_side == 32
    for args, message in [(["--pictures", "4"], "pictures=4 is out of range"),
                          (["--model", str(tmp_path)], "not a diffusers")]:
        code, _, stderr = cli("train", "critic", "--out", str(tmp_path / "bad"), *args)
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1 and message in lines[0], stderr
        assert not (tmp_path / "bad").exists()
