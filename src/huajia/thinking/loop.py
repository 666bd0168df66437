"""Think while painting: plan → regional denoising → pause and look → (steer) → reflect →
compose or repaint what is wrong.

Everything goes through one ``engine.session(request)``: regional prompts are a model hook on
the denoiser (see ``regional``), pauses and steering are a step callback (``run.PauseCallback``),
composing paints a region's sub-caption alone with the same engine (see ``compose``), repainting
is the session's masked image-to-image run. The run's state lives in a ``ThinkRun``; thoughts
are reported as they happen.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from huajia.engine.engine import Engine, Expanded, PreparedPrompt
from huajia.engine.expansion import LlmSettings
from huajia.engine.request import GenerationRequest
from huajia.engine.session import Session
from huajia.errors import HuajiaError
from huajia.thinking.attention import JointRegions
from huajia.thinking.compose import Part, isolate, part_caption, paste, plain_background, sub_plan
from huajia.thinking.critics import Critic, check_plan
from huajia.thinking.messages import text
from huajia.thinking.options import ThinkOptions, options_text
from huajia.thinking.plan import Plan
from huajia.thinking.planner import make_plan
from huajia.thinking.preview import plan_canvas
from huajia.thinking.regional import CallCounter, RegionalHooks, RegionState, soft_mask
from huajia.thinking.run import RESEED, Abandoned, Frame, PauseCallback, ThinkRun, Thought, mean_score

__all__ = ["Frame", "ThinkOptions", "ThinkResult", "Thinker", "Thought", "plan_record",
           "stream", "thought_lines"]


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


class Thinker:
    def __init__(self, engine: Engine, critic: Critic, options: ThinkOptions | None = None,
                 llm: LlmSettings | None = None):
        """``llm``: the chat model an LLM planner asks (default: the engine's prompt expander's,
        the same ``--llm-url``)."""
        self.engine, self.critic = engine, critic
        self.options = options or ThinkOptions()
        self.llm = llm if llm is not None else engine.expander.llm

    def think_all(self, request: GenerationRequest,
                  on_thought: Callable[[int, Thought], None] | None = None) -> list[ThinkResult]:
        """``request.n`` pictures, one thinking run each, with seeds seed, seed+1, …"""
        seed = request.seed if request.seed is not None else self.engine.prepare_seed()
        if request.expand != "none":  # each picture thinks about its own expanded prompt
            return [self.think(e.request, None if on_thought is None else _Numbered(on_thought, i), e)
                    for i, e in enumerate(self.engine.expand(replace(request, seed=seed)))]
        return [self.think(replace(request, n=1, seed=seed + i),
                           None if on_thought is None else _Numbered(on_thought, i))
                for i in range(request.n)]

    def think(self, request: GenerationRequest,
              on_thought: Callable[[Thought], None] | None = None,
              expanded: Expanded | None = None) -> ThinkResult:
        """One picture (``request.n`` must be 1; ``think_all`` paints n). ``expanded``: what
        the prompt was expanded from (recorded in the infotext)."""
        start = time.perf_counter()
        regions = self.engine.family.regions
        if regions == "batch" and request.guidance <= 1.0:  # the hooks steer [uncond, cond]
            raise HuajiaError(f"thinking needs guidance above 1 (got {request.guidance}); "
                              "use e.g. --guidance 5")
        if request.n != 1:
            raise HuajiaError(f"think paints one picture per call (n={request.n}); use "
                              "Thinker.think_all for n pictures")
        # the looks, the steering and the regional prompts work on the guided [uncond, cond]
        # pair, so thinking guides every step
        request = replace(request, cfg_cutoff=1.0)
        planned = make_plan(request.prompt, self.options.planner, self.llm)
        plan = planned.plan
        check_plan(self.critic, plan)
        with self.engine.session(request) as session:
            prepared = self.engine.prepare(request)
            run = self._new_run(session, request, plan, prepared.seeds[0], on_thought)
            if planned.note:  # the plan asked for could not be made: say why, once
                run.think(-1, "plan", None, run.text("plan_rejected", reason=planned.note),
                          run.text("plan_bands"), None)
            session.attach(self._regional_hook(session, run))
            latents = self._paint(session, run, prepared)
            image, satisfied = self._reflect_and_repaint(session, run, prepared, latents)
        with run.watch("finish"):
            if request.hires_scale > 1:
                image = self.engine.hires_fix(image, request, run.seed)
            image = self.engine.finish(image, request)
        fields = self.engine.infotext_fields(request, run.size, self.engine.sampler_for(request),
                                             expanded)
        opts = self.options
        # what reproduces the picture: the request's seed (restarts and parts derive from it),
        # the critic and every think option; 'huajia think --infotext PNG' reads them back
        fields.update({"Seed": run.seed, "Critic": getattr(self.critic, "name", "custom"),
                       "Think options": options_text(opts), "Restarts": run.attempt,
                       "NFE": run.state.calls,
                       "Plan": json.dumps(plan_record(plan), ensure_ascii=False,
                                          separators=(",", ":"))})
        infotext = self.engine.infotext(request, prepared.prompt, prepared.negative, fields)
        result = ThinkResult(image, plan, run.thoughts, run.frames, run.state.calls, satisfied,
                             run.seed, infotext)
        result.timings.update(stage_seconds(run.watch))
        result.timings["total_s"] = time.perf_counter() - start
        return result

    # -- the stages ------------------------------------------------------------------------
    def _new_run(self, session: Session, request: GenerationRequest, plan: Plan, seed: int,
                 on_thought) -> ThinkRun:
        """Thought 0 (the plan), and the regions' sub-captions and masks."""
        opts = self.options
        width, height = self.engine.paint_size(request)
        scale = session.latent_scale
        embeds = pooled = lengths = None
        if self.engine.family.regions == "batch":
            encoded = [session.encode_caption(region.caption) for region in plan.regions]
            lengths = torch.tensor([e.shape[1] for e, _ in encoded])
            embeds = torch.cat([F.pad(e, (0, 0, 0, int(lengths.max()) - e.shape[1]))
                                for e, _ in encoded])
            pooled = torch.cat([p for _, p in encoded]) if encoded[0][1] is not None else None
        masks = torch.cat([soft_mask(r.box, height // scale, width // scale)
                           for r in plan.regions])
        regions = len(plan.regions)
        state = RegionState(embeds=embeds, masks=masks.to(self.engine.device),
                            strength=torch.full((regions,), opts.region_strength),
                            boost=torch.zeros(regions), pooled=pooled, lengths=lengths,
                            guidance_scale=request.guidance)
        run = ThinkRun(request, opts, plan, state, (width, height), seed, on_thought)
        run.think(-1, "plan", None, plan.describe(), run.text(_plan_key(opts)), None,
                  plan_canvas(plan, (width, height)))
        if self.engine.family.regions is None:
            run.think(-1, "plan", None, run.text("no_regions", family=self.engine.family.label),
                      run.text("steer_whole"), None)
        return run

    def _regional_hook(self, session: Session, run: ThinkRun):
        """How the regions reach this family's denoiser (``family.regions``): batched UNet
        calls, a joint-attention mask, or nothing but a count of the network evaluations."""
        family = self.engine.family
        if family.regions == "batch":
            return RegionalHooks(run.state)
        if family.regions == "joint":
            captions = [session.encode_caption(r.caption)[0] for r in run.plan.regions]
            return JointRegions(run.state, family, captions,
                                max(family.patch, 2 if family.packed else 1), run.request.steps,
                                self.options.region_steps, self.options.base_ratio)
        return CallCounter(run.state)

    def _paint(self, session: Session, run: ThinkRun, prepared: PreparedPrompt) -> torch.Tensor:
        """Denoise to the end, starting again while first looks say so."""
        callback = PauseCallback(run, session, self.critic)
        embeds = run.state.embeds
        fresh_embeds = None if embeds is None else embeds.clone()
        while True:
            if embeds is not None:
                embeds.copy_(fresh_embeds)
            run.state.strength.fill_(self.options.region_strength)
            run.state.boost.zero_()
            generator = torch.Generator(device="cpu").manual_seed(run.noise_seed())
            try:
                with run.watch("paint"):
                    latents = session.denoise(prepared.kwargs, generator, run.size, callback,
                                              output_type="latent")
            except Abandoned:  # a first look started again: the rest of the run is not painted
                latents = None
            if not run.restart:
                return latents
            run.restart, run.stop_looking, run.attempt = False, False, run.attempt + 1
            if run.replay is not None and run.replay < 0:
                run.replay = None  # a fresh start, still free to be judged

    def _reflect_and_repaint(self, session: Session, run: ThinkRun, prepared: PreparedPrompt,
                             latents: torch.Tensor) -> tuple[Image.Image, bool]:
        """Look at the finished picture; compose or repaint what is wrong, round after round,
        and keep the best picture seen."""
        opts, state, steps = self.options, run.state, run.request.steps
        seed = run.noise_seed()
        watch = run.watch
        with watch("decode"):
            image = session.decode(latents)
        best = (-1.0, image, False)
        parts: dict[int, Part] = {}  # the best part painted alone so far, per region
        carried: list[Thought] = []  # the compose thoughts behind the next picture
        title, repaints = run.text("title_finished"), 0
        for attempt in range(opts.max_repaints + 1):
            with watch("critique"):
                critique = self.critic.inspect(image, run.plan, opts.threshold)
            mean = float(np.mean([r.score or 0.0 for r in critique.reports]))
            said = [run.think(steps, "reflect" if attempt == 0 else "repaint", report.region,
                              report.observation,
                              run.text("keep" if (report.score or 0) >= opts.threshold
                                       else "repaint"), report.score, image if k == 0 else None)
                    for k, report in enumerate(critique.reports)]
            run.frames.append(Frame(image, title, tuple(carried + said)))
            carried = []
            if mean > best[0]:
                best = (mean, image, critique.satisfied)
            if critique.satisfied or attempt == opts.max_repaints:
                break
            if run.over_budget():
                run.think(steps, "stop", None, run.text("budget_spent"),
                          run.text("keep_best_so_far"), None)
                break
            failing = [r.region for r in critique.reports
                       if r.score is not None and r.score < opts.threshold]
            fresh = self._composable(run, image, failing, parts)
            if fresh:
                with watch("compose"):
                    image, carried = self._compose(run, image, fresh, parts, seed)
                with watch("encode"):
                    latents = session.encode_image(image)
                title = run.text("title_composed", regions=", ".join(f"#{r}" for r in fresh))
                continue
            mask = state.masks[failing].amax(0, keepdim=True).to(latents.dtype)
            for r in failing:
                state.boost[r] = min(2.0, float(state.boost[r]) + 0.75)
            with watch("repaint"):
                latents = session.repaint(prepared.kwargs, latents, mask, opts.repaint_strength,
                                          seed + 1 + attempt)
            with watch("decode"):
                image, repaints = only_inside(image, session.decode(latents), mask), repaints + 1
            title = run.text("title_repainted", n=repaints)
        score, image, satisfied = best
        run.think(steps, "stop", None, run.text("done"),
                  run.text("satisfied" if satisfied else "best_kept"), score, image)
        return image, satisfied

    def _composable(self, run: ThinkRun, image: Image.Image, failing: list[int],
                    parts: dict[int, Part]) -> list[int]:
        """Failing regions worth painting alone. Composing cuts objects out of a plain
        background; on any other canvas the regions are repainted in place instead."""
        if not self.options.compose_tries or \
                not plain_background(np.asarray(image.convert("RGB"))):
            return []
        return [r for r in failing if not (r in parts and parts[r].satisfied)
                and sub_plan(run.plan, run.plan.regions[r]) is not None]

    def _compose(self, run: ThinkRun, image: Image.Image, regions: list[int],
                 parts: dict[int, Part], seed: int) -> tuple[Image.Image, list[Thought]]:
        """Per failing region: if what is painted there is right on its own (the fault lies
        between regions), keep it; else paint its sub-caption alone a few more times, keep the
        best checked part in ``parts``, and paste it into the box if it beats what is there."""
        said, steps = [], run.request.steps
        for r in regions:
            region = run.plan.regions[r]
            sub = sub_plan(run.plan, region)
            here = self.critic.inspect(isolate(image, region.box), sub, self.options.threshold)
            if here.satisfied:
                parts[r] = Part(None, mean_score(here), -1, True, parts.get(r, _NO_PART).tries)
                said.append(run.think(steps, "compose", r, here.summary,
                                      run.text("region_right"), 100.0))
                continue
            before = parts.get(r, _NO_PART)
            first_seed = (seed + (r + 1) * RESEED + before.tries) % 2**62
            part = self._best_part(run, sub, first_seed, parts.get(r))
            better = part is not None and part.image is not None and \
                part.score > mean_score(here)
            pasted = paste(image, part.image, region.box) if better else None
            if part is None or part.tries == before.tries:
                observation = run.text("budget_spent")
            else:
                parts[r] = part
                observation = run.text("painted_alone", caption=part.caption, score=part.score,
                                       seed=part.seed, here=mean_score(here))
            said.append(run.think(steps, "compose", r, observation,
                                  run.text("paste" if pasted else "no_better"),
                                  part.score if part else None))
            image = pasted or image
        return image, said

    def _best_part(self, run: ThinkRun, sub: Plan, seed: int, best: Part | None) -> Part | None:
        """The best of ``best`` and up to ``compose_tries`` new pictures of the region's
        sub-caption alone."""
        opts, state, tries = self.options, run.state, best.tries if best else 0
        strength, boost = state.strength.clone(), state.boost.clone()
        state.strength.zero_()  # the regional hooks only count calls while painting a part
        state.boost.zero_()
        try:
            for k in range(opts.compose_tries):
                steps = min(opts.part_steps or run.request.steps, run.request.steps)
                if run.no_room_for(2 * steps):
                    break
                caption = part_caption(sub, tries)
                part_request = replace(run.request, prompt=caption, seed=seed + k, n=1,
                                       steps=steps)
                picture = self.engine.generate(part_request).images[0]
                critique, tries = self.critic.inspect(picture, sub, opts.threshold), tries + 1
                if best is None or mean_score(critique) > best.score:
                    best = Part(picture, mean_score(critique), seed + k, critique.satisfied,
                                caption=caption)
                if critique.satisfied:
                    break
        finally:
            state.strength.copy_(strength)
            state.boost.copy_(boost)
        return replace(best, tries=tries) if best else None


class _Numbered:
    """Tells ``on_thought(i, thought)`` which of n pictures a thought is about."""

    def __init__(self, on_thought: Callable[[int, Thought], None], index: int):
        self.on_thought, self.index = on_thought, index

    def __call__(self, thought: Thought) -> None:
        self.on_thought(self.index, thought)


def stage_seconds(watch) -> dict[str, float]:
    """A run's stopwatch as timings (seconds and NFE per stage; painting net of the looks
    taken inside it) and the number of starts."""
    out = {f"{stage}_s": value for stage, value in watch.seconds.items()}
    out.update({f"{stage}_nfe": value for stage, value in watch.nfe.items() if value})
    if "paint_s" in out:
        out["paint_s"] -= out.get("preview_s", 0.0) + out.get("look_s", 0.0)
    return out


def _plan_key(opts: ThinkOptions) -> str:
    if opts.region_strength > 0:
        return "plan_regions"
    if opts.steer:
        return "plan_steer"
    return "plan_compose" if opts.compose_tries else "plan_repaint"


_NO_PART = Part(None, 0.0, -1, False)


def only_inside(before: Image.Image, after: Image.Image, mask: torch.Tensor) -> Image.Image:
    """``after`` inside the repaint ``mask`` (1, 1, h, w), ``before`` outside it. The latents
    outside are kept, but a VAE decoder's attention lets a repainted region tint the rest of
    the picture (a region repainted at high guidance turned its neighbour's white background
    pink on the embedded model)."""
    weight = F.interpolate(mask.float().cpu(), size=(after.height, after.width),
                           mode="bilinear", align_corners=False)[0, 0, :, :, None].numpy()
    mixed = np.asarray(before.convert("RGB"), np.float32) * (1 - weight) + \
        np.asarray(after.convert("RGB"), np.float32) * weight
    return Image.fromarray(mixed.round().clip(0, 255).astype(np.uint8))


def plan_record(plan: Plan) -> dict:
    """Who planned the picture, its background and its regions' boxes and captions (the
    infotext's 'Plan', thoughts.json)."""
    return {"planner": plan.planner, "background": plan.background,
            "regions": [{"region": r.index, "box": list(r.box), "caption": r.caption}
                        for r in plan.regions]}


def thought_lines(thought: Thought) -> str:
    where = "" if thought.region is None else f" [region {thought.region}]"
    score = "" if thought.score is None else f" ({thought.score:.0f})"
    when = f"@{thought.step}" if thought.step >= 0 else ""  # the plan comes before any step
    return f"{thought.phase}{when}{where}{score}: {thought.observation} → {thought.decision}"


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


def compare_note(summary: str, nfe: int, steps: int, lang: str) -> str:
    """How a thinking run's picture is labelled beside the plain one (``huajia compare``)."""
    return text("compare_note", lang, summary=summary, nfe=nfe, plain=2 * steps)
