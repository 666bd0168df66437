"""Shared test helpers, and tiny random-weight pipelines built from the real classes (as
diffusers' own tests do), saved to disk so the engine loads them like a real checkpoint."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from huajia.training import components as C

_WORDS = ["a red circle left of a blue square", "两个红色圆形", "a photo of a cat",
          "cyberpunk city at night, neon", "ugly blurry", "two green stars above a triangle"]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def tiny_tokenizer():
    return C.train_tokenizer(_WORDS * 4, replace(C.ModelSize(), vocab_size=400))


def _text_config(tokenizer, width: int) -> CLIPTextConfig:
    return CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=37,
                          num_hidden_layers=2, num_attention_heads=4,
                          max_position_embeddings=C.MAX_TOKENS, projection_dim=width,
                          pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id)


def _text_encoder(tokenizer, width: int, cls=CLIPTextModel):
    """A tiny CLIP text encoder with trained-like output norms: a fresh one's last LayerNorm
    has zero bias, so its embeddings average 0 (A1111's weight renormalisation divides by that
    mean) and, with the random UNet, pictures can come out NaN where real models paint."""
    encoder = cls(_text_config(tokenizer, width))
    norm = getattr(encoder, "text_model", encoder).final_layer_norm  # transformers 5 flattened it
    with torch.no_grad():  # its own generator: the other components' weights stay as they were
        norm.bias.copy_(0.5 * torch.randn(width, generator=torch.Generator().manual_seed(1)))
    return encoder


def _vae():
    return AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3,
                         down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4,
                         norm_num_groups=8, sample_size=32)


def _unet(**extra) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), norm_num_groups=8,
        attention_head_dim=2, **extra)


def tiny_sd() -> StableDiffusionPipeline:
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    return StableDiffusionPipeline(
        vae=_vae(), text_encoder=_text_encoder(tokenizer, 32), tokenizer=tokenizer,
        unet=_unet(cross_attention_dim=32), scheduler=C.build_scheduler(), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)


def tiny_sdxl() -> StableDiffusionXLPipeline:
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    unet = _unet(cross_attention_dim=64, addition_embed_type="text_time",
                 addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
                 projection_class_embeddings_input_dim=32 + 6 * 8)
    return StableDiffusionXLPipeline(
        vae=_vae(), text_encoder=_text_encoder(tokenizer, 32),
        text_encoder_2=_text_encoder(tokenizer, 32, CLIPTextModelWithProjection),
        tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet,
        scheduler=EulerDiscreteScheduler(prediction_type="epsilon"))


@pytest.fixture(scope="session")
def family_dirs(tmp_path_factory):
    """Every model family's tiny pipeline (tests/family_fixtures), saved once per session:
    {name: folder}."""
    import time

    from tests.family_fixtures import FAMILIES, saved

    root = tmp_path_factory.mktemp("families")
    folders, seconds = {}, {}
    for name in FAMILIES:
        start = time.perf_counter()
        folders[name] = saved(name, root)
        seconds[name] = time.perf_counter() - start
    print("\nbuild + save: " + ", ".join(f"{n} {s:.2f}s" for n, s in seconds.items())
          + f"; all {sum(seconds.values()):.1f}s")
    return folders


@pytest.fixture(scope="session")
def sd_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-sd")
    tiny_sd().save_pretrained(folder)
    return folder


@pytest.fixture
def cli(monkeypatch, capsys):
    """``huajia ARGS`` run by ``huajia.cli.main`` in this process: (exit code, stdout, stderr),
    as a user's shell sees them, without a subprocess's seconds of imports."""
    import warnings

    from huajia.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        for name in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY"):
            monkeypatch.setenv(name, "error")  # what main() sets, undone after the test
        monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        monkeypatch.setattr("sys.argv", ["huajia", *args])
        capsys.readouterr()
        with warnings.catch_warnings():
            try:
                main()
                code = 0
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray for the whole run (2 CPUs, as this machine has); tests that start Serve
    shut it down again, so the batch and curation actors find the CPUs free."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def sdxl_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-sdxl")
    tiny_sdxl().save_pretrained(folder)
    return folder


@pytest.fixture
def tokenizer():
    return tiny_tokenizer()


def loud_lora(model_dir, out):
    """A LoRA file for a tiny model whose up-weights are large enough to change a picture."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = StableDiffusionPipeline.from_pretrained(str(model_dir))
    pipe.unet.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=["to_q", "to_v"]))
    with torch.no_grad():
        for name, param in pipe.unet.named_parameters():
            if "lora_B" in name:
                param.normal_(generator=torch.Generator().manual_seed(0))
    type(pipe).save_lora_weights(out, unet_lora_layers=get_peft_model_state_dict(pipe.unet))
    return out / "pytorch_lora_weights.safetensors"


class JsonEndpoint(BaseHTTPRequestHandler):
    """A fake HTTP service's handler: ``answer`` sends a JSON body (a client that gave up, as
    in the timeout tests, gets nothing), and nothing is logged."""

    def body(self) -> dict:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def chat(self, content: str) -> None:
        """An OpenAI chat completion whose message is ``content``."""
        self.answer(200, {"choices": [{"message": {"role": "assistant", "content": content}}]})

    def log_message(self, *args):
        pass


class _FakeVLM(JsonEndpoint):
    """An OpenAI-compatible /chat/completions that answers per the sub-caption it is sent."""

    def do_POST(self):  # noqa: N802
        body = self.body()
        caption = body["messages"][1]["content"][0]["text"]
        assert body["messages"][1]["content"][1]["image_url"]["url"].startswith("data:image/png")
        if "slow" in caption:
            time.sleep(2)
        content = ("no idea" if "square" in caption else
                   'Sure! {"score": 42, "observation": "a pink blob", '
                   '"revised_caption": "a bright red circle"}')
        self.chat(content)


class _FakeLLM(JsonEndpoint):
    """An OpenAI-compatible chat endpoint that writes detailed prompts: it adds "on a beige
    background" to a topic, answers nothing usable for "garbage" and too late for "slow"."""

    def do_GET(self):  # noqa: N802 - /models: the reachability probe
        self.answer(200, {"object": "list", "data": [{"id": "fake"}]})

    def do_POST(self):  # noqa: N802
        body = self.body()
        topic = body["messages"][-1]["content"]
        if "slow" in topic:
            time.sleep(3)
        if "garbage" in topic:
            self.answer(200, {"unexpected": True})
            return
        self.chat(f"{topic} on a beige background (seed {body.get('seed')})")


def local_endpoint(handler):
    """An OpenAI-style base URL served by ``handler`` on a free local port, for one test."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


@pytest.fixture
def llm_url():
    yield from local_endpoint(_FakeLLM)


@pytest.fixture
def vlm_url():
    yield from local_endpoint(_FakeVLM)


@pytest.fixture
def clip_dir(tmp_path, tokenizer):
    """A tiny random-weight CLIP checkpoint (model + processor) in a local folder."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    config = CLIPConfig(text_config={"vocab_size": 400, "hidden_size": 32, "num_hidden_layers": 1,
                                     "num_attention_heads": 2, "intermediate_size": 37},
                        vision_config={"hidden_size": 32, "num_hidden_layers": 1,
                                       "num_attention_heads": 2, "intermediate_size": 37,
                                       "image_size": 32, "patch_size": 8},
                        projection_dim=16)
    folder = tmp_path / "tiny-clip"
    CLIPModel(config).save_pretrained(folder)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                 crop_size=32),
                              tokenizer=tokenizer)
    processor.save_pretrained(folder)
    return folder
