"""ShapesEval adapters for thinking: the loop itself, and best-of-N picked by the same critic.
Both record network evaluations per image so methods can be compared at equal compute."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from huajia.engine.request import GenerationRequest
from huajia.thinking.critics import Critic
from huajia.thinking.loop import Thinker, ThinkOptions
from huajia.thinking.plan import plan_prompt


class ThinkingGenerator:
    def __init__(self, engine, critic: Critic, options: ThinkOptions, steps: int = 20,
                 guidance: float = 5.0, name: str = "thinking", scheduler: str | None = None,
                 **fields):
        self.thinker = Thinker(engine, critic, options)
        self.steps, self.guidance, self.name = steps, guidance, name
        # the recorded benchmarks' sampler: the model's own (None), unless asked
        self.fields = {"scheduler": scheduler, **fields}  # more GenerationRequest fields
        self.nfe: list[int] = []
        self.timings: list[dict] = []  # per picture: seconds per stage (``ThinkResult``)

    def generate(self, prompts: Sequence[str], seeds: Sequence[int],
                 side: int) -> list[Image.Image]:
        images = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            request = GenerationRequest(prompt, seed=seed, steps=self.steps,
                                        guidance=self.guidance, width=side, height=side,
                                        **self.fields)
            result = self.thinker.think(request)
            self.nfe.append(result.nfe)
            self.timings.append(result.timings)
            images.append(result.image)
        return images


class BestOfNGenerator:
    """Up to N plain samples (seeds seed·1000 + k), the one the critic scores highest is kept;
    with ``early_stop`` (the default, the honest baseline) it stops at the first sample the
    critic is satisfied with, as thinking does."""

    def __init__(self, engine, critic: Critic, n: int, steps: int = 20, guidance: float = 5.0,
                 threshold: float = 90.0, early_stop: bool = True, scheduler: str | None = None):
        self.engine, self.critic, self.n = engine, critic, n
        self.scheduler = scheduler
        self.steps, self.guidance, self.threshold = steps, guidance, threshold
        self.early_stop = early_stop
        self.name = f"best-of-{n}"
        self.nfe: list[int] = []

    def generate(self, prompts: Sequence[str], seeds: Sequence[int],
                 side: int) -> list[Image.Image]:
        images = []
        for prompt, seed in zip(prompts, seeds, strict=True):
            plan = plan_prompt(prompt)
            best, tried = (-1.0, None), 0
            for k in range(self.n):
                request = GenerationRequest(prompt, seed=seed * 1000 + k, steps=self.steps,
                                            guidance=self.guidance, width=side, height=side,
                                            scheduler=self.scheduler)
                image = self.engine.generate(request).images[0]
                critique = self.critic.inspect(image, plan, self.threshold)
                tried += 1
                score = sum(r.score or 0 for r in critique.reports)
                if score > best[0]:
                    best = (score, image)
                if critique.satisfied and self.early_stop:
                    break
            images.append(best[1])
            self.nfe.append(2 * self.steps * tried)
        return images
