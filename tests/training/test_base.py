"""The base recipe at toy size: it exports a diffusers folder, resumes, and keeps its notes and a
refined decoder across a resumed export."""

import json

import pytest
import torch

from huajia.engine.loading import dtype_kwargs
from huajia.training.base import BaseRecipe, train_base
from huajia.training.components import ModelSize
from huajia.training.decoder import refine_decoder

TINY = ModelSize(image_side=64, vocab_size=400, text_width=32, text_layers=1,
                 vae_channels=(8, 8, 16, 16), latent_channels=4, unet_channels=(32, 32, 64),
                 unet_heads=2)


def _recipe(unet_steps: int) -> BaseRecipe:
    return BaseRecipe(size=TINY, n_scenes=12, vae_steps=2, vae_batch=2, vae_crop=32,
                      unet_steps=unet_steps, unet_batch=2, warmup=1, checkpoint_every=1)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    return out, train_base(_recipe(2), out)


def test_exports_a_pipeline_plain_diffusers_loads(run):
    from diffusers import StableDiffusionPipeline

    out, model_dir = run
    pipe = StableDiffusionPipeline.from_pretrained(model_dir, **dtype_kwargs(torch.float32))
    image = pipe("a red circle", num_inference_steps=2, height=64, width=64,
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)
    record = json.loads((model_dir / "training.json").read_text())
    assert record["recipe"]["unet_steps"] == 2 and record["timings"]["unet_s"] > 0


def test_resume_continues_and_keeps_notes_and_the_refined_decoder(run):
    from diffusers import AutoencoderKL

    out, model_dir = run
    record = json.loads((model_dir / "training.json").read_text())
    record["notes"] = ["a hand-written note"]
    (model_dir / "training.json").write_text(json.dumps(record))
    refine_decoder(model_dir, steps=1, batch=2)
    refined = AutoencoderKL.from_pretrained(model_dir / "vae").state_dict()
    first_unet_s = record["timings"]["unet_s"]
    train_base(_recipe(3), out, resume=True)
    state = torch.load(out / "checkpoints" / "unet.pt", weights_only=False)
    assert state["step"] == 3
    again = json.loads((model_dir / "training.json").read_text())
    assert again["notes"] == ["a hand-written note"] and "decoder_refinement" in again
    assert again["timings"]["unet_s"] > first_unet_s  # summed across sessions
    kept = AutoencoderKL.from_pretrained(model_dir / "vae").state_dict()
    assert all(torch.equal(kept[k], refined[k]) for k in kept if k.startswith("decoder."))


def test_fine_tune_starts_from_a_model_and_keeps_its_tokenizer_vae_and_record(run, tmp_path):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from huajia.training.model_card import write_model_card

    _, base_dir = run
    recipe = BaseRecipe(size=TINY, n_scenes=12, unet_steps=1, unet_batch=2, warmup=1,
                        init_from=str(base_dir))
    model_dir = train_base(recipe, tmp_path)
    assert not (tmp_path / "checkpoints" / "vae.pt").exists()  # no VAE stage
    assert (model_dir / "tokenizer" / "tokenizer.json").read_text() == \
        (base_dir / "tokenizer" / "tokenizer.json").read_text()
    base_vae = AutoencoderKL.from_pretrained(base_dir / "vae").state_dict()
    vae = AutoencoderKL.from_pretrained(model_dir / "vae")
    assert all(torch.equal(base_vae[k], v) for k, v in vae.state_dict().items())
    assert vae.config.scaling_factor == AutoencoderKL.from_pretrained(
        base_dir / "vae").config.scaling_factor  # the UNet's latents keep their scale
    base_unet = UNet2DConditionModel.from_pretrained(base_dir / "unet").state_dict()
    tuned = UNet2DConditionModel.from_pretrained(model_dir / "unet").state_dict()
    assert any(not torch.equal(base_unet[k], v) for k, v in tuned.items())
    record = json.loads((model_dir / "training.json").read_text())
    base_record = json.loads((base_dir / "training.json").read_text())
    assert record["fine_tuned_from"]["recipe"] == base_record["recipe"]
    card = write_model_card(model_dir, []).read_text()
    assert "--init-from DIR/model" in card and "starting model:" in card
    # resumed from its own export (as after installing it): the starting model stays the base
    resumed = BaseRecipe(size=TINY, n_scenes=12, unet_steps=2, unet_batch=2, warmup=1,
                         init_from=str(model_dir))
    train_base(resumed, tmp_path, resume=True)
    again = json.loads((model_dir / "training.json").read_text())
    assert again["fine_tuned_from"]["recipe"] == base_record["recipe"]


def test_fine_tune_from_a_missing_folder_names_it(tmp_path):
    from huajia.errors import HuajiaError

    with pytest.raises(HuajiaError, match="no model at 'nowhere'"):
        train_base(BaseRecipe(size=TINY, n_scenes=2, init_from="nowhere"), tmp_path)


def test_relation_share_redraws_scenes_until_they_state_a_relation():
    from huajia.training.base import _scenes

    plain = _scenes(BaseRecipe(n_scenes=60))
    related = _scenes(BaseRecipe(n_scenes=60, relation_share=1.0))
    assert [s.spec for s in plain] == [s.spec for s in _scenes(BaseRecipe(n_scenes=60))]
    assert all(s.spec.relations for s in related)
    assert 0 < sum(bool(s.spec.relations) for s in plain) < 60
    # the scenes that already stated one are kept as they were
    assert all(a.spec == b.spec for a, b in zip(plain, related, strict=True) if a.spec.relations)


def test_mirror_pairs_share_noise_step_and_caption_frame():
    import numpy as np

    from huajia.training.base import _batch, _scenes
    from huajia.world import vocab

    recipe = BaseRecipe(n_scenes=30, relation_share=1.0, mirror_pairs=True, unet_batch=8,
                        caption_dropout=0.0)
    scenes = _scenes(recipe)
    assert len(scenes) == 60
    picks, texts = _batch(recipe, scenes, np.random.default_rng(0))
    assert list(picks[4:]) == [i + 30 for i in picks[:4]]
    relation_words = {w for c in vocab.RELATIONS for phrase in c.en for w in phrase.split()}
    relation_words |= {ch for c in vocab.RELATIONS for phrase in c.zh for ch in phrase}
    for first, second in zip(texts[:4], texts[4:], strict=True):
        a, b = _middle(_tokens(first), _tokens(second)), _middle(_tokens(second), _tokens(first))
        assert a != b, (first, second)  # only relation words tell the two captions apart
        assert set(a) | set(b) <= relation_words | {"of", "the", "to"}, (first, second)


def _tokens(text: str) -> list[str]:
    return text.split() if " " in text else list(text)  # Chinese captions: one per character


def _middle(tokens: list[str], other: list[str]) -> list[str]:
    """What is left of ``tokens`` once the prefix and suffix they share with ``other`` are cut."""
    start = 0
    while start < min(len(tokens), len(other)) and tokens[start] == other[start]:
        start += 1
    end = 0
    while end < min(len(tokens), len(other)) - start and tokens[-1 - end] == other[-1 - end]:
        end += 1
    return tokens[start:len(tokens) - end]
