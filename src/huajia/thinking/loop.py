"""Think while painting: plan → regional denoising → pause and look → (steer) → reflect →
compose or repaint what is wrong.

Everything runs through the pipeline's own ``__call__``: regional prompts are two forward hooks
on its UNet (see ``regional``), pauses and steering live in ``callback_on_step_end``, composing
paints a region's sub-caption alone with the same engine (see ``compose``), repainting uses the
image-to-image pipeline built from the same components (``from_pipe``) with known content
blended back at every step. Thoughts are reported as they happen.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from PIL import Image

from huajia.engine.embeddings import encode_weighted
from huajia.engine.engine import Engine
from huajia.engine.infotext import format_infotext
from huajia.engine.request import GenerationRequest
from huajia.errors import HuajiaError
from huajia.thinking.compose import Part, isolate, part_caption, paste, plain_background, sub_plan
from huajia.thinking.critics import Critic, Critique
from huajia.thinking.plan import Plan, plan_prompt
from huajia.thinking.regional import RegionalHooks, RegionState, soft_mask


@dataclass(frozen=True)
class ThinkOptions:
    pauses: int = 3
    budget: int | None = None  # max network evaluations per image (None: no limit)
    threshold: float = 90.0  # a region scoring below this is acted on
    max_repaints: int = 5  # repaints did most of the work in the ablation (README)
    # how much a region's sub-caption replaces the prompt there from the first step. 0: regions
    # stay dormant (and cost nothing) until a look finds them wrong, then steer at
    # ``woken_strength``. Measured on the embedded model (54 held-out prompts x 6 seeds, 20
    # steps): sub-captions from step 0 at 0.7 passed 0.127 of samples at 70 NFE, plain 0.167 at 40
    region_strength: float = 0.0
    woken_strength: float = 0.7
    repaint_strength: float = 0.65  # how far a repaint goes back into the noise
    # act on what a pause sees (stronger guidance, fresh noise into the region, a revised
    # sub-caption). Off by default: on the embedded model it cost accuracy (84 held-out prompts,
    # 20 steps: looks with steering 0.286, the same looks without it 0.333); the looks still
    # decide restarts and an early stop, and failing regions are steered when repainted
    steer: bool = False
    # at the first pause a half-made picture that does not yet satisfy the critic (mean region
    # score below restart_below) is abandoned for fresh noise, at most ``restarts`` times; then
    # the start whose first look scored best is painted to the end. The first look comes after
    # ~35% of the schedule, where it already predicts the finished picture well (AUC 0.88 after
    # 8 of 20 steps, 0.59 after 4), so a start is judged for 40% of the cost of finishing it
    restarts: int = 8
    restart_below: float = 100.0
    # a region wrong after the end has its sub-caption painted alone (this many seeds per
    # round, each checked by the critic) and the best part so far pasted into its box
    # (``compose``), round after round until its part is right; then it is repainted in
    # place. Regions are searched one by one, not whole pictures. 0: repaint only
    compose_tries: int = 3


@dataclass(frozen=True)
class Thought:
    step: int  # denoising step (-1: before generation; steps: after)
    phase: str  # plan | pause | restart | reflect | compose | repaint | stop
    region: int | None
    observation: str
    decision: str
    score: float | None
    nfe: int  # network evaluations per image spent so far

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Frame:
    """One page of the sketchbook: the picture as it was, and what was thought about it."""

    image: Image.Image
    title: str
    thoughts: tuple[Thought, ...]


@dataclass
class ThinkResult:
    image: Image.Image
    plan: Plan
    thoughts: list[Thought]
    frames: list[Frame]
    nfe: int
    satisfied: bool
    seed: int
    infotext: str = ""
    timings: dict = field(default_factory=dict)


def _x0_from(state: RegionState, scheduler) -> torch.Tensor:
    """x0-prediction from the UNet's last input and guided output (VP parametrisation)."""
    t = state.last_timestep
    t = t[0] if torch.is_tensor(t) and t.ndim else t
    index = int(torch.as_tensor(t).round().clamp(0, len(scheduler.alphas_cumprod) - 1))
    alpha = scheduler.alphas_cumprod[index].to(state.last_input.dtype)
    x, out = state.last_input, state.last_guided
    if scheduler.config.prediction_type == "v_prediction":
        return alpha.sqrt() * x - (1 - alpha).sqrt() * out
    return (x - (1 - alpha).sqrt() * out) / alpha.sqrt().clamp(min=1e-4)


class Thinker:
    def __init__(self, engine: Engine, critic: Critic, options: ThinkOptions | None = None):
        self.engine, self.critic = engine, critic
        self.options = options or ThinkOptions()

    # -- helpers ---------------------------------------------------------------------------
    def _decode(self, latents: torch.Tensor) -> Image.Image:
        vae = self.engine.pipe.vae
        with torch.no_grad():
            pixels = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
        array = ((pixels[0].float().clamp(-1, 1) + 1) * 127.5).round().byte()
        return Image.fromarray(array.permute(1, 2, 0).cpu().numpy())

    def _region_embeds(self, plan: Plan) -> tuple[torch.Tensor, torch.Tensor | None]:
        embeds, pooled = [], []
        for region in plan.regions:
            encoded, _ = encode_weighted(self.engine.pipe, region.caption, "")
            embeds.append(encoded.prompt_embeds[:, : self.engine.pipe.tokenizer.model_max_length])
            pooled.append(encoded.pooled)
        pooled_t = torch.cat(pooled) if pooled[0] is not None else None
        return torch.cat(embeds), pooled_t

    # -- the loop --------------------------------------------------------------------------
    def think(self, request: GenerationRequest,
              on_thought: Callable[[Thought], None] | None = None) -> ThinkResult:
        start = time.perf_counter()
        if request.guidance <= 1.0:  # the regional hooks steer the CFG [uncond, cond] pair
            raise HuajiaError(f"thinking needs guidance above 1 (got {request.guidance}); "
                              "use e.g. --cfg 5")
        opts, pipe = self.options, self.engine.pipe
        self.engine.use_loras(request.loras)  # before the plan's regions are encoded
        thoughts: list[Thought] = []
        frames: list[Frame] = []

        def say(thought: Thought) -> None:
            thoughts.append(thought)
            if on_thought:
                on_thought(thought)

        plan = plan_prompt(request.prompt)
        say(Thought(-1, "plan", None, plan.describe(), _plan_decision(opts, plan.lang == "zh"),
                    None, 0))
        side_w = request.width or self.engine.native_size
        side_h = request.height or self.engine.native_size
        scale = pipe.vae_scale_factor
        embeds, pooled = self._region_embeds(plan)
        masks = torch.cat([soft_mask(r.box, side_h // scale, side_w // scale) for r in plan.regions])
        regions = len(plan.regions)
        state = RegionState(embeds=embeds, masks=masks.to(embeds.device),
                            strength=torch.full((regions,), opts.region_strength),
                            boost=torch.zeros(regions), pooled=pooled,
                            guidance_scale=request.guidance)
        pause_steps = set(np.linspace(0.35, 0.65, opts.pauses).round(2) * request.steps) \
            if opts.pauses else set()
        pause_steps = {int(round(s)) for s in pause_steps}
        seed = request.seed if request.seed is not None else 0
        stop_looking, restart, attempt = False, False, 0
        looks: dict[int, float] = {}  # start → mean score of its first look
        replay: int | None = None  # the start being painted again because it looked best
        first_pause = min(pause_steps, default=None)
        fresh_embeds = state.embeds.clone()

        def over_budget() -> bool:
            return opts.budget is not None and state.calls >= opts.budget

        def on_step_end(pipeline, step, timestep, kwargs):
            nonlocal stop_looking, restart, replay
            if step not in pause_steps or stop_looking or over_budget():
                return kwargs
            preview = self._decode(_x0_from(state, pipeline.scheduler))
            critique = self.critic.inspect(preview, plan, opts.threshold)
            # what a fresh start costs at worst: every region woken from its first step
            fresh_cost = request.steps * (2 + state.distinct_regions)
            if step == first_pause and replay is None:
                decision = self._first_look(critique, attempt, looks, state.calls, fresh_cost,
                                            plan.lang == "zh")
                if decision is not None:
                    replay = decision[0]
                    restart, pipeline._interrupt = True, True  # diffusers skips the rest
                    thought = Thought(step + 1, "restart", None, critique.summary, decision[1],
                                      _mean_score(critique), state.calls)
                    say(thought)
                    frames.append(Frame(preview, _title("abandoned", plan.lang, step=step + 1),
                                        (thought,)))
                    return kwargs
            decisions = self._steer(critique, plan, state, kwargs, pipeline, step) \
                if opts.steer else {}
            said = [Thought(step + 1, "pause", report.region, report.observation,
                            decisions.get(report.region, _pause_decision(
                                report.score, opts, plan.lang == "zh")),
                            report.score, state.calls)
                    for report in critique.reports]
            if critique.satisfied:
                stop_looking = True
                said.append(Thought(step + 1, "stop", None, critique.summary,
                                    "画面已经对了，不再暂停" if plan.lang == "zh" else
                                    "the picture already matches: no more pauses", None,
                                    state.calls))
            for thought in said:
                say(thought)
            frames.append(Frame(preview, _title("pause", plan.lang, step=step + 1,
                                                steps=request.steps), tuple(said)))
            return kwargs

        prepared = self.engine.prepare(request)
        prompt, negative, kwargs = prepared.prompt, prepared.negative, prepared.kwargs
        with RegionalHooks(pipe.unet, state):
            while True:
                noise_seed = seed + (attempt if replay is None or replay < 0 else replay) * _RESEED
                state.embeds.copy_(fresh_embeds)
                state.strength.fill_(opts.region_strength)
                state.boost.zero_()
                self.engine.pipe.scheduler = type(pipe.scheduler).from_config(
                    self.engine.base_scheduler_config)
                latents = pipe(**kwargs, num_inference_steps=request.steps,
                               guidance_scale=request.guidance, width=side_w, height=side_h,
                               generator=torch.Generator(device="cpu").manual_seed(noise_seed),
                               output_type="latent", callback_on_step_end=on_step_end).images
                if not restart:
                    break
                restart, stop_looking, attempt = False, False, attempt + 1
                if replay is not None and replay < 0:
                    replay = None  # a fresh start, still free to be judged
            image = self._decode(latents)
            image, latents, satisfied = self._reflect_and_repaint(
                request, kwargs, plan, state, latents, image, frames, say, noise_seed)
        fields = self.engine.infotext_fields(request, side_w, side_h)
        fields.update({"Seed": seed, "Critic": getattr(self.critic, "name", "custom"),
                       "Pauses": opts.pauses, "Steer": opts.steer,
                       "Compose": opts.compose_tries, "Restarts": attempt,
                       "NFE": state.calls})
        result = ThinkResult(image, plan, thoughts, frames, state.calls, satisfied, seed,
                             format_infotext(prompt, negative, fields))
        result.timings["total_s"] = time.perf_counter() - start
        return result

    def _first_look(self, critique: Critique, attempt: int, looks: dict[int, float],
                    spent: int, fresh_cost: float, zh: bool) -> tuple[int, str] | None:
        """At the first pause: keep painting (None), start again from fresh noise (-1, why),
        or go back to an earlier start whose first look was better (its index, why)."""
        opts, score = self.options, _mean_score(critique)
        looks[attempt] = score
        if critique.satisfied or score >= opts.restart_below:
            return None
        if opts.budget is not None and spent + fresh_cost > opts.budget:
            return None  # no room left to paint another start to the end
        if attempt < opts.restarts:
            return -1, (f"从新的噪声重新开始（{attempt + 1}/{opts.restarts}）" if zh else
                        f"start again from fresh noise ({attempt + 1}/{opts.restarts})")
        best = max(looks, key=looks.get)
        if looks[best] <= score:
            return None
        return best, (f"回到第 {best + 1} 次起稿（初看得分 {looks[best]:.0f}，最好）" if zh else
                      f"go back to start {best + 1}, whose first look was best "
                      f"({looks[best]:.0f})")

    def _steer(self, critique: Critique, plan: Plan, state: RegionState, kwargs: dict,
               pipeline, step: int) -> dict[int, str]:
        """Act on a pause's critique for the rest of the schedule; returns decisions."""
        decisions: dict[int, str] = {}
        zh = plan.lang == "zh"
        for report in critique.reports:
            if report.score is None or report.score >= self.options.threshold:
                continue
            r = report.region
            state.boost[r] = min(2.0, float(state.boost[r]) + 0.75)
            strength = max(self.options.woken_strength, float(state.strength[r]) + 0.15)
            state.strength[r] = min(1.0, strength)
            words = ["加强该区域的引导" if zh else "stronger guidance here"]
            if report.score == 0 and step + 1 < len(pipeline.scheduler.timesteps):
                self._reinject(state, kwargs, pipeline, step, r)
                words.append("向该区域重新注入噪声" if zh else "fresh noise into the region")
            if report.revised_caption and report.revised_caption != plan.regions[r].caption:
                encoded, _ = encode_weighted(self.engine.pipe, report.revised_caption, "")
                state.embeds[r] = encoded.prompt_embeds[0, : state.embeds.shape[1]]
                words.append(("改写子描述：" if zh else "new sub-caption: ") + report.revised_caption)
            decisions[r] = ("；" if zh else "; ").join(words)
        return decisions

    def _reinject(self, state: RegionState, kwargs: dict, pipeline, step: int, r: int) -> None:
        """Replace a wrong region by background plus fresh noise at the next step's level."""
        latents = kwargs["latents"]
        x0 = _x0_from(state, pipeline.scheduler)
        mask = state.masks[r : r + 1].to(latents.dtype)
        background = (x0 * (1 - mask)).sum((2, 3), keepdim=True) / (1 - mask).sum().clamp(min=1)
        cleaned = x0 * (1 - mask) + background * mask
        next_t = pipeline.scheduler.timesteps[step + 1 : step + 2]
        noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(step),
                            dtype=latents.dtype)
        renoised = pipeline.scheduler.add_noise(cleaned, noise, next_t)
        kwargs["latents"] = latents * (1 - mask) + renoised * mask

    def _reflect_and_repaint(self, request, kwargs, plan, state, latents, image, frames, say,
                             seed):
        opts = self.options
        best = (-1.0, image, latents, False)
        parts: dict[int, Part] = {}  # the best part painted alone so far, per region
        carried: list[Thought] = []  # the compose thoughts behind the next picture
        title, repaints, zh = _title("finished", plan.lang), 0, plan.lang == "zh"
        for attempt in range(opts.max_repaints + 1):
            critique = self.critic.inspect(image, plan, opts.threshold)
            mean = float(np.mean([r.score or 0.0 for r in critique.reports]))
            label = "reflect" if attempt == 0 else "repaint"
            said = [Thought(request.steps, label, report.region, report.observation,
                            _reflect_decision((report.score or 0) >= opts.threshold, zh),
                            report.score, state.calls) for report in critique.reports]
            for thought in said:
                say(thought)
            frames.append(Frame(image, title, tuple(carried + said)))
            carried = []
            if mean > best[0]:
                best = (mean, image, latents, critique.satisfied)
            if critique.satisfied or attempt == opts.max_repaints:
                break
            if opts.budget is not None and state.calls >= opts.budget:
                say(Thought(request.steps, "stop", None,
                            "计算预算已用完" if zh else "compute budget spent",
                            "保留目前最好的一张" if zh else "keep the best picture so far",
                            None, state.calls))
                break
            failing = [r.region for r in critique.reports
                       if r.score is not None and r.score < opts.threshold]
            # composing cuts objects out of a plain background; on any other canvas it is
            # skipped and the region repainted in place
            plain = opts.compose_tries > 0 and plain_background(np.asarray(image.convert("RGB")))
            fresh = [r for r in failing if plain and not (r in parts and parts[r].satisfied)
                     and sub_plan(plan, plan.regions[r]) is not None]
            if fresh:
                image, carried = self._compose(request, plan, state, image, fresh, parts, seed)
                for thought in carried:
                    say(thought)
                latents = self._encode(image)
                title = _title("composed", plan.lang, regions=", ".join(f"#{r}" for r in fresh))
                continue
            mask = state.masks[failing].amax(0, keepdim=True).to(latents.dtype)
            for r in failing:
                state.boost[r] = min(2.0, float(state.boost[r]) + 0.75)
            latents = self._repaint(request, kwargs, latents, mask, state, seed + 1 + attempt)
            image, repaints = self._decode(latents), repaints + 1
            title = _title("repainted", plan.lang, n=repaints)
        _, image, latents, satisfied = best
        say(Thought(request.steps, "stop", None, "完成" if zh else "done",
                    ("满意" if zh else "satisfied") if satisfied
                    else ("保留最好的一张" if zh else "best picture kept"), best[0], state.calls))
        return image, latents, satisfied

    def _compose(self, request: GenerationRequest, plan: Plan, state: RegionState,
                 image: Image.Image, regions: list[int], parts: dict[int, Part],
                 seed: int) -> tuple[Image.Image, list[Thought]]:
        """Per failing region: if what is painted there is right on its own (the fault lies
        between regions), keep it; else paint its sub-caption alone a few more times, keep the
        best checked part in ``parts``, and paste it into the box if it beats what is there."""
        zh, said = plan.lang == "zh", []
        for r in regions:
            region = plan.regions[r]
            sub = sub_plan(plan, region)
            here = self.critic.inspect(isolate(image, region.box), sub, self.options.threshold)
            if here.satisfied:
                parts[r] = Part(None, _mean_score(here), -1, True, parts.get(r, _NO_PART).tries)
                said.append(Thought(request.steps, "compose", r, here.summary,
                                    "这个区域本身画对了，保留" if zh else
                                    "the region itself is right: keep it", 100.0, state.calls))
                continue
            before = parts.get(r, _NO_PART)
            first_seed = (seed + (r + 1) * _RESEED + before.tries) % 2**62
            part = self._best_part(request, region, sub, state, first_seed, parts.get(r))
            better = part is not None and part.image is not None and \
                part.score > _mean_score(here)
            pasted = paste(image, part.image, region.box) if better else None
            if part is None or part.tries == before.tries:
                observation = "计算预算已用完" if zh else "compute budget spent"
            else:
                parts[r] = part
                observation = (f"单独画「{part.caption}」：目前最好的一张 {part.score:.0f} 分"
                               f"（种子 {part.seed}）；原处 {_mean_score(here):.0f} 分" if zh else
                               f"painted '{part.caption}' alone: best so far scored "
                               f"{part.score:.0f} (seed {part.seed}); the region now "
                               f"{_mean_score(here):.0f}")
            decision = (("放进这个区域" if zh else "paste it into the region") if pasted
                        else ("不比原处好，不换" if zh else "no better than what is there: keep"))
            said.append(Thought(request.steps, "compose", r, observation, decision,
                                part.score if part else None, state.calls))
            image = pasted or image
        return image, said

    def _best_part(self, request: GenerationRequest, region, sub: Plan, state: RegionState,
                   seed: int, best: Part | None) -> Part | None:
        """The best of ``best`` and up to ``compose_tries`` new pictures of the region's
        sub-caption alone."""
        opts, tries = self.options, best.tries if best else 0
        strength, boost = state.strength.clone(), state.boost.clone()
        state.strength.zero_()  # the regional hooks only count calls while painting a part
        state.boost.zero_()
        try:
            for k in range(opts.compose_tries):
                if opts.budget is not None and state.calls + 2 * request.steps > opts.budget:
                    break
                caption = part_caption(sub, tries)
                part_request = replace(request, prompt=caption, seed=seed + k, n=1)
                picture = self.engine.generate(part_request).images[0]
                critique, tries = self.critic.inspect(picture, sub, opts.threshold), tries + 1
                if best is None or _mean_score(critique) > best.score:
                    best = Part(picture, _mean_score(critique), seed + k, critique.satisfied,
                                caption=caption)
                if critique.satisfied:
                    break
        finally:
            state.strength.copy_(strength)
            state.boost.copy_(boost)
        return replace(best, tries=tries) if best else None

    def _encode(self, image: Image.Image) -> torch.Tensor:
        vae = self.engine.pipe.vae
        pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1)
        with torch.no_grad():
            latents = vae.encode(pixels.permute(2, 0, 1)[None].to(vae.device, vae.dtype))
        return latents.latent_dist.mode() * vae.config.scaling_factor

    def _repaint(self, request, kwargs, latents, mask, state, seed):
        from diffusers import AutoPipelineForImage2Image

        pipe = AutoPipelineForImage2Image.from_pipe(self.engine.pipe)
        pipe.set_progress_bar_config(disable=True)
        known = latents.detach().clone()
        noise = torch.randn(known.shape, generator=torch.Generator().manual_seed(seed),
                            dtype=known.dtype)

        def keep_known(pipeline, step, timestep, step_kwargs):
            steps = pipeline.scheduler.timesteps
            current = step_kwargs["latents"]
            if step + 1 < len(steps):
                known_now = pipeline.scheduler.add_noise(known, noise, steps[step + 1 : step + 2])
            else:
                known_now = known
            step_kwargs["latents"] = current * mask + known_now * (1 - mask)
            return step_kwargs

        out = pipe(**kwargs, image=known, strength=self.options.repaint_strength,
                   num_inference_steps=request.steps, guidance_scale=request.guidance,
                   generator=torch.Generator().manual_seed(seed), output_type="latent",
                   callback_on_step_end=keep_known)
        return out.images


def _pause_decision(score: float | None, opts: ThinkOptions, zh: bool) -> str:
    """What a pause decides for a region it does not steer."""
    if score is None or score >= opts.threshold or opts.max_repaints == 0:
        return "继续" if zh else "keep going"
    return "继续画完，画完后再修这个区域" if zh else "keep going; fix it after the end"


def _reflect_decision(good: bool, zh: bool) -> str:
    if zh:
        return "保留" if good else "重画"
    return "keep" if good else "repaint"


def _plan_decision(opts: ThinkOptions, zh: bool) -> str:
    if opts.region_strength > 0:
        return "按各区域的子描述作画" if zh else "paint each region with its sub-caption"
    if opts.steer:
        return ("先按整句作画，哪个区域画错了再用它的子描述引导" if zh else
                "paint from the whole prompt; steer a region by its sub-caption once a look "
                "finds it wrong")
    if opts.compose_tries:
        return ("先按整句作画；画完后，画错的区域按子描述单独画、检查后放回它的位置" if zh else
                "paint from the whole prompt; after the end, paint a wrong region's "
                "sub-caption alone, check it and paste it into its place")
    return ("先按整句作画，画完后用子描述重画画错的区域" if zh else
            "paint from the whole prompt; after the end, repaint a wrong region with its "
            "sub-caption")


_NO_PART = Part(None, 0.0, -1, False)
_TITLES = {  # a frame's title in the timeline, in the prompt's language
    "abandoned": ("abandoned at step {step}", "第 {step} 步放弃"),
    "pause": ("pause at step {step}/{steps}", "第 {step}/{steps} 步暂停"),
    "finished": ("finished", "画完"),
    "composed": ("after composing {regions}", "单独画并放入 {regions} 之后"),
    "repainted": ("after repaint {n}", "第 {n} 次重画之后"),
}


def _title(key: str, lang: str, **values) -> str:
    english, chinese = _TITLES[key]
    return (chinese if lang == "zh" else english).format(**values)
_RESEED = 7919  # fresh starts use seed + k·7919: reproducible, far from neighbouring seeds


def _mean_score(critique: Critique) -> float:
    scores = [r.score for r in critique.reports if r.score is not None]
    return float(np.mean(scores)) if scores else 100.0


def thought_lines(thought: Thought) -> str:
    where = "" if thought.region is None else f" [region {thought.region}]"
    score = "" if thought.score is None else f" ({thought.score:.0f})"
    return f"{thought.phase}@{thought.step}{where}{score}: {thought.observation} → {thought.decision}"



def stream(thinker: Thinker, request: GenerationRequest) -> Iterator[Thought | ThinkResult]:
    """Yield each thought as it is thought, then the ``ThinkResult`` (for servers that stream).

    The painting runs in a worker thread; an exception there is re-raised here.
    """
    events: queue.Queue = queue.Queue()
    done = object()

    def work() -> None:
        try:
            events.put(thinker.think(request, on_thought=events.put))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            events.put(error)
        events.put(done)

    worker = threading.Thread(target=work, name="huajia-think", daemon=True)
    worker.start()
    while (item := events.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item
    worker.join()
