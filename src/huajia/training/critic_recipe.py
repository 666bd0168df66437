"""``CriticRecipe``: the settings of ``huajia train critic`` (training/critic.py), each declared
once with its help (``huajia.params``); free of torch, so the command line starts in a blink."""

from __future__ import annotations

from dataclasses import dataclass

from huajia.errors import HuajiaError
from huajia.params import check, param


@dataclass(frozen=True, kw_only=True)
class CriticRecipe:
    model: str = param("embedded", help="The model whose pictures the critic learns to read: "
                       "'embedded' or an SD-style diffusers folder.")
    pictures: int = param(384, help="The model's own pictures of training prompts, judged by the "
                          "verifier, to distil from.", low=16)
    renders: int = param(1536, help="Oracle renders mixed in (exact labels).", low=0)
    holdout: int = param(192, help="The model's pictures of held-out prompts, for the card's "
                         "agreement with the verifier.", low=8)
    epochs: int = param(4, help="Passes over the distillation set.", low=1)
    lr: float = param(3e-4, help="Learning rate of the fine-tuning.")
    batch: int = param(64, help="Pictures per optimizer step.", low=1)
    sample_steps: int = param(20, help="DDIM steps of the model's pictures (as deployed).", low=1)
    guidance: float = param(5.0, help="Guidance of the model's pictures (as deployed).",
                            low=0.0, high=30.0)
    seed: int = param(0, help="Seed of the prompts, pictures and training order.")

    def __post_init__(self) -> None:
        check(self)  # the counts' and the guidance's limits
        if self.lr <= 0:
            raise HuajiaError(f"--lr {self.lr} must be positive")
