"""``huajia train …``: the embedded base model, LoRAs, the decoder refinement and the model
card (kept apart from cli.py so each file stays readable)."""

from __future__ import annotations

from pathlib import Path

import typer

from huajia.cli_common import console, print_shapes_result, progress_bar, stage_progress
from huajia.cli_rl import train_rl_command
from huajia.errors import HuajiaError

app = typer.Typer(help="Training: the embedded base model, LoRAs, RL on critic rewards.",
                  no_args_is_help=True)
app.command("rl")(train_rl_command)


@app.command("base")
def train_base_command(
    out: Path = typer.Option(..., "--out", help="Run folder; the model lands in OUT/model."),
    resume: bool = typer.Option(False, help="Continue from OUT/checkpoints."),
    seed: int = typer.Option(0),
    scenes: int = typer.Option(24_000, help="Distinct training scenes."),
    vae_steps: int = typer.Option(3_000),
    unet_steps: int = typer.Option(2_000),
    unet_lr: float = typer.Option(4e-4, help="Peak learning rate of the UNet + text encoder."),
    colour_drop: float = typer.Option(0.3, help="Chance a caption names no colour."),
    init_from: str = typer.Option(None, help="Fine-tune: start from this pipeline folder (or "
                                  "'embedded') and keep its tokenizer and VAE."),
    eval_specs: int = typer.Option(10, help="ShapesEval specs per task for the model card (0: skip)."),
) -> None:
    """Train the embedded model from scratch on the shapes world (CUDA if present, else CPU),
    then measure it with ShapesEval and write its model card."""
    from huajia.training.base import BaseRecipe, train_base
    from huajia.world.dataset import prepare_out_dir

    prepare_out_dir(out)
    if not 0.0 <= colour_drop <= 1.0:
        raise HuajiaError(f"--colour-drop {colour_drop} is not a chance; pass a number in [0, 1]")
    recipe = BaseRecipe(seed=seed, n_scenes=scenes, vae_steps=vae_steps, unet_steps=unet_steps,
                        unet_lr=unet_lr, colour_drop=colour_drop, init_from=init_from)
    with stage_progress() as progress:
        model_dir = train_base(recipe, out, resume=resume, progress=progress)
    console.print(f"model: {model_dir}")
    if eval_specs > 0:  # 0: skip the measurement (e.g. a baseline measured elsewhere)
        model_card(model_dir, eval_specs)


@app.command("lora")
def train_lora_command(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", help="Imagefolder (file_name + text[, text_zh])."),
    out: Path = typer.Option(..., "--out", help="Where the LoRA, samples and loss curve go."),
    recipe: Path = typer.Option(None, "--recipe", help="YAML of LoraRecipe fields (the "
                                "experiments' knobs: prior_target, new_words, ema_decay, …); "
                                "options given here win over it."),
    model: str = typer.Option("embedded", help="Base model."),
    rank: int = typer.Option(16, help="network_dim."),
    alpha: float = typer.Option(16.0, help="network_alpha."),
    steps: int = typer.Option(800, help="max_train_steps."),
    lr: float = typer.Option(1e-3, help="learning_rate."),
    batch: int = typer.Option(8, help="train_batch_size."),
    precision: str = typer.Option("fp32", help="fp32, bf16 or fp16 (mixed_precision)."),
    gradient_checkpointing: bool = typer.Option(False, "--gradient-checkpointing"),
    train_text_encoder: bool = typer.Option(True, "--train-text-encoder/--no-text-encoder"),
    text_encoder_lr: float = typer.Option(3e-4, help="Text-encoder LoRA lr."),
    conv_rank: int = typer.Option(16, help="LoCon conv_dim: also the UNet ResNet convs (0: "
                                           "attention only)."),
    conv_alpha: float = typer.Option(16.0, help="LoCon conv_alpha."),
    lr_scheduler: str = typer.Option("constant", help="constant, constant_with_warmup, cosine "
                                                      "or linear."),
    lr_warmup_steps: int = typer.Option(0, help="Steps of lr warm-up."),
    min_snr_gamma: float = typer.Option(5.0, help="Min-SNR-γ loss weights (0: plain MSE)."),
    reg_data: Path = typer.Option(None, "--reg-data",
                                  help="Imagefolder of what the model already knows (half of "
                                       "each batch) so it does not forget."),
    prior_loss_weight: float = typer.Option(1.0, help="Weight of the --reg-data loss."),
    mask_weight: float = typer.Option(1.0, help="Masked loss: pixels an image's alpha "
                                      "channel marks weigh this much more (1: off; 3 did best)."),
    resume: bool = typer.Option(False, "--resume"),
    seed: int = typer.Option(0),
    sample_every: int = typer.Option(100, help="Sample pictures every K steps (0: never)."),
    sample_prompt: list[str] = typer.Option([], "--sample-prompt", help="Repeatable."),
) -> None:
    """Train a LoRA (peft) on the UNet attention and convs (and the text encoder); writes
    pytorch_lora_weights.safetensors. Defaults: the best recipe measured (docs/lora.md)."""
    from click.core import ParameterSource

    from huajia.training.lora import LoraRecipe, recipe_from_file, train_lora
    from huajia.world.dataset import prepare_out_dir

    for option, folder in (("--data", data), ("--reg-data", reg_data)):
        if folder is not None and not folder.is_dir():
            raise HuajiaError(f"{option} '{folder}' is not a folder; pass an imagefolder")
    prepare_out_dir(out)
    given = {"model": model, "rank": rank, "alpha": alpha, "steps": steps, "lr": lr,
             "batch": batch, "precision": precision,
             "gradient_checkpointing": gradient_checkpointing,
             "train_text_encoder": train_text_encoder, "text_encoder_lr": text_encoder_lr,
             "conv_rank": conv_rank, "conv_alpha": conv_alpha, "lr_scheduler": lr_scheduler,
             "lr_warmup_steps": lr_warmup_steps, "min_snr_gamma": min_snr_gamma,
             "reg_data": str(reg_data) if reg_data else None,
             "prior_loss_weight": prior_loss_weight, "mask_weight": mask_weight, "seed": seed,
             "sample_every": sample_every, "sample_prompts": tuple(sample_prompt)}
    paths = {"data": str(data), "out": str(out)}
    if recipe is not None:
        # the file's values stand unless an option was typed on the command line
        typed = {k: v for k, v in given.items() if ctx.get_parameter_source(
            "sample_prompt" if k == "sample_prompts" else k) == ParameterSource.COMMANDLINE}
        plan = recipe_from_file(recipe, **paths, **typed)
    else:
        plan = LoraRecipe(**paths, **given)
    with progress_bar("LoRA", plan.steps) as advance:
        path = train_lora(plan, resume=resume, progress=lambda s, t, loss: advance(1))
    console.print(f"{path}\n{out / 'loss.png'}")


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
    from huajia.training.model_card import write_model_card

    if not (model_dir / "training.json").is_file():
        raise HuajiaError(f"'{model_dir}' has no training.json; pass OUT/model from 'train base'")
    evaluations = []
    for setting, name in (("VAE round trip of oracle pictures", f"oracle-vae:{model_dir}"),
                          ("generation, 20 DDIM steps, CFG 5", str(model_dir))):
        scores = _quick_eval(name, eval_specs)
        evaluations.append({"setting": setting, **scores})
    console.print(f"model card: {write_model_card(model_dir, evaluations)}")


def _quick_eval(model: str, specs_per_task: int) -> dict:
    from huajia.evaluation.generators import make_generator
    from huajia.evaluation.prompts import shapes_eval_prompts
    from huajia.evaluation.shapes_eval import run_shapes_eval

    prompts = shapes_eval_prompts(specs_per_task)
    with progress_bar(f"ShapesEval {model}", len(prompts) * 2) as advance:
        result = run_shapes_eval(make_generator(model), prompts, 2, progress=advance)
    print_shapes_result(result)
    return {"overall": result.overall, "tasks": result.tasks}
