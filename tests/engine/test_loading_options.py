"""How a model loads and runs (``LoadOptions``): precision, VAE tiling and slicing, the attention
backend, First-Block Cache and torchao int8 paint on the CPU; offloading and NF4 are refused
there in one line. Single checkpoint files: an SD 1.x model in the original (ldm) layout, as
.safetensors and .ckpt, and a Flux denoiser alone (safetensors, GGUF) load offline with a
local --model-config folder; what cannot be read is one line."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from tests.engine.ldm_layout import ldm_state_dict
from tests.family_fixtures import build

from huajia.engine import loading
from huajia.engine.engine import Engine
from huajia.engine.infotext import parse_infotext
from huajia.engine.loading import LoadOptions
from huajia.engine.request import GenerationRequest
from huajia.errors import HuajiaError

SMALL = {"steps": 2, "width": 64, "height": 64, "seed": 3}


def _paint(engine: Engine, **changes) -> tuple[np.ndarray, dict]:
    result = engine.generate(GenerationRequest("a red circle", **{**SMALL, **changes}))
    return np.asarray(result.images[0], dtype=np.float64), parse_infotext(result.infotexts[0])


@pytest.fixture
def offline(monkeypatch):
    """No hub (huggingface_hub reads HF_HUB_OFFLINE when imported, so its constant too)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def plain(family_dirs):
    """Each fixture's picture with the default options, for comparison."""
    cache = {}

    def picture(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = _paint(Engine(str(family_dirs[name])))[0]
        return cache[name]

    return picture


# ---- the options themselves --------------------------------------------------------------------

def test_defaults_are_todays_behaviour_and_bad_values_are_one_line(family_dirs, plain):
    engine = Engine(str(family_dirs["sd15"]))
    assert engine.dtype == torch.float32 and engine.load == LoadOptions()
    assert engine.load_record == {"dtype": "auto", "offload": "none", "quantize": "none",
                                  "vae_tiling": False, "vae_slicing": False}
    assert engine.facts.describe["loading"] == engine.load_record
    pixels, fields = _paint(engine)
    assert not {"Precision", "Quantization", "Attention", "First block cache",
                "VAE tiling"} & set(fields)
    with pytest.raises(HuajiaError, match="unknown dtype 'fp8'; known: auto, bf16, fp16, fp32"):
        LoadOptions(dtype="fp8")
    with pytest.raises(HuajiaError, match="step_cache=1.5 is out of range"):
        LoadOptions(step_cache=1.5)
    with pytest.raises(HuajiaError, match="unknown offload 'disk'"):
        LoadOptions(offload="disk")


@pytest.mark.parametrize("name", ["sd15", "flux"])
@pytest.mark.parametrize("dtype,torch_dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_half_precision_paints_on_the_cpu(family_dirs, plain, name, dtype, torch_dtype):
    engine = Engine(str(family_dirs[name]), load=LoadOptions(dtype=dtype))
    assert engine.dtype == torch_dtype and engine.denoiser.dtype == torch_dtype
    pixels, fields = _paint(engine)
    assert fields["Precision"] == dtype
    assert pixels.std() > 1 and np.abs(pixels - plain(name)).mean() < 8  # the same picture, roughly


def test_bf16_through_the_frozen_cpu_trace(family_dirs):
    engine = Engine(str(family_dirs["sd15"]), load=LoadOptions(dtype="bf16"))
    engine.warm_up()  # traces the UNet now (in bf16)
    assert engine.split is not None and engine.split.traces._traces
    pixels, _ = _paint(engine)
    assert np.isfinite(pixels).all() and pixels.std() > 1


def test_vae_tiling_keeps_the_embedded_models_pixels_at_its_size():
    plain_engine = Engine("embedded", trace=False)
    tiled = Engine("embedded", trace=False, load=LoadOptions(vae_tiling="on", vae_slicing=True))
    assert tiled.pipe.vae.use_tiling and tiled.pipe.vae.use_slicing
    assert not plain_engine.pipe.vae.use_tiling  # auto: off on the CPU, as before
    request = {"steps": 2, "seed": 1, "width": 128, "height": 128}
    before, _ = _paint(plain_engine, **request)
    after, fields = _paint(tiled, **request)
    assert np.array_equal(before, after) and fields["VAE tiling"] == "on"


def test_vae_tiling_and_slicing_paint_above_the_vaes_size(family_dirs, plain):
    # the fixture's VAE is 32 px: a 64 px picture decodes as overlapping tiles
    engine = Engine(str(family_dirs["sd15"]), load=LoadOptions(vae_tiling="on", vae_slicing=True))
    result = engine.generate(GenerationRequest("a red circle", n=2, **SMALL))
    first = np.asarray(result.images[0], dtype=np.float64)
    assert first.std() > 1 and np.abs(first - plain("sd15")).mean() < 16


def test_attention_backend_native(family_dirs, plain):
    flux = Engine(str(family_dirs["flux"]), load=LoadOptions(attention="native"))
    pixels, fields = _paint(flux)
    assert fields["Attention"] == "native" and flux.load_record["attention"] == "native"
    assert np.array_equal(pixels, plain("flux"))  # native is what it ran before
    sd = Engine(str(family_dirs["sd15"]), load=LoadOptions(attention="native"))  # torch SDPA
    assert np.array_equal(_paint(sd)[0], plain("sd15"))


@pytest.mark.parametrize("name,attention,message", [
    ("flux", "flashy", "unknown attention backend 'flashy'; known: flash, "),
    ("flux", "flash", "attention backend 'flash' needs a GPU; on the CPU use native"),
    ("sd15", "sage", "does not switch attention backends; use attention native"),
])
def test_attention_refusals_are_one_line(family_dirs, name, attention, message):
    with pytest.raises(HuajiaError, match=message) as error:
        Engine(str(family_dirs[name]), load=LoadOptions(attention=attention))
    assert "\n" not in str(error.value)


def _calls(module: torch.nn.Module) -> list:
    seen = []
    module.register_forward_hook(lambda *_: seen.append(1))
    return seen


def test_first_block_cache_skips_blocks_on_a_flux_fixture(family_dirs, plain):
    engine = Engine(str(family_dirs["flux"]), load=LoadOptions(step_cache=1.0))
    transformer = engine.denoiser
    last = _calls(transformer.single_transformer_blocks[-1].attn)
    first = _calls(transformer.transformer_blocks[0].attn)
    pixels, fields = _paint(engine, steps=6)
    assert fields["First block cache"] == "1.0"
    assert len(first) == 6 and 0 < len(last) < 6  # the head ran every step, the tail did not
    assert pixels.std() > 1
    # a pipeline that names no cache context (Flux's image-to-image: hires fix, edits) runs too
    from diffusers import AutoPipelineForImage2Image

    sibling = AutoPipelineForImage2Image.from_pipe(engine.pipe)
    sibling.set_progress_bar_config(disable=True)
    out = sibling("a red circle", image=torch.rand(1, 3, 64, 64), strength=0.9, height=64,
                  width=64, num_inference_steps=4, output_type="np",
                  generator=torch.Generator().manual_seed(0)).images
    assert np.isfinite(out).all()


def test_first_block_cache_on_qwen_image(family_dirs):
    engine = Engine(str(family_dirs["qwenimage"]), load=LoadOptions(step_cache=0.2))
    pixels, fields = _paint(engine, steps=4)
    assert fields["First block cache"] == "0.2" and pixels.std() > 1


@pytest.mark.parametrize("name,message", [
    ("sd15", "step_cache is not available on Stable Diffusion 1.x/2.x (diffusers has no cache"),
    ("sd3", "step_cache is not available on Stable Diffusion 3"),
    ("chroma", "step_cache is not available on Chroma"),
])
def test_first_block_cache_refusals_are_one_line(family_dirs, name, message):
    with pytest.raises(HuajiaError, match=re.escape(message)) as error:
        Engine(str(family_dirs[name]), load=LoadOptions(step_cache=0.1))
    assert "\n" not in str(error.value) and "use step_cache 0" in str(error.value)


@pytest.mark.parametrize("options,message", [
    ({"offload": "model"}, "offload 'model' moves weights between CPU memory and a GPU"),
    ({"offload": "sequential"}, "this machine paints on the CPU; use offload none"),
    ({"quantize": "nf4"}, "quantize nf4 \\(bitsandbytes\\) needs a CUDA GPU"),
])
def test_what_needs_a_gpu_is_refused_on_the_cpu(family_dirs, options, message):
    with pytest.raises(HuajiaError, match=message):
        Engine(str(family_dirs["sd15"]), load=LoadOptions(**options))


def test_a_built_pipeline_is_taken_as_built(family_dirs):
    pipe = build("sd15")
    with pytest.raises(HuajiaError, match="dtype bf16, quantize int8: chosen when huajia loads"):
        Engine(pipe=pipe, load=LoadOptions(dtype="bf16", quantize="int8"))
    engine = Engine(pipe=pipe, load=LoadOptions(vae_slicing=True))  # what runs, it takes
    assert engine.pipe.vae.use_slicing


@pytest.mark.parametrize("name", ["sd15", "flux"])
def test_torchao_int8_paints_on_the_cpu(family_dirs, plain, name):
    pytest.importorskip("torchao")
    from torchao.quantization import Int8Tensor

    engine = Engine(str(family_dirs[name]), load=LoadOptions(quantize="int8"))
    for part in loading.quantized_parts(engine.pipe):
        weights = [m.weight for m in getattr(engine.pipe, part).modules()
                   if isinstance(m, torch.nn.Linear)]
        assert weights and all(isinstance(w, Int8Tensor) for w in weights), part
    assert engine.split is None or engine.split.traces is None  # quantized: no frozen trace
    pixels, fields = _paint(engine)
    assert fields["Quantization"] == "int8"
    assert pixels.std() > 1 and np.abs(pixels - plain(name)).mean() < 8


def test_int8_without_torchao_is_one_line(family_dirs, monkeypatch):
    real = loading.find_spec
    monkeypatch.setattr(loading, "find_spec", lambda n: None if n == "torchao" else real(n))
    with pytest.raises(HuajiaError, match="quantize int8 needs the 'torchao' package, which is "
                                          "not installed; pip install 'huajia\\[quant\\]'"):
        Engine(str(family_dirs["sd15"]), load=LoadOptions(quantize="int8"))


# ---- single checkpoint files -----------------------------------------------------------------

@pytest.fixture(scope="module")
def sd_files(tmp_path_factory):
    """The sd15 fixture as one file in the original layout, .safetensors and .ckpt."""
    folder = tmp_path_factory.mktemp("single-files")
    state = ldm_state_dict(build("sd15"))
    save_file(state, folder / "tiny-sd15.safetensors")
    torch.save({"state_dict": state}, folder / "tiny-sd15.ckpt")
    return folder


@pytest.mark.parametrize("file", ["tiny-sd15.safetensors", "tiny-sd15.ckpt"])
def test_an_ldm_checkpoint_file_paints_as_its_folder(family_dirs, plain, sd_files, file,
                                                     offline):
    path = sd_files / file
    engine = Engine(str(path), load=LoadOptions(model_config=str(family_dirs["sd15"])))
    assert type(engine.pipe).__name__ == "StableDiffusionPipeline" and engine.family.name == "sd"
    # A1111's model hash: the file's sha256
    assert engine.model_hash == hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    pixels, fields = _paint(engine)
    assert np.array_equal(pixels, plain("sd15")) and fields["Model hash"] == engine.model_hash


def test_a_checkpoint_without_its_configs_names_the_way_out(sd_files, offline):
    with pytest.raises(HuajiaError, match="'tiny-sd15.safetensors' lacks the configs and "
                       "tokenizers of its model; diffusers takes them from the Hugging Face "
                       "Hub \\('stable-diffusion-v1-5/stable-diffusion-v1-5'\\).*--model-config"):
        Engine(str(sd_files / "tiny-sd15.safetensors"))


@pytest.mark.parametrize("file", ["tiny-sd15.safetensors", "tiny-sd15.ckpt"])
def test_a_truncated_file_is_one_line(family_dirs, sd_files, tmp_path, file):
    data = (sd_files / file).read_bytes()
    cut = tmp_path / file
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(HuajiaError, match=f"cannot read '{file}' .*the file is truncated or "
                                          "not a checkpoint: download it again") as error:
        Engine(str(cut), load=LoadOptions(model_config=str(family_dirs["sd15"])))
    assert "\n" not in str(error.value)


def test_unknown_layouts_and_files_are_one_line(family_dirs, tmp_path, offline):
    odd = tmp_path / "odd.safetensors"
    save_file({"foo.weight": torch.zeros(3, 3)}, odd)
    with pytest.raises(HuajiaError, match="cannot tell which model 'odd.safetensors' is \\(its "
                                          "layout is not one diffusers knows\\); pass --family"):
        Engine(str(odd))
    with pytest.raises(HuajiaError, match="cannot load 'odd.safetensors' .*check that "
                                          "--model-config is a folder of the same family"):
        Engine(str(odd), load=LoadOptions(model_config=str(family_dirs["sd15"])))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(HuajiaError, match="'.*notes.txt' is not a checkpoint file huajia reads"):
        Engine(str(text))
    with pytest.raises(HuajiaError, match="--model-config '/nope' is not a diffusers pipeline"):
        Engine(str(odd), load=LoadOptions(model_config="/nope"))


class _Callback:  # what training frameworks pickle beside the weights
    pass


def test_a_ckpt_with_pickled_objects_is_refused_and_an_old_format_read(tmp_path):
    torch.save({"state_dict": {"w": torch.zeros(2)}, "callbacks": _Callback()},
               tmp_path / "trainer.ckpt")
    with pytest.raises(HuajiaError, match="'trainer.ckpt' holds more than weights \\(pickled "
                                          "objects that would run code"):
        loading.read_keys(tmp_path / "trainer.ckpt")
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "old.ckpt",
               _use_new_zipfile_serialization=False)  # torch's pre-1.6 format: no mmap
    assert list(loading.read_keys(tmp_path / "old.ckpt")) == ["w"]


@pytest.fixture(scope="module")
def flux_files(tmp_path_factory):
    """The flux fixture's transformer alone: as safetensors (diffusers' layout) and as GGUF
    (Q8_0 where a row holds whole 32-value blocks, float32 elsewhere)."""
    folder = tmp_path_factory.mktemp("flux-files")
    state = {k: v.contiguous() for k, v in build("flux").transformer.state_dict().items()}
    save_file(state, folder / "flux-transformer.safetensors")
    try:  # the GGUF file only where gguf is installed
        import gguf
    except ImportError:
        return folder
    writer = gguf.GGUFWriter(str(folder / "flux-transformer.gguf"), arch="flux")
    for key, tensor in state.items():
        array = tensor.float().numpy()
        if array.ndim == 2 and array.shape[-1] % 32 == 0:
            quantized = gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(key, quantized, raw_shape=quantized.shape,
                              raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(key, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return folder


def test_a_denoiser_file_takes_the_rest_from_model_config(family_dirs, plain, flux_files,
                                                          offline):
    path = flux_files / "flux-transformer.safetensors"
    engine = Engine(str(path), load=LoadOptions(model_config=str(family_dirs["flux"])))
    assert engine.family.name == "flux"
    assert np.array_equal(_paint(engine)[0], plain("flux"))
    with pytest.raises(HuajiaError, match="diffusers takes them from the Hugging Face Hub "
                       "\\('black-forest-labs/FLUX.1-dev'\\)"):
        Engine(str(path), family="flux")


def test_a_gguf_denoiser_paints(family_dirs, plain, flux_files, offline):
    pytest.importorskip("gguf")
    engine = Engine(str(flux_files / "flux-transformer.gguf"),
                    load=LoadOptions(model_config=str(family_dirs["flux"])))
    assert engine.load_record["quantize"] == "gguf"
    assert type(engine.denoiser.transformer_blocks[0].attn.to_q.weight).__name__ == "GGUFParameter"
    pixels, fields = _paint(engine)
    assert fields["Quantization"] == "gguf"
    assert pixels.std() > 1 and np.abs(pixels - plain("flux")).mean() < 8


def test_quantizing_a_gguf_file_again_is_one_line(family_dirs, flux_files):
    pytest.importorskip("torchao")
    with pytest.raises(HuajiaError, match="quantize int8 does not apply to "
                                          "'flux-transformer.gguf' \\(it is quantized already\\)"):
        Engine(str(flux_files / "flux-transformer.gguf"),
               load=LoadOptions(quantize="int8", model_config=str(family_dirs["flux"])))


def test_gguf_without_its_package_is_one_line(tmp_path, monkeypatch):
    real = loading.find_spec
    monkeypatch.setattr(loading, "find_spec", lambda n: None if n == "gguf" else real(n))
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    with pytest.raises(HuajiaError, match="reading 'model.gguf' needs the 'gguf' package, which "
                                          "is not installed"):
        Engine(str(path))


# ---- the command line --------------------------------------------------------------------------

def test_the_cli_takes_the_load_options(family_dirs, tmp_path, cli):
    code, out, err = cli("generate", "a red circle", "--model", str(family_dirs["sd15"]),
                         "--dtype", "bf16", "--vae-slicing", "--attention", "native",
                         "--steps", "2", "--size", "64x64", "--seed", "1", "--out",
                         str(tmp_path / "out"))
    assert code == 0, err
    from huajia.engine.infotext import read_infotext

    fields = parse_infotext(read_infotext(next((tmp_path / "out").glob("*.png"))))
    assert fields["Precision"] == "bf16" and fields["Attention"] == "native"
    for args, needle in [(("--offload", "model"), "offload 'model' moves weights"),
                         (("--quantize", "nf4"), "quantize nf4 (bitsandbytes) needs a CUDA GPU"),
                         (("--dtype", "fp8"), "unknown dtype 'fp8'")]:
        code, _, err = cli("think", "a red circle", "--model", str(family_dirs["sd15"]), *args,
                           "--out", str(tmp_path / "think"))
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and needle in lines[0], err
