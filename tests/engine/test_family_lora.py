"""LoRA files on every model family (tests/family_fixtures): a LoRA made for the family changes
the picture, its scale matters, several work at once, and a picture without it afterwards is
bit-identical to one painted before it was ever loaded. kohya/A1111 files load on SD 1.5 and
SDXL, DiffSynth-Studio's Kolors checkpoints on Kolors, peft's bare state dicts and folders
where diffusers has no loader (PixArt-Σ); a file that is not a LoRA, or is another model's, is
one line naming it, before anything is painted, and leaves the model as it was."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from tests.family_fixtures import FAMILIES, build

from huajia import Engine, GenerationRequest
from huajia.engine.request import LoraSpec
from huajia.errors import HuajiaError

UNET_FAMILIES = ("sd15", "sdxl", "kolors")


@pytest.fixture(scope="module")
def engines(family_dirs):
    """One engine per family, made when first asked for (each fixture loaded once)."""
    made: dict[str, Engine] = {}

    def get(name: str) -> Engine:
        if name not in made:
            made[name] = Engine(str(family_dirs[name]))
        return made[name]

    return get


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("family-loras")


def paint(engine: Engine, *loras: tuple) -> np.ndarray:
    request = GenerationRequest("a red circle", seed=1, steps=2, width=64, height=64,
                                loras=tuple(LoraSpec(str(path), scale) for path, scale in loras))
    return np.asarray(engine.generate(request).images[0]).astype(np.int16)


def adapted(name: str, seed: int, rank: int = 2, targets=None, text_encoders: bool = False):
    """Family ``name``'s fixture with a peft LoRA on its denoiser (the family's own
    ``lora_targets``), its up-weights random (``seed``) so it changes the picture; with
    ``text_encoders`` one on its CLIP text encoders too. Returns (pipe, family, states) with
    the peft state dict of each adapted component."""
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict

    from huajia.engine import families

    pipe = build(name)
    family = families.detect(pipe)
    torch.manual_seed(seed)
    components = {family.denoiser_name: (family.denoiser(pipe), targets or family.lora_targets)}
    if text_encoders:
        for te in family.lora_text_encoders:
            components[te] = (getattr(pipe, te), ["q_proj", "k_proj", "v_proj", "out_proj"])
    states = {}
    for component, (model, target) in components.items():
        inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, target_modules=list(target)),
                                model)
        with torch.no_grad():
            for param_name, param in model.named_parameters():
                if "lora_B" in param_name:
                    param.normal_(generator=torch.Generator().manual_seed(seed))
        states[component] = get_peft_model_state_dict(model)
    return pipe, family, states


def save_diffusers(pipe, states: dict, folder):
    """diffusers' format where the pipeline class has ``save_lora_weights``, else (no loader)
    the denoiser's bare peft state dict."""
    if hasattr(type(pipe), "save_lora_weights"):
        type(pipe).save_lora_weights(folder, **{f"{c}_lora_layers": s for c, s in states.items()})
        return folder / "pytorch_lora_weights.safetensors"
    folder.mkdir(parents=True)
    [state] = states.values()
    save_file(state, str(folder / "lora.safetensors"))
    return folder / "lora.safetensors"


@pytest.fixture(scope="module")
def loras(root):
    """Two LoRAs per family (seeds 0 and 1), made when first asked for: {(name, seed): path}."""
    made = {}

    def get(name: str, seed: int = 0):
        if (name, seed) not in made:
            pipe, _, states = adapted(name, seed)
            made[name, seed] = save_diffusers(pipe, states, root / f"{name}-{seed}")
        return made[name, seed]

    return get


def one_line(error: pytest.ExceptionInfo, path) -> str:
    message = str(error.value)
    assert "\n" not in message and str(path) in message, message
    return message


@pytest.mark.parametrize("name", FAMILIES)
def test_a_lora_paints_at_its_scale_beside_others_and_comes_off(engines, loras, name):
    engine = engines(name)
    first, second = loras(name, 0), loras(name, 1)
    without = paint(engine)
    full = paint(engine, (first, 1.0))
    assert np.abs(full - without).mean() > 0.1, "the LoRA did not change the picture"
    half = paint(engine, (first, 0.5))
    assert not np.array_equal(half, full) and not np.array_equal(half, without)
    both = paint(engine, (first, 1.0), (second, 1.0))
    assert not np.array_equal(both, full)
    assert np.array_equal(paint(engine), without), "the picture after the LoRA is not as before"
    assert np.array_equal(paint(engine, (first, 1.0)), full)  # the kept file, at scale 1 again
    assert np.array_equal(paint(engine), without)


def test_family_lora_data_agrees_with_diffusers(engines):
    for name in FAMILIES:
        engine = engines(name)
        family, pipe = engine.family, engine.pipe
        if family.injects_loras(pipe):
            assert not hasattr(type(pipe), "load_lora_weights"), name
        else:  # the components diffusers' loader fills are the family's
            assert {family.denoiser_name, *family.lora_text_encoders} == \
                set(type(pipe)._lora_loadable_modules), name
        modules = [n for n, _ in family.denoiser(pipe).named_modules()]
        for target in family.lora_targets:
            assert any(n.endswith("." + target) for n in modules), (name, target)
        assert family.describe(pipe)["features"]["loras"]


def _sgm(module: str) -> str:
    """An SDXL UNet module as kohya's sd-scripts names it (the original SGM blocks) for the
    tiny fixture (one layer per down block: down block 1's attention is input block 3)."""
    fixed = {"down_blocks.1.attentions.0": "input_blocks.3.1", "mid_block.attentions.0":
             "middle_block.1", "up_blocks.0.attentions.0": "output_blocks.0.1",
             "up_blocks.0.attentions.1": "output_blocks.1.1"}
    for diffusers_name, sgm_name in fixed.items():
        if module.startswith(diffusers_name + "."):
            return sgm_name + module[len(diffusers_name):]
    raise AssertionError(module)


def kohya(states: dict, sdxl: bool) -> dict:
    """The LoRA as kohya's sd-scripts writes it: lora_unet_…/lora_te…, lora_down/lora_up,
    .alpha, text encoders by transformers' 4.x names (text_model.…)."""
    out = {}
    prefixes = {"unet": "lora_unet_", "text_encoder": "lora_te1_" if sdxl else "lora_te_",
                "text_encoder_2": "lora_te2_"}
    for component, state in states.items():
        for key, tensor in state.items():
            module, kind = key.rsplit(".", 2)[0], key.rsplit(".", 2)[1]
            if component == "unet" and sdxl:
                module = _sgm(module)
            elif component != "unet" and not module.startswith("text_model."):
                module = "text_model." + module  # transformers 5 flattened CLIPTextModel
            stem = prefixes[component] + module.replace(".", "_")
            out[f"{stem}.{'lora_down' if kind == 'lora_A' else 'lora_up'}.weight"] = tensor
            out[f"{stem}.alpha"] = torch.tensor(float(tensor.shape[0 if kind == "lora_A" else 1]))
    return out


@pytest.mark.parametrize("name", ["sd15", "sdxl"])
def test_a_kohya_file_paints_as_the_same_lora_in_diffusers_format(engines, root, name):
    pipe, _, states = adapted(name, 2, targets=("to_q", "to_k", "to_v", "to_out.0"),
                              text_encoders=True)
    reference = save_diffusers(pipe, states, root / f"{name}-te")
    file = root / f"{name}-kohya.safetensors"
    save_file(kohya(states, name == "sdxl"), str(file))
    engine = engines(name)
    without = paint(engine)
    painted = paint(engine, (file, 1.0))
    assert np.abs(painted - without).mean() > 0.1
    assert np.array_equal(painted, paint(engine, (reference, 1.0)))
    assert np.array_equal(paint(engine), without)


@pytest.mark.parametrize("name", [n for n in FAMILIES if n not in ("sd15", "sdxl")])
def test_kohya_names_load_on_every_family(engines, loras, root, name):
    """kohya-style names of the denoiser's modules (lora_transformer_…, lora_down/lora_up,
    .alpha), as OneTrainer and others write them: diffusers converts them for some families,
    huajia maps them for the rest; the picture is the same LoRA's in diffusers' format."""
    pipe, family, states = adapted(name, 0)
    [state] = states.values()
    prefix = "lora_unet_" if family.denoiser_name == "unet" else "lora_transformer_"
    file = root / f"{name}-kohya-names.safetensors"
    kohya_state = {}
    for key, tensor in state.items():
        module, kind, _ = key.rsplit(".", 2)
        stem = prefix + module.replace(".", "_")
        kohya_state[f"{stem}.{'lora_down' if kind == 'lora_A' else 'lora_up'}.weight"] = tensor
        kohya_state[f"{stem}.alpha"] = torch.tensor(2.0)  # the rank: scale 1
    save_file(kohya_state, str(file))
    engine = engines(name)
    assert np.array_equal(paint(engine, (file, 1.0)), paint(engine, (loras(name, 0), 1.0)))


# DiffSynth-Studio's SDXLUNet for the tiny Kolors fixture (one layer per down block; up blocks
# of two): its blocks in the order it runs them, as its from_diffusers converter lists them.
TINY_KOLORS_BLOCKS = [
    "ResnetBlock", "PushBlock", "DownSampler", "PushBlock",
    "ResnetBlock", "AttentionBlock", "PushBlock",
    "ResnetBlock", "AttentionBlock", "ResnetBlock",
    "PopBlock", "ResnetBlock", "AttentionBlock", "PopBlock", "ResnetBlock", "AttentionBlock",
    "UpSampler",
    "PopBlock", "ResnetBlock", "PopBlock", "ResnetBlock"]


def diffsynth_names(keys, block_types=TINY_KOLORS_BLOCKS) -> dict:
    """diffusers UNet names → DiffSynth's, numbered as DiffSynth's SDXLUNetStateDictConverter
    .from_diffusers numbers them (sorted names, one counter per block type)."""
    block_id = {"ResnetBlock": -1, "AttentionBlock": -1, "DownSampler": -1, "UpSampler": -1}
    last = dict.fromkeys(block_id, "")
    kinds = {"resnets": "ResnetBlock", "attentions": "AttentionBlock",
             "downsamplers": "DownSampler", "upsamplers": "UpSampler"}
    renamed = {}
    for key in sorted(keys):
        names = key.split(".")
        if names[0] == "mid_block":
            names.insert(1, "0")
        kind = kinds[names[2]]
        block = ".".join(names[:4])
        if block != last[kind]:
            block_id[kind] += 1
        last[kind] = block
        while block_types[block_id[kind]] != kind:
            block_id[kind] += 1
        names = ["blocks", str(block_id[kind])] + names[4:]
        if "to_out" in names:
            names.pop(names.index("to_out") + 1)
        renamed[key] = ".".join(names)
    return renamed


@pytest.mark.parametrize("name", ["kolors", "sdxl"])  # the tiny SDXL UNet has Kolors' blocks
def test_a_diffsynth_checkpoint_paints_as_its_recipe_says(engines, root, name):
    """The seed's workflow: DiffSynth-Studio's train_kolors_lora.py injects peft LoRAs on its
    own UNet (to_q, to_k, to_v, to_out) and its Lightning checkpoint holds only those, named
    blocks.N.… with peft's adapter name, no alpha. At rank 4 its default alpha (4) is scale 1:
    the checkpoint paints as the same LoRA saved by diffusers; the seed's alpha 2 is scale 0.5."""
    pipe, _, states = adapted(name, 3, rank=4, targets=("to_q", "to_k", "to_v", "to_out.0"))
    reference = save_diffusers(pipe, states, root / f"{name}-rank4")
    state = states["unet"]
    renamed = diffsynth_names({key.rsplit(".", 2)[0] for key in state})
    checkpoint = {}
    for key, tensor in state.items():
        module, kind, weight = key.rsplit(".", 2)
        checkpoint[f"{renamed[module]}.{kind}.default.{weight}"] = tensor
    assert "blocks.5.transformer_blocks.0.attn1.to_out.lora_A.default.weight" in checkpoint
    file = root / f"{name}-lightning_logs" / "epoch=0-step=500.ckpt"
    file.parent.mkdir()
    torch.save(checkpoint, file)
    engine = engines(name)
    without = paint(engine)
    painted = paint(engine, (file, 1.0))
    assert np.abs(painted - without).mean() > 0.1
    assert np.array_equal(painted, paint(engine, (reference, 1.0)))
    assert np.array_equal(paint(engine, (file, 0.5)), paint(engine, (reference, 0.5)))
    assert np.array_equal(paint(engine), without)


@pytest.mark.parametrize("name", ["sd15", "pixart_sigma"])
def test_peft_files_load_bare_or_as_a_peft_folder(engines, loras, root, name):
    """A bare ``get_peft_model_state_dict`` of the denoiser (what a plain peft training loop
    saves), and PeftModel's folder with its alpha in adapter_config.json (alpha 2 x rank: the
    picture of the same LoRA with its up-weights doubled)."""
    pipe, family, states = adapted(name, 0)
    [state] = states.values()
    bare = root / f"{name}-bare.safetensors"
    save_file(state, str(bare))
    engine = engines(name)
    reference = paint(engine, (loras(name, 0), 1.0))
    assert np.array_equal(paint(engine, (bare, 1.0)), reference)
    folder = root / f"{name}-peft"
    folder.mkdir()
    save_file({f"base_model.model.{k}": v for k, v in state.items()},
              str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["to_q", "to_v"]}))
    doubled = root / f"{name}-doubled.safetensors"
    save_file({k: v * 2 if "lora_B" in k else v for k, v in state.items()}, str(doubled))
    assert np.array_equal(paint(engine, (folder, 1.0)), paint(engine, (doubled, 1.0)))


@pytest.mark.parametrize("name", FAMILIES)
def test_a_file_that_is_no_lora_or_another_models_is_one_line(engines, loras, root, name):
    engine = engines(name)
    without = paint(engine)
    kept = loras(name, 0)
    with_kept = paint(engine, (kept, 1.0))
    garbage = root / "garbage.safetensors"
    garbage.write_bytes(b"not a LoRA at all " * 8)
    with pytest.raises(HuajiaError) as error:
        paint(engine, (garbage, 1.0))
    assert "cannot read LoRA" in one_line(error, garbage)
    other = loras("flux" if name in UNET_FAMILIES else "sd15", 0)
    with pytest.raises(HuajiaError) as error:
        paint(engine, (kept, 1.0), (other, 1.0))  # the good one loads first, then goes again
    assert "fits no module" in one_line(error, other)
    assert np.array_equal(paint(engine), without)
    assert np.array_equal(paint(engine, (kept, 1.0)), with_kept)
    assert np.array_equal(paint(engine), without)


def test_a_lora_with_other_shapes_is_one_line(engines, loras):
    """An SDXL LoRA has SD 1.5's module names but not its widths."""
    engine = engines("sd15")
    other = loras("sdxl", 0)
    with pytest.raises(HuajiaError) as error:
        paint(engine, (other, 1.0))
    assert "(a LoRA for another model)" in one_line(error, other)


def test_a_family_that_takes_no_lora_refuses_in_one_line(engines, loras, monkeypatch):
    engine = engines("sana")
    path = loras("sana", 2)  # a file this engine has not loaded yet
    monkeypatch.setattr(engine.family, "lora_loader", None)
    with pytest.raises(HuajiaError) as error:
        paint(engine, (path, 1.0))
    assert "Sana takes no LoRA files" in one_line(error, path)


def test_a_pickle_that_is_not_a_state_dict_is_one_line(engines, root):
    file = root / "model.ckpt"
    torch.save([torch.zeros(2)], file)
    with pytest.raises(HuajiaError) as error:
        paint(engines("kolors"), (file, 1.0))
    assert "not a state dict" in one_line(error, file)
    file = root / "weights.safetensors"
    save_file({"conv_in.weight": torch.zeros(2, 2)}, str(file))
    with pytest.raises(HuajiaError) as error:
        paint(engines("kolors"), (file, 1.0))
    assert "holds no LoRA weights" in one_line(error, file)
