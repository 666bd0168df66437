"""``huajia train rl``: RL on critic rewards (GRPO, DPO, RAFT), then ShapesEval and the card."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress

from huajia.cli_common import PROGRESS_COLUMNS, console, print_shapes_result
from huajia.errors import HuajiaError


def train_rl_command(
    out: Path = typer.Option(..., "--out", help="Run folder: OUT/model (or OUT/lora), OUT/rl.json, "
                             "OUT/reward_curve.png, OUT/checkpoints."),
    model: str = typer.Option("embedded", help="Starting pipeline: 'embedded' or a diffusers folder."),
    reward: str = typer.Option("shapes", help="Critic that scores each picture: shapes, clip or vlm."),
    method: str = typer.Option("grpo", help="grpo (policy gradient), dpo (Diffusion-DPO) or raft."),
    steps: int = typer.Option(200, help="RL steps (one rollout and update each)."),
    minutes: float = typer.Option(None, help="Also stop after this many CPU minutes."),
    wall_minutes: float = typer.Option(None, help="Also stop after this many minutes of wall time "
                                       "(the bound to use on a GPU)."),
    snapshot_every: int = typer.Option(None, help="Keep the UNet every K steps in OUT/snapshots "
                                       "(to measure the run's curve afterwards)."),
    micro_batch: int = typer.Option(32, help="Samples per forward pass of an update (a GPU takes "
                                    "hundreds)."),
    group_size: int = typer.Option(8, help="Pictures per prompt (compared with each other)."),
    prompts_per_step: int = typer.Option(4, help="Prompts per RL step."),
    prompts: Path = typer.Option(None, "--prompts", help="Prompt file, one per line (default: the "
                                 "world's training templates, GenEval's task mix)."),
    task_weights: str = typer.Option(None, help="Weigh the world's tasks, e.g. position=3 (others 1)."),
    anchor: float = typer.Option(0.0, help="GRPO + shapes: weight of a supervised loss on oracle "
                                 "renders of training scenes (keeps what the base generalised)."),
    anchor_batch: int = typer.Option(16, help="--anchor: oracle scenes per optimizer step."),
    lora_rank: int = typer.Option(None, help="Train a LoRA of this rank instead of the whole UNet."),
    full: bool = typer.Option(False, "--full", help="Train the whole UNet (the default)."),
    kl: float = typer.Option(0.05, help="KL weight to the starting model (GRPO)."),
    lr: float = typer.Option(1e-5, help="Learning rate."),
    sde_window: int = typer.Option(10, help="GRPO: the first N sampler steps are stochastic."),
    train_timesteps: int = typer.Option(4, help="GRPO: steps trained per picture; DPO/RAFT: "
                                        "noise draws per picture."),
    eta: float = typer.Option(1.0, help="GRPO: DDIM η of the stochastic steps."),
    resume: bool = typer.Option(False, "--resume", help="Continue OUT's run (same settings)."),
    seed: int = typer.Option(0),
    eval_specs: int = typer.Option(5, help="ShapesEval specs per task for the card (0: skip)."),
    clip_model: str = typer.Option(None, help="--reward clip: a local CLIP checkpoint."),
    vlm_url: str = typer.Option(None, help="--reward vlm: OpenAI-compatible base URL."),
    vlm_model: str = typer.Option(None, help="--reward vlm: model name."),
    vlm_key: str = typer.Option(None, help="--reward vlm: API key."),
) -> None:
    """Improve a model with RL on a critic's rewards (CUDA when present), then measure it."""
    import torch

    from huajia.engine.loading import load_pipeline, pick_device, resolve_model
    from huajia.thinking.critics import make_critic
    from huajia.training.base import training_device
    from huajia.training.rl.policy import check_pipeline
    from huajia.training.rl.prompts import read_prompt_file
    from huajia.training.rl.run import RLRecipe, train_rl
    from huajia.world.dataset import prepare_out_dir

    if full and lora_rank:
        raise HuajiaError("--full and --lora-rank exclude each other; pick one")
    recipe = RLRecipe(model=model, reward=reward, method=method, steps=steps, minutes=minutes,
                      wall_minutes=wall_minutes, snapshot_every=snapshot_every, micro_batch=micro_batch,
                      group_size=group_size, prompts_per_step=prompts_per_step, lr=lr, kl=kl,
                      sde_window=sde_window, train_timesteps=train_timesteps, eta=eta,
                      lora_rank=lora_rank, seed=seed, prompt_file=str(prompts) if prompts else None,
                      task_weights=task_weights, anchor=anchor, anchor_batch=anchor_batch)
    critic = make_critic(reward, clip_model=clip_model, vlm_url=vlm_url, vlm_model=vlm_model,
                         vlm_key=vlm_key)
    if prompts:
        read_prompt_file(prompts, world_words=reward == "shapes")
    source = resolve_model(model)
    device = training_device()
    pipe = load_pipeline(source, device, torch.float32 if device.type == "cpu" else pick_device()[1])
    pipe = pipe.to(torch.float32)  # RL updates are small: full precision keeps them
    check_pipeline(pipe)
    prepare_out_dir(out)
    with Progress(*PROGRESS_COLUMNS, console=Console(stderr=True)) as bar:
        task = bar.add_task(method.upper(), total=steps)

        def show(done: int, total: int, record: dict) -> None:
            change = (f"KL {record['kl']:.2e}" if "kl" in record else f"drift {record['drift']:.2e}")
            bar.update(task, completed=done, description=(
                f"{method.upper()} reward {record['reward']:.3f} pass {record['pass_rate']:.2f} {change}"))

        result = train_rl(recipe, out, resume=resume, critic=critic, pipe=pipe, progress=show)
    console.print(f"{result.model_dir or result.lora}\n{out / 'reward_curve.png'}")
    if eval_specs > 0 and reward == "shapes" and not prompts:
        _evaluate(result, recipe, eval_specs)


def _evaluate(result, recipe, specs_per_task: int) -> None:
    from huajia.cli_common import progress_bar
    from huajia.engine.engine import Engine
    from huajia.engine.request import LoraSpec
    from huajia.evaluation.generators import EngineGenerator
    from huajia.evaluation.prompts import shapes_eval_prompts
    from huajia.evaluation.shapes_eval import run_shapes_eval
    from huajia.training.rl.export import rl_card_record, write_card
    from huajia.world.parser import unknown_words

    if result.model_dir:
        generator = EngineGenerator(Engine(str(result.model_dir), vocabulary=unknown_words))
    else:
        generator = EngineGenerator(Engine(recipe.model, vocabulary=unknown_words),
                                    loras=(LoraSpec(str(result.lora)),))
    prompts = shapes_eval_prompts(specs_per_task)
    with progress_bar("ShapesEval", len(prompts) * 2) as advance:
        scores = run_shapes_eval(generator, prompts, 2, progress=advance)
    print_shapes_result(scores)
    folder = result.model_dir or result.lora.parent
    evaluation = {"setting": "generation, 20 DDIM steps, CFG 5", "overall": scores.overall,
                  "tasks": scores.tasks}
    console.print(f"card: {write_card(folder, rl_card_record(result.out), [evaluation])}")
