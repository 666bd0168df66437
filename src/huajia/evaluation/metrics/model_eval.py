"""``huajia eval model``: generate ShapesEval's prompts (or a prompt file's) under several
settings (CFG values, thinking), judge them, and measure them against the oracle's pictures of
the same prompts with other seeds. One report: JSON and a PNG (per-task bars, FID and
ShapesEval against CFG, the nearest- and farthest-from-the-world pictures)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image

from huajia.drawing import Tile, captioned_grid
from huajia.evaluation.generators import ImageGenerator
from huajia.evaluation.metrics.compute import measure
from huajia.evaluation.metrics.features import extract
from huajia.evaluation.metrics.images import cached_features, oracle_for_specs, to_tensor
from huajia.evaluation.metrics.plots import stack, task_bars, tradeoff_chart
from huajia.evaluation.prompts import EvalPrompt
from huajia.evaluation.shapes_eval import run_shapes_eval

REFERENCE_SEEDS = (900_001, 900_002, 900_003)  # the oracle's seeds: never a generator's
Progress = Callable[[str, int, int], None]


@dataclass
class SettingResult:
    label: str
    cfg: float | None
    shapes: dict
    metrics: dict
    pictures: list[Image.Image] = field(repr=False, default_factory=list)
    texts: list[str] = field(repr=False, default_factory=list)
    nearest: list[float] = field(repr=False, default_factory=list)  # per picture, to the reference


def reference(extractor, prompts: Sequence[EvalPrompt], side: int = 128,
              progress: Progress | None = None):
    """The oracle's pictures of the prompts' specs at REFERENCE_SEEDS, as features (cached)."""
    specs = [p.spec for p in prompts]
    key = {"extractor": extractor.identity, "specs": [s.to_dict() for s in specs],
           "seeds": list(REFERENCE_SEEDS), "side": side}

    def compute():
        tell = (lambda d, t: progress("oracle reference", d, t)) if progress else None
        images = oracle_for_specs(specs, REFERENCE_SEEDS, side, progress=tell)
        return extract(extractor, images)

    return cached_features(key, compute)


def evaluate_setting(label: str, cfg: float | None, generator: ImageGenerator,
                     prompts: Sequence[EvalPrompt], extractor, real: torch.Tensor, metrics: list[str],
                     images_per_prompt: int = 2, progress: Progress | None = None) -> SettingResult:
    pictures: list[Image.Image] = []
    texts: list[str] = []

    def keep(index: int, prompt: EvalPrompt, picture: Image.Image) -> None:
        pictures.append(picture)
        texts.append(prompt.text)

    total = len(prompts) * images_per_prompt
    done = [0]

    def advance(k: int) -> None:
        done[0] += k
        if progress:
            progress(label, done[0], total)

    scores = run_shapes_eval(generator, prompts, images_per_prompt, progress=advance, on_image=keep)
    shapes = {"overall": scores.overall, "tasks": scores.tasks, "by_lang": scores.by_lang}
    return measured(label, cfg, shapes, pictures, texts, extractor, real, metrics)


def measured(label: str, cfg: float | None, shapes: dict, pictures: list[Image.Image],
             texts: list[str], extractor, real: torch.Tensor, metrics: list[str]) -> SettingResult:
    """A setting's pictures measured against the reference's features, with each picture's
    distance to its nearest reference picture (for the report's grids)."""
    fake, logits = extract(extractor, to_tensor(pictures, 128))
    values = measure(metrics, real, fake, logits)
    nearest = torch.cdist(fake.double(), real.double()).min(dim=1).values.tolist()
    return SettingResult(label, cfg, shapes, values, pictures, texts, nearest)


def report_picture(results: Sequence[SettingResult], title: str) -> Image.Image:
    parts = [task_bars({r.label: r.shapes["tasks"] for r in results}, f"{title}: ShapesEval per task")]
    swept = [r for r in results if r.cfg is not None and "fid" in r.metrics]
    if len(swept) > 1:
        parts.append(tradeoff_chart([r.cfg for r in swept], [r.metrics["fid"] for r in swept],
                                    [r.shapes["overall"] for r in swept],
                                    "quality against adherence: FID and ShapesEval over CFG"))
    for r in results:
        if not r.nearest:
            continue
        order = sorted(range(len(r.nearest)), key=r.nearest.__getitem__)
        picks = order[:4] + order[-4:]
        tiles = [Tile(r.pictures[i], (r.texts[i], f"distance {r.nearest[i]:.2f}"),
                      (30, 30, 30) if k < 4 else (190, 30, 30)) for k, i in enumerate(picks)]
        parts.append(captioned_grid(tiles, columns=8, tile_px=104, text_lines=3, font_px=10,
                                    title=f"{r.label}: closest to the world (left), farthest (red)"))
    return stack(parts)


def summary_rows(results: Sequence[SettingResult]) -> list[dict]:
    return [{"setting": r.label, "cfg": r.cfg, **r.metrics, "shapes_eval": r.shapes["overall"],
             "shapes_eval_tasks": r.shapes["tasks"], "by_lang": r.shapes["by_lang"],
             "n_images": len(r.pictures)} for r in results]
