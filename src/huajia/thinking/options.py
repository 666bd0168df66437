"""How the thinking loop thinks (``ThinkOptions``) and who judges (``CriticOptions``: the critic
and where its model is), declared once with names, defaults, limits and help
(``huajia.params``) for the CLI, the Python API and the HTTP API alike."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from huajia.errors import HuajiaError
from huajia.params import check, param

CRITICS = ("shapes", "clip", "vlm")
PLANNERS = ("auto", "world", "llm", "bands")  # thinking.planner says what each does


@dataclass(frozen=True, kw_only=True)
class ThinkOptions:
    pauses: int = param(3, help="Pauses to look during denoising (0: reflect only).",
                        low=0, high=10)
    budget: int | None = param(None, help="Max network evaluations per image (omitted: no "
                               "limit).", low=1, high=10_000)
    threshold: float = param(90.0, help="Region score (0-100) below which it is fixed.",
                             low=0.0, high=100.0)
    # repaints did most of the work in the ablation (docs/thinking.md)
    max_repaints: int = param(5, help="Max repaint rounds after the last step.", low=0,
                              high=10, aliases=("repaints",))
    # how much a region's sub-caption replaces the prompt there from the first step. 0: regions
    # stay dormant (and cost nothing) until a look finds them wrong, then steer at
    # ``woken_strength``. Measured on the embedded model (54 held-out prompts x 6 seeds, 20
    # steps): sub-captions from step 0 at 0.7 passed 0.127 of samples at 70 NFE, plain 0.167 at 40
    region_strength: float = param(0.0, help="How much each region's sub-caption replaces "
                                   "the prompt from the first step (0: only once woken).",
                                   low=0.0, high=1.0)
    woken_strength: float = param(0.7, help="Sub-caption strength of a region a look found "
                                  "wrong.", low=0.0, high=1.0)
    repaint_strength: float = param(0.65, help="How far a repaint goes back into the noise.",
                                    low=0.0, high=1.0)
    # act on what a pause sees (stronger guidance, fresh noise into the region, a revised
    # sub-caption). Off by default: on the embedded model it cost accuracy (84 held-out prompts,
    # 20 steps: looks with steering 0.286, the same looks without it 0.333); the looks still
    # decide restarts and an early stop, and failing regions are steered when repainted
    steer: bool = param(False, help="Also steer failing regions at the pauses (stronger "
                        "guidance, fresh noise); measured worse on the embedded model.")
    # at the first pause a half-made picture that does not yet satisfy the critic (mean region
    # score below restart_below) is abandoned for fresh noise, at most ``restarts`` times; then
    # the start whose first look scored best is painted to the end. The first look comes after
    # ~35% of the schedule, where it already predicts the finished picture well (AUC 0.88 after
    # 8 of 20 steps, 0.59 after 4), so a start is judged for 40% of the cost of finishing it
    restarts: int = param(8, help="Max fresh starts while the first look is not yet "
                          "satisfied.", low=0, high=10)
    # only a first look that is clearly wrong restarts: at 100 (every look not yet right) the
    # colours and colour-attribute prompts restarted 5-6 times where plain was often right.
    # Measured (benchmarks/thinking_price.py, 42 held-out prompts, 14 UniPC steps): 100 → 60
    # took thinking from 0.929 to 0.952 (second judge 0.833 both) at 63 instead of 83 NFE, and
    # on the hard prompts from 3.3x to 2.3x plain's CPU time (0.933 → 0.967; 2nd 0.867 → 0.833)
    restart_below: float = param(60.0, help="A first look scoring below this restarts.",
                                 low=0.0, high=100.0)
    # a region wrong after the end has its sub-caption painted alone (this many seeds per
    # round, each checked by the critic) and the best part so far pasted into its box
    # (``compose``), round after round until its part is right; then it is repainted in
    # place. Regions are searched one by one, not whole pictures. 0: repaint only
    compose_tries: int = param(3, help="A region wrong after the end is first painted alone "
                               "(this many checked seeds) and pasted into its box; 0: repaint "
                               "in place only.", low=0, high=6)

    # a part is one group of objects on a plain canvas: it needs fewer steps than the picture
    # (at 20 steps, parts at 8 cut compose's evaluations from 60 to 13 per picture: docs/speed.md)
    part_steps: int = param(8, help="Steps for a region painted alone, at most the request's "
                            "(0: the request's steps).", low=0, high=150)
    # when the first look (which decides restarts) comes, as a fraction of the schedule; the
    # other pauses follow it up to 65 %
    first_look: float = param(0.35, help="When the first look comes, as a fraction of the "
                              "steps (restarts are judged there).", low=0.05, high=0.95)

    # joint-attention regions (SD3, FLUX.1, Chroma, Qwen-Image), as *Regional Prompting for
    # FLUX* (arXiv 2411.02395) runs them: injected for the first steps only (its examples: 10
    # of 24 steps, "recommended between 5-10"), each attention blended with the prompt alone's
    # (its examples: 0.2, "smaller means stronger control"). Not measured on real weights here
    region_steps: float = param(0.4, help="Joint-attention families (SD3, FLUX.1, Chroma, "
                                "Qwen-Image): regions steer this fraction of the steps first, "
                                "then the prompt alone paints the details.", low=0.0, high=1.0)
    base_ratio: float = param(0.2, help="Joint-attention families: how much of the prompt "
                              "alone's attention the picture gets while regions steer (0: "
                              "none, one attention per block).", low=0.0, high=1.0)

    # who plans the regions: the shapes world (exact, for the prompts it reads whole), a
    # language model behind --llm-url (any prompt; a bad answer falls back to bands), or bands
    planner: str = param("auto", help="Who plans the picture's regions: world (the shapes "
                         "world, exact), llm (the chat model at --llm-url), bands (three "
                         "vertical bands), auto (world if it reads the prompt, else llm if "
                         "configured, else bands).", choices=PLANNERS)

    def __post_init__(self) -> None:
        check(self)


@dataclass(frozen=True, kw_only=True)
class CriticOptions:
    """Which critic judges the pictures, and where its model is: the options of ``think``,
    ``compare``, ``batch``, ``train rl`` (its reward) and ``serve`` (the critics its thinking
    jobs may ask for), declared once. ``make()`` builds the critic; its errors (no folder, no
    endpoint) come before any work."""

    critic: str = param("shapes", help="Who judges the pictures: shapes (the world's exact "
                        "verifier), clip (a local CLIP) or vlm (a vision model behind an "
                        "OpenAI-compatible endpoint).", choices=CRITICS, aliases=("reward",))
    clip_model: str | None = param(None, help="critic clip: a local CLIP checkpoint folder.",
                                   http=False)
    vlm_url: str | None = param(None, help="critic vlm: an OpenAI-compatible base URL, e.g. "
                                "http://localhost:8000/v1 (with --vlm-model).", http=False)
    vlm_model: str | None = param(None, help="critic vlm: the model name at --vlm-url.",
                                  http=False)
    vlm_key: str | None = param(None, help="critic vlm: the API key.", env="HUAJIA_VLM_KEY",
                                http=False)
    vlm_timeout_s: float = param(30.0, help="critic vlm: how long one answer may take.",
                                 unit="seconds", low=0.1, http=False)

    def __post_init__(self) -> None:
        check(self)

    def make(self):
        """The critic these options name (``thinking.critics.make_critic``)."""
        from huajia.thinking.critics import make_critic

        return make_critic(self.critic, self.clip_model, self.vlm_url, self.vlm_model,
                           self.vlm_key, self.vlm_timeout_s)


# what options missing from an older run's infotext were then (so it repaints the same)
BEFORE_RECORDED = {"part_steps": 0, "first_look": 0.35, "planner": "auto", "region_steps": 1.0,
                   "base_ratio": 0.0}


def options_text(options: ThinkOptions) -> str:
    """Every think option as compact JSON (the infotext's 'Think options')."""
    return json.dumps(dataclasses.asdict(options), separators=(",", ":"))


def options_from_infotext(infotext: str) -> tuple[ThinkOptions, str]:
    """(the ThinkOptions, the critic) a thinking run's infotext records."""
    from huajia.engine.infotext import parse_infotext

    info = parse_infotext(infotext)
    if "Think options" not in info:
        raise HuajiaError("this infotext records no 'Think options' (not a thinking run, or "
                          "made by an older huajia); pass the options as flags")
    try:
        values = {**BEFORE_RECORDED, **json.loads(info["Think options"])}
        return ThinkOptions(**values), info.get("Critic", "shapes")
    except (ValueError, TypeError) as error:
        raise HuajiaError(f"the infotext's 'Think options' cannot be read ({error}); pass the "
                          "options as flags") from None

