"""The shipped embedded model: plain diffusers loads it, the engine paints with it."""

import numpy as np
import pytest

from huajia.engine.loading import embedded_path

pytestmark = pytest.mark.skipif(not (embedded_path() / "model_index.json").exists(),
                                reason="embedded model not installed")


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("loader", ["StableDiffusionPipeline", "DiffusionPipeline",
                                    "AutoPipelineForText2Image"])
def test_plain_diffusers_loads_and_paints_it(loader, dtype):
    """README's promise: a bare from_pretrained(...) and a call, in fp32 and fp16, through
    each of diffusers' ways in (a text encoder left in fp16 once crashed the first call)."""
    import diffusers
    import torch

    kwargs = {"torch_dtype": torch.float16} if dtype == "float16" else {}
    pipe = getattr(diffusers, loader).from_pretrained(embedded_path(), **kwargs)
    assert {pipe.text_encoder.dtype, pipe.unet.dtype, pipe.vae.dtype} == {getattr(torch, dtype)}
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a red circle", num_inference_steps=2,
                 generator=torch.Generator().manual_seed(0)).images[0]
    pixels = np.asarray(image)
    assert image.size == (128, 128) and pixels.std() > 1  # a picture, not NaN-black


def test_shipped_folder_loads_with_transformers_4_and_5():
    """Declared classes and weight names every transformers pyproject allows can read
    (scripts/min_versions.sh runs this file with the lowest versions)."""
    import json

    from safetensors import safe_open

    index = json.loads((embedded_path() / "model_index.json").read_text())
    assert index["tokenizer"] == ["transformers", "PreTrainedTokenizerFast"]
    with safe_open(str(embedded_path() / "text_encoder" / "model.safetensors"), "pt") as f:
        assert all(key.startswith("text_model.") for key in f.keys())
    size = sum(p.stat().st_size for p in embedded_path().rglob("*") if p.is_file())
    assert size <= 40 * 2**20


def test_tokenizer_covers_unseen_words():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_path() / "tokenizer")
    ids = tokenizer("a checkered hexagon 格子六边形 and a zebra 斑马").input_ids
    assert tokenizer.unk_token_id is None or tokenizer.unk_token_id not in ids
    content = [t for t in tokenizer.tokenize("边形") if t != "Ġ"]  # (spacers: see notes)
    assert len(content) == 2  # characters it saw: one token each
    assert len(tokenizer.tokenize("六")) >= 1  # never seen (hexagons are held out): byte pieces


@pytest.fixture(scope="module")
def engine():
    from huajia.engine.engine import Engine
    from huajia.world.parser import unknown_words

    return Engine("embedded", vocabulary=unknown_words)


def test_paints_128px_deterministically(engine):
    from huajia.engine.request import GenerationRequest

    request = GenerationRequest("两个红色圆形", seed=11, steps=4, n=2)
    first, second = engine.generate(request), engine.generate(request)
    assert first.images[0].size == (128, 128)
    assert np.array_equal(np.asarray(first.images[1]), np.asarray(second.images[1]))


def test_warns_about_words_outside_the_world(engine):
    from huajia.engine.request import GenerationRequest

    result = engine.generate(GenerationRequest("a red circle next to a dog", seed=1, steps=2))
    assert result.warnings and "'dog'" in result.warnings[0]
    clean = engine.generate(GenerationRequest("a (red:1.2) circle", seed=1, steps=2))
    assert clean.warnings == ()
    # the check is the caller's: an engine given none warns about nothing, one given its own
    # vocabulary warns by it
    from huajia.engine.engine import Engine

    plain = Engine.from_pipe(engine.pipe)
    assert plain.generate(GenerationRequest("a dog", seed=1, steps=1)).warnings == ()
    picky = Engine.from_pipe(engine.pipe, vocabulary=lambda text: [w for w in text.split()
                                                                   if w == "circle"])
    assert "'circle'" in picky.generate(GenerationRequest("a red circle", seed=1,
                                                          steps=1)).warnings[0]


def test_a_users_prompt_is_painted_in_the_models_own_words():
    """Issue 45: the embedded model paints a prompt it reads fully as its canonical caption
    (and says so); ``verbatim`` paints the words as written; weighted prompts are untouched."""
    from huajia.engine.engine import Engine
    from huajia.engine.request import GenerationRequest
    from huajia.world.parser import unknown_words
    from huajia.world.reading import reword

    engine = Engine("embedded", vocabulary=unknown_words, reword=reword)
    asked = "could you draw me three green triangles please?"

    def paint(prompt, **fields):
        return engine.generate(GenerationRequest(prompt=prompt, seed=3, steps=2, **fields))

    read, own, verbatim = paint(asked), paint("three green triangles"), paint(asked, verbatim=True)
    assert np.array_equal(np.asarray(read.images[0]), np.asarray(own.images[0]))
    assert any("painted as 'three green triangles'" in w for w in read.warnings)
    assert read.metadata[0]["Prompt"] == "three green triangles"  # what was painted
    assert not np.array_equal(np.asarray(verbatim.images[0]), np.asarray(own.images[0]))
    assert verbatim.metadata[0]["Prompt"] == asked
    assert any("never learned" in w for w in verbatim.warnings)
    weighted = paint("(three green triangles:1.2) please")
    assert weighted.metadata[0]["Prompt"] == "(three green triangles:1.2) please"
    assert Engine("embedded", reword=None).reword is None
