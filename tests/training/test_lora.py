import json

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from huajia.engine.engine import Engine
from huajia.engine.request import GenerationRequest, LoraSpec
from huajia.errors import HuajiaError
from huajia.training.lora import LoraRecipe, pixel_weights, train_lora
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
                        conv_alpha=2, prior_target="base", lr_scheduler="cosine",
                        lr_warmup_steps=1, new_words=("hexagon", "六边形"), new_word_lr=1e-2)
    return train_lora(recipe), recipe


def test_reg_images_as_their_own_target(sd_dir, tmp_path):
    write_dataset(tmp_path / "data", 2, seed=1, workers=1, side=64)
    recipe = LoraRecipe(data=str(tmp_path / "data"), out=str(tmp_path / "out"), model=str(sd_dir),
                        rank=2, steps=2, batch=2, sample_every=0, reg_data=str(tmp_path / "data"),
                        conv_rank=0, train_text_encoder=False)
    with safe_open(train_lora(recipe), "pt") as handle:
        assert handle.metadata()["huajia_prior_target"] == "images"


def test_file_metadata_samples_and_loss_curve(trained):
    path, recipe = trained
    with safe_open(path, "pt") as handle:
        meta = handle.metadata()
        keys = list(handle.keys())
    assert meta["ss_network_dim"] == "4" and meta["ss_steps"] == "4"
    assert meta["ss_num_train_images"] == "6" and meta["ss_train_text_encoder"] == "True"
    assert meta["ss_num_reg_images"] == "4" and meta["ss_prior_loss_weight"] == "0.5"
    assert meta["huajia_prior_target"] == "base"
    assert any(k.startswith("unet.") and "to_q" in k for k in keys)
    assert any(k.startswith("unet.") and "conv1" in k for k in keys)
    assert meta["ss_conv_dim"] == "2"
    assert any(k.startswith("text_encoder.") for k in keys)
    out = path.parent
    assert (out / "loss.png").exists() and (out / "samples" / "step_00004.png").exists()
    assert json.loads((out / "training.json").read_text())["steps"] == 4


def test_cosine_schedule_decays_to_zero_and_is_checkpointed(trained):
    import torch

    path, recipe = trained
    with safe_open(path, "pt") as handle:
        assert handle.metadata()["ss_lr_scheduler"] == "cosine"
    state = torch.load(path.parent / "checkpoints" / "lora.pt", weights_only=False)
    assert state["schedule"]["last_epoch"] == recipe.steps
    assert all(group["lr"] == pytest.approx(0.0, abs=1e-12)
               for group in state["optimizer"]["param_groups"])
    with pytest.raises(HuajiaError, match="lr scheduler 'polynomial-ish'"):
        LoraRecipe(data="d", out="o", lr_scheduler="polynomial-ish")


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


def test_new_words_load_in_plain_diffusers(trained, sd_dir):
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file

    from huajia.engine.lora import embeddings_path, read_new_words

    emb = embeddings_path(trained[0].parent)
    assert emb == trained[0].with_name("pytorch_lora_weights_emb.safetensors")
    words, vectors = read_new_words(trained[0])
    assert words == ("hexagon", "六边形")
    pipe = StableDiffusionPipeline.from_pretrained(sd_dir)
    before = len(pipe.tokenizer)
    pipe.load_textual_inversion(load_file(emb)["clip_l"], token=list(words))
    assert len(pipe.tokenizer) == before + 2
    hexagon = pipe.tokenizer("hexagon", add_special_tokens=False).input_ids
    assert hexagon == [before]
    table = pipe.text_encoder.get_input_embeddings().weight
    assert torch_equal(table[before:], vectors)


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a.detach().float(), b.float()))


def test_new_words_train_only_their_own_rows(sd_dir):
    import torch

    from huajia.training.new_words import NewWords

    pipe = Engine(str(sd_dir)).pipe
    old = pipe.text_encoder.get_input_embeddings().weight.detach().clone()
    words = NewWords(pipe, ("hexagon",))
    optimizer = torch.optim.AdamW(words.parameters(), lr=0.1, weight_decay=0.5)
    ids = pipe.tokenizer(["a red hexagon"], padding="max_length", return_tensors="pt").input_ids
    pipe.text_encoder(ids)[0].square().mean().backward()
    optimizer.step()
    words.restore_old_rows()
    table = pipe.text_encoder.get_input_embeddings().weight
    assert torch.equal(table[:len(old)], old)
    assert not torch.equal(table[len(old)], words.frozen[len(old)])
    with pytest.raises(HuajiaError, match="new words must be new"):
        NewWords(pipe, ("hexagon",))


def test_engine_loads_new_words_only_with_their_lora(trained, sd_dir):
    engine = Engine(str(sd_dir))
    size = len(engine.pipe.tokenizer)

    def encoded(*loras):
        engine.activate_loras(loras)
        return engine.prompt_kwargs("a red hexagon", "")["prompt_embeds"]

    plain = encoded()
    taught = encoded(LoraSpec(str(trained[0])))
    assert engine.new_words == ("hexagon", "六边形")
    assert len(engine.pipe.tokenizer) == size + 2
    assert not torch_equal(plain, taught)
    assert torch_equal(encoded(), plain) and len(engine.pipe.tokenizer) == size
    assert engine.new_words == ()


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


def test_base_prior_target_is_the_model_with_adapters_off(sd_dir):
    import torch
    from peft import LoraConfig

    from huajia.training.lora import LoraRun

    recipe = LoraRecipe(data="x", out="y", model=str(sd_dir), train_text_encoder=True)
    run = LoraRun(Engine(str(sd_dir)), recipe)
    pipe, captions = run.pipe, ["a red circle"]
    noisy, t = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([500])
    with torch.no_grad():
        plain = run.predict(pipe.unet, noisy, t, captions)
    pipe.unet.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=["to_q", "to_k", "to_v"]))
    pipe.text_encoder.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=["q_proj"]))
    with torch.no_grad():
        for name, param in [*pipe.unet.named_parameters(), *pipe.text_encoder.named_parameters()]:
            if "lora_B" in name:
                param.normal_()
        adapted = run.predict(pipe.unet, noisy, t, captions)
    assert not torch.allclose(adapted, plain)
    assert torch.allclose(run.base_prediction(noisy, t, captions), plain, atol=1e-6)
    with torch.no_grad():  # switched back on afterwards
        assert torch.allclose(run.predict(pipe.unet, noisy, t, captions), adapted)


def test_unknown_prior_target_is_refused():
    with pytest.raises(HuajiaError, match="prior target"):
        LoraRecipe(data="d", out="o", prior_target="teacher")


def test_new_words_can_start_from_a_known_word(sd_dir):
    from huajia.training.new_words import NewWords

    pipe = Engine(str(sd_dir)).pipe
    circle = pipe.tokenizer("circle", add_special_tokens=False).input_ids
    words = NewWords(pipe, ("hexagon", "六边形"), init_word="circle")
    table = words.table()
    assert torch_equal(table[words.ids[0]], table[circle].mean(dim=0))
    assert torch_equal(table[words.ids[1]], table[words.ids[0]])


def _weights(path) -> dict:
    from safetensors.torch import load_file

    return load_file(path)


def _masked_copy(folder, out):
    """``folder`` with an alpha mask on the left half of every picture."""
    import shutil

    shutil.copytree(folder, out)
    for image_path in (out / "images").iterdir():
        image = Image.open(image_path).convert("RGBA")
        alpha = np.zeros(image.size[::-1], np.uint8)
        alpha[:, : image.size[0] // 2] = 255
        image.putalpha(Image.fromarray(alpha))
        image.save(image_path)


def test_masked_loss_weighs_the_pixels_the_alpha_channel_marks(sd_dir, tmp_path):
    write_dataset(tmp_path / "data", 4, seed=1, workers=1, side=64)
    _masked_copy(tmp_path / "data", tmp_path / "masked")

    def train(data: str, mask_weight: float) -> dict:
        out = tmp_path / f"{data}-{mask_weight}"
        recipe = LoraRecipe(data=str(tmp_path / data), out=str(out), model=str(sd_dir), rank=2,
                            steps=2, batch=2, sample_every=0, mask_weight=mask_weight,
                            conv_rank=0, train_text_encoder=False)
        return _weights(train_lora(recipe))

    plain = train("data", 1.0)
    with pytest.raises(HuajiaError, match="needs alpha masks"):  # it would change nothing
        train("data", 8.0)
    unweighted, weighted = train("masked", 1.0), train("masked", 8.0)
    # mask weight 1: the alpha channel changes nothing
    assert all(torch_equal(v, unweighted[k]) for k, v in plain.items())
    assert not all(torch_equal(v, weighted[k]) for k, v in plain.items())


def test_pixel_weights_keep_the_loss_scale():
    import torch

    masks = torch.zeros(2, 1, 4, 4)
    masks[0, :, :1] = 1.0  # a quarter of the first picture
    weights = pixel_weights(masks, 7.0)
    assert weights.mean(dim=(1, 2, 3)).tolist() == pytest.approx([1.0, 1.0])
    assert (weights[0, 0, 0, 0] / weights[0, 0, 3, 3]).item() == pytest.approx(7.0)
    assert torch.equal(weights[1], torch.ones(1, 4, 4))
    with pytest.raises(HuajiaError, match="mask weight"):
        LoraRecipe(data="d", out="o", mask_weight=0.5)


def test_ema_saves_the_average_of_the_steps(sd_dir, tmp_path):
    import torch

    write_dataset(tmp_path / "data", 4, seed=1, workers=1, side=64)

    def train(ema_decay: float):
        out = tmp_path / f"ema-{ema_decay}"
        recipe = LoraRecipe(data=str(tmp_path / "data"), out=str(out), model=str(sd_dir),
                            rank=2, steps=3, batch=2, sample_every=3, lr=1e-2,
                            ema_decay=ema_decay)
        path = train_lora(recipe)
        return _weights(path), torch.load(out / "checkpoints" / "lora.pt", weights_only=False)

    last, state = train(0.0)
    average, ema_state = train(0.9)
    assert "ema" not in state and len(ema_state["ema"]) > 0  # resumable
    lora_b = [k for k in last if "lora_B" in k]
    # same seed, same steps: only the averaging differs, and it lags behind the last step
    assert lora_b and all(average[k].norm() < last[k].norm() for k in lora_b)
    with safe_open(tmp_path / "ema-0.9" / "pytorch_lora_weights.safetensors", "pt") as handle:
        assert handle.metadata()["huajia_ema_decay"] == "0.9"



def test_each_new_word_can_start_from_its_own_known_word(sd_dir):
    from huajia.training.new_words import NewWords, starting_words

    pipe = Engine(str(sd_dir)).pipe
    words = NewWords(pipe, ("hexagon", "hexagons"), init_word="circle, square")
    table = words.table()
    for token_id, start in zip(words.ids, ("circle", "square"), strict=True):
        pieces = pipe.tokenizer(start, add_special_tokens=False).input_ids
        assert torch_equal(table[token_id], table[pieces].mean(dim=0))
    assert starting_words(("a", "b"), None) == ["a", "b"]
    with pytest.raises(HuajiaError, match="names 3 words for 2 new words"):
        starting_words(("a", "b"), "x,y,z")


def test_cli_defaults_are_the_recipe_defaults_and_a_recipe_file_fills_the_rest(tmp_path):
    import dataclasses

    import typer

    from huajia.cli import app
    from huajia.training.lora import recipe_from_file

    command = typer.main.get_command(app).commands["train"].commands["lora"]
    defaults = {f.name: f.default for f in dataclasses.fields(LoraRecipe)}
    for option in command.params:
        name = option.name
        if name in defaults and defaults[name] is not dataclasses.MISSING:
            got = tuple(option.default) if isinstance(defaults[name], tuple) else option.default
            assert got == defaults[name], name
    path = tmp_path / "lora.yaml"
    path.write_text("ema_decay: 0.99\nnew_words: [hexagon, 六边形]\nrank: 8\n", encoding="utf-8")
    recipe = recipe_from_file(path, data="d", out="o", rank=4)
    assert (recipe.ema_decay, recipe.new_words, recipe.rank) == (0.99, ("hexagon", "六边形"), 4)
    path.write_text("emma_decay: 0.9\n", encoding="utf-8")
    with pytest.raises(HuajiaError, match="unknown fields emma_decay"):
        recipe_from_file(path, data="d", out="o")
    with pytest.raises(TypeError):
        LoraRecipe("d", "o")  # keyword-only
