import json

import numpy as np
import pytest
from safetensors import safe_open

from huajia.engine.engine import Engine
from huajia.engine.request import GenerationRequest, LoraSpec
from huajia.errors import HuajiaError
from huajia.training.lora import LoraRecipe, train_lora
from huajia.world.dataset import write_dataset


@pytest.fixture(scope="module")
def trained(sd_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("lora")
    write_dataset(root / "data", 6, seed=1, workers=1, side=64)
    write_dataset(root / "reg", 4, seed=2, workers=1, side=64)
    recipe = LoraRecipe(data=str(root / "data"), out=str(root / "out"), model=str(sd_dir),
                        rank=4, alpha=4, steps=4, batch=2, sample_every=2,
                        sample_prompts=("a red circle",), train_text_encoder=True,
                        reg_data=str(root / "reg"), prior_loss_weight=0.5, conv_rank=2,
                        conv_alpha=2)
    return train_lora(recipe), recipe


def test_file_metadata_samples_and_loss_curve(trained):
    path, recipe = trained
    with safe_open(path, "pt") as handle:
        meta = handle.metadata()
        keys = list(handle.keys())
    assert meta["ss_network_dim"] == "4" and meta["ss_steps"] == "4"
    assert meta["ss_num_train_images"] == "6" and meta["ss_train_text_encoder"] == "True"
    assert meta["ss_num_reg_images"] == "4" and meta["ss_prior_loss_weight"] == "0.5"
    assert any(k.startswith("unet.") and "to_q" in k for k in keys)
    assert any(k.startswith("unet.") and "conv1" in k for k in keys)
    assert meta["ss_conv_dim"] == "2"
    assert any(k.startswith("text_encoder.") for k in keys)
    out = path.parent
    assert (out / "loss.png").exists() and (out / "samples" / "step_00004.png").exists()
    assert json.loads((out / "training.json").read_text())["steps"] == 4


def test_plain_diffusers_loads_it(trained, sd_dir):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(sd_dir)
    pipe.load_lora_weights(trained[0].parent)
    assert pipe.get_active_adapters()
    with safe_open(trained[0], "pt") as handle:
        in_file = {k.split(".", 1)[1].removesuffix(".lora_A.weight")
                   for k in handle.keys() if k.endswith("lora_A.weight")}
    loaded = {f"{prefix}.{name}" for prefix in ("unet", "text_encoder")
              for name, module in getattr(pipe, prefix).named_modules()
              if hasattr(module, "lora_A") and module.lora_A}
    loaded = {name.removeprefix("unet.").removeprefix("text_encoder.") for name in loaded}
    assert in_file == loaded  # every layer, attention and conv, none dropped
    conv = pipe.unet.down_blocks[0].resnets[0].conv1
    assert conv.lora_A[pipe.get_active_adapters()[0]].weight.shape[0] == 2  # LoCon rank


def _loud_copy(path, out):
    """The tiny 4-step LoRA barely moves a picture: the same file with strong up-weights."""
    import torch
    from safetensors.torch import save_file

    with safe_open(path, "pt") as handle:
        meta = handle.metadata()
        generator = torch.Generator().manual_seed(0)
        tensors = {k: (torch.randn(handle.get_tensor(k).shape, generator=generator)
                       if ".up." in k or "lora_B" in k else handle.get_tensor(k))
                   for k in handle.keys()}
    save_file(tensors, out, metadata=meta)
    return out


def test_lora_is_on_exactly_when_a_request_asks_for_it(trained, sd_dir, tmp_path):
    loud = str(_loud_copy(trained[0], tmp_path / "loud.safetensors"))
    engine = Engine(str(sd_dir))

    def paint(*loras):
        request = GenerationRequest("a red circle", seed=2, steps=2, width=64, height=64,
                                    loras=loras)
        return np.asarray(engine.generate(request).images[0], dtype=int)

    base, with_lora = paint(), paint(LoraSpec(loud, 1.0))
    assert np.abs(base - with_lora).mean() > 1
    assert np.array_equal(paint(), base)  # switched off for a request without it
    assert np.array_equal(paint(LoraSpec(loud, 1.0)), with_lora)  # and on again
    assert not np.array_equal(paint(LoraSpec(loud, 0.3)), with_lora)  # the scale counts


def test_engine_applies_lora_with_scale_and_resume(trained, sd_dir):
    path, recipe = trained
    engine = Engine(str(sd_dir))
    request = GenerationRequest("a red circle", seed=2, steps=2, width=64, height=64)
    base = np.asarray(engine.generate(request).images[0], dtype=int)
    scaled = engine.generate(GenerationRequest("a red circle", seed=2, steps=2, width=64,
                                               height=64, loras=(LoraSpec(str(path), 0.8),)))
    assert "Lora" in scaled.infotexts[0]
    again = train_lora(LoraRecipe(**{**recipe.__dict__, "steps": 6}), resume=True)
    with safe_open(again, "pt") as handle:
        assert handle.metadata()["ss_steps"] == "6"
    assert base.shape == np.asarray(scaled.images[0]).shape
    assert LoraSpec.parse("a/b.safetensors:0.5") == LoraSpec("a/b.safetensors", 0.5)
    assert LoraSpec.parse("C:/x/y.safetensors") == LoraSpec("C:/x/y.safetensors")
    with pytest.raises(HuajiaError, match="precision"):
        LoraRecipe(data="x", out="y", precision="fp8")
