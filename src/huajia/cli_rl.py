"""``huajia train rl``: RL on critic rewards (GRPO, DPO, RAFT), then ShapesEval and the card.
Its options are ``RLRecipe``'s and ``CriticOptions``' (``vocabulary_options``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress

from huajia.cli_common import (
    PROGRESS_COLUMNS,
    Options,
    card_eval,
    console,
    stage_progress,
    vocabulary_options,
)
from huajia.errors import HuajiaError
from huajia.thinking.options import CriticOptions
from huajia.training.critic_recipe import CriticRecipe
from huajia.training.rl.recipe import RLRecipe


@vocabulary_options(recipe=RLRecipe, critics=Options(CriticOptions, skip=("critic",)))
def train_rl_command(
    out: Path = typer.Option(..., "--out", help="Run folder: OUT/model (or OUT/lora), OUT/rl.json, "
                             "OUT/reward_curve.png, OUT/checkpoints."),
    full: bool = typer.Option(False, "--full", help="Train the whole UNet (the default)."),
    resume: bool = typer.Option(False, "--resume", help="Continue OUT's run (same settings)."),
    eval_specs: int = typer.Option(5, help="ShapesEval specs per task for the card (0: skip)."),
    *,
    recipe: RLRecipe,
    critics: CriticOptions,
) -> None:
    """Improve a model with RL on a critic's rewards (CUDA when present), then measure it."""

    from huajia.training.rl.prompts import read_prompt_file
    from huajia.training.rl.run import check_policy, load_rl_pipeline, train_rl
    from huajia.world.dataset import prepare_out_dir

    if full and recipe.lora_rank:
        raise HuajiaError("--full and --lora-rank exclude each other; pick one")
    critic = replace(critics, critic=recipe.critic).make()
    if recipe.prompt_file:
        read_prompt_file(Path(recipe.prompt_file), world_words=recipe.critic == "shapes")
    pipe = load_rl_pipeline(recipe.model)
    check_policy(recipe, pipe)
    prepare_out_dir(out)
    method = recipe.method.upper()
    with Progress(*PROGRESS_COLUMNS, console=Console(stderr=True)) as bar:
        task = bar.add_task(method, total=recipe.steps)

        def show(done: int, total: int, record: dict) -> None:
            change = (f"KL {record['kl']:.2e}" if "kl" in record else f"drift {record['drift']:.2e}")
            bar.update(task, completed=done, description=(
                f"{method} reward {record['reward']:.3f} pass {record['pass_rate']:.2f} {change}"))

        result = train_rl(recipe, out, resume=resume, critic=critic, pipe=pipe, progress=show)
    console.print(f"{result.model_dir or result.lora}\n{out / 'reward_curve.png'}")
    if eval_specs > 0 and recipe.critic == "shapes" and not recipe.prompt_file:
        from huajia.evaluation.shapes_eval import CARD_SETTING
        from huajia.training.model_card import write_rl_card
        from huajia.training.rl.export import rl_card_record

        model, loras = ((str(result.model_dir), ()) if result.model_dir else
                        (recipe.model, (str(result.lora),)))
        evaluation = {"setting": CARD_SETTING, **card_eval(model, eval_specs, loras)}
        folder = result.model_dir or result.lora.parent
        console.print(f"card: {write_rl_card(folder, rl_card_record(result.out), [evaluation])}")


@vocabulary_options(recipe=CriticRecipe)
def train_critic_command(
    out: Path = typer.Option(..., "--out", help="Folder for the critic (network, critic.json, card)."),
    *,
    recipe: CriticRecipe,
) -> None:
    """Distil the differentiable critic of `train rl --method draft` from the verifier's
    verdicts on the model's own pictures and oracle renders; its card gives the held-out
    agreement with the verifier."""
    import torch

    from huajia.engine.loading import load_pipeline, resolve_model
    from huajia.training.critic import train_critic
    from huajia.training.rl.policy import check_pipeline
    from huajia.world.dataset import prepare_out_dir

    pipe = load_pipeline(resolve_model(recipe.model), torch.device("cpu"), torch.float32).to(torch.float32)
    check_pipeline(pipe)
    prepare_out_dir(out)
    with stage_progress() as progress:
        record = train_critic(recipe, out, pipe=pipe, progress=progress)
    a = record["agreement"]
    console.print(f"{out}\nheld-out agreement with the verifier ({a['pictures']} pictures): "
                  f"r {a['pearson_r']:.3f}, pass/fail {a['pass_agreement']:.3f}, "
                  f"per constraint {a['constraint_agreement']:.3f}")
