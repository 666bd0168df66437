"""The server's settings, one frozen object (``huajia serve`` flags map onto it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from huajia.errors import HuajiaError


@dataclass(frozen=True)
class ServeConfig:
    data_dir: Path = Path("huajia-data")  # queue, cache, result images
    model: str = "embedded"
    api_keys: tuple[str, ...] = ()  # empty: no authentication
    rate: float = 2.0  # requests per second per key (token bucket)
    burst: int = 20
    max_batch: int = 8  # micro-batching: compatible jobs run together, up to this many
    batch_wait_s: float = 0.05  # how long the oldest job may wait for company
    cache_max_bytes: int = 1024**3
    nsfw: str = "blur"  # blur | refuse | off
    nsfw_threshold: float = 0.5
    watermark_key: str = "huajia"
    lora_dir: Path | None = None  # LoRA names resolve here; None: LoRAs are refused
    serial: bool = False  # one request at a time, no batching, no cache (for comparison)

    def __post_init__(self) -> None:
        if self.nsfw not in ("blur", "refuse", "off"):
            raise HuajiaError(f"nsfw='{self.nsfw}' is not a policy; use blur, refuse or off")
        if self.max_batch < 1:
            raise HuajiaError("max_batch must be at least 1")


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
