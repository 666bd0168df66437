"""scripts/gpu_rl.py, the GPU job, run end to end on the CPU with a tiny random-weight pipeline."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from huajia.errors import HuajiaError
from huajia.training.rl.snapshots import UNET_FILE

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_rl.py"


@pytest.fixture(scope="module")
def gpu_rl():
    spec = importlib.util.spec_from_file_location("gpu_rl", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _main(module, monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["gpu_rl.py", *map(str, args)])
    module.main()


def test_the_gpu_job_trains_validates_and_returns_files_the_cpu_assembles(gpu_rl, sd_dir, tmp_path,
                                                                           monkeypatch):
    results = tmp_path / "out"
    _main(gpu_rl, monkeypatch, "run", "--model", sd_dir, "--results", results, "--work", tmp_path / "w",
          "--steps", 3, "--prompts-per-step", 1, "--group-size", 2, "--snapshot-every", 1,
          "--val-specs", 1, "--val-images", 1, "--eval-minutes", 10)
    record = json.loads((results / "gpu_rl.json").read_text())
    assert record["recipe"]["method"] == "dpo"  # the default: the best method at equal CPU minutes
    assert [c["step"] for c in record["validation"]] == [0, 1, 2, 3]  # the base, then each kept UNet
    assert record["validation_seed"] not in (2025, 7)  # neither judged set chooses the point kept
    assert len(record["history"]) == 3 and record["recipe"]["micro_batch"] == 512
    files = sorted(p.name for p in results.iterdir())
    assert len(files) <= 8 and all(p.stat().st_size <= 16 * 2**20 for p in results.iterdir())
    assert {"gpu_rl.json", "reward_curve.png", "validation_curve.png"} <= set(files)
    best = record["kept"]["best"]
    _main(gpu_rl, monkeypatch, "assemble", results, "--to", tmp_path / "model")
    kept = load_file(tmp_path / "model" / UNET_FILE)
    snapshot = load_file(tmp_path / "w" / "snapshots" / f"step_{best:05d}.safetensors")
    assert all(torch.equal(kept[k], snapshot[k].half().to(kept[k].dtype)) for k in kept)
    with pytest.raises(HuajiaError, match="not the model the GPU run started from"):
        _main(gpu_rl, monkeypatch, "assemble", results, "--to", tmp_path / "m2", "--base", "embedded")
