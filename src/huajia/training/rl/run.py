"""``train_rl``: the RL loop — sample a group per prompt, score it with the critic, update —
seeded, resumable (checkpoint every K steps, bit-for-bit), bounded by steps, CPU minutes and wall minutes,
exported as a diffusers pipeline folder (or a LoRA) with its reward curve."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from huajia.errors import HuajiaError
from huajia.params import canonical
from huajia.training.precision import autocast
from huajia.training.rl.anchor import WorldAnchor
from huajia.training.rl.ddim import DdimSteps
from huajia.training.rl.export import export
from huajia.training.rl.final_pictures import craft_update, nft_update
from huajia.training.rl.methods import dpo_update, grpo_update, raft_update
from huajia.training.rl.policy import Policy, sample, sd_style
from huajia.training.rl.prompts import PromptSource, read_prompt_file
from huajia.training.rl.recipe import RLRecipe
from huajia.training.rl.records import RLResult
from huajia.training.rl.rewards import CriticReward
from huajia.training.rl.snapshots import save_snapshot

Progress = Callable[[int, int, dict], None]  # (done, total, last step's record)
CHECKPOINT = "checkpoints/rl.pt"
# Settings a resumed run may change (how long it runs); every other field must match.
_EXTENDABLE = ("steps", "minutes", "wall_minutes", "checkpoint_every", "snapshot_every")


class _Run:
    """Everything one run holds: the policy, its optimizer, the prompt source and the record."""

    def __init__(self, recipe: RLRecipe, pipe, critic):
        self.recipe = recipe
        fixed = read_prompt_file(recipe.prompt_file, recipe.critic == "shapes") if recipe.prompt_file else ()
        self.source = PromptSource(recipe.seed, fixed, recipe.task_weights)
        self.reward = CriticReward(critic)
        torch.manual_seed(recipe.seed)  # LoRA's initial weights
        if sd_style(pipe):
            self.policy = Policy(pipe, guidance=recipe.guidance, lora_rank=recipe.lora_rank)
            self.steps = DdimSteps(pipe.scheduler.config, recipe.sample_steps, self.policy.device)
        else:
            from huajia.training.rl.family_policy import FamilyPolicy
            from huajia.training.rl.family_sde import sde_steps

            self.policy = FamilyPolicy(pipe, check_policy(recipe, pipe), guidance=recipe.guidance,
                                       side=recipe.resolution, sample_steps=recipe.sample_steps,
                                       lora_rank=recipe.lora_rank)
            self.steps = (sde_steps(self.policy, recipe.sample_steps) if recipe.method == "grpo"
                          else self.policy.steps)
        self.draft_critic = draft_critic(recipe, pipe) if recipe.method == "draft" else None
        self.anchor = (WorldAnchor(self.policy, self.steps, weight=recipe.anchor, batch=recipe.anchor_batch,
                                   seed=recipe.seed) if recipe.anchor else None)
        self.optimizer = torch.optim.AdamW(self.policy.trainable(), lr=recipe.lr, weight_decay=0.0)
        self.step, self.history, self.cpu_s, self.wall_s = 0, [], 0.0, 0.0

    def state(self) -> dict:
        return {"recipe": self.recipe.to_dict(), "step": self.step, "history": self.history,
                "cpu_s": self.cpu_s, "wall_s": self.wall_s, "weights": self.policy.trainable_state(),
                "optimizer": self.optimizer.state_dict()}

    def load(self, state: dict) -> None:
        self.policy.unet.load_state_dict(state["weights"], strict=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.history = state["step"], state["history"]
        self.cpu_s, self.wall_s = state["cpu_s"], state["wall_s"]

    def one_step(self) -> dict:
        r = self.recipe
        prompts = [p for p in self.source.prompts(self.step, r.prompts_per_step) for _ in range(r.group_size)]
        seed = r.seed * 1_000_003 + self.step
        if self.draft_critic is not None:
            return self._draft_step(prompts, seed)
        if isinstance(self.policy, Policy):
            rollout = sample(self.policy, self.steps, prompts, seed=seed, eta=r.eta,
                             positions=r.stochastic_window(self.step))
        elif r.method == "grpo":
            from huajia.training.rl.family_sde import sample_sde

            rollout = sample_sde(self.policy, self.steps, prompts, seed, eta=r.eta,
                                 positions=r.stochastic_window(self.step))
        else:
            from huajia.training.rl.family_policy import sample_family

            rollout = sample_family(self.policy, prompts, seed)
        rewards, satisfied = self.reward(rollout.images, prompts)
        rng = np.random.default_rng([r.seed, 29, self.step])
        generator = torch.Generator().manual_seed(r.seed * 7_000_003 + self.step)
        args = (self.policy, self.steps, self.optimizer, rollout, rewards)
        anchor = (lambda k: self.anchor.loss(self.step, k)) if self.anchor else None
        if r.method == "grpo":
            stats = grpo_update(*args, r.group_size, r.settings(), rng, anchor)
        elif r.method in ("nft", "craft"):
            update = nft_update if r.method == "nft" else craft_update
            stats = update(*args, r.group_size, r.settings(), r.picture_settings(), rng, generator, anchor)
        elif r.method == "dpo":
            stats = dpo_update(*args, r.group_size, r.settings(), rng, generator)
        else:
            stats = raft_update(*args, satisfied, r.group_size, r.settings(), rng, generator)
        return self._record(prompts, rewards, satisfied, stats)

    def _draft_step(self, prompts: list, seed: int) -> dict:
        from huajia.training.rl.draft import draft_step

        r = self.recipe
        images, stats = draft_step(self.policy, self.steps, self.optimizer, self.draft_critic, prompts,
                                   seed, backprop_steps=r.backprop_steps, kl=r.kl,
                                   max_grad_norm=r.settings().max_grad_norm,
                                   rng=np.random.default_rng([r.seed, 31, self.step]))
        rewards, satisfied = self.reward(images, prompts)  # the verifier judges what the critic did
        return self._record(prompts, rewards, satisfied, stats)

    def _record(self, prompts: list, rewards: np.ndarray, satisfied: np.ndarray, stats: dict) -> dict:
        by_task: dict[str, list[float]] = {}
        for prompt, passed in zip(prompts, satisfied, strict=True):
            by_task.setdefault(prompt.task, []).append(float(passed))
        return {"step": self.step, "reward": float(rewards.mean()), "pass_rate": float(satisfied.mean()),
                "tasks": {k: float(np.mean(v)) for k, v in by_task.items()}, **stats}

    def stop_reason(self) -> str | None:
        """DRaFT's early stop against hacking the critic (None: go on)."""
        if self.draft_critic is None:
            return None
        from huajia.training.rl.draft import hacking

        return hacking(self.history, self.recipe.early_stop)


def draft_critic(recipe: RLRecipe, pipe):
    """DRaFT's differentiable critic, refused in one line when it was made for another world or
    another picture size than ``pipe`` paints."""
    from huajia.training.critic_model import load_critic, picture_side

    return load_critic(recipe.critic_model, picture_side(pipe)).to(pipe.unet.device)


def check_policy(recipe: RLRecipe, pipe):
    """Refuse, in one line, what RL cannot do on ``pipe``; its family where it is not SD 1.x/2.x."""
    if sd_style(pipe) and recipe.family in (None, "sd"):
        if recipe.method == "draft":  # the record only: _Run loads the weights once
            from huajia.training.critic_model import check_critic, picture_side

            check_critic(recipe.critic_model, picture_side(pipe))
        return None
    from huajia.engine.families import detect
    from huajia.training.rl.family_policy import check_family_method

    family = detect(pipe, recipe.family)
    check_family_method(recipe.method, recipe.lora_rank, family)
    if recipe.anchor:
        raise HuajiaError(f"--anchor trains on the shapes world's renders through an SD-style UNet; "
                          f"drop it on {family.label}")
    return family


def _check_resume(recipe: RLRecipe, saved: dict) -> None:
    saved = canonical(RLRecipe, saved)  # older runs: 'reward' for the critic
    changed = [f.name for f in fields(RLRecipe) if f.name not in _EXTENDABLE
               and saved.get(f.name, f.default) != getattr(recipe, f.name)]  # older runs lack newer fields
    if changed:
        raise HuajiaError(f"--resume: this run was started with different {', '.join(changed)}; "
                          "resume with the same settings (only --steps and --minutes may change) "
                          "or use a new --out")


def _save(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a crash never leaves half a checkpoint


def load_rl_pipeline(model: str):
    """``model``'s pipeline as RL trains it: on the training device, in fp32 (RL's updates are
    small: full precision keeps them)."""
    from huajia.engine.loading import load_pipeline, pick_device, resolve_model
    from huajia.training.base import training_device

    device = training_device()
    pipe = load_pipeline(resolve_model(model), device,
                         torch.float32 if device.type == "cpu" else pick_device()[1])
    return pipe.to(torch.float32)


def train_rl(recipe: RLRecipe, out: str | Path, *, resume: bool = False, critic=None, pipe=None,
             progress: Progress | None = None) -> RLResult:
    """Run ``recipe`` into ``out``. ``critic``: the reward's critic (built by the caller, so its
    errors come before any work); ``pipe``: an already loaded pipeline (fp32, on its device;
    omitted: ``recipe.model``'s, as ``load_rl_pipeline`` loads it)."""
    out = Path(out)
    if critic is None:
        raise HuajiaError("train_rl needs a critic: e.g. ShapesCritic() or make_critic('clip', …)")
    pipe = load_rl_pipeline(recipe.model) if pipe is None else pipe
    checkpoint = out / CHECKPOINT
    if checkpoint.exists() and not resume:
        raise HuajiaError(f"'{out}' already holds an RL run; pass --resume to continue it or choose "
                          "another --out")
    saved = (torch.load(checkpoint, map_location="cpu", weights_only=False)
             if resume and checkpoint.exists() else None)
    if saved:
        _check_resume(recipe, saved["recipe"])
    run = _Run(recipe, pipe, critic)
    out.mkdir(parents=True, exist_ok=True)
    if saved:
        run.load(saved)
    log = out / "progress.jsonl"  # steps after the last checkpoint are redone: drop their lines
    log.write_text("".join(json.dumps(r) + "\n" for r in run.history), encoding="utf-8")
    progress = progress or (lambda done, total, record: None)
    budget = recipe.minutes * 60 if recipe.minutes else float("inf")
    wall_budget = recipe.wall_minutes * 60 if recipe.wall_minutes else float("inf")
    stopped = bool(run.history) and "stopped" in run.history[-1]  # a resumed run that stopped early
    while run.step < recipe.steps and run.cpu_s < budget and run.wall_s < wall_budget and not stopped:
        cpu, wall = time.process_time(), time.perf_counter()
        with autocast(recipe.precision, run.policy.device):  # fp32 master weights
            record = run.one_step()
        run.cpu_s += time.process_time() - cpu
        run.wall_s += time.perf_counter() - wall
        record["cpu_s"] = run.cpu_s
        run.history.append(record)
        with log.open("a", encoding="utf-8") as lines:  # readable while the run goes on
            lines.write(json.dumps(record) + "\n")
        run.step += 1
        progress(run.step, recipe.steps, record)
        if recipe.snapshot_every and run.step % recipe.snapshot_every == 0:
            save_snapshot(run.policy.unet, out, run.step)
        if run.step % recipe.checkpoint_every == 0:
            _save(checkpoint, run.state())
        reason = run.stop_reason()
        if reason:
            record["stopped"], stopped = reason, True
    _save(checkpoint, run.state())
    return export(run, out)


def load_history(out: str | Path) -> list[dict]:
    path = Path(out) / CHECKPOINT
    if not path.exists():
        raise HuajiaError(f"no RL run in '{out}'")
    return torch.load(path, map_location="cpu", weights_only=False)["history"]
