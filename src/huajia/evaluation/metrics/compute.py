"""The metrics over extracted features: torchmetrics' FID, KID and IS are fed the features
through an identity "network" (so one feature pass serves every metric and the reference's
features can be cached); precision/recall is the k-NN manifold estimate (Kynkäänniemi et al.
2019), which torchmetrics does not have; diversity is the mean pairwise cosine distance."""

from __future__ import annotations

import math

import torch
from torch import nn

from huajia.errors import HuajiaError

METRICS = ("fid", "kid", "is", "clip-score", "precision-recall", "diversity")
MIN_IMAGES = 10  # FID/KID need a covariance and subsets, IS needs splits


class _Given(nn.Module):
    """Hands torchmetrics features already computed."""

    def __init__(self, dim: int):
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def check_metrics(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise HuajiaError(f"unknown metric {', '.join(unknown)}; use {', '.join(METRICS)}")
    return names


def check_count(n: int, what: str) -> None:
    if n < MIN_IMAGES:
        raise HuajiaError(f"{what} has {n} readable image(s); the metrics need at least "
                          f"{MIN_IMAGES} (FID's covariance, KID's subsets, IS's splits) — add more")


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=_Given(real.shape[1]), normalize=False)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def kid(real: torch.Tensor, fake: torch.Tensor, subsets: int = 50, seed: int = 0) -> tuple[float, float]:
    """(mean, standard deviation over subsets); subsets of min(1000, n / 2) images (smaller than
    the sets, or every subset would be the same), seeded."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = max(2, min(1000, min(len(real), len(fake)) // 2))
    metric = KernelInceptionDistance(feature=_Given(real.shape[1]), subsets=subsets, subset_size=size)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # KID draws its subsets with torch's global generator
    try:
        mean, std = metric.compute()
    finally:
        torch.random.set_rng_state(state)
    return float(mean), float(std)


def inception_score(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    from torchmetrics.image.inception import InceptionScore

    splits = max(1, min(splits, len(logits) // 5))
    metric = InceptionScore(feature=_Given(logits.shape[1]), splits=splits)
    metric.update(logits)
    state = torch.random.get_rng_state()
    torch.manual_seed(0)  # IS shuffles before splitting
    try:
        mean, std = metric.compute()
    finally:
        torch.random.set_rng_state(state)
    return float(mean), float(std)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Precision: the share of fake samples inside the real manifold (k-NN balls); recall:
    the share of real samples inside the fake manifold."""
    def radii(x: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(x, x)
        return d.kthvalue(min(k + 1, len(x)), dim=1).values  # the 0th neighbour is the point itself

    real, fake = real.double(), fake.double()
    r_real, r_fake = radii(real), radii(fake)
    precision = (torch.cdist(fake, real) <= r_real[None, :]).any(dim=1).double().mean()
    recall = (torch.cdist(real, fake) <= r_fake[None, :]).any(dim=1).double().mean()
    return float(precision), float(recall)


def diversity(features: torch.Tensor) -> float:
    """Mean pairwise cosine distance (0: all the same)."""
    if len(features) < 2:
        return 0.0
    unit = nn.functional.normalize(features.double(), dim=1)
    sim = unit @ unit.T
    n = len(features)
    return float((1 - (sim.sum() - n) / (n * (n - 1))).clamp(min=0))


def clip_score(images: torch.Tensor, texts: list[str], folder: str) -> float:
    """Mean 100 · max(cos(image, text), 0) with a local CLIP, torchmetrics' CLIPScore scale.
    Not torchmetrics' own class: in 1.9 it breaks on transformers 5, whose
    ``get_image_features`` returns a model output rather than a tensor."""
    from transformers import CLIPModel, CLIPProcessor

    model, processor = CLIPModel.from_pretrained(folder).eval(), CLIPProcessor.from_pretrained(folder)
    scores = []
    with torch.no_grad():
        for start in range(0, len(images), 32):
            batch = [x.permute(1, 2, 0).numpy() for x in images[start:start + 32]]
            inputs = processor(text=texts[start:start + 32], images=batch, return_tensors="pt",
                               padding=True, truncation=True)
            out = model(**inputs)
            cos = nn.functional.cosine_similarity(out.image_embeds, out.text_embeds)
            scores.append(100 * cos.clamp(min=0))
    return float(torch.cat(scores).mean())


def measure(names: list[str], real: torch.Tensor | None, fake: torch.Tensor,
            fake_logits: torch.Tensor | None) -> dict:
    """The asked metrics of ``fake`` against ``real`` (features); IS needs logits."""
    result: dict = {}
    if real is not None and "fid" in names:
        result["fid"] = fid(real, fake)
    if real is not None and "kid" in names:
        result["kid"], result["kid_std"] = kid(real, fake)
    if "is" in names and fake_logits is not None:
        result["is"], result["is_std"] = inception_score(fake_logits)
    if real is not None and "precision-recall" in names:
        result["precision"], result["recall"] = precision_recall(real, fake)
    if "diversity" in names:
        result["diversity"] = diversity(fake)
    return {k: (float(f"{v:.6g}") if isinstance(v, float) and math.isfinite(v) else v)
            for k, v in result.items()}
