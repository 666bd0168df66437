"""``huajia train …``: the embedded base model, LoRAs, the decoder refinement and the model
card (kept apart from cli.py so each file stays readable). The recipes' options come from
``BaseRecipe`` and ``LoraRecipe`` (``vocabulary_options``)."""

from __future__ import annotations

from pathlib import Path

import typer

from huajia.cli_common import (
    Given,
    Options,
    card_eval,
    console,
    progress_bar,
    stage_progress,
    vocabulary_options,
)
from huajia.cli_rl import train_critic_command, train_rl_command
from huajia.errors import HuajiaError
from huajia.training.recipes import BaseRecipe, LoraRecipe

app = typer.Typer(help="Training: the embedded base model, LoRAs, RL on critic rewards.",
                  no_args_is_help=True)
app.command("rl")(train_rl_command)
app.command("critic")(train_critic_command)


@app.command("base")
@vocabulary_options(recipe=BaseRecipe)
def train_base_command(
    out: Path = typer.Option(..., "--out", help="Run folder; the model lands in OUT/model."),
    resume: bool = typer.Option(False, help="Continue from OUT/checkpoints."),
    eval_specs: int = typer.Option(10, help="ShapesEval specs per task for the model card (0: skip)."),
    *,
    recipe: BaseRecipe,
) -> None:
    """Train the embedded model from scratch on the shapes world (CUDA if present, else CPU),
    then measure it with ShapesEval and write its model card."""
    from huajia.training.base import train_base
    from huajia.world.dataset import prepare_out_dir

    prepare_out_dir(out)
    with stage_progress() as progress:
        model_dir = train_base(recipe, out, resume=resume, progress=progress)
    console.print(f"model: {model_dir}")
    if eval_specs > 0:  # 0: skip the measurement (e.g. a baseline measured elsewhere)
        model_card(model_dir, eval_specs)


@app.command("lora")
@vocabulary_options(recipe=Options(LoraRecipe, build=False))
def train_lora_command(
    recipe_file: Path = typer.Option(None, "--recipe", help="YAML of "
                                     "LoraRecipe fields (the experiments' knobs: prior_target, "
                                     "new_words, ema_decay, …) or a built-in recipe "
                                     "(diffsynth-kolors: the seed's Kolors LoRA settings); "
                                     "options given here win over it."),
    resume: bool = typer.Option(False, "--resume", help="Continue OUT's run."),
    *,
    recipe: Given,
) -> None:
    """Train a LoRA (peft) on any family's denoiser attention (UNet convs too; CLIP text
    encoders where the family has them); writes pytorch_lora_weights.safetensors in diffusers'
    format. Defaults: the best recipe measured on the embedded model (docs/lora.md)."""
    from huajia.training.lora import recipe_from_file, train_lora
    from huajia.world.dataset import prepare_out_dir

    for option, folder in (("--data", recipe.values["data"]), ("--reg-data", recipe.values["reg_data"])):
        if folder is not None and not Path(folder).exists():
            raise HuajiaError(f"{option} '{folder}' does not exist; pass an imagefolder or a "
                              "Data-Juicer export (result.jsonl)")
    # the file's values stand unless an option was typed on the command line
    plan = (recipe_from_file(recipe_file, **recipe.typed_values()) if recipe_file is not None
            else LoraRecipe(**recipe.values))
    prepare_out_dir(Path(plan.out))
    with progress_bar("LoRA", plan.steps) as advance:
        path = train_lora(plan, resume=resume, progress=lambda s, t, loss: advance(1))
    console.print(f"{path}\n{Path(plan.out) / 'loss.png'}")


@app.command("decoder")
def train_decoder(
    model_dir: Path = typer.Argument(..., help="A model folder written by 'train base'."),
    steps: int = typer.Option(800, help="Decoder fine-tuning steps."),
    lr: float = typer.Option(2e-4, help="Peak learning rate."),
    texture_focus: float = typer.Option(0.0, help="Chance each training object is redrawn "
                                                  "dotted or striped (textures the small "
                                                  "latent tends to blur away)."),
    seed: int = typer.Option(0),
) -> None:
    """Refine the VAE decoder (encoder frozen: latents and UNet stay valid)."""
    from huajia.training.decoder import refine_decoder

    if not (model_dir / "vae").is_dir():
        raise HuajiaError(f"'{model_dir}' has no vae folder; pass OUT/model from 'train base'")
    with stage_progress() as progress:
        refine_decoder(model_dir, steps, seed, lr=lr, texture_focus=texture_focus,
                       progress=progress)
    console.print(f"refined: {model_dir / 'vae'}")


@app.command("features")
def train_features_command(
    out: Path = typer.Option(..., "--out", help="Folder for the network, its card and record."),
    images: int = typer.Option(12000, help="Oracle renders to train on."),
    epochs: int = typer.Option(6),
    seed: int = typer.Option(0),
) -> None:
    """Train the world feature network (FID/KID/IS features of `huajia eval`) on oracle renders."""
    from huajia.training.features import FeatureRecipe, train_features
    from huajia.world.dataset import prepare_out_dir

    recipe = FeatureRecipe(images=images, epochs=epochs, seed=seed)
    if images < recipe.batch:
        raise HuajiaError(f"--images {images} is fewer than one batch ({recipe.batch}); use at least 1000")
    prepare_out_dir(out)
    with stage_progress() as progress:
        record = train_features(recipe, out, progress=progress)
    accuracy = ", ".join(f"{k} {v:.3f}" for k, v in record["holdout_accuracy"].items())
    console.print(f"{out}\nheld-out accuracy: {accuracy}")


@app.command("card")
def model_card(
    model_dir: Path = typer.Argument(..., help="A model folder written by 'train base'."),
    eval_specs: int = typer.Option(10, help="ShapesEval specs per task."),
) -> None:
    """Measure a trained model (VAE fidelity, generation) and (re)write its model card."""
    from huajia.evaluation.shapes_eval import CARD_SETTING
    from huajia.training.model_card import write_model_card

    if not (model_dir / "training.json").is_file():
        raise HuajiaError(f"'{model_dir}' has no training.json; pass OUT/model from 'train base'")
    evaluations = [{"setting": setting, **card_eval(name, eval_specs)} for setting, name in (
        ("VAE round trip of oracle pictures", f"oracle-vae:{model_dir}"),
        (CARD_SETTING, str(model_dir)))]
    console.print(f"model card: {write_model_card(model_dir, evaluations)}")

