"""What a request paints, for the safety filter and the cost budget: its prompt after the style
preset, ``style_raw`` and expansion, one per picture, the same text the engine encodes
(``Engine.prepare``/``Engine.expand``).

At submit every variant a request will paint is known except an LLM's: wildcards and the world's
details are drawn from each picture's seed, which the job fixes. An LLM writes its prompt in the
worker, so ``GuardedExpander`` (the expander the server's engine holds) checks each expansion
there: one the filter blocks, or longer than the budget priced, is not painted (the prompt as
written is, with a warning).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from huajia.engine.expansion import Expansion, PromptExpander
from huajia.engine.request import GenerationRequest
from huajia.engine.styles import Style, get_style
from huajia.serving.budget import CHUNK_TOKENS, prompt_chunks

# the chat model is asked for at most 60 words (engine.expansion.LLM_SYSTEM): the budget prices
# an 'llm' request with this many more prompt chunks than its prompt as written
LLM_EXTRA_CHUNKS = 1


@dataclass(frozen=True)
class Painted:
    """One picture's prompt and negative prompt as the model will read them."""

    prompt: str
    negative: str


def styled(request: GenerationRequest, prompt: str | None = None) -> Painted:
    """``prompt`` (default: the request's) with the style preset, then ``style_raw``, applied."""
    text, negative = get_style(request.style).apply(
        request.prompt if prompt is None else prompt, request.negative_prompt)
    if request.style_raw:
        text, negative = Style("raw", request.style_raw).apply(text, negative)
    return Painted(text, negative)


def painted_variants(request: GenerationRequest, expander: PromptExpander) -> list[Painted]:
    """What each picture of ``request`` (its seed fixed) paints; for 'llm', the prompt as written
    (its expansions are checked in the worker by ``GuardedExpander``)."""
    if request.expand in ("none", "llm"):
        return [styled(request)]
    seeds = [request.seed + i for i in range(request.n)]
    return list(dict.fromkeys(styled(request, expander.expand(request.expand, request.prompt,
                                                              seed).prompt) for seed in seeds))


def chunks_of(facts, text: str) -> int:
    """The prompt chunks the served model encodes ``text`` in (1 where its encoder takes any
    prompt at one fixed length)."""
    window = facts.prompt_window if facts is not None else CHUNK_TOKENS
    if window is None:
        return 1
    return prompt_chunks(text or " ", facts.tokenizer if facts is not None else None, window)


class GuardedExpander(PromptExpander):
    """The server's expander: an expansion is painted only when the safety filter passes it and
    it is no longer than the budget priced (``LLM_EXTRA_CHUNKS`` more chunks than the prompt)."""

    def __init__(self, inner: PromptExpander, prompt_filter, facts=None):
        super().__init__(inner.wildcards, inner.llm, inner.strict)
        self.prompt_filter, self.facts = prompt_filter, facts

    def strict_copy(self) -> PromptExpander:
        return GuardedExpander(super().strict_copy(), self.prompt_filter, self.facts)

    def expand(self, mode: str, prompt: str, seed: int) -> Expansion:
        expansion = super().expand(mode, prompt, seed)
        if expansion.prompt == prompt:
            return expansion
        verdict = self.prompt_filter.check(expansion.prompt)
        if not verdict.allowed:
            return replace(expansion, prompt=prompt, warnings=expansion.warnings + (
                f"the {mode} expansion was withheld by the safety filter; painted the prompt as "
                "written",))
        allowed = chunks_of(self.facts, prompt) + LLM_EXTRA_CHUNKS
        if mode == "llm" and chunks_of(self.facts, expansion.prompt) > allowed:
            return replace(expansion, prompt=prompt, warnings=expansion.warnings + (
                f"the LLM's prompt was longer than {allowed} prompt chunk(s), more than this "
                "request was priced for; painted the prompt as written",))
        return expansion
