"""Prompt expansion before painting, seeded and reproducible (the same seed, the same prompt).

- ``wildcards``: the dynamicprompts package's syntax, as A1111's Dynamic Prompts extension:
  ``{red|blue} circle``, ``{2$$a|b|c}``, ``__colours__`` from a wildcard folder (huajia ships one
  with the shapes world's words; ``--wildcards DIR`` / ``HUAJIA_WILDCARDS`` for your own).
- ``llm``: any OpenAI-compatible chat endpoint turns a short topic into a detailed prompt. A
  timeout or a malformed answer falls back to the original prompt with a warning; an endpoint
  that cannot be reached at all is an error where the caller asks for ``strict``.
- ``world``: the embedded model's own details (size, texture, background) for what the prompt
  left open; what it asked (shapes, counts, colours, positions) stays as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np

from huajia.errors import HuajiaError
from huajia.params import check, param

_WILDCARD = re.compile(r"__([^_\s{}|]+(?:_[^_\s{}|]+)*)__")  # names may hold single underscores
MAX_EXPANDED_CHARS = 4000
LLM_SYSTEM = ("You write prompts for a text-to-image model. Rewrite the user's short topic as one "
              "detailed prompt of at most 60 words, in the same language as the topic. Keep "
              "everything the topic asks for. Answer with the prompt only.")


@dataclass(frozen=True)
class LlmSettings:
    url: str  # base URL of an OpenAI-compatible API, e.g. http://localhost:8000/v1
    model: str
    key: str | None = None
    timeout_s: float = 20.0


@dataclass(frozen=True, kw_only=True)
class ExpansionOptions:
    """Where expansion's words come from (a wildcard folder; a chat model for expand 'llm'):
    the options of ``generate``, ``think`` and ``serve``, declared once."""

    wildcards: Path | None = param(None, help="Folder of NAME.txt wildcard files for expand "
                                   "'wildcards' (default: the shapes world's words).",
                                   aliases=("wildcards_dir",), env="HUAJIA_WILDCARDS", http=False)
    llm_url: str | None = param(None, help="expand llm: an OpenAI-compatible base URL (with "
                                "--llm-model).", http=False)
    llm_model: str | None = param(None, help="expand llm: the model name at --llm-url.",
                                  http=False)
    llm_key: str | None = param(None, help="expand llm: the API key.", env="HUAJIA_LLM_KEY",
                                http=False)
    llm_timeout_s: float = param(20.0, help="expand llm: how long one answer may take.",
                                 unit="seconds", low=0.1, http=False)

    def __post_init__(self) -> None:
        check(self)
        if bool(self.llm_url) != bool(self.llm_model):
            raise HuajiaError("--llm-url and --llm-model go together; give both")

    def expander(self, strict: bool = True) -> PromptExpander:
        """``strict``: a chat model that cannot be reached is an error (the CLI); lenient (the
        server), the prompt is painted as written, with a warning."""
        llm = (LlmSettings(self.llm_url, self.llm_model, self.llm_key, self.llm_timeout_s)
               if self.llm_url else None)
        return PromptExpander(self.wildcards, llm, strict=strict)


@dataclass(frozen=True)
class Expansion:
    prompt: str
    warnings: tuple[str, ...] = ()


def builtin_wildcards() -> Path:
    return Path(str(resources.files("huajia.engine").joinpath("data/wildcards")))


class PromptExpander:
    """``expand(mode, prompt, seed)`` → the prompt to paint. ``check(mode, prompt)`` raises the
    errors an expansion would meet, before any work."""

    def __init__(self, wildcards: str | Path | None = None, llm: LlmSettings | None = None,
                 strict: bool = True):
        self.wildcards = Path(wildcards) if wildcards else builtin_wildcards()
        if not self.wildcards.is_dir():
            raise HuajiaError(f"wildcard folder '{wildcards}' does not exist; give a folder of "
                              "NAME.txt files (one value per line)")
        self.llm, self.strict = llm, strict
        self._manager = None
        self._reached = False

    def strict_copy(self) -> PromptExpander:
        """The same settings, with an unreachable chat model an error (for start-up checks)."""
        return PromptExpander(self.wildcards, self.llm, strict=True)

    # -- checks -------------------------------------------------------------------------------
    def check(self, mode: str, prompt: str) -> None:
        if mode == "wildcards":
            self._check_wildcards(prompt)
        elif mode == "llm" and self.llm is None:
            raise HuajiaError("expand 'llm' needs a chat endpoint: --llm-url URL --llm-model NAME "
                              "(huajia serve takes the same flags)")
        elif mode == "llm" and self.strict and not self._reached:
            self._probe()

    def _probe(self) -> None:
        """Any HTTP answer from the endpoint will do; no answer at all is an error (strict)."""
        import httpx

        try:
            httpx.get(self.llm.url.rstrip("/") + "/models", timeout=min(5.0, self.llm.timeout_s))
        except httpx.HTTPError as error:
            raise HuajiaError(f"cannot reach the LLM at {self.llm.url} ({type(error).__name__}); "
                              "check --llm-url, or paint without --expand llm") from None
        self._reached = True

    def _wildcard_manager(self):
        if self._manager is None:
            from dynamicprompts.wildcards import WildcardManager

            self._manager = WildcardManager(self.wildcards)
        return self._manager

    def wildcard_names(self) -> set[str]:
        return set(self._wildcard_manager().get_collection_names())

    def _check_wildcards(self, prompt: str) -> None:
        names = self.wildcard_names()
        missing = [name for name in _WILDCARD.findall(prompt) if "*" not in name and name not in names]
        if missing:
            known = ", ".join(sorted(names)[:12]) or "none"
            raise HuajiaError(f"wildcard '__{missing[0]}__' has no file {missing[0]}.txt in "
                              f"'{self.wildcards}' (known: {known}); add it or use --wildcards DIR")
        self._generator(0).generate(prompt, 1)  # malformed {a|b syntax fails here

    # -- expanding ----------------------------------------------------------------------------
    def expand(self, mode: str, prompt: str, seed: int) -> Expansion:
        if mode == "none":
            return Expansion(prompt)
        self.check(mode, prompt)
        if mode == "wildcards":
            return Expansion(self._generator(seed).generate(prompt, 1)[0])
        if mode == "llm":
            return self._llm(prompt, seed)
        if mode == "world":
            return world_details(prompt, seed)
        raise HuajiaError(f"unknown expand '{mode}'; use none, wildcards, llm or world")

    def _generator(self, seed: int):
        from dynamicprompts.generators import RandomPromptGenerator

        manager = self._wildcard_manager()
        try:
            generator = RandomPromptGenerator(wildcard_manager=manager, seed=seed)
        except Exception as error:  # noqa: BLE001 - dynamicprompts' own errors
            raise HuajiaError(f"wildcards: {error}") from None
        return _Checked(generator)

    def _llm(self, prompt: str, seed: int) -> Expansion:
        import httpx

        settings = self.llm
        headers = {"Authorization": f"Bearer {settings.key}"} if settings.key else {}
        body = {"model": settings.model, "seed": seed, "temperature": 0.7,
                "messages": [{"role": "system", "content": LLM_SYSTEM},
                             {"role": "user", "content": prompt}]}
        url = settings.url.rstrip("/") + "/chat/completions"
        try:
            answer = httpx.post(url, json=body, headers=headers, timeout=settings.timeout_s)
        except httpx.TimeoutException:
            return Expansion(prompt, (f"the LLM at {settings.url} did not answer within "
                                      f"{settings.timeout_s:g} s; painted the prompt as written",))
        except httpx.HTTPError as error:
            if self.strict:
                raise HuajiaError(f"cannot reach the LLM at {settings.url} ({type(error).__name__}); "
                                  "check --llm-url, or paint without --expand llm") from None
            return Expansion(prompt, (f"the LLM at {settings.url} could not be reached; painted "
                                      "the prompt as written",))
        text = _chat_text(answer)
        if text is None:
            return Expansion(prompt, (f"the LLM at {settings.url} gave no usable prompt (HTTP "
                                      f"{answer.status_code}); painted the prompt as written",))
        return Expansion(text)


class _Checked:
    """dynamicprompts' generator with its parse errors as one-line HuajiaErrors."""

    def __init__(self, generator):
        self.generator = generator

    def generate(self, prompt: str, n: int) -> list[str]:
        try:
            out = self.generator.generate(prompt, n)
        except Exception as error:  # noqa: BLE001 - pyparsing's ParseException and kin
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise HuajiaError(f"the prompt's variant syntax is malformed ({reason}); variants "
                              "look like {red|blue} and wildcards like __colours__") from None
        return [p[:MAX_EXPANDED_CHARS] for p in out] or [prompt]


def _chat_text(answer) -> str | None:
    """The first choice's text of a chat completion, or None when there is none to use."""
    if answer.status_code != 200:
        return None
    try:
        text = answer.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    if not isinstance(text, str):
        return None
    text = text.strip().strip('"').strip()
    return text if 0 < len(text) <= MAX_EXPANDED_CHARS else None


def world_details(prompt: str, seed: int) -> Expansion:
    """The shapes world's details for what ``prompt`` left open (size, texture, background),
    in the prompt's language; shapes, counts, colours and positions are kept."""
    from huajia.world import captions, sampler
    from huajia.world.parser import parse
    from huajia.world.spec import SceneSpec

    parsed = parse(prompt)
    if parsed.unparsed or not parsed.spec.groups:
        words = ", ".join(parsed.unparsed[:5]) or "no shapes"
        return Expansion(prompt, (f"expand 'world' left the prompt as written: the shapes world "
                                  f"cannot read it ({words})",))
    rng = np.random.default_rng([seed, 71])
    options = sampler.allowed("train")
    spec = parsed.spec
    sizes = options["size"][:2] if spec.n_objects > 4 else options["size"]
    groups = tuple(replace(g, texture=g.texture or str(rng.choice(options["texture"])),
                           size=g.size or str(rng.choice(sizes))) for g in spec.groups)
    background = spec.background or str(rng.choice(options["background"]))
    detailed = SceneSpec(groups, spec.relations, background)
    template = captions.template("zh_plain" if parsed.lang == "zh" else "en_plain")
    return Expansion(captions.caption(detailed, template, rng))
