"""``huajia eval images`` and ``huajia eval model``: FID, KID, IS, CLIPScore, precision/recall
and diversity, offline (the work is ``evaluation.metrics.folder_eval`` and ``model_eval``)."""

from __future__ import annotations

from pathlib import Path

import typer

from huajia.cli_common import FAMILY, MODEL_HELP, console, stage_progress, vocabulary_options
from huajia.engine.loading import LoadOptions
from huajia.errors import HuajiaError
from huajia.evaluation.metrics import DEFAULT_METRICS

FEATURES_HELP = ("Feature network: world (huajia's, shipped), world:DIR, inception:PATH (the FID "
                 "Inception weights file) or clip:DIR (a local CLIP).")


def eval_images(
    fake: Path = typer.Option(..., "--fake", help="Folder of generated pictures."),
    real: str = typer.Option("world", "--real", help="Folder of reference pictures, or 'world' "
                             "(oracle renders of the world's training distribution, cached)."),
    metrics: str = typer.Option(DEFAULT_METRICS, help="Comma list of fid, kid, is, clip-score, "
                                              "precision-recall, diversity."),
    features: str = typer.Option("world", help=FEATURES_HELP),
    clip_model: Path = typer.Option(None, "--clip-model", help="clip-score: a local CLIP checkpoint."),
    reference_images: int = typer.Option(2000, help="--real world: how many oracle renders."),
    json_path: Path = typer.Option(None, "--json", help="Write the numbers here."),
    out: Path = typer.Option(None, "--out", help="Folder for metrics.json and grid.png (the "
                             "pictures nearest to the reference and farthest from it)."),
) -> None:
    """Measure a folder of pictures against a reference folder (or the world)."""
    from huajia.evaluation.metrics.folder_eval import measure_folder

    with stage_progress() as progress:
        report = measure_folder(fake, real, metrics, features, clip_model, reference_images,
                                progress=progress)
    for key, value in report.numbers.items():
        console.print(f"{key}: {value}")
    if out:
        from huajia.world.dataset import prepare_out_dir

        prepare_out_dir(out)
        json_path = json_path or out / "metrics.json"
        report.nearest_grid().save(out / "grid.png")
        console.print(f"grid: {out / 'grid.png'}")
    if json_path:
        report.write_json(json_path)
        console.print(f"report: {json_path}")


@vocabulary_options(load=LoadOptions)
def eval_model(
    model: str = typer.Option("embedded", help=MODEL_HELP),
    family: str = FAMILY,
    out: Path = typer.Option(..., "--out", help="Folder for report.json and report.png."),
    prompts: Path = typer.Option(None, "--prompts", help="Prompt file (world words); default: ShapesEval."),
    shapes_eval: bool = typer.Option(False, "--shapes-eval", help="ShapesEval's held-out prompts (the "
                                     "default without --prompts)."),
    specs_per_task: int = typer.Option(6, help="ShapesEval specs per task (en + zh each)."),
    images_per_prompt: int = typer.Option(2, "--images-per-prompt", "-n", min=1),
    cfg: str = typer.Option("5", help="Comma list of CFG scales, e.g. 3,5,7,9."),
    steps: int = typer.Option(20, min=1, max=150),
    think: bool = typer.Option(False, "--think", help="Also measure the thinking loop (default options)."),
    metrics: str = typer.Option(DEFAULT_METRICS),
    features: str = typer.Option("world", help=FEATURES_HELP),
    *,
    load: LoadOptions,
) -> None:
    """Generate, judge and measure a model: one JSON and one PNG report."""
    from huajia.evaluation.metrics.features import make_extractor
    from huajia.evaluation.metrics.folder_eval import metric_names
    from huajia.evaluation.metrics.model_eval import evaluate_model, parse_scales
    from huajia.evaluation.prompts import file_prompts, shapes_eval_prompts
    from huajia.world.dataset import prepare_out_dir

    names, scales = metric_names(metrics), parse_scales(cfg)
    if prompts and shapes_eval:
        raise HuajiaError("--prompts and --shapes-eval exclude each other; pick one")
    chosen = file_prompts(prompts) if prompts else shapes_eval_prompts(specs_per_task)
    extractor = make_extractor(features)
    prepare_out_dir(out)
    with stage_progress() as progress:
        report = evaluate_model(model, chosen, scales, names, extractor, steps, images_per_prompt,
                                think, str(prompts or "ShapesEval"), progress, family, load)
    json_path, png_path = report.write(out)
    for row in report.numbers["settings"]:
        shown = {k: row[k] for k in ("fid", "kid", "is", "precision", "recall", "diversity") if k in row}
        console.print(f"{row['setting']}: ShapesEval {row['shapes_eval']:.3f} " +
                      " ".join(f"{k} {v:.4g}" for k, v in shown.items()))
    console.print(f"{json_path}\n{png_path}")


def register(eval_app: typer.Typer) -> None:
    eval_app.command("images")(eval_images)
    eval_app.command("model")(eval_model)
