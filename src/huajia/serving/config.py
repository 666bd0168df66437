"""The server's settings, one frozen object (``huajia serve`` flags map onto it), and the
critics a thinking job may ask for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huajia.errors import HuajiaError

DEFAULT_ALIASES = (("dall-e-2", ""), ("dall-e-3", ""), ("gpt-image-1", ""))


def parse_aliases(texts: list[str]) -> tuple[tuple[str, str], ...]:
    """``--model-alias NAME=MODEL`` flags on top of the defaults (a later one wins)."""
    aliases = dict(DEFAULT_ALIASES)
    for text in texts:
        name, sep, target = text.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise HuajiaError(f"--model-alias '{text}' is not NAME=MODEL, e.g. dall-e-3=embedded")
        aliases[name.strip()] = target.strip()
    return tuple(aliases.items())


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    data_dir: Path = Path("huajia-data")  # queue, cache, result images
    model: str = "embedded"
    api_keys: tuple[str, ...] = ()  # empty: no authentication
    rate: float = 2.0  # requests per second per key (token bucket)
    burst: int = 20
    max_batch: int = 8  # micro-batching: compatible jobs run together, up to this many
    batch_wait_s: float = 0.05  # how long the oldest job may wait for company
    cache_max_bytes: int = 1024**3
    images_max_bytes: int = 1024**3  # result files (url responses), oldest dropped first
    nsfw: str = "blur"  # blur | refuse | off
    nsfw_threshold: float = 0.5
    watermark_key: str = "huajia"
    lora_dir: Path | None = None  # LoRA names resolve here; None: LoRAs are refused
    # the critics thinking jobs may use beside the world's verifier (None: refused at submit)
    clip_model: str | None = None  # a local transformers CLIP folder
    vlm_url: str | None = None  # an OpenAI-compatible base URL
    vlm_model: str | None = None
    vlm_key: str | None = None
    vlm_timeout_s: float = 30.0
    # names apps send (OpenAI's models) → the served model ("": whatever is served)
    model_aliases: tuple[tuple[str, str], ...] = DEFAULT_ALIASES
    max_body_bytes: int = 16 * 1024**2  # a request body beyond this is a 413, unread
    body_idle_s: float = 10.0  # a body that sends nothing this long is a 408
    body_timeout_s: float = 120.0  # ... or that takes longer than this in all
    header_timeout_s: float = 10.0  # a connection's request headers must arrive within this
    max_connections_per_client: int = 64  # connections one address may hold at once
    shutdown_timeout_s: float = 10.0  # a stop waits this long for open requests (jobs persist)
    max_cost: float = 300.0  # megapixel-steps one request may cost (serving/budget.py)
    url_ttl_s: int = 24 * 3600  # how long a signed result URL works without a key
    # prompt expansion: a wildcard folder (None: the built-in one) and a chat model for 'llm'
    wildcards_dir: Path | None = None
    llm_url: str | None = None
    llm_model: str | None = None
    llm_key: str | None = None
    llm_timeout_s: float = 20.0

    def __post_init__(self) -> None:
        if self.nsfw not in ("blur", "refuse", "off"):
            raise HuajiaError(f"nsfw='{self.nsfw}' is not a policy; use blur, refuse or off")
        if self.max_batch < 1:
            raise HuajiaError("max_batch must be at least 1")
        if self.max_connections_per_client < 1 or self.header_timeout_s <= 0:
            raise HuajiaError("--max-connections-per-client must be at least 1 and "
                              "--header-timeout positive")
        if self.lora_dir is not None and not Path(self.lora_dir).is_dir():
            raise HuajiaError(f"--lora-dir '{self.lora_dir}' is not a folder")
        if self.clip_model is not None and not Path(self.clip_model).is_dir():
            raise HuajiaError(f"--clip-model '{self.clip_model}' is not a folder; pass a local "
                              "transformers CLIP checkpoint")
        if bool(self.vlm_url) != bool(self.vlm_model):
            raise HuajiaError("the vlm critic needs both --vlm-url and --vlm-model")
        if bool(self.llm_url) != bool(self.llm_model):
            raise HuajiaError("prompt expansion by LLM needs both --llm-url and --llm-model")
        if self.wildcards_dir is not None and not Path(self.wildcards_dir).is_dir():
            raise HuajiaError(f"--wildcards '{self.wildcards_dir}' is not a folder")

    def expander(self):
        """The server's prompt expander. Lenient: a chat model that cannot be reached while a
        job runs leaves its prompt as written (with a warning) instead of failing it."""
        from huajia.engine.expansion import LlmSettings, PromptExpander

        llm = (LlmSettings(self.llm_url, self.llm_model, self.llm_key, self.llm_timeout_s)
               if self.llm_url else None)
        return PromptExpander(self.wildcards_dir, llm, strict=False)

    def output_settings(self) -> dict:
        """The settings that change the bytes of a returned picture (part of its cache key)."""
        return {"nsfw": self.nsfw, "nsfw_threshold": self.nsfw_threshold if self.nsfw != "off"
                else None, "watermark_key": self.watermark_key}


class CriticSettings:
    """Which critics this server can run; a job asking for another is refused at submit."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self._made: dict[str, object] = {}

    def available(self) -> list[str]:
        return ["shapes"] + (["clip"] if self.config.clip_model else []) + \
            (["vlm"] if self.config.vlm_url else [])

    def check(self, name: str) -> None:
        if name not in self.available():
            flag = "--clip-model DIR" if name == "clip" else "--vlm-url URL --vlm-model NAME"
            raise HuajiaError(f"this server has no {name} critic (it has: "
                              f"{', '.join(self.available())}); ask for one of those, or "
                              f"start the server with {flag}")

    def make(self, name: str):
        """The critic (built once per server; the CLIP model loads on first use)."""
        from huajia.thinking.critics import make_critic

        self.check(name)
        if name not in self._made:
            c = self.config
            self._made[name] = make_critic(name, c.clip_model, c.vlm_url, c.vlm_model,
                                           c.vlm_key, c.vlm_timeout_s)
        return self._made[name]


def read_api_keys(path: str | Path) -> tuple[str, ...]:
    """One key per line; blank lines and '#' comments are ignored."""
    path = Path(path)
    if not path.is_file():
        raise HuajiaError(f"API key file '{path}' does not exist; write one key per line")
    keys = tuple(line.split()[0] for line in path.read_text().splitlines()
                 if line.strip() and not line.lstrip().startswith("#"))
    if not keys:
        raise HuajiaError(f"API key file '{path}' holds no keys; write one key per line")
    return keys
