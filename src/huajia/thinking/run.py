"""The state of one thinking run, and the step callback that pauses to look.

``ThinkRun`` holds what one run knows (its plan, regions, thoughts, frames, the first looks of
each start); ``PauseCallback`` is the denoising callback (a class, as diffusers'
``PipelineCallback``) that decodes a preview at the pause steps, asks the critic, and restarts,
steers or lets the run go on.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from huajia.engine.request import GenerationRequest
from huajia.engine.session import DenoiseStep, Session
from huajia.thinking.critics import Critic, Critique
from huajia.thinking.messages import text
from huajia.thinking.options import ThinkOptions
from huajia.thinking.plan import Plan
from huajia.thinking.preview import data_url
from huajia.thinking.regional import RegionState

RESEED = 7919  # fresh starts use seed + k·7919: reproducible, far from neighbouring seeds


class Abandoned(Exception):  # noqa: N818 - a decision, not an error
    """Raised from the step callback when a first look starts again: the rest of the run is
    not painted, whether or not the pipeline honours an interrupt (Lumina 2's does not)."""


@dataclass(frozen=True)
class Thought:
    step: int  # denoising step (-1: before generation; steps: after)
    phase: str  # plan | pause | restart | reflect | compose | repaint | stop
    region: int | None
    observation: str
    decision: str
    score: float | None
    nfe: int  # network evaluations per image spent so far
    # the picture the thought is about, a small JPEG data URL with the plan's boxes (only where
    # someone follows the thoughts as they come: the web page)
    preview: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Frame:
    """One page of the sketchbook: the picture as it was, and what was thought about it."""

    image: Image.Image
    title: str
    thoughts: tuple[Thought, ...]


class Stopwatch:
    """Seconds and network evaluations (``calls()``) spent per stage of a run
    (``with watch("look"): …``), for its timings."""

    def __init__(self, calls: Callable[[], int] = lambda: 0):
        self.calls = calls
        self.seconds: dict[str, float] = defaultdict(float)
        self.nfe: dict[str, int] = defaultdict(int)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start, calls = time.perf_counter(), self.calls()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start
            self.nfe[stage] += self.calls() - calls


@dataclass
class ThinkRun:
    """Everything one run of the loop knows; thrown away when the run ends."""

    request: GenerationRequest
    options: ThinkOptions
    plan: Plan
    state: RegionState
    size: tuple[int, int]
    seed: int
    on_thought: Callable[[Thought], None] | None = None
    thoughts: list[Thought] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    looks: dict[int, float] = field(default_factory=dict)  # start → mean score of its first look
    attempt: int = 0  # starts abandoned so far
    replay: int | None = None  # -1: a fresh start; k: start k painted again as the best look
    restart: bool = False
    stop_looking: bool = False
    watch: Stopwatch = field(default_factory=Stopwatch)

    def __post_init__(self) -> None:
        self.watch.calls = lambda: self.state.calls

    @property
    def lang(self) -> str:
        return self.plan.lang

    def text(self, key: str, **values) -> str:
        return text(key, self.plan.lang, **values)

    def think(self, step: int, phase: str, region: int | None, observation: str,
              decision: str, score: float | None, picture: Image.Image | None = None) -> Thought:
        """Record a thought (and report it as it happens, with a thumbnail of ``picture``)."""
        preview = data_url(picture, self.plan) if picture is not None and self.on_thought \
            else None
        thought = Thought(step, phase, region, observation, decision, score, self.state.calls,
                          preview)
        self.thoughts.append(thought)
        if self.on_thought:
            self.on_thought(thought)
        return thought

    def over_budget(self) -> bool:
        return self.options.budget is not None and self.state.calls >= self.options.budget

    def no_room_for(self, cost: int) -> bool:
        """Whether ``cost`` more evaluations would run past the budget."""
        return self.options.budget is not None and self.state.calls + cost > self.options.budget

    def noise_seed(self) -> int:
        start = self.attempt if self.replay is None or self.replay < 0 else self.replay
        return self.seed + start * RESEED


def mean_score(critique: Critique) -> float:
    scores = [r.score for r in critique.reports if r.score is not None]
    return float(np.mean(scores)) if scores else 100.0


def pause_steps(options: ThinkOptions, steps: int) -> set[int]:
    """The steps after which the loop looks: spread from the first look to 65 % of the
    schedule."""
    if not options.pauses:
        return set()
    first = options.first_look
    spread = np.linspace(first, max(first, 0.65), options.pauses).round(2)
    return {int(round(s)) for s in spread * steps}


class PauseCallback:
    """At each pause: decode the x0-preview, ask the critic, then restart (first pause only),
    steer (``options.steer``) or go on; stops looking once the critic is satisfied."""

    def __init__(self, run: ThinkRun, session: Session, critic: Critic):
        self.run, self.session, self.critic = run, session, critic
        self.pauses = pause_steps(run.options, run.request.steps)
        self.first_pause = min(self.pauses, default=None)
        self.before: torch.Tensor | None = None  # the latents the next step starts from
        self.started: torch.Tensor | None = None  # the latents the paused step started from
        self.blind = False  # this family shows no x0 at a step (said once)

    def __call__(self, step: DenoiseStep) -> None:
        before = self.before if step.index > 0 else None
        if step.index in self.pauses and not self.run.stop_looking \
                and not self.run.over_budget():
            self._pause(step, before)
        self.before = step.latents.detach().clone()  # after any steering of this step

    def x0(self, step: DenoiseStep, before: torch.Tensor | None) -> torch.Tensor | None:
        """The step's x0-prediction as the session's latents (1, C, h, w): read off the step the
        family's way (flow: x_t − σ·v), else from the regional hooks' guided output."""
        if before is not None:  # flow families: read off the step, whatever the hooks saw
            x0 = self.session.x0_of_step(step, before, self.run.size)
            if x0 is not None:
                return x0
        state = self.run.state
        if state.last_guided is not None:
            return step.x0(state.last_input, state.last_timestep, state.last_guided)
        return None

    def _pause(self, step: DenoiseStep, before: torch.Tensor | None) -> None:
        run, opts = self.run, self.run.options
        self.started = before
        with run.watch("preview"):
            x0 = self.x0(step, before)
            if x0 is None:
                self._say_blind()
                return
            preview = self.session.decode(x0)
        with run.watch("look"):
            critique = self.critic.inspect(preview, run.plan, opts.threshold)
        if step.index == self.first_pause and run.replay is None and \
                self._restart(step, critique, preview):
            return
        decisions = self._steer(critique, step) if opts.steer else {}
        said = [run.think(step.done, "pause", report.region, report.observation,
                          decisions.get(report.region) or self._decision(report.score),
                          report.score, preview if k == 0 else None)
                for k, report in enumerate(critique.reports)]
        if critique.satisfied:
            run.stop_looking = True
            said.append(run.think(step.done, "stop", None, critique.summary,
                                  run.text("already_right"), None))
        run.frames.append(Frame(preview, run.text("title_pause", step=step.done,
                                                  steps=run.request.steps), tuple(said)))

    def _say_blind(self) -> None:
        """A family whose steps show no x0: no pauses, said once; the loop looks after the end."""
        run = self.run
        run.stop_looking = True
        if not self.blind:
            self.blind = True
            family = self.session.engine.family.label
            run.think(-1, "pause", None, run.text("no_preview", family=family),
                      run.text("look_after_end"), None)

    def _decision(self, score: float | None) -> str:
        opts = self.run.options
        if score is None or score >= opts.threshold or opts.max_repaints == 0:
            return self.run.text("keep_going")
        return self.run.text("fix_after_end")

    def _restart(self, step: DenoiseStep, critique: Critique, preview: Image.Image) -> bool:
        decision = self._first_look(critique)
        if decision is None:
            return False
        run = self.run
        run.replay, run.restart = decision[0], True
        thought = run.think(step.done, "restart", None, critique.summary, decision[1],
                            mean_score(critique), preview)
        run.frames.append(Frame(preview, run.text("title_abandoned", step=step.done),
                                (thought,)))
        raise Abandoned

    def _first_look(self, critique: Critique) -> tuple[int, str] | None:
        """At the first pause: keep painting (None), start again from fresh noise (-1, why),
        or go back to an earlier start whose first look was better (its index, why)."""
        run, opts = self.run, self.run.options
        score = mean_score(critique)
        run.looks[run.attempt] = score
        if critique.satisfied or score >= opts.restart_below:
            return None
        # what a fresh start costs at worst: every region woken from its first step
        fresh_cost = run.request.steps * (2 + run.state.distinct_regions)
        if run.no_room_for(fresh_cost):
            return None  # no room left to paint another start to the end
        if run.attempt < opts.restarts:
            return -1, run.text("restart_fresh", attempt=run.attempt + 1, restarts=opts.restarts)
        best = max(run.looks, key=run.looks.get)
        if run.looks[best] <= score:
            return None
        return best, run.text("go_back", start=best + 1, score=run.looks[best])

    def _steer(self, critique: Critique, step: DenoiseStep) -> dict[int, str]:
        """Act on a pause's critique for the rest of the schedule; returns decisions."""
        run, opts, state = self.run, self.run.options, self.run.state
        decisions: dict[int, str] = {}
        for report in critique.reports:
            if report.score is None or report.score >= opts.threshold:
                continue
            r = report.region
            state.boost[r] = min(2.0, float(state.boost[r]) + 0.75)
            state.strength[r] = min(1.0, max(opts.woken_strength, float(state.strength[r]) + 0.15))
            words = [run.text("steer_guidance")]
            if report.score == 0 and step.has_next:
                self._reinject(step, r)
                words.append(run.text("steer_noise"))
            if report.revised_caption and state.embeds is not None and \
                    report.revised_caption != run.plan.regions[r].caption:
                embeds, _ = self.session.encode_caption(report.revised_caption)
                state.embeds[r] = embeds[0, : state.embeds.shape[1]]
                words.append(run.text("steer_caption", caption=report.revised_caption))
            decisions[r] = run.text("joiner").join(words)
        return decisions


    def _reinject(self, step: DenoiseStep, r: int) -> None:
        """Replace a wrong region by background plus fresh noise at the next step's level
        (the family's re-noising), in the session's latents and back to the pipeline's."""
        session, size = self.session, self.run.size
        x0 = self.x0(step, self.started)
        if x0 is None:
            return
        latents = session.unpacked(step.latents, size)
        mask = self.run.state.masks[r : r + 1].to(latents.device, latents.dtype)
        background = (x0 * (1 - mask)).sum((2, 3), keepdim=True) / (1 - mask).sum().clamp(min=1)
        cleaned = x0 * (1 - mask) + background * mask
        noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(step.index),
                            dtype=latents.dtype).to(latents.device)
        fresh = session.noised_for_next(step, cleaned, noise)
        step.latents = session.packed(latents * (1 - mask) + fresh * mask)
