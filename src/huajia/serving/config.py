"""The server's settings, one frozen object whose fields are declared once with their names,
defaults, units and help (``huajia.params``): ``huajia serve``'s flags, a Ray config file's
``args`` and the Python API all take them. Also the critics a thinking job may ask for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huajia.engine.expansion import ExpansionOptions
from huajia.engine.loading import LoadOptions, check_family, family_param
from huajia.errors import HuajiaError
from huajia.params import check, param, params, same_as
from huajia.thinking.options import CriticOptions

DEFAULT_ALIASES = (("dall-e-2", ""), ("dall-e-3", ""), ("gpt-image-1", ""))
MB = 1024**2


def parse_aliases(texts: list[str]) -> tuple[tuple[str, str], ...]:
    """``--model-alias NAME=MODEL`` flags on top of the defaults (a later one wins)."""
    aliases = dict(DEFAULT_ALIASES)
    for text in texts:
        name, sep, target = text.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise HuajiaError(f"--model-alias '{text}' is not NAME=MODEL, e.g. dall-e-3=embedded")
        aliases[name.strip()] = target.strip()
    return tuple(aliases.items())


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


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    data_dir: Path = param(Path("huajia-data"), help="Queue, cache and result images live here.")
    model: str = param("embedded", help="embedded, a diffusers folder or a hub id.")
    family: str | None = family_param()
    api_keys: tuple[str, ...] = param((), help="File with one API key per line (omitted: no "
                                      "authentication).", cli_type=Path, parse=read_api_keys)
    rate: float = param(2.0, help="Requests per second per API key (token bucket).", low=0.0)
    burst: int = param(20, help="Requests a key may send at once.", low=1)
    max_batch: int = param(8, help="Micro-batching: compatible jobs run together, up to this "
                           "many.", low=1)
    batch_wait_s: float = param(0.05, help="How long the oldest job may wait for batch "
                                "company.", unit="seconds", low=0.0,
                                scaled_aliases=(("batch_wait_ms", 1e-3, "ms"),))
    cache_max_bytes: int = param(1024 * MB, help="Result cache size cap.", unit="bytes", low=0,
                                 scaled_aliases=(("cache_mb", MB, "MiB"),))
    images_max_bytes: int = param(1024 * MB, help="Cap of the stored result pictures; full, "
                                  "the server refuses new work (507) rather than drop finished "
                                  "results.", unit="bytes", low=0,
                                  scaled_aliases=(("images_mb", MB, "MiB"),))
    tenant_quota_bytes: int = param(0, help="Result pictures one API key may keep stored (0: "
                                    "no quota beyond --images-max-bytes).", unit="bytes", low=0,
                                    scaled_aliases=(("tenant_quota_mb", MB, "MiB"),))
    shared_cache: bool = param(False, help="Answer a repeat of another API key's request from "
                               "the cache (default: each key has its own cache entries).")
    retain_days: float = param(0.0, help="Delete finished jobs, their pictures and cache "
                               "entries this many days after they finished (0: keep until "
                               "deleted).", unit="days", low=0.0)
    retain_bytes: int = param(0, help="Delete the oldest finished jobs and their pictures while "
                              "the stored pictures pass this (0: no limit).", unit="bytes", low=0,
                              scaled_aliases=(("retain_mb", MB, "MiB"),))
    moderation_url: str | None = param(None, help="An OpenAI-compatible moderation API (its "
                                       "/v1 base; POST {url}/moderations): prompts it flags are "
                                       "refused beside the term lists (unreachable: 503).")
    moderation_key: str | None = param(None, help="API key of --moderation-url.",
                                       env="HUAJIA_MODERATION_KEY")
    moderation_model: str | None = param(None, help="Model name sent to --moderation-url "
                                         "(omitted: the service's default).")
    moderation_timeout_s: float = param(10.0, help="How long a moderation call may take.",
                                        unit="seconds", low=0.1)
    log_prompts: bool = param(False, help="Write each job's prompt to the log (off: prompts are "
                              "kept only with their jobs, until deleted).")
    nsfw: str = param("blur", help="Image safety policy.", choices=("blur", "refuse", "off"))
    nsfw_threshold: float = param(0.5, help="nudenet score at or above which a picture is "
                                  "unsafe.", low=0.0, high=1.0)
    watermark_key: str | None = param(None, help="Key of the invisible watermark (omitted: "
                                      "this server's own random key, kept in "
                                      "DATA_DIR/watermark-key; huajia detect "
                                      "--watermark-key-file reads it).", env="HUAJIA_WATERMARK_KEY")
    watermark_key_file: Path | None = param(None, help="A file whose first line is the "
                                            "watermark key.")
    lora_dir: Path | None = param(None, help="Folder of LoRAs clients may name (omitted: LoRAs "
                                  "are refused).")
    # the critics thinking jobs may use beside the world's verifier (None: refused at submit)
    clip_model: str | None = same_as(CriticOptions, "clip_model")
    vlm_url: str | None = same_as(CriticOptions, "vlm_url")
    vlm_model: str | None = same_as(CriticOptions, "vlm_model")
    vlm_key: str | None = same_as(CriticOptions, "vlm_key")
    vlm_timeout_s: float = same_as(CriticOptions, "vlm_timeout_s")
    # names apps send (OpenAI's models) → the served model ("": whatever is served)
    model_aliases: tuple[tuple[str, str], ...] = param(
        DEFAULT_ALIASES, help="NAME=MODEL: serve requests for NAME with MODEL (repeatable; "
        "dall-e-2, dall-e-3 and gpt-image-1 mean the served model).", aliases=("model_alias",),
        cli_type=list[str], parse=parse_aliases)
    max_body_bytes: int = param(16 * MB, help="A request body beyond this is a 413, unread.",
                                unit="bytes", low=1)
    body_idle_s: float = param(10.0, help="A body that sends nothing this long is a 408.",
                               unit="seconds", low=0.0)
    body_timeout_s: float = param(120.0, help="A body that takes longer than this in all is a "
                                  "408.", unit="seconds", low=0.0)
    header_timeout_s: float = param(10.0, help="How long a connection has to send its request "
                                    "headers (idle, slowloris).", unit="seconds", low=0.0,
                                    aliases=("header_timeout",))
    max_connections_per_client: int = param(64, help="Connections one address may hold at "
                                            "once.", low=1)
    shutdown_timeout_s: float = param(10.0, help="How long a stop waits for open requests (jobs "
                                      "persist).", unit="seconds", low=0.0)
    max_cost: float = param(300.0, help="Megapixel-steps one request may cost (size x steps x 2 "
                            "x prompt chunks x n x thinking's passes); more is a 400 before any "
                            "work.", unit="megapixel-steps", low=0.0)
    url_ttl_s: int = param(24 * 3600, help="How long a signed result URL works without a key.",
                           unit="seconds", low=1)
    # prompt expansion: a wildcard folder (None: the built-in one) and a chat model for 'llm'
    wildcards: Path | None = same_as(ExpansionOptions, "wildcards")
    llm_url: str | None = same_as(ExpansionOptions, "llm_url")
    llm_model: str | None = same_as(ExpansionOptions, "llm_model")
    llm_key: str | None = same_as(ExpansionOptions, "llm_key")
    llm_timeout_s: float = same_as(ExpansionOptions, "llm_timeout_s")
    # how the model loads and runs (precision, quantization, offload, VAE tiling, attention, …)
    dtype: str = same_as(LoadOptions, "dtype")
    offload: str = same_as(LoadOptions, "offload")
    vae_tiling: str = same_as(LoadOptions, "vae_tiling")
    vae_slicing: bool = same_as(LoadOptions, "vae_slicing")
    quantize: str = same_as(LoadOptions, "quantize")
    attention: str | None = same_as(LoadOptions, "attention")
    step_cache: float = same_as(LoadOptions, "step_cache")
    model_config: str | None = same_as(LoadOptions, "model_config")

    def __post_init__(self) -> None:
        if self.nsfw not in ("blur", "refuse", "off"):
            raise HuajiaError(f"nsfw='{self.nsfw}' is not a policy; use blur, refuse or off")
        if self.max_batch < 1:
            raise HuajiaError("max_batch must be at least 1")
        if self.max_connections_per_client < 1 or self.header_timeout_s <= 0:
            raise HuajiaError("--max-connections-per-client must be at least 1 and "
                              "--header-timeout-s positive")
        if self.lora_dir is not None and not Path(self.lora_dir).is_dir():
            raise HuajiaError(f"--lora-dir '{self.lora_dir}' is not a folder")
        if self.clip_model is not None and not Path(self.clip_model).is_dir():
            raise HuajiaError(f"--clip-model '{self.clip_model}' is not a folder; pass a local "
                              "transformers CLIP checkpoint")
        if bool(self.vlm_url) != bool(self.vlm_model):
            raise HuajiaError("the vlm critic needs both --vlm-url and --vlm-model")
        if bool(self.llm_url) != bool(self.llm_model):
            raise HuajiaError("prompt expansion by LLM needs both --llm-url and --llm-model")
        if self.wildcards is not None and not Path(self.wildcards).is_dir():
            raise HuajiaError(f"--wildcards '{self.wildcards}' is not a folder")
        check_family(self.family)
        check(self)

    def prompt_filter(self):
        """The term lists, with the moderation service when one is configured."""
        from huajia.serving.moderation import ModerationHook, ModerationSettings
        from huajia.serving.safety import PromptFilter

        hook = ModerationHook(ModerationSettings(
            self.moderation_url, self.moderation_key, self.moderation_model,
            self.moderation_timeout_s)) if self.moderation_url else None
        return PromptFilter(moderation=hook)

    def expander(self):
        """The server's prompt expander. Lenient: a chat model that cannot be reached while a
        job runs leaves its prompt as written (with a warning) instead of failing it."""
        return self.expansion().expander(strict=False)

    def load_options(self) -> LoadOptions:
        """How the served model loads and runs (``Engine(load=...)``)."""
        return LoadOptions(**{name: getattr(self, name) for name in params(LoadOptions)})

    def expansion(self) -> ExpansionOptions:
        return ExpansionOptions(**{name: getattr(self, name) for name in params(ExpansionOptions)})

    def critics(self, critic: str) -> CriticOptions:
        """The critic options of a thinking job that asks for ``critic``."""
        return CriticOptions(critic=critic, **{name: getattr(self, name)
                                               for name in params(CriticOptions) if name != "critic"})

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
        self.check(name)
        if name not in self._made:
            self._made[name] = self.config.critics(name).make()
        return self._made[name]

