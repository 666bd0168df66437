"""``huajia eval images`` and ``huajia eval model``: FID, KID, IS, CLIPScore, precision/recall
and diversity, offline (kept apart from cli.py so each file stays readable)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from huajia.cli_common import console, stage_progress
from huajia.errors import HuajiaError

FEATURES_HELP = ("Feature network: world (huajia's, shipped), world:DIR, inception:PATH (the FID "
                 "Inception weights file) or clip:DIR (a local CLIP).")


def _metric_list(text: str) -> list[str]:
    from huajia.evaluation.metrics.compute import check_metrics

    return check_metrics([m.strip() for m in text.split(",") if m.strip()])


def _prompt_of(path: Path, folder: Path, captions: dict[str, str]) -> str | None:
    """A picture's prompt: metadata.jsonl's text, else its infotext's prompt."""
    from huajia.engine.infotext import parse_infotext, read_infotext

    name = str(path.relative_to(folder))
    if name in captions:
        return captions[name]
    try:
        return parse_infotext(read_infotext(path))["Prompt"] or None
    except HuajiaError:  # no infotext: the picture has no known prompt
        return None


def _captions(folder: Path) -> dict[str, str]:
    from huajia.imagefolder import read_metadata

    if not (folder / "metadata.jsonl").is_file():
        return {}
    rows = read_metadata(folder)
    return {row["file_name"]: row.get("text") or row.get("prompt") for row in rows
            if row.get("text") or row.get("prompt")}


def eval_images(
    fake: Path = typer.Option(..., "--fake", help="Folder of generated pictures."),
    real: str = typer.Option("world", "--real", help="Folder of reference pictures, or 'world' "
                             "(oracle renders of the world's training distribution, cached)."),
    metrics: str = typer.Option("fid,kid,is,precision-recall,diversity",
                                help="Comma list of fid, kid, is, clip-score, precision-recall, diversity."),
    features: str = typer.Option("world", help=FEATURES_HELP),
    clip_model: Path = typer.Option(None, "--clip-model", help="clip-score: a local CLIP checkpoint."),
    reference_images: int = typer.Option(2000, help="--real world: how many oracle renders."),
    json_path: Path = typer.Option(None, "--json", help="Write the numbers here."),
    out: Path = typer.Option(None, "--out", help="Folder for metrics.json and grid.png (the "
                             "pictures nearest to the reference and farthest from it)."),
) -> None:
    """Measure a folder of pictures against a reference folder (or the world)."""
    from huajia.evaluation.metrics.compute import check_count, clip_score, measure
    from huajia.evaluation.metrics.features import extract, make_extractor
    from huajia.evaluation.metrics.images import cached_features, read_folder, world_renders

    names = _metric_list(metrics)
    if "clip-score" in names and clip_model is None:
        raise HuajiaError("clip-score needs --clip-model DIR (a local CLIP checkpoint)")
    extractor = make_extractor(features)
    side = 299 if features.startswith("inception") else 128
    fakes = read_folder(fake, side, "--fake")
    check_count(len(fakes.names), f"--fake '{fake}'")
    with stage_progress() as progress:
        if real == "world":
            key = {"extractor": extractor.identity, "world": "train", "n": reference_images, "seed": 0}
            real_features, _ = cached_features(key, lambda: extract(extractor, world_renders(
                reference_images, 0, progress=lambda d, t: progress("world reference", d, t))))
        else:
            reals = read_folder(real, side, "--real")
            check_count(len(reals.names), f"--real '{real}'")
            real_features, _ = extract(extractor, reals.images)
        fake_features, logits = extract(extractor, fakes.images)
    result = {"features": extractor.name, "real": real, "fake": str(fake), "n_fake": len(fakes.names),
              "skipped_unreadable": len(fakes.skipped),
              **measure(names, real_features, fake_features, logits)}
    if "is" in names and logits is None:
        result["is"] = None  # CLIP has no classes
    if "clip-score" in names:
        captions = _captions(fake)
        texts = [_prompt_of(fake / n, fake, captions) for n in fakes.names]
        keep = [i for i, t in enumerate(texts) if t]
        result["clip_score"] = (clip_score(fakes.images[keep], [texts[i] for i in keep], str(clip_model))
                                if keep else None)
        result["clip_score_images"] = len(keep)
    for key, value in result.items():
        console.print(f"{key}: {value}")
    if out:
        from huajia.world.dataset import prepare_out_dir

        prepare_out_dir(out)
        json_path = json_path or out / "metrics.json"
        _nearest_grid(fakes, fake_features, real_features).save(out / "grid.png")
        console.print(f"grid: {out / 'grid.png'}")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
        console.print(f"report: {json_path}")


def _nearest_grid(fakes, fake_features, real_features):
    """The 6 pictures nearest to the reference's features and the 6 farthest (in red)."""
    import torch
    from PIL import Image

    from huajia.drawing import Tile, captioned_grid

    distance = torch.cdist(fake_features.double(), real_features.double()).min(dim=1).values
    order = distance.argsort().tolist()
    picks = order[:6] + [i for i in order[-6:] if i not in order[:6]]
    tiles = [Tile(Image.fromarray(fakes.images[i].permute(1, 2, 0).numpy()),
                  (fakes.names[i], f"distance {distance[i]:.2f}"), (30, 30, 30) if k < 6 else (190, 30, 30))
             for k, i in enumerate(picks)]
    return captioned_grid(tiles, columns=6, tile_px=128, text_lines=2, font_px=11,
                          title="nearest to the reference (black) and farthest (red)")


def eval_model(
    model: str = typer.Option("embedded", help="embedded, a diffusers folder or a hub id."),
    out: Path = typer.Option(..., "--out", help="Folder for report.json and report.png."),
    prompts: Path = typer.Option(None, "--prompts", help="Prompt file (world words); default: ShapesEval."),
    shapes_eval: bool = typer.Option(False, "--shapes-eval", help="ShapesEval's held-out prompts (the "
                                     "default without --prompts)."),
    specs_per_task: int = typer.Option(6, help="ShapesEval specs per task (en + zh each)."),
    images_per_prompt: int = typer.Option(2, "--images-per-prompt", "-n", min=1),
    cfg: str = typer.Option("5", help="Comma list of CFG scales, e.g. 3,5,7,9."),
    steps: int = typer.Option(20, min=1, max=150),
    think: bool = typer.Option(False, "--think", help="Also measure the thinking loop (default options)."),
    metrics: str = typer.Option("fid,kid,is,precision-recall,diversity"),
    features: str = typer.Option("world", help=FEATURES_HELP),
) -> None:
    """Generate, judge and measure a model: one JSON and one PNG report."""
    from huajia.engine.engine import Engine
    from huajia.evaluation.generators import EngineGenerator
    from huajia.evaluation.metrics.features import make_extractor
    from huajia.evaluation.metrics.model_eval import evaluate_setting, reference, report_picture, summary_rows
    from huajia.evaluation.prompts import file_prompts, shapes_eval_prompts
    from huajia.world.dataset import prepare_out_dir
    from huajia.world.parser import unknown_words

    names = _metric_list(metrics)
    try:
        scales = [float(c) for c in cfg.split(",") if c.strip()]
    except ValueError:
        raise HuajiaError(f"--cfg '{cfg}': give numbers separated by commas, e.g. 3,5,7,9") from None
    if not scales or any(not 1 <= c <= 30 for c in scales):
        raise HuajiaError(f"--cfg '{cfg}': each scale must be between 1 and 30")
    if prompts and shapes_eval:
        raise HuajiaError("--prompts and --shapes-eval exclude each other; pick one")
    chosen = file_prompts(prompts) if prompts else shapes_eval_prompts(specs_per_task)
    extractor = make_extractor(features)
    prepare_out_dir(out)
    engine = Engine(model, vocabulary=unknown_words)
    results = []
    with stage_progress() as progress:
        real, _ = reference(extractor, chosen, progress=progress)
        for scale in scales:
            generator = EngineGenerator(engine, steps=steps, guidance=scale)
            results.append(evaluate_setting(f"plain, CFG {scale:g}", scale, generator, chosen, extractor,
                                            real, names, images_per_prompt, progress))
        if think:
            from huajia.evaluation.thinking_generators import ThinkingGenerator
            from huajia.thinking.critics import make_critic
            from huajia.thinking.options import ThinkOptions

            thinker = ThinkingGenerator(engine, make_critic("shapes"), ThinkOptions(), steps)
            results.append(evaluate_setting("thinking (default)", None, thinker, chosen, extractor, real,
                                            names, images_per_prompt, progress))
    rows = summary_rows(results)
    report = {"model": model, "features": extractor.name, "prompts": str(prompts or "ShapesEval"),
              "n_prompts": len(chosen), "images_per_prompt": images_per_prompt, "steps": steps,
              "settings": rows}
    (out / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    report_picture(results, f"{model}").save(out / "report.png")
    for row in rows:
        shown = {k: row[k] for k in ("fid", "kid", "is", "precision", "recall", "diversity") if k in row}
        console.print(f"{row['setting']}: ShapesEval {row['shapes_eval']:.3f} " +
                      " ".join(f"{k} {v:.4g}" for k, v in shown.items()))
    console.print(f"{out / 'report.json'}\n{out / 'report.png'}")


def register(eval_app: typer.Typer) -> None:
    eval_app.command("images")(eval_images)
    eval_app.command("model")(eval_model)
