"""A moderation service beside the term lists: an OpenAI-compatible ``POST {url}/moderations``
(OpenAI's own, or any server that speaks it, e.g. a local classifier behind the same shape).

The lists catch what they name, in every spelling; a classifier catches what they do not name
("a couple making love", "headless corpse"). A prompt is refused when either flags it. The
service's answer is cached per text (a repeat costs no call). If the service cannot be reached the
request is refused with a 503 (fail closed): a server configured to moderate never paints
unmoderated prompts.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from huajia.errors import HuajiaError


class ModerationUnavailable(HuajiaError):
    """The moderation service did not answer (HTTP 503)."""


@dataclass(frozen=True)
class ModerationSettings:
    url: str
    key: str | None = None
    model: str | None = None
    timeout_s: float = 10.0


class ModerationHook:
    def __init__(self, settings: ModerationSettings, keep: int = 4096):
        self.settings, self.keep = settings, keep
        self._answers: OrderedDict[str, str | None] = OrderedDict()

    def flagged(self, text: str) -> str | None:
        """The first flagged category of ``text`` ('flagged' when none is named), or None."""
        if text in self._answers:
            self._answers.move_to_end(text)
            return self._answers[text]
        answer = self._ask(text)
        self._answers[text] = answer
        while len(self._answers) > self.keep:
            self._answers.popitem(last=False)
        return answer

    def _ask(self, text: str) -> str | None:
        import httpx

        settings = self.settings
        body = {"input": text, **({"model": settings.model} if settings.model else {})}
        headers = {"Authorization": f"Bearer {settings.key}"} if settings.key else {}
        try:
            reply = httpx.post(settings.url.rstrip("/") + "/moderations", json=body,
                               headers=headers, timeout=settings.timeout_s)
            reply.raise_for_status()
            result = reply.json()["results"][0]
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as error:
            raise ModerationUnavailable(f"the moderation service did not answer "
                                        f"({type(error).__name__}); retry shortly") from None
        if not result.get("flagged"):
            return None
        named = [name for name, on in (result.get("categories") or {}).items() if on]
        return named[0] if named else "flagged"
