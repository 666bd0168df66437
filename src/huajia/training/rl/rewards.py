"""Rewards are critics: the same ``Critic`` the thinking loop asks (shapes, clip, vlm), read as a
graded 0–1 score — the mean of its region scores — so partly right pictures still teach."""

from __future__ import annotations

import numpy as np

from huajia.thinking.critics import Critic
from huajia.thinking.plan import plan_prompt
from huajia.training.rl.prompts import TrainPrompt


class CriticReward:
    def __init__(self, critic: Critic, threshold: float = 80.0):
        self.critic, self.threshold = critic, threshold
        self.name = critic.name

    def __call__(self, images: list, prompts: list[TrainPrompt]) -> tuple[np.ndarray, np.ndarray]:
        """(reward 0–1, satisfied) per picture; a region the critic could not judge counts 0."""
        rewards, satisfied = [], []
        for image, prompt in zip(images, prompts, strict=True):
            critique = self.critic.inspect(image, plan_prompt(prompt.text), self.threshold)
            scores = [r.score or 0.0 for r in critique.reports]
            rewards.append(sum(scores) / len(scores) / 100.0 if scores else 0.0)
            satisfied.append(critique.satisfied)
        return np.asarray(rewards, dtype=np.float64), np.asarray(satisfied, dtype=bool)
