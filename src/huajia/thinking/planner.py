"""Which planner plans a prompt, and the one that asks a language model for a layout.

- ``world``: the shapes world's exact planner (``plan.plan_from_spec``); only for prompts the
  world reads whole.
- ``llm``: an OpenAI-compatible chat endpoint (the same ``--llm-url / --llm-model / --llm-key``
  as prompt expansion) is asked for a layout as JSON, ``{"background": "...", "regions":
  [{"box": [x0, y0, x1, y1], "caption": "..."}]}`` with boxes as canvas fractions (after
  LLM-grounded diffusion and RPG). The answer is checked (``read_layout``); a bad or late answer
  becomes a thought that says so, and the bands plan is used: never a crash.
- ``bands``: three vertical bands that all carry the whole prompt (TwiG's).
- ``auto``: the world when it reads the whole prompt, else the LLM when one is configured, else
  bands.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

from huajia.engine.expansion import LlmSettings
from huajia.errors import HuajiaError
from huajia.thinking.options import PLANNERS
from huajia.thinking.plan import Box, Plan, Region, plan_prompt
from huajia.world.parser import parse
from huajia.world.reading import read_as_user

MAX_REGIONS = 8
MIN_SIDE = 0.05  # of the canvas: a thinner box is degenerate

LAYOUT_SYSTEM = (
    "You plan the layout of a picture for a text-to-image model. Read the user's prompt and "
    "answer with JSON only, exactly this shape: {\"background\": \"what fills the rest of the "
    "picture\", \"regions\": [{\"box\": [x0, y0, x1, y1], \"caption\": \"what this region "
    "shows\"}]}. Boxes are fractions of the canvas: 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, "
    "x to the right, y downwards. Give 1 to 8 regions, one per object or group the prompt "
    "names, placed where the prompt says. Write every caption and the background in the "
    "language of the prompt.")


class LayoutRejected(ValueError):
    """The language model's answer cannot be used as a plan (the message says why)."""


@dataclass(frozen=True)
class Planned:
    plan: Plan
    note: str | None = None  # why the planner asked for was not used (a thought), or None


def check_planner(planner: str, prompt: str, llm: LlmSettings | None) -> None:
    """Raise, before any work, what planning ``prompt`` with ``planner`` would meet."""
    if planner not in PLANNERS:
        raise HuajiaError(f"unknown planner '{planner}'; use {', '.join(PLANNERS)}")
    if planner == "llm" and llm is None:
        raise HuajiaError("--planner llm needs a chat endpoint: --llm-url URL --llm-model NAME")
    if planner == "world":
        parsed = parse(prompt)
        if (not parsed.spec.groups or parsed.unparsed) and read_as_user(prompt) is None:
            unread = ", ".join(f"'{u}'" for u in parsed.unparsed) or "its objects"
            raise HuajiaError(f"the world planner cannot read this prompt ({unread}); use "
                              "--planner auto, llm or bands")


def make_plan(prompt: str, planner: str = "auto", llm: LlmSettings | None = None) -> Planned:
    """Plan ``prompt`` with ``planner`` (see the module's docstring)."""
    check_planner(planner, prompt, llm)
    bands = plan_prompt(prompt)  # the world's plan where it reads the prompt, else bands
    if planner == "bands":
        return Planned(plan_prompt(prompt, world=False))
    if planner == "world" or (planner == "auto" and (bands.spec is not None or llm is None)):
        return Planned(bands)
    try:
        return Planned(ask_layout(prompt, llm))
    except LayoutRejected as error:
        return Planned(plan_prompt(prompt, world=False), str(error))


def ask_layout(prompt: str, llm: LlmSettings) -> Plan:
    """The language model's layout of ``prompt`` as a plan; ``LayoutRejected`` on a bad, late
    or missing answer."""
    import httpx

    body = {"model": llm.model, "temperature": 0, "messages": [
        {"role": "system", "content": LAYOUT_SYSTEM},
        {"role": "user", "content": prompt}]}
    headers = {"Authorization": f"Bearer {llm.key}"} if llm.key else {}
    url = llm.url.rstrip("/") + "/chat/completions"
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=llm.timeout_s)
        response.raise_for_status()
        content = response.json()["choices"][0]["message"]["content"]
    except httpx.TimeoutException:
        raise LayoutRejected(f"no answer within {llm.timeout_s:g} s") from None
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as error:
        raise LayoutRejected(f"no usable answer ({type(error).__name__})") from None
    return read_layout(prompt, content)


def read_layout(prompt: str, content: str) -> Plan:
    """A model's answer (the first JSON object in it) as a plan of ``prompt``, checked: 1–8
    regions, boxes inside the canvas and not degenerate, captions non-empty and in the prompt's
    language. Where the world reads the prompt whole, each region is given the prompt's object
    groups its caption names, so the shapes critic and composing work on the plan too."""
    match = re.search(r"\{.*\}", content or "", re.DOTALL)
    if not match:
        raise LayoutRejected(f"no JSON object in the answer: {content[:60]!r}")
    try:
        data = json.loads(match.group(0))
    except ValueError:
        raise LayoutRejected("the answer's JSON does not parse") from None
    regions = data.get("regions") if isinstance(data, dict) else None
    if not isinstance(regions, list) or not 1 <= len(regions) <= MAX_REGIONS:
        raise LayoutRejected(f"the answer needs 1 to {MAX_REGIONS} regions")
    parsed = parse(prompt)
    lang = parsed.lang
    background = data.get("background", "")
    if not isinstance(background, str):
        raise LayoutRejected("the background is not text")
    read = [(k, _box(region, k), _caption(region, k, lang)) for k, region in
            enumerate(regions)]
    whole = parsed.spec if parsed.spec.groups and not parsed.unparsed else None
    plan = Plan(prompt, lang, tuple(Region(k, box, caption, _groups(caption, whole))
                                    for k, box, caption in read),
                whole, parsed.unparsed, background=background.strip(), planner="llm")
    if whole is not None and {g for r in plan.regions for g in r.groups} != \
            set(range(len(whole.groups))):
        plan = replace(plan, spec=None)  # the regions do not show what the prompt asks
    return plan


def _box(region, k: int) -> Box:
    box = region.get("box") if isinstance(region, dict) else None
    if not isinstance(box, list) or len(box) != 4 or \
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
        raise LayoutRejected(f"region {k}: the box is not four numbers")
    x0, y0, x1, y1 = (float(v) for v in box)
    if min(x0, y0) < 0 or max(x1, y1) > 1:
        raise LayoutRejected(f"region {k}: the box {box} leaves the canvas (0 to 1)")
    if x1 - x0 < MIN_SIDE or y1 - y0 < MIN_SIDE:
        raise LayoutRejected(f"region {k}: the box {box} is degenerate")
    return x0, y0, x1, y1


def _caption(region: dict, k: int, lang: str) -> str:
    caption = region.get("caption")
    if not isinstance(caption, str) or not caption.strip():
        raise LayoutRejected(f"region {k}: the caption is empty")
    chinese = bool(re.search(r"[\u4e00-\u9fff]", caption))
    if chinese != (lang == "zh"):
        raise LayoutRejected(f"region {k}: the caption '{caption}' is not in the prompt's "
                             "language")
    return caption.strip()


def _groups(caption: str, spec) -> tuple[int, ...]:
    """The prompt's object groups that ``caption`` names (none where the world cannot tell)."""
    if spec is None:
        return ()
    named = parse(caption).spec.groups
    return tuple(i for i, group in enumerate(spec.groups) if group in named)

