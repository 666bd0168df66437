"""``RLRecipe``: one RL run's settings, each declared once with its name, default, unit and help
(``huajia.params``) for ``huajia train rl``, the Python API and the run's records.

Kept apart from ``run.py`` and free of torch, so the command line starts in a blink.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from huajia.engine.loading import check_family, family_param
from huajia.errors import HuajiaError
from huajia.params import check, param, same_as
from huajia.thinking.options import CriticOptions

if TYPE_CHECKING:
    from huajia.training.rl.final_pictures import PictureSettings
    from huajia.training.rl.methods import UpdateSettings

METHODS = ("grpo", "dpo", "raft", "nft", "craft", "draft")
ANCHORED = ("grpo", "nft", "craft")  # methods whose optimizer steps take the shapes anchor


@dataclass(frozen=True, kw_only=True)
class RLRecipe:
    model: str = param("embedded", help="Starting pipeline: 'embedded' or a diffusers folder.")
    family: str | None = family_param()
    # the critic whose credit is the reward (``reward`` is its older name: ``reward`` below)
    critic: str = same_as(CriticOptions, "critic", help="The critic that scores each picture "
                          "(its credit is the reward): shapes, clip or vlm.")
    method: str = param("grpo", help="grpo (policy gradient), dpo (Diffusion-DPO), raft, nft "
                        "(DiffusionNFT: the denoising loss contrasting better and worse pictures) "
                        "craft (reward-filtered fine-tuning with caption dropout) or draft "
                        "(the distilled critic's gradient through the last sampling steps).",
                        choices=METHODS)
    steps: int = param(200, help="RL steps (one rollout and update each).")
    minutes: float | None = param(None, help="Also stop after this much CPU time (process "
                                  "time).", unit="minutes")
    wall_minutes: float | None = param(None, help="Also stop after this much wall time (the "
                                       "bound to use on a GPU).", unit="minutes")
    prompts_per_step: int = param(4, help="Prompts per RL step.")
    group_size: int = param(8, help="Pictures per prompt (compared with each other).")
    sample_steps: int = param(20, help="DDIM steps of each sampled picture (the deployed "
                              "default: 20).")
    guidance: float = param(5.0, help="Classifier-free guidance of the sampled pictures (the "
                            "deployed default).", low=0.0, high=30.0, aliases=("cfg",))
    eta: float = param(1.0, help="GRPO: DDIM η of the stochastic steps; on flow-matching "
                       "families Flow-GRPO's noise level a (σ_t = a·√(t/(1−t)); theirs is 0.7).")
    sde_window: int = param(10, help="GRPO: the first N sampler steps are stochastic (the "
                            "layout is decided there).")
    sde_window_slide: int | None = param(None, help="GRPO (MixGRPO): move the stochastic window "
                                         "one step later every K RL steps, back to the start "
                                         "after the last (omitted: it stays at the start).")
    train_timesteps: int = param(4, help="GRPO: steps trained per picture; DPO/RAFT/NFT/CRAFT: "
                                 "noise draws per picture.")
    # measured best (docs/rl.md): 3e-5 forgot held-out colour pairs, 1e-4 did worse
    lr: float = param(1e-5, help="Learning rate.")
    kl: float = param(0.05, help="GRPO: weight of the KL penalty to the starting model; NFT/CRAFT: "
                      "of the squared distance to its prediction.")
    clip_range: float = param(1e-4, help="GRPO: clip range of the probability ratio (PPO's).")
    adv_clip: float = param(5.0, help="GRPO: advantages are clipped to ± this.")
    dpo_beta: float = param(2000.0, help="DPO: Diffusion-DPO's β.")
    nft_beta: float = param(1.0, help="NFT: how far the implicit positive and negative policies "
                            "lie from the rollout's (DiffusionNFT's β).", low=1e-3, high=10.0)
    winners: int = param(2, help="CRAFT: the best pictures of each group it learns from (those "
                         "above the group's mean reward).", low=1)
    caption_dropout: float = param(0.1, help="CRAFT: share of its pictures learnt under the "
                                   "empty prompt (the base recipe's), so guidance keeps working.",
                                   low=0.0, high=1.0)
    critic_model: str | None = param(None, help="DRaFT: the differentiable critic's folder "
                                     "(made by `huajia train critic`; 'embedded': the one "
                                     "shipped for the embedded model).")
    backprop_steps: int = param(1, help="DRaFT: the critic's gradient flows through the last "
                                "1..K sampling steps (K drawn afresh each step).")
    early_stop: int = param(20, help="DRaFT: stop when, between the run's first and last K "
                            "steps, the critic's lead over the verifier grew by 0.05 while the "
                            "verifier's credit did not rise (0: never).", low=0)
    updates: int = param(2, help="Optimizer steps per rollout.")
    lora_rank: int | None = param(None, help="Train a LoRA of this rank instead of the whole "
                                  "UNet (omitted: the whole UNet learns).")
    seed: int = param(0, help="Seed of the prompts, the noise and a LoRA's first weights.")
    checkpoint_every: int = param(5, help="Save a checkpoint (what --resume continues) every "
                                  "K steps.")
    snapshot_every: int | None = param(None, help="Keep the UNet every K steps in OUT/snapshots "
                                       "(to measure the run's curve afterwards).")
    micro_batch: int = param(32, help="Samples per forward pass of an update (a GPU takes "
                             "hundreds).")
    prompt_file: str | None = param(None, help="Prompt file, one per line (default: the world's "
                                    "training templates, GenEval's task mix).",
                                    aliases=("prompts",))
    task_weights: str | None = param(None, help="Weigh the world's tasks, e.g. position=3 "
                                     "(others 1).")
    resolution: int | None = param(None, help="Side of the pictures, in pixels, on families "
                                   "other than SD 1.x/2.x (default: the family's native size).",
                                   low=16, high=4096)
    precision: str = param("fp32", help="Mixed precision of the forward passes (bf16 also on a "
                           "CPU); the learning weights stay fp32.", choices=("fp32", "bf16"))
    anchor: float = param(0.0, help="GRPO/NFT/CRAFT + shapes: weight of a supervised loss on oracle "
                          "renders of training scenes (keeps what the base generalised).")
    anchor_batch: int = param(16, help="--anchor: oracle scenes per optimizer step.")

    def __post_init__(self) -> None:
        check(self)  # the critic and the method are known, the guidance in range
        check_family(self.family)
        if self.group_size < 2:
            raise HuajiaError(f"--group-size {self.group_size}: a group needs at least 2 pictures "
                              "(advantages and pairs compare pictures of one prompt); use 4-16")
        for name in ("steps", "prompts_per_step", "sample_steps", "train_timesteps", "updates",
                     "checkpoint_every", "micro_batch"):
            if getattr(self, name) < 1:
                raise HuajiaError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.method == "grpo" and not 1 <= self.sde_window <= self.sample_steps:
            raise HuajiaError(f"--sde-window {self.sde_window} must be between 1 and the sampler's "
                              f"{self.sample_steps} steps")
        if self.sde_window_slide is not None and self.sde_window_slide < 1:
            raise HuajiaError(f"--sde-window-slide {self.sde_window_slide} must be at least 1 (RL "
                              "steps between moves of the window)")
        if self.lora_rank is not None and self.lora_rank < 1:
            raise HuajiaError(f"--lora-rank {self.lora_rank} must be at least 1 (or use --full)")
        if self.snapshot_every is not None and (self.snapshot_every < 1 or self.lora_rank):
            raise HuajiaError("--snapshot-every keeps the whole UNet every K steps (K at least 1); "
                              "a LoRA run's checkpoints already hold its few weights")
        if self.task_weights:
            from huajia.training.rl.prompts import parse_task_weights

            parse_task_weights(self.task_weights)
            if self.prompt_file:
                raise HuajiaError("--task-weights weighs the world's tasks; it does not apply to "
                                  "--prompt-file")
        if self.anchor < 0 or self.anchor_batch < 1:
            raise HuajiaError("--anchor must not be negative and --anchor-batch at least 1")
        if self.anchor and (self.method not in ANCHORED or self.critic != "shapes"):
            raise HuajiaError("--anchor trains on the shapes world's oracle renders; it needs "
                              "--method grpo, nft or craft and --critic shapes")
        self._check_draft()
        if self.lr <= 0 or self.kl < 0 or self.eta <= 0:
            raise HuajiaError("--lr and --eta must be positive and --kl not negative")

    def _check_draft(self) -> None:
        if self.method != "draft":
            if self.critic_model:
                raise HuajiaError(f"--critic-model is the differentiable critic of --method draft; "
                                  f"drop it for --method {self.method}")
            return
        if not self.critic_model:
            raise HuajiaError("--method draft backpropagates through a differentiable critic: give "
                              "--critic-model DIR (make one with `huajia train critic --out DIR`)")
        if not 1 <= self.backprop_steps <= self.sample_steps:
            raise HuajiaError(f"--backprop-steps {self.backprop_steps} must be between 1 and the "
                              f"sampler's {self.sample_steps} steps")
        if self.critic != "shapes":
            raise HuajiaError("--method draft's critic reads the shapes world; use --critic shapes "
                              "(the verifier judges its pictures beside the critic)")

    def to_dict(self) -> dict:
        return asdict(self)

    def settings(self) -> UpdateSettings:
        from huajia.training.rl.methods import UpdateSettings

        return UpdateSettings(eta=self.eta, kl=self.kl, clip_range=self.clip_range,
                              adv_clip=self.adv_clip, train_timesteps=self.train_timesteps,
                              updates=self.updates, dpo_beta=self.dpo_beta,
                              micro_batch=self.micro_batch)

    def picture_settings(self) -> PictureSettings:
        from huajia.training.rl.final_pictures import PictureSettings

        return PictureSettings(nft_beta=self.nft_beta, winners=self.winners,
                               caption_dropout=self.caption_dropout)

    def stochastic_window(self, step: int) -> tuple[int, ...]:
        """The sampler steps that are stochastic at RL step ``step`` (GRPO's window)."""
        if self.method != "grpo":
            return ()
        places = self.sample_steps - self.sde_window + 1
        start = (step // self.sde_window_slide) % places if self.sde_window_slide else 0
        return tuple(range(start, start + self.sde_window))
