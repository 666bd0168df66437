"""Feature networks for the metrics, all offline. Each gives pooled features (FID, KID,
precision/recall, diversity) and, where it has classes, logits (Inception Score):

- ``world`` (default) or ``world:DIR``: huajia's world feature network (shipped, or trained
  with ``huajia train features``);
- ``inception:PATH``: the standard FID Inception v3 weights from a local file (the network
  pytorch-fid and torch-fidelity use), so numbers compare with papers;
- ``clip:DIR``: a local transformers CLIP checkpoint's image embeddings (no classes: no IS).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from huajia.errors import HuajiaError


def _file_hash(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class WorldExtractor:
    has_logits = True

    def __init__(self, folder: str | None = None):
        from huajia.scorers.world_features import CONFIG, WEIGHTS, load_feature_net, shipped_folder

        self.net = load_feature_net(folder)
        where = Path(folder) if folder else shipped_folder()
        self.name = f"world:{folder}" if folder else "world"
        self.identity = "world-" + _file_hash([where / WEIGHTS, where / CONFIG])

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grid, pooled = self.net._trunk(images)  # noqa: SLF001 - one pass for both outputs
        return pooled, self.net.image_heads["main"](pooled)


class InceptionExtractor:
    has_logits = True

    def __init__(self, path: str):
        from huajia.evaluation.metrics.inception import load_fid_inception

        self.net = load_fid_inception(path)
        self.name, self.identity = f"inception:{path}", "inception-" + _file_hash([Path(path)])

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(images)


class ClipExtractor:
    has_logits = False

    def __init__(self, folder: str):
        from transformers import CLIPModel

        if not Path(folder).is_dir():
            raise HuajiaError(f"--features clip:{folder} is not a folder; pass a local "
                              "transformers CLIP checkpoint")
        try:
            self.model = CLIPModel.from_pretrained(folder).eval()
        except (OSError, ValueError) as error:
            raise HuajiaError(f"--features clip:{folder} is not a CLIP checkpoint: "
                              f"{str(error).splitlines()[0][:120]}") from None
        self.folder = folder
        self.name = f"clip:{folder}"
        self.identity = "clip-" + _file_hash([p for p in Path(folder).iterdir() if p.is_file()])

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, None]:
        from torch.nn import functional as F

        config = self.model.config.vision_config
        x = F.interpolate(images.float() / 255, size=(config.image_size, config.image_size),
                          mode="bicubic", antialias=True, align_corners=False)
        mean = torch.tensor([0.4815, 0.4578, 0.4082]).view(1, 3, 1, 1)
        std = torch.tensor([0.2686, 0.2613, 0.2758]).view(1, 3, 1, 1)
        out = self.model.get_image_features(pixel_values=(x - mean) / std)
        embeds = out if isinstance(out, torch.Tensor) else out.pooler_output
        return embeds, None


def make_extractor(spec: str):
    """``world`` | ``world:DIR`` | ``inception:PATH`` | ``clip:DIR``."""
    kind, _, where = spec.partition(":")
    if kind == "world":
        return WorldExtractor(where or None)
    if kind in ("inception", "clip") and not where:
        raise HuajiaError(f"--features {kind} needs a local path: {kind}:PATH")
    if kind == "inception":
        return InceptionExtractor(where)
    if kind == "clip":
        return ClipExtractor(where)
    raise HuajiaError(f"--features '{spec}': use world, world:DIR, inception:PATH or clip:DIR")


def extract(extractor, images: torch.Tensor, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Features (and logits) of uint8 images (N, 3, H, W), in batches."""
    features, logits = [], []
    for start in range(0, len(images), batch):
        f, lg = extractor(images[start:start + batch])
        features.append(f.float())
        if lg is not None:
            logits.append(lg.float())
    return torch.cat(features), (torch.cat(logits) if logits else None)
