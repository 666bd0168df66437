"""Critics look at a (half-made) picture against the plan and score each region 0–100.

- ``shapes``: the world's verifier — exact, with explanations in the prompt's language.
- ``clip``: any local CLIP checkpoint (transformers): region crop vs sub-caption similarity.
- ``vlm``: any OpenAI-compatible chat-completions endpoint that takes images (vLLM, Ollama, …),
  asked for TwiG's reflection as JSON: a score, what it sees, a revised sub-caption. Timeouts
  and malformed answers never crash the loop: the region is reported as unjudged.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PIL import Image

from huajia.errors import HuajiaError
from huajia.thinking.messages import text
from huajia.thinking.plan import Plan, Region
from huajia.world.parser import read_prompt
from huajia.world.verifier import verify

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegionReport:
    region: int
    score: float | None  # 0–100; None: the critic could not judge (timeout, bad answer)
    observation: str
    revised_caption: str | None = None


@dataclass(frozen=True)
class Critique:
    reports: tuple[RegionReport, ...]
    satisfied: bool  # the whole picture is right (as far as this critic can tell)
    summary: str


class Critic(Protocol):
    name: str

    def inspect(self, image: Image.Image, plan: Plan, threshold: float) -> Critique: ...


class ShapesCritic:
    """Exact: runs the verifier and gives each region the mean credit of its constraints (1 for
    one that holds, partial credit for a count that came close), so looks can be compared."""

    name = "shapes"

    def check(self, plan: Plan) -> None:
        """Before any painting: the verifier must read the whole prompt."""
        if plan.spec is None:
            try:
                read_prompt(plan.prompt)
            except HuajiaError as error:
                raise HuajiaError(f"the shapes critic cannot judge this prompt: {error}; or use "
                                  "--critic clip or vlm for other prompts") from None
            raise HuajiaError("the shapes critic needs a prompt the shapes world understands; "
                              "use --critic clip or vlm for other prompts")

    def inspect(self, image: Image.Image, plan: Plan, threshold: float) -> Critique:
        self.check(plan)
        verdict = verify(image, plan.spec, plan.lang)
        reports = []
        for region in plan.regions:
            mine = [c for c in verdict.constraints if set(c.groups) & set(region.groups)]
            score = 100.0 * sum(c.credit for c in mine) / len(mine) if mine else 100.0
            failing = [c.explanation for c in mine if not c.passed]
            observation = text("joiner", plan.lang).join(failing or [c.explanation for c in mine])
            reports.append(RegionReport(region.index, score, observation))
        summary = verdict.explain() if not verdict.passed else text("all_correct", plan.lang)
        return Critique(tuple(reports), verdict.passed, summary)


def crop(image: Image.Image, region: Region) -> Image.Image:
    x0, y0, x1, y1 = region.box
    w, h = image.size
    return image.crop((int(x0 * w), int(y0 * h), max(int(x1 * w), int(x0 * w) + 1),
                       max(int(y1 * h), int(y0 * h) + 1)))


class ClipCritic:
    """Region crop vs sub-caption CLIPScore (``huajia.scorers.clip``)."""

    name = "clip"

    def __init__(self, checkpoint: str | Path):
        from huajia.scorers.clip import ClipScorer

        self.scorer = ClipScorer(checkpoint)

    def score(self, image: Image.Image, text: str) -> float:
        return self.scorer.score(image, text)

    def inspect(self, image: Image.Image, plan: Plan, threshold: float) -> Critique:
        reports = []
        for region in plan.regions:
            score = self.score(crop(image, region), region.caption)
            reports.append(RegionReport(region.index, score,
                                        f"CLIP similarity to '{region.caption}': {score:.0f}"))
        satisfied = all(r.score is not None and r.score >= threshold for r in reports)
        return Critique(tuple(reports), satisfied, f"mean CLIP score "
                        f"{sum(r.score for r in reports) / len(reports):.0f}")


VLM_PROTOCOL = (
    "You judge one region of a picture that is being painted. You get the region's image and "
    "the sub-caption it should show. Answer with JSON only: {\"score\": 0-100 (how well the "
    "region shows the sub-caption), \"observation\": \"what you see, one sentence\", "
    "\"revised_caption\": \"a better sub-caption to steer the rest of the painting, or the "
    "same one\"}. Answer in the language of the sub-caption.")


class VlmCritic:
    """TwiG's reflection, asked of a vision-language model behind /v1/chat/completions."""

    name = "vlm"

    def __init__(self, base_url: str, model: str, api_key: str | None = None,
                 timeout: float = 30.0):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key, self.timeout = model, api_key, timeout

    def _ask(self, image: Image.Image, caption: str) -> dict:
        import httpx

        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data_url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        body = {"model": self.model, "temperature": 0, "messages": [
            {"role": "system", "content": VLM_PROTOCOL},
            {"role": "user", "content": [
                {"type": "text", "text": f"Sub-caption: {caption}"},
                {"type": "image_url", "image_url": {"url": data_url}}]}]}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        response = httpx.post(self.url, json=body, headers=headers, timeout=self.timeout)
        response.raise_for_status()
        return parse_reflection(response.json()["choices"][0]["message"]["content"])

    def inspect(self, image: Image.Image, plan: Plan, threshold: float) -> Critique:
        reports = []
        for region in plan.regions:
            try:
                answer = self._ask(crop(image, region), region.caption)
                reports.append(RegionReport(region.index, answer["score"],
                                            answer.get("observation", ""),
                                            answer.get("revised_caption") or None))
            except Exception as error:  # noqa: BLE001 - any failure of the endpoint is survivable
                log.warning("vlm critic: region %d not judged: %s", region.index, error)
                reports.append(RegionReport(region.index, None, f"not judged ({type(error).__name__})"))
        judged = [r for r in reports if r.score is not None]
        satisfied = bool(judged) and len(judged) == len(reports) and all(
            r.score >= threshold for r in judged)
        return Critique(tuple(reports), satisfied, f"{len(judged)}/{len(reports)} regions judged")


def parse_reflection(content: str) -> dict:
    """The first JSON object in a model's answer, with a numeric 0–100 score."""
    match = re.search(r"\{.*\}", content, re.DOTALL)
    if not match:
        raise ValueError(f"no JSON object in the answer: {content[:80]!r}")
    data = json.loads(match.group(0))
    score = float(data["score"])
    if not 0 <= score <= 100:
        raise ValueError(f"score {score} outside 0–100")
    data["score"] = score
    return data


def check_plan(critic: Critic, plan: Plan) -> None:
    """Raise, before any work, if ``critic`` cannot judge ``plan`` (critics with a ``check``)."""
    check = getattr(critic, "check", None)
    if check is not None:
        check(plan)


def make_critic(name: str, clip_model: str | None = None, vlm_url: str | None = None,
                vlm_model: str | None = None, vlm_key: str | None = None,
                timeout: float = 30.0) -> Critic:
    if name == "shapes":
        return ShapesCritic()
    if name == "clip":
        if not clip_model:
            raise HuajiaError("the clip critic needs --clip-model DIR (a local CLIP checkpoint)")
        return ClipCritic(clip_model)
    if name == "vlm":
        if not vlm_url or not vlm_model:
            raise HuajiaError("the vlm critic needs --vlm-url (OpenAI-compatible base URL, e.g. "
                              "http://localhost:8000/v1) and --vlm-model")
        return VlmCritic(vlm_url, vlm_model, vlm_key, timeout)
    raise HuajiaError(f"unknown critic '{name}'; use shapes, clip or vlm")
