"""Mixed precision on the CPU: bf16 autocast trains a LoRA and an RL step with fp32 weights
(the numbers move, so autocast was on); fp16 is refused in one line before any work."""

import json

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from safetensors.torch import load_file
from tests.training.test_lora_families import _recipe, pictures  # noqa: F401 - the fixture
from tests.training.test_rl import BrightnessCritic
from tests.training.test_rl_families import _pipe

from huajia.errors import HuajiaError
from huajia.training.lora import train_lora
from huajia.training.precision import autocast
from huajia.training.rl.recipe import RLRecipe
from huajia.training.rl.run import train_rl


def test_bf16_autocast_runs_matmuls_in_bf16_and_fp32_runs_none():
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast("bf16", "cpu"):
        assert (a @ b).dtype == torch.bfloat16
    with autocast("fp32", "cpu"):
        assert (a @ b).dtype == torch.float32


def test_a_bf16_lora_keeps_fp32_weights_and_differs_from_fp32_only_by_rounding(family_dirs, pictures,  # noqa: F811
                                                                               tmp_path):
    runs = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        path = train_lora(_recipe("sd15", family_dirs, pictures, out, precision=precision))
        runs[precision] = (load_file(path), json.loads((out / "training.json").read_text())["final_loss"])
    weights, loss = runs["bf16"]
    assert all(t.dtype == torch.float32 for t in weights.values()) and np.isfinite(loss)
    assert loss != runs["fp32"][1] and abs(loss / runs["fp32"][1] - 1) < 0.2
    changed = [float((weights[k] - runs["fp32"][0][k]).abs().max()) for k in weights]
    assert max(changed) > 0


def test_fp16_on_a_cpu_is_refused_in_one_line_before_any_work(family_dirs, pictures, tmp_path):  # noqa: F811
    if torch.cuda.is_available():
        pytest.skip("a GPU trains in fp16")
    with pytest.raises(HuajiaError, match="--precision fp16 needs a GPU"):
        train_lora(_recipe("sd15", family_dirs, pictures, tmp_path / "out", precision="fp16"))
    assert not (tmp_path / "out").exists()
    with pytest.raises(HuajiaError, match="fp16"):
        RLRecipe(precision="fp16")


def test_a_bf16_grpo_step_on_a_flow_family_trains_fp32_weights(family_dirs, tmp_path):
    weights = {}
    for precision in ("fp32", "bf16"):
        recipe = RLRecipe(model=str(family_dirs["sd3"]), method="grpo", steps=1, prompts_per_step=1,
                          group_size=2, sample_steps=3, sde_window=2, train_timesteps=1, eta=0.7,
                          lr=3e-2, resolution=64, precision=precision)
        result = train_rl(recipe, tmp_path / precision, critic=BrightnessCritic(),
                          pipe=_pipe("sd3", family_dirs["sd3"]))
        assert np.isfinite(result.history[0]["kl"]) and result.history[0]["trained_pairs"] == 2
        weights[precision] = DiffusionPipeline.from_pretrained(result.model_dir).transformer.state_dict()
    assert all(v.dtype == torch.float32 for v in weights["bf16"].values())
    assert any(not torch.equal(weights["bf16"][k], weights["fp32"][k]) for k in weights["fp32"])
