"""The world feature network: a small CNN trained by huajia on oracle renders (``huajia train
features``) to name, on a 4×4 grid of cells, the shape, colour, texture and size of the object
centred there, plus the background and the largest object's (shape, colour).

Its pooled penultimate features play Inception's part in FID/KID/precision-recall, and its
(shape, colour) logits play the classifier's part in the Inception Score. Pictures of any size
are resized to ``side`` (64) first. Shipped in ``huajia/assets/world_features`` with its card.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from huajia.errors import HuajiaError

WEIGHTS, CONFIG = "model.safetensors", "config.json"


@dataclass(frozen=True)
class FeatureNetConfig:
    side: int = 64
    grid: int = 4
    widths: tuple[int, ...] = (32, 64, 128, 256)
    feature_dim: int = 256
    # classes of each head (index 0 of the cell heads: no object centred in the cell)
    heads: dict[str, int] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)  # class names per head (card)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureNetConfig:
        return cls(**{**data, "widths": tuple(data["widths"])})


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(8, cout), nn.SiLU(),
                         nn.Conv2d(cout, cout, 3, 1, 1), nn.GroupNorm(8, cout), nn.SiLU())


class WorldFeatureNet(nn.Module):
    """``forward(images)`` → dict of logits per head; ``features(images)``: the pooled
    penultimate features. ``images``: uint8 (N, 3, H, W) or float in [0, 1]."""

    def __init__(self, config: FeatureNetConfig):
        super().__init__()
        self.config = config
        w = config.widths
        layers = [_block(3, w[0], 2)] + [_block(a, b, 2) for a, b in zip(w[:-1], w[1:], strict=True)]
        self.body = nn.Sequential(*layers)  # 64 → 4 after four stride-2 blocks
        self.project = nn.Sequential(nn.Linear(w[-1], config.feature_dim), nn.SiLU())
        cell_heads = {k: v for k, v in config.heads.items() if k.startswith("cell_")}
        self.cell_heads = nn.ModuleDict({k: nn.Conv2d(w[-1], v, 1) for k, v in cell_heads.items()})
        self.image_heads = nn.ModuleDict({k: nn.Linear(config.feature_dim, v)
                                          for k, v in config.heads.items() if k not in cell_heads})

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        if x.shape[-2:] != (self.config.side, self.config.side):
            x = F.interpolate(x, size=(self.config.side, self.config.side), mode="bilinear",
                              antialias=True, align_corners=False)
        return (x - 0.5) / 0.5

    def _trunk(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grid = self.body(self.prepare(images))
        if grid.shape[-1] != self.config.grid:
            grid = F.adaptive_avg_pool2d(grid, self.config.grid)
        return grid, self.project(grid.mean(dim=(2, 3)))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        grid, pooled = self._trunk(images)
        out = {k: head(grid) for k, head in self.cell_heads.items()}
        out.update({k: head(pooled) for k, head in self.image_heads.items()})
        return out

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self._trunk(images)[1]

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, folder / WEIGHTS)
        (folder / CONFIG).write_text(json.dumps(asdict(self.config), indent=1), encoding="utf-8")
        return folder


def shipped_folder() -> Path:
    from importlib import resources

    return Path(str(resources.files("huajia").joinpath("assets/world_features")))


def load_feature_net(folder: str | Path | None = None) -> WorldFeatureNet:
    """The world feature network in ``folder`` (default: the shipped one), in eval mode."""
    from safetensors.torch import load_file

    folder = Path(folder) if folder else shipped_folder()
    if not (folder / WEIGHTS).is_file() or not (folder / CONFIG).is_file():
        raise HuajiaError(f"'{folder}' is not a world feature network (needs {WEIGHTS} and "
                          f"{CONFIG}); train one with `huajia train features --out DIR`")
    config = FeatureNetConfig.from_dict(json.loads((folder / CONFIG).read_text(encoding="utf-8")))
    net = WorldFeatureNet(config)
    try:
        net.load_state_dict(load_file(folder / WEIGHTS))
    except RuntimeError as error:
        raise HuajiaError(f"'{folder}' holds weights of another network: {str(error)[:120]}") from None
    return net.eval()
