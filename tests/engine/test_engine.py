import numpy as np
import pytest
import torch

from huajia.engine.embeddings import encode_weighted
from huajia.engine.engine import Engine
from huajia.engine.infotext import parse_infotext
from huajia.engine.request import GenerationRequest
from huajia.errors import HuajiaError


def _pixels(result):
    return [np.asarray(im) for im in result.images]


@pytest.fixture(scope="module", params=["sd", "sdxl"])
def engine(request, sd_dir, sdxl_dir):
    return Engine(str(sd_dir if request.param == "sd" else sdxl_dir))


def test_generates_n_images_with_infotext(engine):
    result = engine.generate(GenerationRequest("a red circle", seed=7, steps=2, n=2,
                                               width=64, height=64))
    assert len(result.images) == 2 and result.images[0].size == (64, 64)
    assert result.seeds == (7, 8)
    fields = parse_infotext(result.infotexts[1])
    assert fields["Prompt"] == "a red circle" and fields["Seed"] == "8"
    assert fields["Steps"] == "2" and fields["Size"] == "64x64" and len(fields["Model hash"]) == 10


def test_same_seed_is_bit_identical(engine):
    request = GenerationRequest("(red:1.4) circle, [blue] square", seed=3, steps=2, width=64,
                                height=64)
    first, second = _pixels(engine.generate(request)), _pixels(engine.generate(request))
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    other = _pixels(engine.generate(GenerationRequest(request.prompt, seed=4, steps=2,
                                                      width=64, height=64)))
    assert not np.array_equal(first[0], other[0])


def test_weights_change_the_embedding(engine):
    plain, _ = encode_weighted(engine.pipe, "a red circle", "")
    heavy, _ = encode_weighted(engine.pipe, "a (red:1.8) circle", "")
    assert plain.prompt_embeds.shape == heavy.prompt_embeds.shape
    assert not torch.allclose(plain.prompt_embeds, heavy.prompt_embeds)
    if engine.pipe.__class__.__name__.startswith("StableDiffusionXL"):
        assert plain.pooled is not None and plain.prompt_embeds.shape[-1] == 64


def test_long_prompts_are_chunked_not_truncated(engine):
    long = ", ".join(["a red circle left of a blue square"] * 12)  # > 75 tokens
    positive, negative = encode_weighted(engine.pipe, long, "ugly")
    window = engine.pipe.tokenizer.model_max_length
    assert positive.prompt_embeds.shape[1] >= 2 * window
    assert negative.prompt_embeds.shape == positive.prompt_embeds.shape
    longer, _ = encode_weighted(engine.pipe, long + ", two green stars above a triangle" * 12, "")
    assert longer.prompt_embeds.shape[1] > positive.prompt_embeds.shape[1]  # nothing cut off


def test_styles_and_schedulers(engine):
    result = engine.generate(GenerationRequest("a cat", seed=1, steps=2, width=64, height=64,
                                               style="cyberpunk", scheduler="euler_a"))
    fields = parse_infotext(result.infotexts[0])
    assert fields["Prompt"].startswith("cyberpunk a cat") and fields["Style"] == "cyberpunk"
    assert fields["Sampler"] == "Euler a"
    with pytest.raises(HuajiaError, match="unknown style 'cyberpnk'"):
        engine.generate(GenerationRequest("a cat", style="cyberpnk", steps=1))
    with pytest.raises(HuajiaError, match="unknown scheduler"):
        engine.generate(GenerationRequest("a cat", scheduler="heun9", steps=1))


@pytest.mark.parametrize("bad", ["(red circle", "red) circle", "(red:abc)"])
def test_malformed_weights_are_clear_errors(engine, bad):
    with pytest.raises(HuajiaError, match="malformed prompt"):
        engine.generate(GenerationRequest(bad, steps=1, width=64, height=64))


@pytest.mark.parametrize("kwargs,message", [
    ({"prompt": ""}, "prompt is empty"), ({"prompt": "x", "n": 0}, "n=0"),
    ({"prompt": "x", "width": 7}, "width=7"), ({"prompt": "x", "steps": 0}, "steps=0")])
def test_request_validation(kwargs, message):
    with pytest.raises(HuajiaError, match=message):
        GenerationRequest(**kwargs)


def test_micro_batch_splits_results_per_request(engine):
    requests = [GenerationRequest("a red circle", seed=1, n=2, steps=2, width=64, height=64),
                GenerationRequest("两个蓝色正方形", seed=9, n=1, steps=2, width=64, height=64,
                                  style="cartoon")]
    first, second = engine.generate_batch(requests)
    assert len(first.images) == 2 and first.seeds == (1, 2)
    assert second.seeds == (9,) and "两个蓝色正方形" in parse_infotext(second.infotexts[0])["Prompt"]
    alone = engine.generate(requests[1]).images[0]
    diff = np.abs(np.asarray(alone, dtype=int) - np.asarray(second.images[0], dtype=int))
    assert diff.max() <= 2  # batching may move low bits, never the picture
    with pytest.raises(HuajiaError, match="share steps"):
        engine.generate_batch([requests[0], GenerationRequest("x", steps=3)])


def test_only_models_trained_on_the_shapes_world_are_reworded(sd_dir):
    """A model of the wider world learned its own words: its prompts are painted as written."""
    from huajia.world.reading import reword

    engine = Engine(str(sd_dir), reword=reword)
    result = engine.generate(GenerationRequest(prompt="please draw a star", seed=0, steps=1,
                                               width=64, height=64))
    assert result.metadata[0]["Prompt"] == "please draw a star"
