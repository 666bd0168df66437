"""A picture that turns NaN is an error that says where and what to do, never a black image
(A1111's NansException); prompt weights stay finite on encoders whose embeddings average 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from tests.conftest import _text_config, loud_lora, tiny_sd
from transformers import CLIPTextModel

from huajia.engine.embeddings import encode_weighted
from huajia.engine.engine import Engine
from huajia.engine.request import GenerationRequest, LoraSpec
from huajia.errors import HuajiaError

SMALL = {"steps": 3, "width": 64, "height": 64, "seed": 1}


@pytest.fixture(scope="module")
def engine(sd_dir):
    return Engine(str(sd_dir), split_batch=False, trace=False)


def _nan_after(module: torch.nn.Module, calls: int):
    """A forward hook that makes the module's output NaN from call ``calls + 1`` on."""
    seen = []

    def hook(_module, _inputs, output):
        seen.append(1)
        if len(seen) <= calls:
            return output
        if torch.is_tensor(output):
            return torch.full_like(output, float("nan"))
        if hasattr(output, "sample"):
            output.sample = torch.full_like(output.sample, float("nan"))
            return output
        return (torch.full_like(output[0], float("nan")),) + tuple(output[1:])

    return module.register_forward_hook(hook)


def test_nan_latents_name_the_step_the_sampler_and_the_way_out(engine):
    handle = _nan_after(engine.pipe.unet, 1)  # the second step's prediction is NaN
    try:
        with pytest.raises(HuajiaError) as caught:
            engine.generate(GenerationRequest("a red circle", scheduler="euler", **SMALL))
    finally:
        handle.remove()
    message = str(caught.value)
    assert "NaN" in message and "at step 2 of 3" in message and "'Euler'" in message
    assert "float32" in message and "--scheduler" in message and "LoRA" in message
    assert "\n" not in message
    # the engine is not left in a broken state: the next picture paints
    picture = engine.generate(GenerationRequest("a red circle", **SMALL)).images[0]
    assert np.asarray(picture).std() > 0


def test_a_nan_decode_is_an_error_too(engine):
    handle = _nan_after(engine.pipe.vae.decoder, 0)
    try:
        with pytest.raises(HuajiaError, match="in the VAE's decode"):
            engine.generate(GenerationRequest("a red circle", **SMALL))
    finally:
        handle.remove()


def test_a_broken_lora_is_an_error_not_a_black_picture(engine, sd_dir, tmp_path):
    path = loud_lora(sd_dir, tmp_path)
    weights = load_file(path)
    save_file({k: torch.full_like(v, float("inf")) if "lora_B" in k or "lora.up" in k else v
               for k, v in weights.items()}, path)
    with pytest.raises(HuajiaError, match="LoRAs less weight"):
        engine.generate(GenerationRequest("a red circle", loras=(LoraSpec(str(path), 1.0),),
                                          **SMALL))


def test_weights_stay_finite_when_the_embeddings_average_zero(tokenizer):
    torch.manual_seed(0)
    encoder = CLIPTextModel(_text_config(tokenizer, 32))  # fresh: its last LayerNorm has no bias
    pipe = type("Pipe", (), {"tokenizer": tokenizer, "text_encoder": encoder})()
    for prompt in ("a red circle", "(a red:1.5) circle", "(red:0.5) BREAK (circle:1.3)",
                   "[[a red circle]]"):
        positive, negative = encode_weighted(pipe, prompt, "ugly blurry")
        assert torch.isfinite(positive.prompt_embeds).all(), prompt
        assert torch.isfinite(negative.prompt_embeds).all(), prompt
    plain, _ = encode_weighted(pipe, "a red circle", "")
    louder, _ = encode_weighted(pipe, "(a red circle:1.5)", "")
    assert not torch.equal(plain.prompt_embeds, louder.prompt_embeds)  # the weight still counts


def test_tiny_pipelines_paint_finite_pictures_with_every_sampler(engine):
    from huajia.engine.schedulers import SAMPLERS

    for name in SAMPLERS:
        if name == "dpmpp_sde":
            continue  # needs torchsde (tested in test_schedulers)
        picture = engine.generate(GenerationRequest("cyberpunk a cat", style="cyberpunk",
                                                    scheduler=name, **SMALL)).images[0]
        assert np.asarray(picture).std() > 1, name


def test_tiny_encoders_have_trained_like_norms():
    pipe = tiny_sd()
    encoder = pipe.text_encoder
    assert getattr(encoder, "text_model", encoder).final_layer_norm.bias.abs().mean() > 0.1
