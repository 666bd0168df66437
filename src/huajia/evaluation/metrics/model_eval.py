"""``huajia eval model``: generate ShapesEval's prompts (or a prompt file's) under several
settings (CFG values, thinking), judge them, and measure them against the oracle's pictures of
the same prompts with other seeds. One report: JSON and a PNG (per-task bars, FID and
ShapesEval against CFG, the nearest- and farthest-from-the-world pictures)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from huajia.drawing import Tile, captioned_grid
from huajia.errors import HuajiaError
from huajia.evaluation.generators import ImageGenerator
from huajia.evaluation.metrics.compute import measure
from huajia.evaluation.metrics.features import extract
from huajia.evaluation.metrics.images import batch_tensor, cached_features, oracle_for_specs
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
    fake, logits = extract(extractor, batch_tensor(pictures, 128))
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


def parse_scales(text: str) -> list[float]:
    """'3,5,7' → [3.0, 5.0, 7.0]: CFG scales, each between 1 and 30."""
    try:
        scales = [float(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise HuajiaError(f"--cfg '{text}': give numbers separated by commas, e.g. 3,5,7,9") from None
    if not scales or any(not 1 <= c <= 30 for c in scales):
        raise HuajiaError(f"--cfg '{text}': each scale must be between 1 and 30")
    return scales


@dataclass
class ModelReport:
    numbers: dict  # report.json
    results: list[SettingResult]

    def write(self, out: Path) -> tuple[Path, Path]:
        """OUT/report.json and OUT/report.png."""
        json_path, png_path = out / "report.json", out / "report.png"
        json_path.write_text(json.dumps(self.numbers, indent=1, ensure_ascii=False), encoding="utf-8")
        report_picture(self.results, self.numbers["model"]).save(png_path)
        return json_path, png_path


def evaluate_model(model: str, prompts: Sequence[EvalPrompt], scales: Sequence[float],
                   metrics: list[str], extractor, steps: int = 20,
                   images_per_prompt: int = 2, think: bool = False, prompts_label: str = "ShapesEval",
                   progress: Progress | None = None, family: str | None = None,
                   load=None) -> ModelReport:
    """Paint ``prompts`` with ``model`` (``family`` and ``load`` as ``Engine`` takes them) at each
    CFG scale (and, with ``think``, with the thinking
    loop's default options), judge every picture and measure each setting against the oracle's
    pictures of the same prompts, in ``extractor``'s features (``features.make_extractor``)."""
    from huajia.engine.engine import Engine
    from huajia.evaluation.generators import EngineGenerator
    from huajia.world.parser import unknown_words

    engine = Engine(model, vocabulary=unknown_words, family=family, load=load)
    real, _ = reference(extractor, prompts, progress=progress)
    results = []
    for scale in scales:
        generator = EngineGenerator(engine, steps=steps, guidance=scale)
        results.append(evaluate_setting(f"plain, CFG {scale:g}", scale, generator, prompts,
                                        extractor, real, metrics, images_per_prompt, progress))
    if think:
        from huajia.evaluation.thinking_generators import ThinkingGenerator
        from huajia.thinking.critics import make_critic
        from huajia.thinking.options import ThinkOptions

        thinker = ThinkingGenerator(engine, make_critic("shapes"), ThinkOptions(), steps)
        results.append(evaluate_setting("thinking (default)", None, thinker, prompts, extractor,
                                        real, metrics, images_per_prompt, progress))
    numbers = {"model": model, "features": extractor.name, "prompts": prompts_label,
               "n_prompts": len(prompts), "images_per_prompt": images_per_prompt, "steps": steps,
               "settings": summary_rows(results)}
    return ModelReport(numbers, results)
